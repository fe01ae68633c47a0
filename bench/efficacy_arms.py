"""Clients, attack scenarios and aggregation arms of ``bench/efficacy.py``.

Why a module of its own: the grid driver and the report stay short, and every arm calls
the STF's own code (``state_machine.verdicts.judge_epoch`` for v2, the legacy
``state_machine.scoring.score_updates`` for the v1 rules), never a re-implementation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federated import attacks, attacks_adaptive, data, train
from state_machine import recorded_vouching, scoring, verdicts
from state_machine.aggregation import apply_delta, mean_round_half_even, norms_sq

HONEST = "honest"
COLLUDING = frozenset({"alie", "ipm", "disguised_free_rider", "min_max", "min_sum", "fang",
                       "small_noise"})  # fmt: skip
PROPOSER_ATTACKS = frozenset(
    {"sign_flip", "gaussian_noise", "label_flip", "alie", "ipm", "lazy", "replay",
     "disguised_free_rider", "duplicate", "min_max", "min_sum", "fang", "backdoor",
     "small_noise", "stale_copy", "frame_replay"}
) | {a.name for a in attacks_adaptive.ADAPTIVE}  # fmt: skip
FREE_RIDERS = frozenset(
    {"lazy", "replay", "disguised_free_rider", "small_noise", "stale_copy", "frame_replay"}
)


def parse_attack(spec: str) -> tuple[str, dict[str, float]]:
    """``"alie"`` or ``"alie[noise_ratio=0.15;z=1]"`` -> ``(name, params)``."""
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
        raise ValueError(f"unknown attack {name!r}; known: {sorted(PROPOSER_ATTACKS)}")
    return name, params


@dataclass(frozen=True)
class Scenario:
    """Who attacks how in one seed: ``attackers`` sorted; ``pairs`` for sybils only."""

    attack: str
    attackers: tuple[int, ...]
    f: int
    pairs: tuple[tuple[int, int], ...] = ()
    behaviour: str = HONEST
    params: tuple[tuple[str, float], ...] = ()

    def is_attacker(self, client: int) -> bool:
        return self.behaviour != HONEST and client in self.attackers


def attacker_count(n: int, attack: str, fraction: float = 0.2) -> int:
    """``ceil(fraction · n)`` (at least 1); even for ``duplicate`` (sybil pairs)."""
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
    return Scenario(attack, tuple(sorted(chosen)), k, pairs, name, tuple(sorted(params.items())))


def _digest(arr: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16).digest()


@dataclass(frozen=True)
class Setting:
    """Training settings shared by every client of a run."""

    model: str = "mlp"
    scale_bits: int = 12
    lr: float = 0.5
    local_epochs: int = 2
    batch_size: int = 32
    norm_factor: float = 1.5  # task norm bound = factor x median round-1 honest norm


class ClientPool:
    """The clients of one (alpha, n, seed): partitions, memoized honest training, attacks.

    The task's norm bound is calibrated like a task owner's pilot round: ``norm_factor``
    times the median norm of the clients' unclipped first-round updates; honest training
    is then clipped to it (``attacks._train`` does the same for attackers that train).
    """

    def __init__(self, st: Setting, n: int, alpha: float, seed: int, g0: np.ndarray) -> None:
        self.st, self.n, self.seed = st, n, seed
        split = data.digits_split()
        parts = data.partition_dirichlet(n, alpha, seed=seed)
        self.X = [split.X_train[p] for p in parts]
        self.y = [split.y_train[p] for p in parts]
        self._cache: dict[tuple[bytes, int, int], np.ndarray] = {}
        self.trainings = 0
        self.norm_bound = 0
        raw = [self.honest(g0, i, 0) for i in range(n)]
        med = sorted(norms_sq(np.stack(raw)))[(n - 1) // 2]
        self.norm_bound = math.ceil(st.norm_factor * math.sqrt(med))
        for key, delta in list(self._cache.items()):
            clipped = attacks.clip_update(delta, self.norm_bound)
            clipped.setflags(write=False)
            self._cache[key] = clipped

    def train_seed(self, rnd: int, client: int) -> int:
        return attacks.subseed(self.seed, 7, rnd, client)

    def honest(self, global_q: np.ndarray, client: int, rnd: int) -> np.ndarray:
        key = (_digest(global_q), client, rnd)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        st = self.st
        delta = train.local_update(
            st.model, global_q, st.scale_bits, self.X[client], self.y[client],
            epochs=st.local_epochs, lr=st.lr, batch_size=st.batch_size,
            seed=self.train_seed(rnd, client),
        ).delta_q  # fmt: skip
        delta = attacks.clip_update(delta, self.norm_bound)
        delta.setflags(write=False)
        self._cache[key] = delta
        self.trainings += 1
        return delta

    def proposals(self, sc: Scenario, traj: Trajectory, rnd: int) -> np.ndarray:
        """Every client's int16 delta for this round, shape ``(n, d)``."""
        g = traj.global_q
        rows: list[np.ndarray | None] = [
            None if sc.is_attacker(i) else self.honest(g, i, rnd) for i in range(self.n)
        ]
        if sc.behaviour == HONEST:
            return np.stack(rows)  # type: ignore[arg-type]
        est = None
        if sc.behaviour in COLLUDING:
            est = [self.honest(g, j, rnd) for j in sc.attackers]
        public = [traj.last[i] for i in range(self.n) if not sc.is_attacker(i) and
                  traj.last.get(i) is not None]  # fmt: skip
        st = self.st
        for i in sc.attackers:
            ctx = attacks.ClientContext(
                model_name=st.model, scale_bits=st.scale_bits, global_q=g, X=self.X[i],
                y=self.y[i], seed=self.train_seed(rnd, i), prev_delta_q=traj.prev_delta,
                epochs=st.local_epochs, lr=st.lr, batch_size=st.batch_size,
                honest_deltas=est, n_clients=self.n, n_byzantine=sc.f, params=dict(sc.params),
                norm_bound=self.norm_bound, own_prev_q=traj.last.get(i), public_updates=public,
            )  # fmt: skip
            if sc.behaviour == "duplicate":
                for a, b in sc.pairs:
                    if i == a:
                        rows[a], rows[b] = attacks.duplicate_pair(ctx, self.train_seed(rnd, b))
            else:
                rows[i] = attacks.get_behaviour(sc.behaviour).propose(ctx)
        return np.stack(rows).astype(np.int16, copy=False)  # type: ignore[arg-type]


