"""Exact integer aggregation of accepted deltas (SPEC §6).

Why integers end to end: the candidate global model is committed to the state root, so
the mean must be bit-identical everywhere; float means depend on summation order.
"""

from __future__ import annotations

import numpy as np

from state_machine.constants import INT32_MAX, INT32_MIN


class AggregationError(ValueError):
    """The candidate cannot be formed (no inputs, or an int32 overflow)."""


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
    q, r = np.divmod(total, k)
    twice = 2 * r
    up = (twice > k) | ((twice == k) & (q % 2 != 0))
    return (q + up).astype(np.int16)


def apply_delta(global_model: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """global + delta as int32; raises AggregationError on any int32 overflow."""
    out = global_model.astype(np.int64) + delta.astype(np.int64)
    if out.size and (out.min() < INT32_MIN or out.max() > INT32_MAX):
        raise AggregationError("candidate global model overflows int32")
    return out.astype(np.int32)
