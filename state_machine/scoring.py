"""Exact Krum scores and the SPEC §5 verdicts, from one integer Gram matrix.

Why a Gram matrix: every quantity the verdicts need (pairwise distances, norms, inner
products with Δ_prev and with the Multi-Krum centre) is a linear combination of inner
products, so one GEMM gives them all. The GEMM runs in float64 BLAS over int16-valued
blocks of at most ``GRAM_BLOCK`` coordinates: each product is at most 2^30 and each block
sum at most 2^46 < 2^53, so the float result is the exact integer; blocks accumulate in
int64 and every later step uses Python ints. Results are therefore identical on every
machine and BLAS thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from state_machine.constants import (
    COS_ADVERSARIAL,
    COS_DUPLICATE,
    COS_REPLAY,
    GRAM_BLOCK,
    GRAM_EXACT_MAX_BLOCK,
    RHO_LAZY,
    TAU_OUT,
)

ACCEPTED = "ACCEPTED"
EXCLUDED = "EXCLUDED"  # Krum outlier with no evidence of malice: not aggregated, not slashed
OUTLIER = "OUTLIER"
FREE_RIDER = "FREE_RIDER"
DUPLICATE = "DUPLICATE"
ABSENT = "ABSENT"
SLASHABLE_VERDICTS = frozenset({OUTLIER, FREE_RIDER, DUPLICATE})

assert GRAM_BLOCK <= GRAM_EXACT_MAX_BLOCK


class ScoringError(ValueError):
    """Inputs the scoring rules cannot be applied to (e.g. n < 2f + 3)."""


def gram_matrix(rows: np.ndarray, block: int = GRAM_BLOCK) -> list[list[int]]:
    """Exact ``rows @ rows.T`` for an int16 matrix, as Python ints.

    float64 is used only as an exact integer GEMM engine (see module docstring).
    """
    return gram_int64(rows, block).tolist()


def gram_int64(rows: np.ndarray | Sequence[np.ndarray], block: int = GRAM_BLOCK) -> np.ndarray:
    """:func:`gram_matrix` as an int64 array (tiles of an epoch add these up).

    ``rows`` may also be a list of 2-D int16 arrays of the same width, the matrix's rows
    part after part: each is converted straight into the float64 buffer (an epoch tile,
    its past rows and Δ_prev without stacking them first: one copy instead of three)."""
    parts = [rows] if isinstance(rows, np.ndarray) else list(rows)
    if not parts or any(r.dtype != np.int16 or r.ndim != 2 for r in parts) \
            or len({r.shape[1] for r in parts}) != 1:
        raise ScoringError("rows must be a 2-D int16 array")
    if not 0 < block <= GRAM_EXACT_MAX_BLOCK:
        raise ScoringError("block length breaks float64 exactness")
    m, d = sum(r.shape[0] for r in parts), parts[0].shape[1]
    acc = np.zeros((m, m), dtype=np.int64)
    buf = np.empty((m, min(block, max(d, 1))), dtype=np.float64)  # exact int16 -> float64
    for start in range(0, d, block):
        width = min(block, d - start)
        part, at = buf[:, :width], 0
        for r in parts:
            np.copyto(part[at:at + r.shape[0]], r[:, start : start + width], casting="unsafe")
            at += r.shape[0]
        acc += (part @ part.T).astype(np.int64)  # exact: every partial sum < 2^53
    return acc


def distances(gram: Sequence[Sequence[int]], n: int) -> list[list[int]]:
    """D_ij = G_ii + G_jj - 2 G_ij over the first ``n`` rows."""
    return [[gram[i][i] + gram[j][j] - 2 * gram[i][j] for j in range(n)] for i in range(n)]


def check_krum_size(n: int, f: int) -> None:
    if f < 0:
        raise ScoringError("f must be non-negative")
    if n < 2 * f + 3:
        raise ScoringError(f"Krum needs n >= 2f + 3 updates (n={n}, f={f})")


def krum_from_distances(dist: Sequence[Sequence[int]], f: int) -> list[int]:
    """s_i = sum of the n - f - 2 smallest D_ij, j != i (Blanchard et al. 2017)."""
    n = len(dist)
    check_krum_size(n, f)
    k = n - f - 2
    return [sum(sorted(dist[i][j] for j in range(n) if j != i)[:k]) for i in range(n)]


def krum_scores(deltas: np.ndarray, f: int) -> list[int]:
    """Exact Krum scores of int16 ``deltas`` (n, d), in row order, as Python ints."""
    deltas = np.ascontiguousarray(deltas)
    if deltas.ndim != 2:
        raise ScoringError("deltas must be (n, d)")
    check_krum_size(deltas.shape[0], f)
    gram = gram_matrix(deltas)
    return krum_from_distances(distances(gram, deltas.shape[0]), f)


def lower_median(values: Sequence[int]) -> int:
    """The lower median: deterministic and integer for any length >= 1."""
    s = sorted(values)
    return s[(len(s) - 1) // 2]


def cos_at_least(dot: int, norm_a: int, norm_b: int, ratio: tuple[int, int]) -> bool:
    """cos(a, b) >= p/q  <=>  a.b >= 0 and q^2 (a.b)^2 >= p^2 |a|^2 |b|^2 (both non-zero)."""
    p, q = ratio
    if norm_a == 0 or norm_b == 0 or dot < 0:
        return False
    return q * q * dot * dot >= p * p * norm_a * norm_b


def cos_below_negative(dot: int, norm_a: int, norm_b: int, ratio: tuple[int, int]) -> bool:
    """cos(a, b) < -p/q  <=>  a.b < 0 and q^2 (a.b)^2 > p^2 |a|^2 |b|^2."""
    p, q = ratio
    if norm_a == 0 or norm_b == 0 or dot >= 0:
        return False
    return q * q * dot * dot > p * p * norm_a * norm_b


@dataclass
class UpdateScore:
    """One proposer's numbers and verdict; every number is an exact integer."""

    pubkey: bytes
    verdict: str = ACCEPTED
    reasons: list[str] = field(default_factory=list)
    krum_score: int = 0
    norm_sq: int = 0
    dot_prev: int = 0
    dot_center: int = 0
    in_multi_krum: bool = False
    duplicate_of: list[bytes] = field(default_factory=list)
    center_norm_sq: int = 0

    def to_record(self) -> dict:
        return {
            "pubkey": self.pubkey,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "krum_score": self.krum_score,
            "norm_sq": self.norm_sq,
            "dot_prev": self.dot_prev,
            "dot_center": self.dot_center,
            "in_multi_krum": self.in_multi_krum,
            "duplicate_of": list(self.duplicate_of),
            "center_norm_sq": self.center_norm_sq,
        }