@dataclass
class Trajectory:
    """One arm's global model, Δ_prev, public history and per-round records."""

    global_q: np.ndarray
    prev_delta: np.ndarray
    last: dict[int, np.ndarray] = field(default_factory=dict)  # each client's last reveal
    replayable: set[bytes] = field(default_factory=set)
    suspects: frozenset[bytes] = frozenset()  # recorded_vouched_mean's record
    records: list[dict[str, Any]] = field(default_factory=list)

    def step(self, deltas: np.ndarray, aggregate: np.ndarray | None) -> None:
        """Publish this round's reveals; apply the aggregate (None: epoch discarded)."""
        for i in range(deltas.shape[0]):
            self.last[i] = deltas[i]
        if aggregate is not None:
            self.replayable.update(verdicts.delta_hash(r) for r in deltas)
            self.global_q = apply_delta(self.global_q, aggregate)
            self.prev_delta = aggregate
            self.replayable.add(verdicts.delta_hash(aggregate))


def pubkeys(n: int) -> list[bytes]:
    """Ascending 32-byte keys, row ``i`` <-> client ``i``."""
    return [(i + 1).to_bytes(32, "big") for i in range(n)]


def v2_round(traj: Trajectory, deltas: np.ndarray, sc: Scenario, params: Any,
             fresh_gate: bool = True) -> dict[str, Any]:
    """The STF's verdicts v2 (``judge_epoch``) and its aggregate; records who got what.

    ``fresh_gate``: give ``judge_epoch`` every client's last public reveal, so rewards
    are paid only for the part new relative to them (``History.past_updates``)."""
    n = deltas.shape[0]
    past = np.stack([traj.last[i] for i in sorted(traj.last)]) if traj.last else None
    hist = verdicts.History(traj.prev_delta, frozenset(traj.replayable),
                            frozenset(traj.replayable), b"\x01" * 32,
                            past if fresh_gate else None, traj.suspects)  # fmt: skip
    j = verdicts.judge_epoch(params, hist, pubkeys(n), deltas)
    if j.aggregate is not None:  # recorded_vouched_mean's record (History.suspects)
        traj.suspects = recorded_suspects(deltas, j, traj.suspects, bool(traj.prev_delta.any()))
    traj.step(deltas, j.aggregate)
    v = j.verdicts
    att = [i for i in range(n) if sc.is_attacker(i)]
    hon = [i for i in range(n) if not sc.is_attacker(i)]
    total_w = sum(x.reward_weight for x in v)
    return {
        "att_slashed": sum(v[i].slash is not None for i in att),
        "att_excluded": sum(v[i].verdict == verdicts.EXCLUDED for i in att),
        "att_accepted": sum(v[i].verdict == verdicts.ACCEPTED for i in att),
        "honest_slashed": [i for i in hon if v[i].slash is not None],
        "honest_excluded": sum(v[i].verdict == verdicts.EXCLUDED for i in hon),
        "honest_unpaid": sum(v[i].reward_weight == 0 for i in hon),
        "att_weight_share": sum(v[i].reward_weight for i in att) / total_w if total_w else 0.0,
        "att_weight_mean": sum(v[i].reward_weight for i in att) / max(len(att), 1),
        "honest_weight_mean": sum(v[i].reward_weight for i in hon) / max(len(hon), 1),
        "att_verdicts": [v[i].verdict for i in att],
        "honest_slash_reasons": [v[i].slash.value for i in hon if v[i].slash is not None],
        "discarded": j.aggregate is None,
    }


