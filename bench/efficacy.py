"""Verdict efficacy: the STF's v2 verdicts (``state_machine.verdicts.judge_epoch``) under attack.

Run from the repository root in the main venv::

    python bench/efficacy.py --quick          # the grid in README "Verdict efficacy" (~10 min)
    python bench/efficacy.py                  # the full research grid (hours on 2 cores)
    python bench/efficacy.py --quick --alphas 0.1 --attacks honest,alie,fang \\
        --compare median,trimmed_mean,centered_clip,multi_krum,clipped_mean,mean

Setting: digits, ``n`` clients split Dirichlet(α) (``data.partition_dirichlet`` with the
seed), model ``mlp`` (2,410 params) at S = 12, ``--local-epochs`` of SGD (lr 0.5, batch 32)
per round. The task's norm bound is calibrated like a pilot round: 1.5 × the median norm of
the clients' unclipped round-1 updates; honest clients clip to it (protocol rule).
``ceil(f · n)`` clients attack (drawn per seed; the same clients for every attack; sybil
pairs for ``duplicate``) and play their ``federated.attacks`` behaviour every round; the
task's ``f`` is that count. Colluding attacks (ALIE, IPM, min-max/min-sum, Fang, small
noise) get the colluders' own honest deltas as estimates. Arms per (α, n, f, seed):

* **v2**: every client proposes; ``judge_epoch`` slashes on evidence, forms the exact
  aggregate with the task's rule (``--aggregator``) and gives contribution weights; the
  aggregate is applied; reveals and aggregates become public history (replay evidence),
  and every client's last reveal is passed as ``History.past_updates`` so rewards are paid
  only for the part new relative to the public past (``--no-fresh-gate``: the old rule).
  Rule-aware attackers of ``federated/attacks_adaptive.py`` (``aligned_flip[cos=…]``) are
  accepted in ``--attacks`` like the others.
* **all-honest**: v2 with every client honest (shared by all rows of the cell).
* **oracle**: the mean of exactly the honest clients' deltas (a perfect filter), per
  attacker set.
* **v1** (``--v1``, attacks listed there): the previous rules (SPEC §5 ``score_updates``,
  mean of ACCEPTED) on the same partitions, for the side-by-side honest-slash figures.
* **compare** (``--compare``): v2 with another aggregation rule.

Per row: final test accuracy (450 held-out digits) of each arm; share of attacker
proposals slashed / excluded / accepted (all rounds and seeds); attackers' share of the
reward weights; a free-rider's mean reward weight over an honest client's; honest
proposals slashed (count, and ``(seed, round, client)`` in the JSON); backdoor success
(triggered test digits classified as the target). Markdown: stdout and
``bench/results/efficacy.md``; the JSON report is the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import efficacy_arms as arms  # noqa: E402
import efficacy_flower_client as flower_client  # noqa: E402
import efficacy_report as report  # noqa: E402

from federated import data, train  # noqa: E402
from state_machine.constants import AGGREGATORS, DEFAULT_AGGREGATOR  # noqa: E402
from state_machine.verdicts import SimParams  # noqa: E402

HONEST = arms.HONEST
# every attack also with 15-20 % jitter where it crafts one shared vector
FULL_ATTACKS: tuple[str, ...] = (
    "sign_flip", "sign_flip[scale=4]", "sign_flip[scale=4;clip=1]",
    "gaussian_noise[sigma_ratio=1]", "label_flip",
    "alie", "alie[noise_ratio=0.15]", "ipm", "ipm[noise_ratio=0.2]",
    "ipm[epsilon=1;noise_ratio=0.2]",  # the v1 "centre hijack": -β·mean, jittered
    "min_max", "min_max[noise_ratio=0.15]", "min_sum", "min_sum[noise_ratio=0.15]",
    "fang", "fang[noise_ratio=0.15]", "backdoor", "backdoor[scale=5]",
    "backdoor[scale=5;clip=1]", "frame_replay", "frame_replay[noise_ratio=0.01]",
    "duplicate", "lazy", "replay", "disguised_free_rider", "small_noise",
    "stale_copy", "stale_copy[noise_ratio=0.01]",
)  # fmt: skip
QUICK_ATTACKS: tuple[str, ...] = (
    "sign_flip", "sign_flip[scale=4]", "sign_flip[scale=4;clip=1]",
    "gaussian_noise[sigma_ratio=1]", "label_flip", "alie[noise_ratio=0.15]",
    "ipm[epsilon=1;noise_ratio=0.2]", "min_max", "min_max[noise_ratio=0.15]", "min_sum",
    "fang", "backdoor",
    "backdoor[scale=5]", "frame_replay", "frame_replay[noise_ratio=0.01]", "duplicate",
    "lazy", "replay", "disguised_free_rider", "small_noise", "stale_copy[noise_ratio=0.01]",
)  # fmt: skip
QUICK_V1 = ("honest", "sign_flip", "ipm[epsilon=1;noise_ratio=0.2]", "frame_replay",
            "frame_replay[noise_ratio=0.01]")
RESULTS_MD = ROOT / "bench" / "results" / "efficacy.md"


@dataclass(frozen=True)
class Config:
    """Everything a run depends on (recorded in the report)."""

    alphas: tuple[float, ...] = (0.1, 0.5, 10.0)
    clients: tuple[int, ...] = (15, 20, 30)
    fractions: tuple[float, ...] = (0.2, 0.3)
    seeds: int = 10
    rounds: int = 10
    attacks: tuple[str, ...] = FULL_ATTACKS
    aggregator: str = DEFAULT_AGGREGATOR
    compare: tuple[str, ...] = ()
    v1: tuple[str, ...] = (HONEST, *FULL_ATTACKS)
    flower: tuple[str, ...] = ()  # Flower strategies run as extra arms (.venv-bench)
    fresh_gate: bool = True  # rewards only for the part new vs public past updates
    setting: arms.Setting = field(default_factory=arms.Setting)

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.seeds < 1:
            raise ValueError("need at least one round and one seed")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError("an attack is listed twice")
        for rule in (self.aggregator, *self.compare):
            if rule not in AGGREGATORS:
                raise ValueError(f"unknown aggregator {rule!r}")
        for strategy in self.flower:
            if strategy not in flower_client.STRATEGIES:
                raise ValueError(f"unknown Flower strategy {strategy!r}")
        for spec in (HONEST, *self.attacks, *self.v1):
            name, _ = arms.parse_attack(spec)
            for n in self.clients:
                for frac in self.fractions:
                    f = arms.attacker_count(n, name, frac)
                    if n < 2 * f + 3:
                        raise ValueError(f"n={n} < 2f+3 with f={f} ({spec})")


def _run_arm(pool: arms.ClientPool, cfg: Config, sc: arms.Scenario, arm: str,
             g0: np.ndarray, server: Any = None) -> dict[str, Any]:  # fmt: skip
    """One trajectory of ``cfg.rounds`` rounds; records per round, final accuracy."""
    st, split = cfg.setting, data.digits_split()
    traj = arms.Trajectory(g0.copy(), np.zeros(g0.shape[0], dtype=np.int16))
    rule = cfg.aggregator if arm in ("v2", HONEST) else arm.partition(":")[2]
    params = SimParams(f=sc.f, norm_bound=pool.norm_bound, aggregator=rule or cfg.aggregator)
    honest = [i for i in range(pool.n) if not sc.is_attacker(i)]
    for rnd in range(cfg.rounds):
        deltas = pool.proposals(sc, traj, rnd)
        margin = arms.margins(deltas, traj.last, honest) if arm == HONEST else None
        if arm == "v1":
            rec = arms.v1_round(traj, deltas, sc)
        elif arm == "oracle":
            rec = arms.oracle_round(traj, deltas, sc)
        elif arm.startswith("flower:"):
            # Flower weights by the num-examples a client reports; a rule-aware attacker
            # claims the largest (nothing checks it), honest clients report the truth
            sizes = np.array([len(y) for y in pool.y], dtype=np.int64)
            sizes[list(sc.attackers) if sc.behaviour != HONEST else []] = sizes.max()
            rec = arms.flower_round(traj, deltas, sc, server, arm[7:], sizes, rnd)
        else:
            rec = arms.v2_round(traj, deltas, sc, params, cfg.fresh_gate)
        if margin is not None:
            rec["margin"] = margin
        traj.records.append(rec)
    out = {"records": traj.records,
           "acc": train.accuracy_bps(st.model, traj.global_q, st.scale_bits, split.X_test,
                                     split.y_test) / 100}  # fmt: skip
    if sc.behaviour == "backdoor":
        out["backdoor"] = arms.backdoor_success(st, traj.global_q)
    return out


def run_cell(cfg: Config, alpha: float, n: int, frac: float, seed: int,
             server: Any = None) -> dict[str, Any]:  # fmt: skip
    """Every attack and arm of one (α, n, f, seed)."""
    st = cfg.setting
    g0 = train.init_global(st.model, seed, st.scale_bits)
    pool = arms.ClientPool(st, n, alpha, seed, g0)
    out: dict[str, Any] = {"norm_bound": pool.norm_bound, "n": n}
    base = arms.make_scenario(n, HONEST, seed, frac)
    out[HONEST] = {"v2": _run_arm(pool, cfg, base, HONEST, g0)}
    if HONEST in cfg.v1:
        out[HONEST]["v1"] = _run_arm(pool, cfg, base, "v1", g0)
    oracles: dict[tuple[int, ...], dict[str, Any]] = {}
    for attack in cfg.attacks:
        sc = arms.make_scenario(n, attack, seed, frac)
        row = {"v2": _run_arm(pool, cfg, sc, "v2", g0), "f": sc.f}
        if sc.attackers not in oracles or sc.behaviour == "backdoor":
            oracles[sc.attackers] = _run_arm(pool, cfg, sc, "oracle", g0)
        row["oracle"] = oracles[sc.attackers]
        if attack in cfg.v1:
            row["v1"] = _run_arm(pool, cfg, sc, "v1", g0)
        for rule in cfg.compare:
            row[f"v2:{rule}"] = _run_arm(pool, cfg, sc, f"v2:{rule}", g0)
        for strategy in cfg.flower:
            row[f"flower:{strategy}"] = _run_arm(pool, cfg, sc, f"flower:{strategy}", g0, server)
        out[attack] = row
    for rule in cfg.compare:
        out[HONEST][f"v2:{rule}"] = _run_arm(pool, cfg, base, f"v2:{rule}", g0)
    for strategy in cfg.flower:
        out[HONEST][f"flower:{strategy}"] = _run_arm(pool, cfg, base, f"flower:{strategy}", g0,
                                                     server)  # fmt: skip
    out["trainings"] = pool.trainings
    return out


def run(cfg: Config, out_md: Path | None = RESULTS_MD, quiet: bool = False) -> dict[str, Any]:
    """Run the grid, print and write the tables; return the JSON-able report."""
    t0 = time.perf_counter()
    cells: dict[str, list[dict[str, Any]]] = {}
    server = flower_client.FlowerServer() if cfg.flower else None
    try:
        _grid(cfg, cells, server, quiet)
    finally:
        if server is not None:
            server.close()
    summary = {key: report.summarize(cfg, per_seed) for key, per_seed in cells.items()}
    runtime = time.perf_counter() - t0
    table = report.render_markdown(cfg, summary, runtime)
    if server is not None:
        table += f"\nFlower arms: flwr {server.version} (`.venv-bench`).\n"
    if out_md is not None:
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(table)
    result = {"bench": "efficacy", "config": asdict(cfg), "runtime_s": runtime,
              "results": summary, "markdown": table}  # fmt: skip
    if not quiet:
        print(table)
        print(json.dumps({k: v for k, v in result.items() if k != "markdown"}, default=str))
    return result


def _grid(cfg: Config, cells: dict[str, list[dict[str, Any]]], server: Any,
          quiet: bool) -> None:  # fmt: skip
    """Fill ``cells`` with every (α, n, f) cell's per-seed results."""
    for alpha in cfg.alphas:
        for n in cfg.clients:
            for frac in cfg.fractions:
                key = report.cell_key(alpha, n, frac)
                cells[key] = []
                for seed in range(cfg.seeds):
                    t = time.perf_counter()
                    cells[key].append(run_cell(cfg, alpha, n, frac, seed, server))
                    if not quiet:
                        print(f"# {key} seed {seed}: {time.perf_counter() - t:.1f} s",
                              file=sys.stderr)  # fmt: skip