@dataclass
class ScoreResult:
    scores: list[UpdateScore]
    median_krum: int
    median_norm_sq: int
    prev_norm_sq: int

    def accepted_indices(self) -> list[int]:
        return [i for i, s in enumerate(self.scores) if s.verdict == ACCEPTED]


def score_updates(
    pubkeys: Sequence[bytes], deltas: np.ndarray, prev_delta: np.ndarray, f: int
) -> ScoreResult:
    """Apply every SPEC §5 check. ``pubkeys`` must be sorted ascending (row order).

    Verdict precedence when several checks fire: FREE_RIDER, then DUPLICATE, then
    OUTLIER (adversarial direction), then EXCLUDED (a Krum outlier alone); every fired
    check is listed in ``reasons`` either way.
    """
    n = len(pubkeys)
    if list(pubkeys) != sorted(pubkeys) or len(set(pubkeys)) != n:
        raise ScoringError("pubkeys must be unique and ascending")
    if deltas.shape[0] != n or prev_delta.shape != (deltas.shape[1],):
        raise ScoringError("shape mismatch")
    check_krum_size(n, f)
    rows = np.vstack([deltas, prev_delta[None, :]]).astype(np.int16, copy=False)
    gram = gram_matrix(rows)
    dist = distances(gram, n)
    krum = krum_from_distances(dist, f)
    norms = [gram[i][i] for i in range(n)]
    prev_norm = gram[n][n]
    med_krum = lower_median(krum)
    med_norm = lower_median(norms)
    # Multi-Krum set: the n - f lowest scores, ties by pubkey (row order is pubkey order).
    multi = sorted(range(n), key=lambda i: (krum[i], pubkeys[i]))[: n - f]
    in_multi = set(multi)
    center_norm = sum(gram[j][k] for j in multi for k in multi)
    scores = []
    for i in range(n):
        sc = UpdateScore(pubkey=pubkeys[i], krum_score=krum[i], norm_sq=norms[i])
        sc.dot_prev = gram[i][n]
        sc.dot_center = sum(gram[i][j] for j in multi)
        sc.in_multi_krum = i in in_multi
        sc.center_norm_sq = center_norm
        p, q = RHO_LAZY
        if q * norms[i] < p * med_norm:
            sc.reasons.append("lazy_free_rider")
        if cos_at_least(sc.dot_prev, norms[i], prev_norm, COS_REPLAY):
            sc.reasons.append("replay_free_rider")
        for j in range(n):
            if j != i and cos_at_least(gram[i][j], norms[i], norms[j], COS_DUPLICATE):
                sc.duplicate_of.append(pubkeys[j])
        if sc.duplicate_of:
            sc.reasons.append("duplicate")
        p, q = TAU_OUT
        if q * krum[i] > p * med_krum:
            sc.reasons.append("krum_outlier")
        if cos_below_negative(sc.dot_center, norms[i], center_norm, COS_ADVERSARIAL):
            sc.reasons.append("adversarial_direction")
        if "lazy_free_rider" in sc.reasons or "replay_free_rider" in sc.reasons:
            sc.verdict = FREE_RIDER
        elif sc.duplicate_of:
            sc.verdict = DUPLICATE
        elif "adversarial_direction" in sc.reasons:
            sc.verdict = OUTLIER
        elif sc.reasons:
            sc.verdict = EXCLUDED
        scores.append(sc)
    return ScoreResult(scores, med_krum, med_norm, prev_norm)