def recorded_suspects(deltas: np.ndarray, j: Any, record: frozenset[bytes],
                      anchored: bool) -> frozenset[bytes]:
    """What the STF would keep for ``recorded_vouched_mean`` after this epoch's close."""
    rows = deltas.astype(np.int64)
    gram = (rows @ rows.T).tolist()
    kept = [i for i, v in enumerate(j.verdicts) if v.verdict == verdicts.ACCEPTED]
    ex = ["not_admitted" in v.reasons for v in j.verdicts]
    return recorded_vouching.next_record([v.pubkey for v in j.verdicts], gram, kept, ex, record,
                                         anchored)  # fmt: skip


def v1_round(traj: Trajectory, deltas: np.ndarray, sc: Scenario) -> dict[str, Any]:
    """The previous rules (SPEC §5 scoring, mean of ACCEPTED) for the side-by-side figures."""
    n = deltas.shape[0]
    res = scoring.score_updates(pubkeys(n), deltas, traj.prev_delta, sc.f)
    acc = res.accepted_indices()
    traj.step(deltas, mean_round_half_even(deltas[acc]) if acc else None)
    flagged = [i for i, s in enumerate(res.scores) if s.verdict in scoring.SLASHABLE_VERDICTS]
    return {
        "att_slashed": sum(sc.is_attacker(i) for i in flagged),
        "honest_slashed": [i for i in flagged if not sc.is_attacker(i)],
    }


def oracle_round(traj: Trajectory, deltas: np.ndarray, sc: Scenario) -> dict[str, Any]:
    """The best any filter can do: the mean of exactly the honest clients' deltas."""
    honest = [i for i in range(deltas.shape[0]) if not sc.is_attacker(i)]
    traj.step(deltas, mean_round_half_even(deltas[honest]))
    return {}


def flower_round(traj: Trajectory, deltas: np.ndarray, sc: Scenario, server: Any,
                 strategy: str, num_examples: np.ndarray, rnd: int) -> dict[str, Any]:  # fmt: skip
    """A Flower strategy as the server (no verdicts, nobody slashed): its aggregate of
    every proposal, as Flower would see them, applied to the global model."""
    from efficacy_flower_client import flower_delta

    step = flower_delta(server, strategy, traj.global_q, deltas, num_examples, sc.f, rnd)
    traj.step(deltas, step)
    return {}


def margins(deltas: np.ndarray, last: dict[int, np.ndarray], honest: Sequence[int]) -> dict:
    """Smallest relative squared distances among honest updates (the duplicate margin):
    between two clients in one round, and between one client's consecutive updates."""
    rows = deltas.astype(np.int64)
    norms = norms_sq(deltas)
    pair, own = math.inf, math.inf
    for a in honest:
        for b in honest:
            if a < b and min(norms[a], norms[b]) > 0:
                d = rows[a] - rows[b]
                pair = min(pair, int(d @ d) / min(norms[a], norms[b]))
        p = last.get(a)
        if p is not None:
            d = rows[a] - p.astype(np.int64)
            m = min(norms[a], int(p.astype(np.int64) @ p.astype(np.int64)))
            if m > 0:
                own = min(own, int(d @ d) / m)
    return {"pair": pair, "own": own}


def backdoor_success(st: Setting, global_q: np.ndarray) -> float:
    """Share of triggered test digits (true label != target) classified as the target."""
    split = data.digits_split()
    keep = split.y_test != attacks.BACKDOOR_TARGET
    X = attacks.triggered(split.X_test[keep]).astype(split.X_test.dtype)
    y = np.full(int(keep.sum()), attacks.BACKDOOR_TARGET)
    return train.accuracy_bps(st.model, global_q, st.scale_bits, X, y) / 100
