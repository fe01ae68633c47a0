"""Reproducible accuracy and attack-signal figures for the client library.

Why it exists: the protocol's thresholds (SPEC §5: Krum outlier ratio, lazy norm
ratio, replay and duplicate cosines) only make sense against what honest clients
actually produce. This script prints those numbers from the same code paths the
clients use, so a threshold change can be checked against data, not intuition.

Run ``python -m federated.experiments [central|fedavg|signals|all]``. Everything is
single-threaded and seeded; a full run takes a few seconds on one CPU core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from federated import attacks, data, models, train
from state_machine import verdicts

S = 12
# Per-model SGD settings that train well at S=12 without int16 clipping.
HPARAMS: dict[str, dict[str, float]] = {
    "softmax": {"lr": 0.5},
    "mlp": {"lr": 0.3},
    "cnn": {"lr": 0.3},
}


def central(epochs: Sequence[int] = (1, 5, 20), seed: int = 0) -> list[tuple[str, int, int, int]]:
    """Train each model on the whole training set; rows ``(model, epochs, acc_bps, clipped)``.

    Training is split into one-epoch steps, each quantized onto the S=12 grid, so a long
    run never needs a delta larger than int16 allows.
    """
    split = data.digits_split()
    rows = []
    for name in models.MODELS:
        g = train.init_global(name, seed, S)
        done, clipped = 0, 0
        for target in sorted(epochs):
            while done < target:
                r = train.local_update(
                    name, g, S, split.X_train, split.y_train, epochs=1,
                    lr=HPARAMS[name]["lr"], batch_size=32, seed=seed * 1000 + done,
                )  # fmt: skip
                g, clipped, done = train.apply_delta(g, r.delta_q), clipped + r.clipped, done + 1
            acc = train.accuracy_bps(name, g, S, split.X_test, split.y_test)
            rows.append((name, target, acc, clipped))
    return rows


def fedavg(
    name: str,
    partitions: Sequence[np.ndarray],
    rounds: int = 5,
    local_epochs: int = 5,
    seed: int = 0,
) -> list[int]:
    """Honest equal-weight FedAvg (SPEC §6 rounding); test accuracy (bps) after each round."""
    split = data.digits_split()
    g = train.init_global(name, seed, S)
    accs = []
    for rnd in range(rounds):
        deltas = [
            train.local_update(
                name, g, S, split.X_train[p], split.y_train[p], epochs=local_epochs,
                lr=HPARAMS[name]["lr"], batch_size=32, seed=seed * 10_000 + rnd * 100 + i,
            ).delta_q
            for i, p in enumerate(partitions)
        ]  # fmt: skip
        g = train.apply_delta(g, train.fedavg_delta(deltas))
        accs.append(train.accuracy_bps(name, g, S, split.X_test, split.y_test))
    return accs


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den else 0.0


def _v2(rows: Sequence[np.ndarray], prev: np.ndarray, f: int) -> tuple[str, float]:
    """Client 0's v2 verdict and its share of the epoch's reward weights."""
    keys = [(i + 1).to_bytes(32, "big") for i in range(len(rows))]
    public = frozenset({verdicts.delta_hash(prev)}) if prev.any() else frozenset()
    hist = verdicts.History(prev.astype(np.int16), public, public)
    j = verdicts.judge_epoch(verdicts.SimParams(f=f), hist, keys, np.stack(rows))
    total = sum(w for _, w in j.reward_weights)
    return j.verdicts[0].verdict, (j.verdicts[0].reward_weight / total if total else 0.0)


def signals(
    name: str = "softmax",
    n_clients: int = 10,
    alpha: float | None = 0.5,
    warmup_rounds: int = 2,
    local_epochs: int = 5,
    f: int = 2,
) -> list[tuple[str, float, float, float, float, float, str, float]]:
    """The quantities SPEC §5 thresholds, per behaviour, in a realistic epoch.

    After ``warmup_rounds`` honest rounds on a Dirichlet partition (IID when ``alpha`` is
    ``None``), client 0 plays each
    behaviour in turn among ``n_clients − 1`` honest clients. Rows: ``(behaviour,
    krum_ratio = s_i / median(s), norm_ratio = ‖δ‖² / median‖δ‖², cos(δ, Δ_prev),
    max cos(δ, other δ), cos(δ, honest sum), v2 verdict, reward share)``: the last two
    from ``state_machine.verdicts.judge_epoch`` (the STF's rules, no norm bound, the task's
    default aggregator; Δ_prev public and replayable). Colluders (ALIE, IPM, disguised
    free-rider) get the other clients' honest deltas as estimates.
    """
    split = data.digits_split()
    if alpha is None:
        parts = data.partition_iid(n_clients, seed=1)
    else:
        parts = data.partition_dirichlet(n_clients, alpha, seed=1)
    lr = HPARAMS[name]["lr"]
    g = train.init_global(name, 0, S)
    prev = np.zeros_like(g, dtype=np.int16)

    def round_deltas(rnd: int) -> list[np.ndarray]:
        return [
            train.local_update(
                name, g, S, split.X_train[p], split.y_train[p], local_epochs, lr, 32,
                seed=rnd * 100 + i,
            ).delta_q
            for i, p in enumerate(parts)
        ]  # fmt: skip

    for rnd in range(warmup_rounds):
        prev = train.fedavg_delta(round_deltas(rnd))
        g = train.apply_delta(g, prev)
    honest = round_deltas(warmup_rounds)
    rows = []
    for bname, behaviour in attacks.ATTACKS.items():
        if bname in ("absent", "dishonest_voter"):
            continue
        ctx = attacks.ClientContext(
            model_name=name, scale_bits=S, global_q=g, X=split.X_train[parts[0]],
            y=split.y_train[parts[0]], seed=warmup_rounds * 100, prev_delta_q=prev,
            epochs=local_epochs, lr=lr, honest_deltas=honest[1:], n_clients=n_clients,
            n_byzantine=f,
        )  # fmt: skip
        mine = behaviour.propose(ctx)
        assert mine is not None
        rows_d = [mine, *honest[1:]]
        if bname == "duplicate":  # the sybil twin replaces honest client 1
            twin = attacks.duplicate_pair(ctx, other_seed=ctx.seed + 1)[1]
            rows_d = [mine, twin, *honest[2:]]
        verdict, share = _v2(rows_d, prev, f)
        m = np.stack(rows_d).astype(np.int64)
        gram = m @ m.T  # exact: |q| <= 2^15 and d is small
        sq = np.diag(gram)
        dist = sq[:, None] + sq[None, :] - 2 * gram
        k = len(m) - f - 2
        krum = [np.sort(np.delete(dist[i], i))[:k].sum() for i in range(len(m))]
        rows.append((
            bname,
            float(krum[0] / np.median(krum)),
            float(sq[0] / np.median(sq)) if np.median(sq) else 0.0,
            _cos(mine, prev),
            max(_cos(mine, other) for other in rows_d[1:]),
            _cos(mine, np.sum(np.stack(honest[1:]).astype(np.int64), axis=0)),
            verdict,
            share,
        ))  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry: print the requested tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", default="all", choices=["central", "fedavg", "signals", "all"]
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.what in ("central", "all"):
        print("## central training (full train set, S=12, SGD batch 32)")
        for name, ep, acc, clipped in central():
            print(f"{name:8s} epochs={ep:3d} acc={acc / 100:6.2f}%  clipped={clipped}")
    if args.what in ("fedavg", "all"):
        print("## honest FedAvg, 10 clients, 5 local epochs, S=12 (test acc after rounds 1..5)")
        for name in models.MODELS:
            for label, parts in (
                ("iid", data.partition_iid(10, seed=1)),
                ("dirichlet(0.5)", data.partition_dirichlet(10, 0.5, seed=1)),
                ("dirichlet(0.1)", data.partition_dirichlet(10, 0.1, seed=1)),
            ):
                accs = fedavg(name, parts)
                print(f"{name:8s} {label:15s} " + " ".join(f"{a / 100:6.2f}" for a in accs))
    if args.what in ("signals", "all"):
        settings = [(name, 0.5) for name in models.MODELS] + [("softmax", None)]
        for name, alpha in settings:
            label = "IID" if alpha is None else f"Dirichlet({alpha})"
            print(f"## SPEC §5 signals, {name}, 10 {label} clients, round 3, f=2")
            print(f"{'behaviour':22s} krum/med  ‖δ‖²/med  cos(Δprev)  maxcos(other)  "
                  "cos(honest)  v2 verdict      reward share")  # fmt: skip
            for b, kr, nr, cp, cm, ch, v, sh in signals(name, alpha=alpha):
                print(f"{b:22s} {kr:8.2f} {nr:9.3f} {cp:11.3f} {cm:14.3f} {ch:12.3f}  "
                      f"{v:15s} {sh:6.3f}")  # fmt: skip
    print(f"# {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
