"""Exact integer aggregation of the admitted deltas (SPEC §6, v2: robust rules per task).

Why integers end to end: the candidate global model is committed to the state root, so
the aggregate must be bit-identical everywhere; float means depend on summation order.
Every rule here uses only int64 numpy arithmetic with bounded intermediates (or Python
ints), integer square roots and explicit rounding, so it is a pure function of its rows.

Rules (``TaskParams.aggregator``), each on the ``(k, d)`` int16 rows in pubkey order:

* ``mean``: coordinate-wise mean, rounded half to even (SPEC §6 as written).
* ``median``: coordinate-wise median (mean of the two middle values for even ``k``).
* ``trimmed_mean``: drop the ``f`` smallest and ``f`` largest values per coordinate.
* ``clipped_mean``: clip every row to the median row norm, then the mean (the task's
  ``norm_bound`` already caps every row; this caps them at what a typical client sends).
* ``centered_clip``: Karimireddy, He & Jaggi 2021 with bucketing (pairs, by pubkey order
  permuted by the epoch seed): start at the bucket median, ``CC_ITERATIONS`` times move
  by the mean of ``clip(b_i - v, tau)`` with ``tau`` the median of ``|b_i - v|``.
* ``multi_krum``: mean of the ``k - f`` rows with the lowest Krum scores (ties by row).

Only ``multi_krum`` leaves rows out entirely (:func:`admitted_rows`); the others give every
row bounded influence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from state_machine.constants import (
    AGGREGATORS,
    CC_BUCKET,
    CC_ITERATIONS,
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
)
from state_machine.crypto import keccak256
from state_machine.scoring import distances, gram_matrix, krum_from_distances


class AggregationError(ValueError):
    """The candidate cannot be formed (no inputs, or an int32 overflow)."""


def _round_div(total: np.ndarray, k: int) -> np.ndarray:
    """``total / k`` rounded half to even, exactly, for int64 ``total`` and ``k >= 1``."""
    q, r = np.divmod(total, k)
    twice = 2 * r
    up = (twice > k) | ((twice == k) & (q % 2 != 0))
    return q + up


def mean_round_half_even(deltas: np.ndarray) -> np.ndarray:
    """Coordinate-wise mean of int16 rows (k, d), rounded half to even, as int16.

    The sum is exact in int64 (k * 2^15 << 2^63); floor division and modulo give
    ``sum = q * k + r`` with ``0 <= r < k``; we round up when ``2r > k`` or when
    ``2r == k`` and ``q`` is odd. A mean of int16 values always fits int16.
    """
    if deltas.ndim != 2 or deltas.shape[0] == 0:
        raise AggregationError("need at least one accepted delta")
    k = deltas.shape[0]
    total = np.zeros(deltas.shape[1], dtype=np.int64)
    for row in deltas:  # row by row: no (k, d) int64 temporary
        total += row
    return _round_div(total, k).astype(np.int16)


def coordinate_median(deltas: np.ndarray) -> np.ndarray:
    """Coordinate-wise median; for even k the two middle values' mean, half to even."""
    if deltas.ndim != 2 or deltas.shape[0] == 0:
        raise AggregationError("need at least one delta")
    s = np.sort(deltas.astype(np.int64), axis=0)  # integer sort: exact and order-free
    k = s.shape[0]
    if k % 2:
        return s[k // 2].astype(np.int16)
    return _round_div(s[k // 2 - 1] + s[k // 2], 2).astype(np.int16)


def trimmed_mean(deltas: np.ndarray, f: int) -> np.ndarray:
    """Drop the f largest and f smallest values per coordinate, mean the rest.

    With ``k <= 2f`` nothing would be left: the median is used instead.
    """
    k = deltas.shape[0]
    if k <= 2 * f:
        return coordinate_median(deltas)
    s = np.sort(deltas, axis=0)
    return mean_round_half_even(s[f : k - f])


def ceil_isqrt(n: int) -> int:
    """The smallest integer r with r * r >= n."""
    r = math.isqrt(n)
    return r if r * r == n else r + 1


def norms_sq(rows: np.ndarray) -> list[int]:
    """Exact squared L2 norms of integer rows, as Python ints."""
    return [int(np.dot(r.astype(np.int64), r.astype(np.int64))) for r in rows]


def clip_to_norm(row: np.ndarray, tau: int) -> np.ndarray:
    """Scale an integer row so that its L2 norm is at most ``tau`` (int64 out).

    ``out_j = trunc(x_j * tau / N)`` with ``N = ceil(sqrt(|x|^2))`` when ``|x| > tau``:
    truncation toward zero only shrinks, so ``|out| <= tau`` holds exactly. Clients use
    this to respect a task's ``norm_bound``; ``clipped_mean`` and ``centered_clip`` too.
    """
    x = row.astype(np.int64)
    n_sq = int(np.dot(x, x))
    if n_sq <= tau * tau:
        return x
    big = ceil_isqrt(n_sq)
    prod = x * tau  # |x_j| <= 2^17 after centering, tau < 2^40: no int64 overflow
    return np.sign(prod) * (np.abs(prod) // big)


def clip_update(delta: np.ndarray, norm_bound: int) -> np.ndarray:
    """What an honest client reveals under a task norm bound: its delta, clipped, int16."""
    if norm_bound <= 0:
        return delta.astype(np.int16)
    return clip_to_norm(delta, norm_bound).astype(np.int16)


def clipped_mean(deltas: np.ndarray) -> np.ndarray:
    """Mean of the rows clipped to the median row norm (so no row outweighs half the rest)."""
    if deltas.ndim != 2 or deltas.shape[0] == 0:
        raise AggregationError("need at least one delta")
    tau = math.isqrt(sorted(norms_sq(deltas))[(deltas.shape[0] - 1) // 2])
    total = np.zeros(deltas.shape[1], dtype=np.int64)
    for row in deltas:
        total += clip_to_norm(row, tau)
    return _round_div(total, deltas.shape[0]).astype(np.int16)


def bucket_order(keys: Sequence[bytes], seed: bytes) -> list[int]:
    """Row indices in the order the epoch seed draws (ties impossible: keys are unique)."""
    return sorted(range(len(keys)), key=lambda i: (keccak256(seed, keys[i]), keys[i]))


def centered_clip(deltas: np.ndarray, keys: Sequence[bytes], seed: bytes) -> np.ndarray:
    """Centered clipping over buckets of ``CC_BUCKET`` rows (Karimireddy et al. 2021).

    Buckets average rows drawn by the epoch seed (an attacker cannot choose its bucket
    mates), which shrinks honest non-IID spread before clipping; ``tau`` is the median
    distance to the current centre, so at least half the buckets move it unclipped.
    """
    order = bucket_order(keys, seed)
    buckets = np.stack(
        [
            mean_round_half_even(deltas[order[i : i + CC_BUCKET]]).astype(np.int64)
            for i in range(0, len(order), CC_BUCKET)
        ]
    )
    v = coordinate_median(buckets).astype(np.int64)
    m = buckets.shape[0]
    for _ in range(CC_ITERATIONS):
        diffs = buckets - v[None, :]
        tau = math.isqrt(sorted(norms_sq(diffs))[(m - 1) // 2])
        total = np.zeros_like(v)
        for row in diffs:
            total += clip_to_norm(row, tau)
        v = v + _round_div(total, m)
    return np.clip(v, INT16_MIN, INT16_MAX).astype(np.int16)


def multi_krum_rows(deltas: np.ndarray, f: int) -> list[int]:
    """The ``k - f`` rows with the lowest Krum scores, ties by row (= pubkey) order."""
    k = deltas.shape[0]
    if k < 2 * f + 3:
        return list(range(k))  # too few for Krum: everyone is admitted
    gram = gram_matrix(np.ascontiguousarray(deltas, dtype=np.int16))
    krum = krum_from_distances(distances(gram, k), f)
    return sorted(sorted(range(k), key=lambda i: (krum[i], i))[: k - f])


def admitted_rows(rule: str, deltas: np.ndarray, f: int) -> list[int]:
    """Rows that enter the aggregate at all (only Multi-Krum leaves rows out)."""
    if rule == "multi_krum":
        return multi_krum_rows(deltas, f)
    return list(range(deltas.shape[0]))


def aggregate(
    rule: str, deltas: np.ndarray, f: int, keys: Sequence[bytes], seed: bytes
) -> np.ndarray:
    """The task's aggregation rule over int16 rows in pubkey order (``keys``)."""
    if rule not in AGGREGATORS:
        raise AggregationError(f"unknown aggregator {rule!r}")
    if deltas.ndim != 2 or deltas.shape[0] == 0:
        raise AggregationError("need at least one delta")
    if rule == "mean":
        return mean_round_half_even(deltas)
    if rule == "median":
        return coordinate_median(deltas)
    if rule == "trimmed_mean":
        return trimmed_mean(deltas, f)
    if rule == "clipped_mean":
        return clipped_mean(deltas)
    if rule == "centered_clip":
        return centered_clip(deltas, keys, seed)
    return mean_round_half_even(deltas[multi_krum_rows(deltas, f)])


def apply_delta(global_model: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """global + delta as int32; raises AggregationError on any int32 overflow."""
    out = global_model.astype(np.int64) + delta.astype(np.int64)
    if out.size and (out.min() < INT32_MIN or out.max() > INT32_MAX):
        raise AggregationError("candidate global model overflows int32")
    return out.astype(np.int32)
