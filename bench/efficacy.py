"""Attack efficacy: FLockChain's STF verdicts vs Flower's FedAvg and Krum on the same clients.

Run from the repository root in the main venv::

    python bench/efficacy.py                 # defaults below; about 1 min on 2 cores
    python bench/efficacy.py --quick --no-flower
    python bench/efficacy.py --attacks 'sign_flip,alie[noise_ratio=0.3;z=1]' --omniscient

Setting (defaults): digits, ``--clients 15`` split Dirichlet(``--alpha 0.5``) (non-IID,
``data.partition_dirichlet`` with the run's seed), model ``mlp`` (64-32-10, 2,410 params)
at S = 12, every client training 10 local epochs of SGD (lr 0.5, batch 32) per round. The
mlp is used because it reaches ~91 % honest test accuracy in 5 rounds at these settings
(softmax reaches ~90 %), and it is the non-convex case. For each attack in
:data:`DEFAULT_ATTACKS`, ``ceil(0.2 n)`` clients (3 of 15) are attackers, drawn per seed
(the duplicate attack uses sybil *pairs*: the count is made even, 4 of 15); they play the
``federated.attacks`` behaviour of that name every round, and ``f`` = the number of
attackers (``n >= 2f + 3`` is checked). :data:`ADAPTIVE_ATTACKS` (ALIE and IPM whose
colluders jitter their copies, ``name[noise_ratio=0.15]``) run by default too; any
behaviour knob can be set that way on the command line. Colluding attacks (ALIE, IPM,
disguised free-rider) get the colluders' own honest deltas as estimates (``--omniscient``:
every client's). Each seed runs ``--rounds`` rounds on these trajectories (arms):

* **FLockChain**: every client proposes; ``state_machine.scoring.score_updates`` (the STF's
  exact SPEC §5 scoring) gives verdicts; the candidate is
  ``state_machine.aggregation.mean_round_half_even`` of the ``ACCEPTED`` deltas applied with
  ``state_machine.aggregation.apply_delta`` (SPEC §6); Δ_prev is the last candidate. With
  no accepted delta the epoch is discarded. (Committee voting, SPEC §7, is not simulated:
  the candidate is always finalized.)
* **all-honest**: the same FLockChain pipeline with every client honest (attackers' slots
  train honestly); one per seed, shared by every attack row. f is the default attacker
  count.
* **oracle**: the SPEC §6 mean of exactly the honest clients' deltas (a perfect filter):
  the accuracy lost merely by dropping the attackers' data, which the non-IID split makes
  visible.
* **Flower FedAvg** and **Flower Krum**: the same clients and behaviours, aggregated by
  the installed flwr's ``FedAvg`` (weighted by each client's truthful ``num-examples``;
  sybils report the size of the data set they trained on) and ``Krum(num_malicious_nodes
  =f)`` strategies, called in a persistent ``.venv-bench`` subprocess
  (``bench/efficacy_flower.py``) with each client's full parameter vector
  ``(global + δ) / 2^S`` as float64. The float result is put back on the S = 12 grid
  (``rint``) so the arm trains on and is evaluated like the others; the published global
  step is the Δ_prev that replaying attackers resubmit.

Every arm keeps its own global-model trajectory; client ``i`` trains in round ``r`` with the
same seed in every arm, so arms differ only by aggregation, and honest training is computed
once per distinct ``(global model, client, round)`` (round 1 is shared by every arm).

Per round the FLockChain arm records test accuracy (``train.accuracy_bps`` on the 450
held-out digits), how many attackers got a slashable verdict (OUTLIER, FREE_RIDER,
DUPLICATE) and how many honest clients did. The report is a markdown table (stdout and
``bench/results/efficacy.md``) and one JSON line (stdout, last line). An attack is marked
**gets through** when FLockChain flags on average less than 90 % of the attackers per
round (:data:`FLAG_MIN`) or its final accuracy is more than 2 points below all-honest
(:data:`DROP_PTS`), averaged over seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from federated import attacks, data, train  # noqa: E402
from federated.quant import INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN  # noqa: E402
from state_machine import scoring  # noqa: E402
from state_machine.aggregation import apply_delta, mean_round_half_even  # noqa: E402

DEFAULT_ATTACKS: tuple[str, ...] = (
    "sign_flip",
    "gaussian_noise",
    "label_flip",
    "alie",
    "ipm",
    "lazy",
    "replay",
    "disguised_free_rider",
    "duplicate",
)
PROPOSER_ATTACKS = frozenset(DEFAULT_ATTACKS)
# Adaptive variants run by default too: colluders that add 15 % jitter (relative to their
# crafted vector's RMS) so that their copies no longer look like duplicates (cos ≈ 0.98).
ADAPTIVE_ATTACKS: tuple[str, ...] = ("alie[noise_ratio=0.15]", "ipm[noise_ratio=0.15]")
QUICK_ATTACKS: tuple[str, ...] = ("sign_flip", "lazy", "duplicate")
COLLUDING = frozenset({"alie", "ipm", "disguised_free_rider"})
HONEST = "honest"
ARMS: tuple[str, ...] = ("flockchain", "oracle", "fedavg", "krum")
FLOWER_ARMS: tuple[str, ...] = ("fedavg", "krum")
FLAG_MIN = 0.9  # below this mean fraction of attackers flagged per round: "gets through"
DROP_PTS = 2.0  # more than this many accuracy points under all-honest: "gets through"
BENCH_VENV_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
BENCH_VENV_SCRIPT = ROOT / "scripts" / "bench-venv.sh"
FLOWER_SERVER = ROOT / "bench" / "efficacy_flower.py"
RESULTS_MD = ROOT / "bench" / "results" / "efficacy.md"


@dataclass(frozen=True)
class Config:
    """Everything a run depends on (recorded in the report)."""

    clients: int = 15
    rounds: int = 5
    seeds: int = 3
    attacks: tuple[str, ...] = DEFAULT_ATTACKS + ADAPTIVE_ATTACKS
    model: str = "mlp"
    alpha: float = 0.5
    attack_fraction: float = 0.2
    scale_bits: int = 12
    lr: float = 0.5
    local_epochs: int = 10
    batch_size: int = 32
    omniscient: bool = False
    flower: bool = True

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.seeds < 1:
            raise ValueError("need at least one round and one seed")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError("an attack is listed twice")
        for spec in (HONEST, *self.attacks):
            name, _ = parse_attack(spec)  # raises on unknown names and params
            f = attacker_count(self.clients, name, self.attack_fraction)
            scoring.check_krum_size(self.clients, f)  # n >= 2f + 3


def parse_attack(spec: str) -> tuple[str, dict[str, float]]:
    """``"alie"`` or ``"alie[noise_ratio=0.15;z=1]"`` -> ``(name, params)``.

    Params are the ``ClientContext.params`` knobs of ``federated.attacks``; a variant is
    reported under its full spec.
    """
    name, sep, rest = spec.partition("[")
    params: dict[str, float] = {}
    if sep:
        if not rest.endswith("]"):
            raise ValueError(f"{spec!r}: expected name[key=value;...]")
        for item in filter(None, rest[:-1].split(";")):
            key, eq, value = item.partition("=")
            if not eq or key not in attacks.KNOWN_PARAMS:
                raise ValueError(
                    f"{spec!r}: bad param {item!r}; known {sorted(attacks.KNOWN_PARAMS)}"
                )
            params[key] = float(value)
    if name != HONEST and name not in PROPOSER_ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {list(DEFAULT_ATTACKS)}")
    return name, params


@dataclass(frozen=True)
class Scenario:
    """Who attacks how in one seed: ``attackers`` sorted; ``pairs`` for sybils only.

    ``attack`` is the spec as listed (the report's row label), ``behaviour`` its
    ``federated.attacks`` name and ``params`` the behaviour's knobs.
    """

    attack: str
    attackers: tuple[int, ...]
    f: int
    pairs: tuple[tuple[int, int], ...] = ()
    behaviour: str = HONEST
    params: tuple[tuple[str, float], ...] = ()

    def is_attacker(self, client: int) -> bool:
        """Whether ``client`` plays the attack (never true in the all-honest scenario)."""
        return self.behaviour != HONEST and client in self.attackers


def attacker_count(n: int, attack: str, fraction: float = 0.2) -> int:
    """``ceil(fraction · n)`` (at least 1); even for ``duplicate`` (sybil pairs).

    The duplicate count is rounded up to even when ``n >= 2f + 3`` still holds, else down
    (never below one pair). The all-honest scenario uses the default count as its ``f``.
    """
    k = max(1, math.ceil(fraction * n - 1e-9))
    if attack == "duplicate" and k % 2:
        k = k + 1 if n >= 2 * (k + 1) + 3 else max(2, k - 1)
    return k


def make_scenario(n: int, attack: str, seed: int, fraction: float = 0.2) -> Scenario:
    """Attackers drawn from one per-seed permutation (the same clients across attacks)."""
    name, params = parse_attack(attack)
    k = attacker_count(n, name, fraction)
    rng = np.random.Generator(np.random.PCG64(attacks.subseed(seed, 11)))
    chosen = [int(i) for i in rng.permutation(n)[:k]]
    pairs: tuple[tuple[int, int], ...] = ()
    if name == "duplicate":
        pairs = tuple((chosen[i], chosen[i + 1]) for i in range(0, k, 2))
    return Scenario(
        attack=attack,
        attackers=tuple(sorted(chosen)),
        f=k,
        pairs=pairs,
        behaviour=name,
        params=tuple(sorted(params.items())),
    )


def _digest(arr: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16).digest()


class ClientPool:
    """The clients of one seed: their partitions, honest training (memoized) and attacks."""

    def __init__(self, cfg: Config, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        split = data.digits_split()
        parts = data.partition_dirichlet(cfg.clients, cfg.alpha, seed=seed)
        self.X = [split.X_train[p] for p in parts]
        self.y = [split.y_train[p] for p in parts]
        self.sizes = [len(p) for p in parts]
        self._cache: dict[tuple[bytes, int, int], np.ndarray] = {}
        self.trainings = 0
        self.cache_hits = 0

    def train_seed(self, rnd: int, client: int) -> int:
        """The SGD seed of ``client`` in round ``rnd`` (identical in every arm)."""
        return attacks.subseed(self.seed, 7, rnd, client)

    def honest(self, global_q: np.ndarray, client: int, rnd: int) -> np.ndarray:
        """``client``'s honest int16 delta from ``global_q`` (memoized)."""
        key = (_digest(global_q), client, rnd)
        hit = self._cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            return hit
        cfg = self.cfg
        delta = train.local_update(
            cfg.model, global_q, cfg.scale_bits, self.X[client], self.y[client],
            epochs=cfg.local_epochs, lr=cfg.lr, batch_size=cfg.batch_size,
            seed=self.train_seed(rnd, client),
        ).delta_q  # fmt: skip
        delta.setflags(write=False)
        self._cache[key] = delta
        self.trainings += 1
        return delta

    def context(
        self,
        global_q: np.ndarray,
        prev_delta: np.ndarray,
        client: int,
        rnd: int,
        scenario: Scenario,
        honest_deltas: Sequence[np.ndarray] | None,
    ) -> attacks.ClientContext:
        """What attacker ``client`` sees in round ``rnd`` (same seed as its honest run)."""
        cfg = self.cfg
        return attacks.ClientContext(
            model_name=cfg.model, scale_bits=cfg.scale_bits, global_q=global_q,
            X=self.X[client], y=self.y[client], seed=self.train_seed(rnd, client),
            prev_delta_q=prev_delta, epochs=cfg.local_epochs, lr=cfg.lr,
            batch_size=cfg.batch_size, honest_deltas=honest_deltas,
            n_clients=cfg.clients, n_byzantine=scenario.f, params=dict(scenario.params),
        )  # fmt: skip

    def num_examples(self, scenario: Scenario) -> np.ndarray:
        """Each client's truthful sample count; a sybil reports its pair's shared data set."""
        sizes = list(self.sizes)
        if scenario.behaviour == "duplicate":
            for a, b in scenario.pairs:
                sizes[b] = sizes[a]
        return np.asarray(sizes, dtype=np.int64)

    def proposals(
        self, scenario: Scenario, global_q: np.ndarray, prev_delta: np.ndarray, rnd: int
    ) -> np.ndarray:
        """Every client's int16 delta for this round, shape ``(n, d)``."""
        n = self.cfg.clients
        rows: list[np.ndarray | None] = [
            None if scenario.is_attacker(i) else self.honest(global_q, i, rnd) for i in range(n)
        ]
        if scenario.behaviour == HONEST:
            return np.stack(rows)  # type: ignore[arg-type]
        estimates: list[np.ndarray] | None = None
        if scenario.behaviour in COLLUDING:
            estimates = [self.honest(global_q, j, rnd) for j in scenario.attackers]
            if self.cfg.omniscient:
                estimates += [r for r in rows if r is not None]
        if scenario.behaviour == "duplicate":
            for a, b in scenario.pairs:
                ctx = self.context(global_q, prev_delta, a, rnd, scenario, None)
                rows[a], rows[b] = attacks.duplicate_pair(ctx, other_seed=self.train_seed(rnd, b))
        else:
            behaviour = attacks.get_behaviour(scenario.behaviour)
            for i in scenario.attackers:
                ctx = self.context(global_q, prev_delta, i, rnd, scenario, estimates)
                rows[i] = behaviour.propose(ctx)
        if any(r is None for r in rows):
            raise RuntimeError(f"{scenario.attack}: a client revealed nothing")
        return np.stack(rows).astype(np.int16, copy=False)  # type: ignore[arg-type]


class FlowerAggregator:
    """A persistent ``.venv-bench`` process running Flower's strategies (see its module)."""

    def __init__(self, python: Path = BENCH_VENV_PYTHON, server: Path = FLOWER_SERVER) -> None:
        self._proc = subprocess.Popen(
            [str(python), str(server)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        header, _ = self._call({"op": "hello"}, [])
        self.flwr_version: str = str(header["flwr_version"])

    def _call(self, header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict, list]:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        blobs = []
        for arr in arrays:
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            blobs.append(buf.getvalue())
        stdin.write(json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode() + b"\n")
        for b in blobs:
            stdin.write(b)
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"Flower server exited (rc={self._proc.poll()})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"Flower server: {reply.get('error')}")
        out = [
            np.load(io.BytesIO(_read_exact(stdout, n)), allow_pickle=False) for n in reply["blobs"]
        ]
        return reply, out

    def aggregate(
        self, strategy: str, weights: np.ndarray, num_examples: np.ndarray, f: int, rnd: int
    ) -> tuple[np.ndarray, list[int]]:
        """Flower's aggregate of float64 parameter rows; also the rows Krum selected."""
        header = {"op": "aggregate", "strategy": strategy, "f": f, "round": rnd}
        reply, (out,) = self._call(header, [weights.astype(np.float64), num_examples])
        return out, [int(i) for i in reply["selected"]]

    def close(self) -> None:
        """Ask the server to quit and wait for it."""
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(b'{"op": "quit"}\n')
                self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> FlowerAggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise RuntimeError("truncated reply from the Flower server")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def ensure_bench_venv() -> None:
    """Make sure ``.venv-bench`` imports flwr, running ``scripts/bench-venv.sh`` if not."""

    def usable() -> bool:
        if not BENCH_VENV_PYTHON.exists():
            return False
        probe = subprocess.run(
            [str(BENCH_VENV_PYTHON), "-c", "import flwr, numpy"], capture_output=True
        )
        return probe.returncode == 0

    if usable():
        return
    print("efficacy: no usable .venv-bench, running scripts/bench-venv.sh", file=sys.stderr)
    proc = subprocess.run(["bash", str(BENCH_VENV_SCRIPT)], capture_output=True, text=True)
    if proc.returncode != 0 or not usable():
        raise SystemExit(
            "efficacy: .venv-bench with flwr is unavailable (scripts/bench-venv.sh: "
            f"{proc.stderr.strip()[-500:]}); rerun with --no-flower"
        )


@dataclass
class Trajectory:
    """One arm's global model, Δ_prev and per-round records."""

    global_q: np.ndarray
    prev_delta: np.ndarray
    records: list[dict[str, Any]] = field(default_factory=list)


def _pubkeys(n: int) -> list[bytes]:
    """Ascending 32-byte keys, row ``i`` <-> client ``i`` (score_updates needs sorted rows)."""
    return [(i + 1).to_bytes(32, "big") for i in range(n)]


def flockchain_round(traj: Trajectory, deltas: np.ndarray, scenario: Scenario) -> dict[str, Any]:
    """SPEC §5 verdicts and the SPEC §6 candidate, exactly as the STF computes them."""
    n = deltas.shape[0]
    result = scoring.score_updates(_pubkeys(n), deltas, traj.prev_delta, scenario.f)
    accepted = result.accepted_indices()
    if accepted:  # otherwise the epoch is discarded: global and Δ_prev unchanged
        candidate = mean_round_half_even(deltas[accepted])
        traj.global_q = apply_delta(traj.global_q, candidate)
        traj.prev_delta = candidate
    flagged = [i for i, s in enumerate(result.scores) if s.verdict in scoring.SLASHABLE_VERDICTS]
    att = [i for i in flagged if scenario.is_attacker(i)]
    excluded = [
        i for i, sc in enumerate(result.scores)
        if sc.verdict == scoring.EXCLUDED and scenario.is_attacker(i)
    ]
    hon = [i for i in flagged if not scenario.is_attacker(i)]
    attacker_verdicts = Counter(
        result.scores[i].verdict for i in range(n) if scenario.is_attacker(i)
    )
    honest_reasons = Counter(r for i in hon for r in result.scores[i].reasons)
    attacker_reasons = Counter(
        r for i in range(n) if scenario.is_attacker(i) for r in result.scores[i].reasons
    )
    return {
        "accepted": len(accepted),
        "attackers_flagged": len(att),
        "attackers_excluded": len(excluded),
        "honest_flagged": len(hon),
        "attacker_verdicts": dict(sorted(attacker_verdicts.items())),
        "honest_flag_reasons": dict(sorted(honest_reasons.items())),
        "attacker_reasons": dict(sorted(attacker_reasons.items())),
    }


def oracle_round(traj: Trajectory, deltas: np.ndarray, scenario: Scenario) -> dict[str, Any]:
    """The best any filter can do: the SPEC §6 mean of exactly the honest clients' deltas."""
    honest = [i for i in range(deltas.shape[0]) if not scenario.is_attacker(i)]
    candidate = mean_round_half_even(deltas[honest])
    traj.global_q = apply_delta(traj.global_q, candidate)
    traj.prev_delta = candidate
    return {}


def flower_round(
    traj: Trajectory,
    deltas: np.ndarray,
    num_examples: np.ndarray,
    scenario: Scenario,
    strategy: str,
    agg: FlowerAggregator,
    rnd: int,
    scale_bits: int,
) -> dict[str, Any]:
    """Aggregate full parameter vectors with Flower; requantize the result to the grid."""
    scale = float(2**scale_bits)
    weights = (traj.global_q.astype(np.float64)[None, :] + deltas.astype(np.float64)) / scale
    out, selected = agg.aggregate(strategy, weights, num_examples, scenario.f, rnd)
    new = np.rint(out * scale)
    if new.min() < INT32_MIN or new.max() > INT32_MAX:
        raise OverflowError(f"Flower {strategy} global model overflows int32")
    new_q = new.astype(np.int32)
    step = new_q.astype(np.int64) - traj.global_q.astype(np.int64)
    traj.prev_delta = np.clip(step, INT16_MIN, INT16_MAX).astype(np.int16)
    traj.global_q = new_q
    rec: dict[str, Any] = {}
    if strategy == "krum":
        rec["selected"] = selected
        rec["selected_attacker"] = bool(selected) and all(scenario.is_attacker(i) for i in selected)
    return rec


def run_seed(cfg: Config, seed: int, agg: FlowerAggregator | None) -> dict[str, Any]:
    """All arms of one seed: ``{"honest": {arm: records}, attack: {arm: records}, ...}``."""
    pool = ClientPool(cfg, seed)
    split = data.digits_split()
    g0 = train.init_global(cfg.model, seed, cfg.scale_bits)
    d = g0.shape[0]
    arms = ARMS if agg is not None else ("flockchain", "oracle")
    out: dict[str, Any] = {"scenarios": {}}
    for attack in (HONEST, *cfg.attacks):
        scenario = make_scenario(cfg.clients, attack, seed, cfg.attack_fraction)
        out["scenarios"][attack] = {"attackers": list(scenario.attackers), "f": scenario.f,
                                    "pairs": [list(p) for p in scenario.pairs]}  # fmt: skip
        counts = pool.num_examples(scenario)
        out[attack] = {}
        for arm in arms:
            traj = Trajectory(g0.copy(), np.zeros(d, dtype=np.int16))
            for rnd in range(cfg.rounds):
                deltas = pool.proposals(scenario, traj.global_q, traj.prev_delta, rnd)
                if arm == "flockchain":
                    rec = flockchain_round(traj, deltas, scenario)
                elif arm == "oracle":
                    rec = oracle_round(traj, deltas, scenario)
                else:
                    assert agg is not None
                    rec = flower_round(
                        traj, deltas, counts, scenario, arm, agg, rnd + 1, cfg.scale_bits
                    )
                rec["round"] = rnd + 1
                rec["acc_bps"] = train.accuracy_bps(
                    cfg.model, traj.global_q, cfg.scale_bits, split.X_test, split.y_test
                )
                traj.records.append(rec)
            out[attack][arm] = traj.records
    out["trainings"] = pool.trainings
    out["cache_hits"] = pool.cache_hits
    return out


# ----------------------------------------------------------------------------- summary


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def summarize(cfg: Config, per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per attack (and ``honest``): final accuracies per arm, flags, the gets-through mark."""
    summary: dict[str, Any] = {}
    base_final = [s[HONEST]["flockchain"][-1]["acc_bps"] / 100 for s in per_seed]
    for attack in (HONEST, *cfg.attacks):
        f = per_seed[0]["scenarios"][attack]["f"]
        n_att = 0 if attack == HONEST else f
        row: dict[str, Any] = {"attack": attack, "attackers": n_att, "f": f}
        for arm in per_seed[0][attack]:
            finals = [s[attack][arm][-1]["acc_bps"] / 100 for s in per_seed]
            mean, std = _mean_std(finals)
            row[f"{arm}_acc"] = {"mean": mean, "std": std, "per_seed": finals}
            row[f"{arm}_acc_by_round"] = [
                statistics.fmean(s[attack][arm][r]["acc_bps"] / 100 for s in per_seed)
                for r in range(cfg.rounds)
            ]
        mean, std = _mean_std(base_final)
        row["honest_acc"] = {"mean": mean, "std": std, "per_seed": base_final}
        fc = [s[attack]["flockchain"] for s in per_seed]
        honest_props = (cfg.clients - n_att) * cfg.rounds * len(per_seed)
        row["honest_flagged"] = sum(r["honest_flagged"] for recs in fc for r in recs)
        row["honest_flagged_by_round"] = [
            sum(recs[r]["honest_flagged"] for recs in fc) for r in range(cfg.rounds)
        ]
        row["honest_proposals"] = honest_props
        reasons: Counter[str] = Counter()
        verdicts: Counter[str] = Counter()
        att_reasons: Counter[str] = Counter()
        for recs in fc:
            for r in recs:
                reasons.update(r["honest_flag_reasons"])
                verdicts.update(r["attacker_verdicts"])
                att_reasons.update(r["attacker_reasons"])
        row["honest_flag_reasons"] = dict(sorted(reasons.items()))
        row["attacker_verdicts"] = dict(sorted(verdicts.items()))
        row["attacker_reasons"] = dict(sorted(att_reasons.items()))
        row["discarded_epochs"] = sum(r["accepted"] == 0 for recs in fc for r in recs)
        if "krum" in per_seed[0][attack]:
            row["krum_selected_attacker_rounds"] = sum(
                r["selected_attacker"] for s in per_seed for r in s[attack]["krum"]
            )
        drop = statistics.fmean(
            s[attack]["flockchain"][-1]["acc_bps"] / 100 - b
            for s, b in zip(per_seed, base_final, strict=True)
        )
        row["acc_delta_vs_honest_pts"] = drop
        row["oracle_delta_vs_honest_pts"] = statistics.fmean(
            s[attack]["oracle"][-1]["acc_bps"] / 100 - b
            for s, b in zip(per_seed, base_final, strict=True)
        )
        if attack != HONEST:
            by_round = [
                statistics.fmean(recs[r]["attackers_flagged"] / n_att for recs in fc)
                for r in range(cfg.rounds)
            ]
            row["attackers_flagged_by_round"] = by_round
            row["attackers_flagged_mean"] = statistics.fmean(by_round)
            row["attackers_excluded_mean"] = statistics.fmean(
                recs[r].get("attackers_excluded", 0) / n_att
                for recs in fc for r in range(cfg.rounds)
            )
            reasons_through = []
            stopped = row["attackers_flagged_mean"] + row["attackers_excluded_mean"]
            row["excluded_not_slashed"] = (
                row["attackers_flagged_mean"] < FLAG_MIN and stopped >= FLAG_MIN
            )
            if stopped < FLAG_MIN:
                reasons_through.append(f"flagged {row['attackers_flagged_mean']:.2f}")
            if drop < -DROP_PTS:
                oracle = row["oracle_delta_vs_honest_pts"]
                reasons_through.append(f"{drop:+.1f} pts; oracle {oracle:+.1f}")
            row["gets_through"] = bool(reasons_through)
            row["gets_through_why"] = reasons_through
        summary[attack] = row
    return summary


def _acc_cell(row: dict[str, Any], key: str) -> str:
    cell = row.get(key)
    if cell is None:
        return "—"
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def render_markdown(cfg: Config, summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The report: settings, the table, and how to read it."""
    lines = [
        "# Attack efficacy: FLockChain STF vs Flower FedAvg / Krum",
        "",
        f"digits, {cfg.clients} clients, Dirichlet(α={cfg.alpha}), model `{cfg.model}`, "
        f"S={cfg.scale_bits}, {cfg.local_epochs} local epochs SGD lr={cfg.lr} "
        f"batch={cfg.batch_size}, {cfg.rounds} rounds, {cfg.seeds} seed(s); "
        f"{'omniscient' if cfg.omniscient else 'colluders-only'} estimates; "
        f"flwr {meta.get('flwr_version') or 'not run'}; {meta['runtime_s']:.0f} s.",
        "",
        "| attack | attackers (f) | FLockChain acc % | all-honest acc % | oracle acc % "
        "| Flower FedAvg acc % | Flower Krum acc % | attackers flagged / round (r1…rR) "
        "| honest flagged | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for attack, row in summary.items():
        honest_cell = f"{row['honest_flagged']} / {row['honest_proposals']}"
        if attack == HONEST:
            lines.append(
                f"| none (all honest) | 0 ({row['f']}) | {_acc_cell(row, 'flockchain_acc')} "
                f"| {_acc_cell(row, 'honest_acc')} | {_acc_cell(row, 'oracle_acc')} "
                f"| {_acc_cell(row, 'fedavg_acc')} | {_acc_cell(row, 'krum_acc')} | — "
                f"| {honest_cell} | baseline |"
            )
            continue
        by_round = " ".join(f"{x:.2f}" for x in row["attackers_flagged_by_round"])
        flags = f"{row['attackers_flagged_mean']:.2f} ({by_round})"
        if row["gets_through"]:
            result = "**gets through** (" + "; ".join(row["gets_through_why"]) + ")"
        elif row.get("excluded_not_slashed"):
            result = (
                f"excluded, not slashed ({row['attackers_excluded_mean']:.2f} of attacker "
                f"updates dropped; {row['acc_delta_vs_honest_pts']:+.1f} pts)"
            )
        else:
            result = (
                f"stopped ({row['acc_delta_vs_honest_pts']:+.1f} pts; "
                f"oracle {row['oracle_delta_vs_honest_pts']:+.1f})"
            )
        lines.append(
            f"| {attack} | {row['attackers']} ({row['f']}) | {_acc_cell(row, 'flockchain_acc')} "
            f"| {_acc_cell(row, 'honest_acc')} | {_acc_cell(row, 'oracle_acc')} "
            f"| {_acc_cell(row, 'fedavg_acc')} | {_acc_cell(row, 'krum_acc')} | {flags} "
            f"| {honest_cell} | {result} |"
        )
    lines += [
        "",
        "Accuracies: final-round test accuracy (450 held-out digits), mean ± sample std over "
        "seeds. *Oracle*: SPEC §6 mean of exactly the honest clients' deltas (a perfect "
        "filter; on the all-honest row, the unfiltered mean of all clients), i.e. what is "
        "lost just by dropping the attackers' data. *Attackers flagged*: mean fraction of "
        "attackers with a slashable verdict "
        "(OUTLIER / FREE_RIDER / DUPLICATE), per round. *Honest flagged*: slashable verdicts "
        "on honest clients / honest proposals, all rounds and seeds. *gets through*: attackers "
        f"flagged < {FLAG_MIN:.0%} on average, or FLockChain more than {DROP_PTS:g} points "
        "under all-honest (pts = mean per-seed difference).",
        "",
    ]
    return "\n".join(lines)


def run(cfg: Config, out_md: Path | None = RESULTS_MD, quiet: bool = False) -> dict[str, Any]:
    """Run every seed, print and write the table; return the JSON-able report."""
    t0 = time.perf_counter()
    per_seed: list[dict[str, Any]] = []
    flwr_version = None
    agg: FlowerAggregator | None = None
    if cfg.flower:
        ensure_bench_venv()
        agg = FlowerAggregator()
        flwr_version = agg.flwr_version
    try:
        for seed in range(cfg.seeds):
            t = time.perf_counter()
            per_seed.append(run_seed(cfg, seed, agg))
            if not quiet:
                print(f"# seed {seed}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    finally:
        if agg is not None:
            agg.close()
    summary = summarize(cfg, per_seed)
    meta = {"runtime_s": time.perf_counter() - t0, "flwr_version": flwr_version}
    table = render_markdown(cfg, summary, meta)
    if out_md is not None:
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(table)
    report = {
        "bench": "efficacy",
        "config": asdict(cfg),
        **meta,
        "trainings": sum(s["trainings"] for s in per_seed),
        "cache_hits": sum(s["cache_hits"] for s in per_seed),
        "scenarios": [s["scenarios"] for s in per_seed],
        "results": summary,
        "markdown": table,
    }
    if not quiet:
        print(table)
        print(json.dumps({k: v for k, v in report.items() if k != "markdown"}))
    return report


def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, Path | None]:
    """CLI flags -> :class:`Config` (``--quick`` fills in only what is not given)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--clients", type=int, help="number of clients (default 15; quick 10)")
    p.add_argument("--rounds", type=int, help="rounds per run (default 5; quick 2)")
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3; quick 1)")
    p.add_argument(
        "--attacks",
        help="comma list of name or name[key=value;...] (default: "
        f"{','.join(DEFAULT_ATTACKS + ADAPTIVE_ATTACKS)})",
    )
    p.add_argument("--model", default="mlp", choices=["softmax", "mlp", "cnn"])
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet α (default 0.5)")
    p.add_argument("--fraction", type=float, default=0.2, help="attacker fraction (0.2)")
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--local-epochs", type=int, default=10)
    p.add_argument("--omniscient", action="store_true", help="colluders see all honest deltas")
    p.add_argument("--quick", action="store_true", help="10 clients, 2 rounds, 1 seed, 3 attacks")
    p.add_argument("--no-flower", action="store_true", help="skip the Flower arms")
    p.add_argument("--out", default=str(RESULTS_MD), help="markdown path ('' to skip)")
    a = p.parse_args(argv)
    quick = a.quick
    attacks_ = (
        tuple(x.strip() for x in a.attacks.split(",") if x.strip())
        if a.attacks
        else (QUICK_ATTACKS if quick else DEFAULT_ATTACKS + ADAPTIVE_ATTACKS)
    )
    cfg = Config(
        clients=a.clients or (10 if quick else 15),
        rounds=a.rounds or (2 if quick else 5),
        seeds=a.seeds or (1 if quick else 3),
        attacks=attacks_,
        model=a.model,
        alpha=a.alpha,
        attack_fraction=a.fraction,
        lr=a.lr,
        local_epochs=a.local_epochs,
        omniscient=a.omniscient,
        flower=not a.no_flower,
    )
    return cfg, (Path(a.out) if a.out else None)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    cfg, out = parse_args(argv)
    run(cfg, out)


if __name__ == "__main__":
    main()
