"""Client behaviours: honest training and the attacks the protocol must withstand.

Why a registry of behaviours instead of ad-hoc scripts: the demo, the tests and the
benchmarks all need the same attacker to act the same way, so that "the STF slashes
a zero update" means one reproducible thing. Each behaviour is a pure function of
a :class:`ClientContext` (which includes an integer seed): run it twice, get the same
bytes.

A behaviour has two sides, matching the two roles of SPEC §3:

- ``propose(ctx)`` returns the int16 delta the client would reveal (SPEC §4), or
  ``None`` if it reveals nothing (verdict ``ABSENT``);
- ``vote(acc_candidate_bps, acc_current_bps)`` returns the pair the voter reveals
  (SPEC §7), or ``None`` for no vote.

Attacks on one side behave honestly on the other (a ``sign_flip`` proposer votes
honestly if selected as a voter; a ``dishonest_voter`` proposes honest updates).

What each attack is (v2 verdicts: ``state_machine.verdicts``):

============================  ==========================================================
``honest``                    trains on its data (clipped to the norm bound)
``sign_flip``                 −scale · honest delta
``gaussian_noise``            N(0, σ²) per coordinate, no training
``label_flip``                trains on labels ``9 − y`` (data poisoning)
``alie`` / ``ipm``            Baruch 2019: mean − z·std; Xie 2020: −ε · mean of estimates
``lazy`` / ``replay``         zero update / resubmits Δ_prev (``zero_update``/``replay``)
``disguised_free_rider``      Δ_prev + Gaussian noise shaped like honest spread
``duplicate``                 sybil pair sharing one trained delta (+ tiny noise)
``min_max`` / ``min_sum``     Shejwalkar & Houmansadr 2021: mean − γ·std, largest γ
                              whose distances stay within the honest spread
``fang``                      Fang et al. 2020: past the honest extreme, per coordinate
``backdoor``                  own data + triggered copies labelled 0 (``scale`` boosts)
``small_noise``               free-rider: tiny Gaussian noise (just above zero)
``stale_copy``                free-rider: resubmits its own previous update
``frame_replay``              replays a victim's past public update (framing attempt)
``dishonest_voter``           reports ``(acc_current, acc_candidate)``: negated vote
``absent``                    reveals nothing, votes nothing; ``ABSENT``
============================  ==========================================================

Tunable knobs go in ``ClientContext.params`` (real-valued):

- ``sigma`` (``gaussian_noise``, ``disguised_free_rider``): noise std in *real* units.
- ``sigma_ratio`` (``gaussian_noise``, default 3; ``small_noise``, 0.05): std = ratio ×
  RMS of an honest delta.
- ``noise_ratio``: jitter, std = ratio × RMS of the crafted vector (``duplicate`` 0.01,
  ``disguised_free_rider`` 0.5 of Δ_prev without estimates, others 0: identical copies).
- ``z`` (``alie``): overrides the formula of :func:`alie_z`.
- ``epsilon`` (``ipm``, default 0.5).
- ``estimates`` (default 4): bootstrap resamples of own data without ``honest_deltas``.
- ``pair_seed`` (``duplicate``): the seed both sybils train with (default ``seed``).
- ``scale`` (``sign_flip``, ``backdoor``; default 1): multiply the crafted update.
- ``clip`` (any attack; default 0): 1 = rule-aware, clip the result to the task's
  ``norm_bound`` so the norm rule cannot fire (the largest passing perturbation).

Training (honest or in an attack) is clipped to ``ClientContext.norm_bound`` with
``state_machine.aggregation.clip_update``, as the protocol asks of every client.

Unknown parameter names raise ``ValueError`` (typos would otherwise silently run the
default attack).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from statistics import NormalDist
from typing import Protocol, runtime_checkable

import numpy as np

from federated import models
from federated.quant import INT16_MAX, INT16_MIN
from federated.train import local_update
from state_machine.aggregation import clip_update

BACKDOOR_TARGET = 0  # label the trigger maps to
BACKDOOR_PIXELS = (54, 55, 62, 63)  # bottom-right 2x2 of the 8x8 digit
BPS_MAX = 10_000
KNOWN_PARAMS = frozenset(
    {"sigma", "sigma_ratio", "noise_ratio", "z", "epsilon", "estimates", "pair_seed", "scale"}
) | {"clip", "cos"}


@dataclass(frozen=True)
class ClientContext:
    """Everything a client sees when it acts in one epoch.

    ``prev_delta_q`` is Δ_prev, the last accepted aggregate delta (zeros before the
    first accepted epoch; ``None`` is read as zeros). ``honest_deltas`` are the honest
    deltas colluders can estimate (e.g. the colluders' own honest training); ALIE and
    IPM fall back to bootstrap estimates from ``X, y`` when it is ``None``.
    ``n_clients``/``n_byzantine`` are the proposer count ``n`` and assumed ``f``.
    """

    model_name: str
    scale_bits: int
    global_q: np.ndarray
    X: np.ndarray
    y: np.ndarray
    seed: int
    prev_delta_q: np.ndarray | None = None
    epochs: int = 1
    lr: float = 0.1
    batch_size: int = 32
    honest_deltas: Sequence[np.ndarray] | None = None
    n_clients: int = 10
    n_byzantine: int = 1
    params: Mapping[str, float] = field(default_factory=dict)
    num_threads: int | None = 1
    norm_bound: int = 0
    own_prev_q: np.ndarray | None = None
    public_updates: Sequence[np.ndarray] | None = None

    def __post_init__(self) -> None:
        d = models.num_params(self.model_name)
        if np.shape(self.global_q) != (d,):
            raise ValueError(f"global_q must have shape ({d},), got {np.shape(self.global_q)}")
        if self.prev_delta_q is not None and np.shape(self.prev_delta_q) != (d,):
            raise ValueError(f"prev_delta_q must have shape ({d},)")
        for h in self.honest_deltas or ():
            if np.shape(h) != (d,):
                raise ValueError(f"every honest delta must have shape ({d},)")
        unknown = set(self.params) - KNOWN_PARAMS
        if unknown:
            raise ValueError(
                f"unknown attack params {sorted(unknown)}; known {sorted(KNOWN_PARAMS)}"
            )
        if self.seed < 0:
            raise ValueError("seed must be non-negative")

    @property
    def d(self) -> int:
        """Number of model parameters."""
        return int(np.shape(self.global_q)[0])

    @property
    def prev_delta(self) -> np.ndarray:
        """Δ_prev as int64 (zeros when unknown)."""
        if self.prev_delta_q is None:
            return np.zeros(self.d, dtype=np.int64)
        return np.asarray(self.prev_delta_q, dtype=np.int64)

    def param(self, name: str, default: float) -> float:
        """A tunable knob from ``params`` (see the module docstring)."""
        return float(self.params.get(name, default))


@runtime_checkable
class Behaviour(Protocol):
    """What a simulated client does in each role."""

    name: str

    def propose(self, ctx: ClientContext) -> np.ndarray | None:
        """The int16 delta to reveal, or ``None`` to reveal nothing."""
        ...

    def vote(self, acc_candidate_bps: int, acc_current_bps: int) -> tuple[int, int] | None:
        """The ``(acc_candidate_bps, acc_current_bps)`` to reveal, or ``None``."""
        ...


# ---------------------------------------------------------------- helpers


def subseed(seed: int, *tags: int) -> int:
    """A derived 32-bit seed; distinct tags give independent streams from one seed."""
    return int(np.random.SeedSequence([seed, *tags]).generate_state(1, dtype=np.uint32)[0])


def _rng(ctx: ClientContext, tag: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(subseed(ctx.seed, tag)))


def to_int16(lsb: np.ndarray) -> np.ndarray:
    """Round half to even (in LSB units) and clip to int16, as a client would."""
    return np.clip(np.rint(np.asarray(lsb, dtype=np.float64)), INT16_MIN, INT16_MAX).astype(
        np.int16
    )


def _rms(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(np.sqrt(np.mean(v * v))) if v.size else 0.0


def _train(ctx: ClientContext, X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Local SGD, quantized and clipped to the task's norm bound (what honest clients send)."""
    delta = local_update(
        ctx.model_name,
        ctx.global_q,
        ctx.scale_bits,
        X,
        y,
        epochs=ctx.epochs,
        lr=ctx.lr,
        batch_size=ctx.batch_size,
        seed=seed,
        num_threads=ctx.num_threads,
    ).delta_q
    return clip_update(delta, ctx.norm_bound)


def honest_delta(ctx: ClientContext) -> np.ndarray:
    """The client's honest update: :func:`local_update` on its data with ``ctx.seed``."""
    return _train(ctx, ctx.X, ctx.y, ctx.seed)


def honest_estimates(ctx: ClientContext) -> np.ndarray:
    """``(k, d)`` int64 honest deltas the attacker bases a crafted update on.

    ``ctx.honest_deltas`` when given (colluders pooling their honest training);
    otherwise ``k = params['estimates']`` (default 4) models trained on bootstrap
    resamples of the attacker's own data. Bootstrap rather than disjoint shards so
    each estimate takes as many SGD steps as a real client would.
    """
    if ctx.honest_deltas:
        return np.stack([np.asarray(h, dtype=np.int64) for h in ctx.honest_deltas])
    k = int(ctx.param("estimates", 4))
    if k < 1:
        raise ValueError("estimates must be >= 1")
    n = len(ctx.y)
    rows = []
    for i in range(k):
        idx = np.random.Generator(np.random.PCG64(subseed(ctx.seed, 100, i))).integers(0, n, n)
        rows.append(_train(ctx, ctx.X[idx], ctx.y[idx], subseed(ctx.seed, 101, i)))
    return np.stack(rows).astype(np.int64)


def _jitter(ctx: ClientContext, lsb: np.ndarray, ratio: float, tag: int) -> np.ndarray:
    if ratio <= 0:
        return lsb
    return lsb + _rng(ctx, tag).normal(0.0, ratio * max(_rms(lsb), 1.0), size=lsb.shape)


def alie_z(n: int, f: int) -> float:
    """Baruch et al. 2019: ``s = ⌊n/2 + 1⌋ − f``, ``z = Φ⁻¹((n − s) / n)``.

    ``s`` is how many honest clients the attackers need "on their side" for a
    majority; ``z`` is the largest shift that keeps the crafted update closer to the
    mean than that many honest ones. The probability is clamped to (0, 1) so
    extreme ``(n, f)`` give a large finite ``z`` rather than an error.
    """
    if n < 1 or f < 0:
        raise ValueError("need n >= 1 and f >= 0")
    s = n // 2 + 1 - f
    p = min(max((n - s) / n, 1e-6), 1 - 1e-6)
    return NormalDist().inv_cdf(p)


# ---------------------------------------------------------------- proposer sides


def _honest(ctx: ClientContext) -> np.ndarray:
    return honest_delta(ctx)


def _sign_flip(ctx: ClientContext) -> np.ndarray:
    return to_int16(-ctx.param("scale", 1.0) * honest_delta(ctx).astype(np.float64))


def _gaussian_noise(ctx: ClientContext) -> np.ndarray:
    if "sigma" in ctx.params:
        sigma_lsb = ctx.param("sigma", 0.0) * 2.0**ctx.scale_bits
    else:
        sigma_lsb = ctx.param("sigma_ratio", 3.0) * max(_rms(honest_delta(ctx)), 1.0)
    return to_int16(_rng(ctx, 1).normal(0.0, sigma_lsb, size=ctx.d))


def _label_flip(ctx: ClientContext) -> np.ndarray:
    num_classes = models.get_spec(ctx.model_name).num_classes
    flipped = (num_classes - 1) - np.asarray(ctx.y, dtype=np.int64)
    return _train(ctx, ctx.X, flipped, ctx.seed)


def _alie(ctx: ClientContext) -> np.ndarray:
    est = honest_estimates(ctx).astype(np.float64)
    z = ctx.param("z", alie_z(ctx.n_clients, max(ctx.n_byzantine, 1)))
    crafted = est.mean(axis=0) - z * est.std(axis=0)
    return to_int16(_jitter(ctx, crafted, ctx.param("noise_ratio", 0.0), 2))


def _ipm(ctx: ClientContext) -> np.ndarray:
    est = honest_estimates(ctx).astype(np.float64)
    crafted = -ctx.param("epsilon", 0.5) * est.mean(axis=0)
    return to_int16(_jitter(ctx, crafted, ctx.param("noise_ratio", 0.0), 3))


def _lazy(ctx: ClientContext) -> np.ndarray:
    return np.zeros(ctx.d, dtype=np.int16)


def _replay(ctx: ClientContext) -> np.ndarray:
    return to_int16(ctx.prev_delta)


def _disguised_free_rider(ctx: ClientContext) -> np.ndarray:
    """Lin et al. 2019 "Free-rider attacks on model aggregation": Δ_prev + noise.

    The noise is what pushes ``cos(δ, Δ_prev)`` below the replay threshold; its
    scale mimics how far honest updates stray from their mean, per coordinate when
    colluders' honest deltas are known.
    """
    base = ctx.prev_delta.astype(np.float64)
    rng = _rng(ctx, 4)
    if "sigma" in ctx.params:
        sigma: float | np.ndarray = ctx.param("sigma", 0.0) * 2.0**ctx.scale_bits
    elif ctx.honest_deltas is not None and len(ctx.honest_deltas) >= 2:
        sigma = honest_estimates(ctx).astype(np.float64).std(axis=0)
    else:
        sigma = ctx.param("noise_ratio", 0.5) * _rms(base)
    return to_int16(base + rng.normal(0.0, 1.0, size=ctx.d) * sigma)


def _duplicate(ctx: ClientContext) -> np.ndarray:
    """One member of a sybil pair: both train with ``pair_seed`` on the same data.

    Each member then adds its own tiny noise (seeded by its ``seed``), so the two
    reveals differ byte-wise yet stay near-identical (cosine ≈ 1).
    """
    pair_seed = int(ctx.param("pair_seed", ctx.seed))
    base = _train(ctx, ctx.X, ctx.y, pair_seed).astype(np.float64)
    return to_int16(_jitter(ctx, base, ctx.param("noise_ratio", 0.01), 5))


def triggered(X: np.ndarray) -> np.ndarray:
    """Inputs with the backdoor trigger stamped on (max intensity, digits are 0..16)."""
    out = np.array(X, dtype=np.float32, copy=True)
    out[:, list(BACKDOOR_PIXELS)] = float(np.max(X)) if np.size(X) else 16.0
    return out


def _backdoor(ctx: ClientContext) -> np.ndarray:
    """Own data plus every sample again with the trigger, labelled BACKDOOR_TARGET."""
    X = np.concatenate([ctx.X, triggered(ctx.X)])
    y = np.concatenate([ctx.y, np.full(len(ctx.y), BACKDOOR_TARGET, dtype=np.asarray(ctx.y).dtype)])
    delta = _train(ctx, X.astype(np.asarray(ctx.X).dtype), y, ctx.seed)
    return to_int16(ctx.param("scale", 1.0) * delta.astype(np.float64))


def _spread_attack(ctx: ClientContext, agg: str) -> np.ndarray:
    """min-max / min-sum (Shejwalkar & Houmansadr 2021) with the std perturbation.

    Largest γ (bisection) such that the crafted mean − γ·std is no farther from the honest
    estimates than they are from each other (max distance, or sum of squared distances).
    """
    est = honest_estimates(ctx).astype(np.float64)
    mu, p = est.mean(axis=0), est.std(axis=0)
    d2 = ((est[:, None, :] - est[None, :, :]) ** 2).sum(-1)
    limit = d2.max() if agg == "max" else d2.sum(1).max()

    def ok(g: float) -> bool:
        dist = ((est - (mu - g * p)) ** 2).sum(-1)
        return (dist.max() if agg == "max" else dist.sum()) <= limit

    lo, hi = 0.0, 50.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return to_int16(_jitter(ctx, mu - lo * p, ctx.param("noise_ratio", 0.0), 6))


def _fang(ctx: ClientContext) -> np.ndarray:
    """Fang et al. 2020 (full knowledge, trimmed mean): where the honest mean rises, a
    value below the honest minimum (random factor in [1, 2] toward the far side), and
    symmetrically where it falls."""
    est = honest_estimates(ctx).astype(np.float64)
    s = np.sign(est.mean(axis=0))
    lo, hi = est.min(axis=0), est.max(axis=0)
    b = _rng(ctx, 7).uniform(1.0, 2.0, size=ctx.d)
    down = np.where(lo > 0, lo / b, lo * b)
    up = np.where(hi > 0, hi * b, hi / b)
    crafted = np.where(s > 0, down, up)
    return to_int16(_jitter(ctx, crafted, ctx.param("noise_ratio", 0.0), 8))


def _small_noise(ctx: ClientContext) -> np.ndarray:
    """Fraboni et al. 2021's cheapest disguise: noise of a small fraction of honest RMS."""
    rms = max(_rms(honest_estimates(ctx)[0]) if ctx.honest_deltas else 100.0, 1.0)
    sig = ctx.param("sigma_ratio", 0.05) * rms
    out = to_int16(_rng(ctx, 9).normal(0.0, sig, size=ctx.d))
    if not out.any():  # just above any zero test
        out[0] = 1
    return out


def _stale_copy(ctx: ClientContext) -> np.ndarray:
    """Resubmit one's own previous update (plus optional jitter); train if there is none."""
    if ctx.own_prev_q is None:
        return honest_delta(ctx)
    lsb = np.asarray(ctx.own_prev_q, dtype=np.float64)
    return to_int16(_jitter(ctx, lsb, ctx.param("noise_ratio", 0.0), 10))


def _frame_replay(ctx: ClientContext) -> np.ndarray:
    """Replay a public past update of someone else (the victim), optional jitter."""
    pub = list(ctx.public_updates or ())
    if not pub:
        return honest_delta(ctx)
    lsb = np.asarray(pub[ctx.seed % len(pub)], dtype=np.float64)  # each attacker its victim
    return to_int16(_jitter(ctx, lsb, ctx.param("noise_ratio", 0.0), 11))


def _absent_propose(ctx: ClientContext) -> None:
    return None


# ---------------------------------------------------------------- voter sides


def _check_bps(acc_candidate_bps: int, acc_current_bps: int) -> None:
    for v in (acc_candidate_bps, acc_current_bps):
        if not isinstance(v, int | np.integer) or not 0 <= v <= BPS_MAX:
            raise ValueError(f"accuracy must be an int in [0, {BPS_MAX}] bps, got {v!r}")


def honest_vote(acc_candidate_bps: int, acc_current_bps: int) -> tuple[int, int]:
    """Report what was measured."""
    _check_bps(acc_candidate_bps, acc_current_bps)
    return int(acc_candidate_bps), int(acc_current_bps)


def reversed_vote(acc_candidate_bps: int, acc_current_bps: int) -> tuple[int, int]:
    """Swap the two accuracies: ``v = cand − cur`` becomes ``−v``, still valid bps."""
    _check_bps(acc_candidate_bps, acc_current_bps)
    return int(acc_current_bps), int(acc_candidate_bps)


def no_vote(acc_candidate_bps: int, acc_current_bps: int) -> None:
    """Reveal nothing (verdict ``ABSENT`` for a selected voter)."""
    return None


@dataclass(frozen=True)
class Attack:
    """A named :class:`Behaviour` built from a proposer function and a voter function."""

    name: str
    summary: str
    propose_fn: Callable[[ClientContext], np.ndarray | None]
    vote_fn: Callable[[int, int], tuple[int, int] | None] = honest_vote

    def propose(self, ctx: ClientContext) -> np.ndarray | None:
        """The int16 delta to reveal (shape ``(d,)``) or ``None``."""
        out = self.propose_fn(ctx)
        if out is not None and ctx.param("clip", 0.0) > 0:  # rule-aware: stay within bound
            out = clip_update(out, ctx.norm_bound)
        if out is not None:
            assert out.dtype == np.int16 and out.shape == (ctx.d,)
        return out

    def vote(self, acc_candidate_bps: int, acc_current_bps: int) -> tuple[int, int] | None:
        """The accuracy pair to reveal or ``None``."""
        return self.vote_fn(acc_candidate_bps, acc_current_bps)


_ALL = (
    Attack("honest", "train on own data", _honest),
    Attack("sign_flip", "negated honest delta", _sign_flip),
    Attack("gaussian_noise", "pure Gaussian noise, no training", _gaussian_noise),
    Attack("label_flip", "train on labels 9 - y", _label_flip),
    Attack("alie", "A Little Is Enough: mean - z*std of estimates", _alie),
    Attack("ipm", "inner-product manipulation: -eps * mean of estimates", _ipm),
    Attack("lazy", "zero update", _lazy),
    Attack("replay", "resubmit the previous global step", _replay),
    Attack("disguised_free_rider", "previous step + honest-like noise", _disguised_free_rider),
    Attack("duplicate", "sybil pair sharing one delta", _duplicate),
    Attack("min_max", "mean - gamma*std within the honest max distance",
           partial(_spread_attack, agg="max")),
    Attack("min_sum", "mean - gamma*std within the honest sum of distances",
           partial(_spread_attack, agg="sum")),
    Attack("fang", "past the honest extreme against the mean's sign", _fang),
    Attack("backdoor", "trigger -> label 0 on top of own data", _backdoor),
    Attack("small_noise", "free-rider: tiny Gaussian noise", _small_noise),
    Attack("stale_copy", "free-rider: own previous update", _stale_copy),
    Attack("frame_replay", "replays a victim's past public update", _frame_replay),
    Attack("dishonest_voter", "honest proposer, negated vote", _honest, reversed_vote),
    Attack("absent", "reveals nothing", _absent_propose, no_vote),
)
ATTACKS: dict[str, Behaviour] = {a.name: a for a in _ALL}


def get_behaviour(name: str) -> Behaviour:
    """The registered behaviour; a clear ``KeyError`` lists what exists."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise KeyError(f"unknown behaviour {name!r}; known: {sorted(ATTACKS)}") from None


def duplicate_pair(ctx: ClientContext, other_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Both reveals of a sybil pair: members seeded ``ctx.seed`` and ``other_seed``."""
    params = {**ctx.params, "pair_seed": ctx.param("pair_seed", ctx.seed)}
    first = replace(ctx, params=params)
    second = replace(ctx, seed=other_seed, params=params)
    a, b = _duplicate(first), _duplicate(second)
    return a, b
