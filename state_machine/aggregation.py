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
* ``vouched_mean`` / ``vouched_drop_f`` (``state_machine.vouching``): mean of the rows left
  after the at most ``f`` lowest vouch scores (agreement with the round's peers and with
  the public Δ_prev, each pair capped at cos 1/2) that are ``<= 0`` / after the ``f`` lowest.
* ``fresh_vouched_mean`` (``state_machine.fresh_vouching``): ``vouched_mean`` among the rows
  whose part new relative to the public past updates and Δ_prev is more than 5 % of them;
  the near-copies of the past are left out without spending ``f`` and vouch for nobody
  (``vouched_mean`` exactly when the caller has no past updates).
* ``recorded_vouched_mean`` (``state_machine.recorded_vouching``): ``fresh_vouched_mean``
  after holding out, within ``f``, the rows on the record (``History.suspects``: left out
  of the task's first scored epoch while opposing its step, and held since).

``multi_krum`` and the (fresh) vouched rules leave rows out entirely (:func:`admitted_rows`); the
others give every row bounded influence.

Bounded memory (issue 14): every rule takes the rows as an ndarray or a ``tiles.Rows``
source and works column tile by column tile. Coordinate-wise rules (mean, median, trimmed
mean) are that rule on each tile; rules that need row norms or distances first take them
from a Gram pass (sums of tile Grams, exact), then make a per-tile pass with those
integers fixed; centered clipping recomputes its centre tile by tile from the scalars of
the earlier iterations (one more pass per iteration). Integer arithmetic, so any tile
width gives the same bits as one tile of width ``d``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from state_machine import fresh_vouching, recorded_vouching, tiles, vouching
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
from state_machine.scoring import distances, krum_from_distances
from state_machine.tiles import Rows

Gram = Sequence[Sequence[int]]
# the rows' inner products with the public Δ_prev and |Δ_prev|² (history-aware rules)
Anchor = tuple[Sequence[int], int]
VOUCHED = ("vouched_mean", "vouched_drop_f")
# rules that leave near-copies of the public past out first (``fresh_vouching.stale_rows``)
FRESH_VOUCHED = ("fresh_vouched_mean", "recorded_vouched_mean")
RECORDED = ("recorded_vouched_mean",)  # also read the record (History.suspects)
ANCHORED = VOUCHED + FRESH_VOUCHED  # rules that read the public Δ_prev anchor


class AggregationError(ValueError):
    """The candidate cannot be formed (no inputs, or an int32 overflow)."""


def _round_div(total: np.ndarray, k: int) -> np.ndarray:
    """``total / k`` rounded half to even, exactly, for int64 ``total`` and ``k >= 1``."""
    q, r = np.divmod(total, k)
    twice = 2 * r
    up = (twice > k) | ((twice == k) & (q % 2 != 0))
    return q + up


def _rows(deltas: np.ndarray | Rows) -> Rows:
    src = tiles.as_rows(deltas)
    if src.shape[0] == 0:
        raise AggregationError("need at least one delta")
    return src


def _tile_mean(t: np.ndarray) -> np.ndarray:
    total = np.zeros(t.shape[1], dtype=np.int64)
    for row in t:  # row by row: no (k, w) int64 temporary
        total += row
    return _round_div(total, t.shape[0])


def _tile_median(t: np.ndarray) -> np.ndarray:
    s = np.sort(t.astype(np.int64), axis=0)  # integer sort: exact and order-free
    k = s.shape[0]
    return s[k // 2] if k % 2 else _round_div(s[k // 2 - 1] + s[k // 2], 2)


def _per_tile(src: Rows, fn, cols: int | None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A coordinate-wise rule, tile by tile, into one int16 vector."""
    out = tiles.empty(src.shape[1], np.int16)  # the block's sink: heap or a mapped file
    for lo, hi in tiles.spans(src.shape[1], cols, src.shape[0]):
        out[lo:hi] = fn(src.tile(lo, hi))
        tiles.release(out, lo, hi)
    return out


def mean_round_half_even(deltas: np.ndarray | Rows, cols: int | None = None) -> np.ndarray:
    """Coordinate-wise mean of int16 rows (k, d), rounded half to even, as int16.

    The sum is exact in int64 (k * 2^15 << 2^63); floor division and modulo give
    ``sum = q * k + r`` with ``0 <= r < k``; we round up when ``2r > k`` or when
    ``2r == k`` and ``q`` is odd. A mean of int16 values always fits int16.
    """
    if isinstance(deltas, np.ndarray) and deltas.ndim != 2:
        raise AggregationError("need at least one accepted delta")
    return _per_tile(_rows(deltas), _tile_mean, cols)


def coordinate_median(deltas: np.ndarray | Rows, cols: int | None = None) -> np.ndarray:
    """Coordinate-wise median; for even k the two middle values' mean, half to even."""
    if isinstance(deltas, np.ndarray) and deltas.ndim != 2:
        raise AggregationError("need at least one delta")
    return _per_tile(_rows(deltas), _tile_median, cols)


def trimmed_mean(deltas: np.ndarray | Rows, f: int, cols: int | None = None) -> np.ndarray:
    """Drop the f largest and f smallest values per coordinate, mean the rest.

    With ``k <= 2f`` nothing would be left: the median is used instead.
    """
    src = _rows(deltas)
    k = src.shape[0]
    if k <= 2 * f:
        return coordinate_median(src, cols)
    return _per_tile(src, lambda t: _tile_mean(np.sort(t, axis=0)[f : k - f]), cols)


def ceil_isqrt(n: int) -> int:
    """The smallest integer r with r * r >= n."""
    r = math.isqrt(n)
    return r if r * r == n else r + 1


def norms_sq(rows: np.ndarray) -> list[int]:
    """Exact squared L2 norms of integer rows, as Python ints."""
    return [int(np.dot(r.astype(np.int64), r.astype(np.int64))) for r in rows]


def clip_scaled(x: np.ndarray, n_sq: int, tau: int) -> np.ndarray:
    """Coordinates of a row whose full squared norm is ``n_sq``, clipped to norm ``tau``.

    ``out_j = trunc(x_j * tau / N)`` with ``N = ceil(sqrt(n_sq))`` when ``n_sq > tau^2``:
    coordinate-wise once ``n_sq`` is known, so a tile of the row clips on its own."""
    x = x.astype(np.int64)
    if n_sq <= tau * tau:
        return x
    big = ceil_isqrt(n_sq)
    prod = x * tau  # |x_j| <= 2^17 after centering, tau < 2^40: no int64 overflow
    return np.sign(prod) * (np.abs(prod) // big)


def clip_to_norm(row: np.ndarray, tau: int) -> np.ndarray:
    """Scale an integer row so that its L2 norm is at most ``tau`` (int64 out).

    Truncation toward zero only shrinks, so ``|out| <= tau`` holds exactly. Clients use
    this to respect a task's ``norm_bound``; ``clipped_mean`` and ``centered_clip`` too.
    """
    x = row.astype(np.int64)
    return clip_scaled(x, int(np.dot(x, x)), tau)


def clip_update(delta: np.ndarray, norm_bound: int) -> np.ndarray:
    """What an honest client reveals under a task norm bound: its delta, clipped, int16."""
    if norm_bound <= 0:
        return delta.astype(np.int16)
    return clip_to_norm(delta, norm_bound).astype(np.int16)


def _norms(src: Rows, gram: Gram | None, cols: int | None) -> list[int]:
    """Row norms from the caller's Gram matrix of these rows, else from a Gram pass."""
    g = gram if gram is not None else tiles.gram(src, cols)
    return [int(g[i][i]) for i in range(src.shape[0])]


def _clipped_tile_mean(t: np.ndarray, norms: Sequence[int], tau: int) -> np.ndarray:
    total = np.zeros(t.shape[1], dtype=np.int64)
    for row, n_sq in zip(t, norms, strict=True):
        total += clip_scaled(row, n_sq, tau)
    return _round_div(total, t.shape[0])


def clipped_mean(
    deltas: np.ndarray | Rows, gram: Gram | None = None, cols: int | None = None
) -> np.ndarray:
    """Mean of the rows clipped to the median row norm (so no row outweighs half the rest).

    Two passes: row norms (``gram``'s diagonal when the caller has it), then the tiles."""
    src = _rows(deltas)
    norms = _norms(src, gram, cols)
    tau = math.isqrt(sorted(norms)[(len(norms) - 1) // 2])
    return _per_tile(src, lambda t: _clipped_tile_mean(t, norms, tau), cols)


def bucket_order(keys: Sequence[bytes], seed: bytes) -> list[int]:
    """Row indices in the order the epoch seed draws (ties impossible: keys are unique)."""
    return sorted(range(len(keys)), key=lambda i: (keccak256(seed, keys[i]), keys[i]))


def _cc_buckets(t: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """One tile of the bucket means (int64)."""
    return np.stack([_tile_mean(t[g]) for g in groups])


def centered_clip(deltas: np.ndarray | Rows, keys: Sequence[bytes], seed: bytes,
                  cols: int | None = None) -> np.ndarray:
    """Centered clipping over buckets of ``CC_BUCKET`` rows (Karimireddy et al. 2021).

    Buckets average rows drawn by the epoch seed (an attacker cannot choose its bucket
    mates), which shrinks honest non-IID spread before clipping; ``tau`` is the median
    distance to the current centre, so at least half the buckets move it unclipped.
    Tiled: step ``s`` needs every bucket's whole-row distance to the centre ``v_s``, so
    each step is one pass over the tiles, and the centre lives in the output vector
    between passes (``CC_ITERATIONS + 1`` passes, nothing else of length d). Lossless in
    int16: each step adds the rounded mean of values between 0 and ``b_i - v`` (clipping
    only shrinks toward zero), so ``v`` stays between the bucket means' extremes.
    """
    src = _rows(deltas)
    order = bucket_order(keys, seed)
    groups = [order[i : i + CC_BUCKET] for i in range(0, len(order), CC_BUCKET)]
    d, m = src.shape[1], len(groups)
    v = tiles.empty(d, np.int16)
    step: tuple[list[int], int] | None = None  # the last step's distances and tau
    for it in range(CC_ITERATIONS + 1):
        dist = [0] * m
        for lo, hi in tiles.spans(d, cols, src.shape[0]):
            buckets = _cc_buckets(src.tile(lo, hi), groups)
            if step is None:
                centre = _tile_median(buckets)
            else:
                centre = v[lo:hi].astype(np.int64)
                centre += _clipped_tile_mean(buckets - centre[None, :], *step)
            v[lo:hi] = np.clip(centre, INT16_MIN, INT16_MAX)  # a no-op (see above)
            tiles.release(v, lo, hi)
            if it < CC_ITERATIONS:
                for i, n_sq in enumerate(norms_sq(buckets - centre[None, :])):
                    dist[i] += n_sq
        step = (dist, math.isqrt(sorted(dist)[(m - 1) // 2]))
    return v


def multi_krum_rows(deltas: np.ndarray | Rows, f: int, gram: Gram | None = None,
                    cols: int | None = None) -> list[int]:
    """The ``k - f`` rows with the lowest Krum scores, ties by row (= pubkey) order."""
    src = tiles.as_rows(deltas)
    k = src.shape[0]
    if k < 2 * f + 3:
        return list(range(k))  # too few for Krum: everyone is admitted
    g = gram if gram is not None else tiles.gram(src, cols)
    krum = krum_from_distances(distances(g, k), f)
    return sorted(sorted(range(k), key=lambda i: (krum[i], i))[: k - f])


def vouched(rule: str, deltas: np.ndarray | Rows, f: int, gram: Gram | None = None,
            cols: int | None = None, prev: Anchor | None = None) -> list[int]:
    """Rows kept by a vouched rule; ``prev`` None: no accepted step yet (peers only)."""
    src = tiles.as_rows(deltas)
    g = gram if gram is not None else tiles.gram(src, cols)
    dots, sq = prev if prev is not None else ([0] * src.shape[0], 0)
    return vouching.vouched_rows(g, dots, sq, f, drop_all=rule == "vouched_drop_f")


def fresh_vouched(deltas: np.ndarray | Rows, f: int, gram: Gram | None = None,
                  cols: int | None = None, prev: Anchor | None = None,
                  past: np.ndarray | None = None,
                  stale: Sequence[bool] | None = None, rule: str = "fresh_vouched_mean",
                  recorded: Sequence[bool] | None = None) -> list[int]:
    """Rows kept by ``fresh_vouched_mean`` (``state_machine.fresh_vouching``) or
    ``recorded_vouched_mean`` (``recorded``: which rows are on the record; None: none);
    ``past``:
    the public past updates and Δ_prev as int16 rows (None: ``vouched_mean`` exactly);
    ``stale``: the rows' stale flags when the caller already has them (``verdicts`` reads
    them off its one Gram pass over [rows; past; Δ_prev]), instead of ``past``."""
    src = tiles.as_rows(deltas)
    g = gram if gram is not None else tiles.gram(src, cols)
    dots, sq = prev if prev is not None else ([0] * src.shape[0], 0)
    if stale is None:
        stale = fresh_vouching.stale_rows(src, [g[i][i] for i in range(len(g))], past, cols)
    if rule in RECORDED:
        rec = list(recorded) if recorded is not None else [False] * src.shape[0]
        return recorded_vouching.select(g, dots, sq, f, stale, rec)
    return fresh_vouching.select(g, dots, sq, f, stale)


def admitted_rows(rule: str, deltas: np.ndarray | Rows, f: int, gram: Gram | None = None,
                  cols: int | None = None, prev: Anchor | None = None,
                  past: np.ndarray | None = None,
                  stale: Sequence[bool] | None = None,
                  recorded: Sequence[bool] | None = None) -> list[int]:
    """Rows that enter the aggregate at all (Multi-Krum and the vouched rules leave rows
    out); ``prev``: the rows' history anchor (only the vouched rules read it); ``past`` or
    ``stale``: the public past rows, or the rows' stale flags against them (only
    ``fresh_vouched_mean`` reads them); ``recorded``: which rows are on the record
    (``recorded_vouched_mean``)."""
    if rule == "multi_krum":
        return multi_krum_rows(deltas, f, gram, cols)
    if rule in VOUCHED:
        return vouched(rule, deltas, f, gram, cols, prev)
    if rule in FRESH_VOUCHED:
        return fresh_vouched(deltas, f, gram, cols, prev, past, stale, rule, recorded)
    return list(range(tiles.as_rows(deltas).shape[0]))


def aggregate(
    rule: str, deltas: np.ndarray | Rows, f: int, keys: Sequence[bytes], seed: bytes,
    gram: Gram | None = None, cols: int | None = None, prev: Anchor | None = None,
    past: np.ndarray | None = None, recorded: Sequence[bool] | None = None,
) -> np.ndarray:
    """The task's aggregation rule over int16 rows in pubkey order (``keys``).

    ``gram``: the rows' exact Gram matrix when the caller already has it (saves a pass);
    ``prev``: their inner products with the public Δ_prev and |Δ_prev|² (vouched rules);
    ``past``: the public past updates and Δ_prev as rows (``fresh_vouched_mean``)."""
    if rule not in AGGREGATORS:
        raise AggregationError(f"unknown aggregator {rule!r}")
    if isinstance(deltas, np.ndarray) and deltas.ndim != 2:
        raise AggregationError("need at least one delta")
    src = _rows(deltas)
    if rule == "mean":
        return mean_round_half_even(src, cols)
    if rule == "median":
        return coordinate_median(src, cols)
    if rule == "trimmed_mean":
        return trimmed_mean(src, f, cols)
    if rule == "clipped_mean":
        return clipped_mean(src, gram, cols)
    if rule == "centered_clip":
        return centered_clip(src, keys, seed, cols)
    if rule in VOUCHED:
        return mean_round_half_even(tiles.pick(src, vouched(rule, src, f, gram, cols, prev)), cols)
    if rule in FRESH_VOUCHED:
        kept = fresh_vouched(src, f, gram, cols, prev, past, rule=rule, recorded=recorded)
        return mean_round_half_even(tiles.pick(src, kept), cols)
    return mean_round_half_even(tiles.pick(src, multi_krum_rows(src, f, gram, cols)), cols)


def apply_delta(global_model: np.ndarray, delta: np.ndarray,
                cols: int | None = None) -> np.ndarray:
    """global + delta as int32, tile by tile (no d-long int64 temporary); raises
    AggregationError on any int32 overflow."""
    if global_model.shape != delta.shape:
        raise AggregationError("delta and global model differ in shape")
    g, dl = global_model.reshape(-1), delta.reshape(-1)
    out = tiles.empty(g.shape[0], np.int32)
    for lo, hi in tiles.spans(g.shape[0], cols):
        t = g[lo:hi].astype(np.int64) + dl[lo:hi].astype(np.int64)
        if t.min() < INT32_MIN or t.max() > INT32_MAX:
            raise AggregationError("candidate global model overflows int32")
        out[lo:hi] = t
        for a in (out, g, dl):  # mapped model, aggregate, candidate: pages read once
            tiles.release(a, lo, hi)
    return out.reshape(global_model.shape)