def _floats(text: str | None) -> tuple[float, ...] | None:
    return tuple(float(x) for x in text.split(",")) if text else None


def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, Path | None]:
    """CLI flags -> :class:`Config` (``--quick`` fills in only what is not given)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="α 0.1,0.5; n 15; f 20 %%; 3 seeds; 8 rounds; main attacks")  # fmt: skip
    p.add_argument("--alphas")
    p.add_argument("--clients")
    p.add_argument("--fractions")
    p.add_argument("--seeds", type=int)
    p.add_argument("--rounds", type=int)
    p.add_argument("--attacks", help="comma list of name or name[key=value;...]")
    p.add_argument("--aggregator", default=DEFAULT_AGGREGATOR, choices=AGGREGATORS)
    p.add_argument("--compare", default="", help="extra v2 arms with these aggregators")
    p.add_argument("--v1", help="attacks that also run the v1 rules ('' for none)")
    p.add_argument("--flower", default="",
                   help="Flower arms: " + ",".join(flower_client.STRATEGIES))  # fmt: skip
    p.add_argument("--local-epochs", type=int, default=2)
    p.add_argument("--no-fresh-gate", action="store_true",
                   help="pay without the freshness gate (the reward rule before issue 10's)")
    p.add_argument("--out", default=str(RESULTS_MD), help="markdown path ('' to skip)")
    a = p.parse_args(argv)
    q = a.quick
    atts = tuple(x for x in (a.attacks or "").split(",") if x) or (
        QUICK_ATTACKS if q else FULL_ATTACKS
    )
    atts = tuple(x for x in atts if x != HONEST)
    v1 = tuple(x for x in a.v1.split(",") if x) if a.v1 is not None else (
        QUICK_V1 if q else (HONEST, *atts)
    )  # fmt: skip
    cfg = Config(
        alphas=_floats(a.alphas) or ((0.1, 0.5) if q else (0.1, 0.5, 10.0)),
        clients=tuple(int(x) for x in a.clients.split(",")) if a.clients else (
            (15,) if q else (15, 20, 30)),
        fractions=_floats(a.fractions) or ((0.2,) if q else (0.2, 0.3)),
        seeds=a.seeds or (3 if q else 10),
        rounds=a.rounds or (8 if q else 10),
        attacks=atts,
        aggregator=a.aggregator,
        compare=tuple(x for x in a.compare.split(",") if x),
        flower=tuple(x for x in a.flower.split(",") if x),
        v1=tuple(x for x in v1 if x == HONEST or x in atts),
        setting=replace(arms.Setting(), local_epochs=a.local_epochs),
        fresh_gate=not a.no_fresh_gate,
    )  # fmt: skip
    return cfg, (Path(a.out) if a.out else None)


def main(argv: Sequence[str] | None = None) -> None:
    cfg, out = parse_args(argv)
    run(cfg, out)


if __name__ == "__main__":
    main()
