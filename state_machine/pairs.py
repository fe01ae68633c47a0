"""Exact vectorised pair rules over an epoch's Gram matrix (issue 14).

Why: the vouch scores (``vouching``), the reward weights, the novelty gate and the
near-duplicate evidence (``verdicts``) are each a rule on every pair of rows, defined with
Python integers (entries up to ~2^55, products up to ~2^111). Pair by pair that was ~45 %
of epoch close at n = 512. Here the same rules run over an int64 array: sums are exact
(:func:`row_sums`), and where a rule needs a product beyond int64 a float64 *screen* with a
proven margin only sorts out the pairs whose answer is certain; every other pair is
decided with Python integers exactly as the definition does. So every result is the
definition's integer (the property tests in ``tests/state_machine/test_pairs_vectorised.py``
compare them); no decision rests on a float. Entries beyond ``±INT64_SAFE``: callers use
the definitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from state_machine.constants import DUPLICATE_REL_SQ, NOVELTY_COS, PAIR_COS_CAP

Gram = Sequence[Sequence[int]]

# entries of at most this size take the vectorised paths: sums of two (or a difference of
# three) stay inside int64 and float64 carries them with relative error 2^-53
INT64_SAFE = 1 << 60


def as_int64(gram: Gram | np.ndarray) -> np.ndarray | None:
    """``gram`` as a square int64 array when every entry is within ``±INT64_SAFE`` (the
    epoch's Gram entries are at most ``d · 2^30``); None otherwise (callers then take the
    plain Python-integer path: the same integers, slower)."""
    try:
        a = np.asarray(gram, dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        return None
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        return None
    if a.size and int(np.abs(a).max()) > INT64_SAFE:  # abs of -2^63 wraps: caught too
        return None
    if a.size and int(a.min()) < -INT64_SAFE:
        return None
    return a


def row_sums(a: np.ndarray) -> list[int]:
    """Exact row sums of an int64 array whose entries are within ``±INT64_SAFE``, as
    Python ints: each entry splits into ``hi · 2^32 + lo`` (``0 <= lo < 2^32``), and the
    halves are summed separately (``|hi| <= 2^28``, so both sums stay far inside int64 for
    fewer than 2^30 columns)."""
    hi = (a >> 32).sum(axis=1, dtype=np.int64)
    lo = (a & 0xFFFFFFFF).sum(axis=1, dtype=np.int64)
    return [(int(h) << 32) + int(lo_) for h, lo_ in zip(hi.tolist(), lo.tolist(), strict=True)]


def capped_matrix(g: np.ndarray) -> np.ndarray:
    """``vouching.capped_agreement(g[i, j], g[i, i], g[j, j])`` for every entry of an int64 Gram
    matrix from :func:`as_int64`, exactly.

    Why it equals the integer rule: with ``p/q = PAIR_COS_CAP`` and ``s = isqrt(g_ii g_jj)``
    the cap is ``c = s · p // q >= 0``, so ``min(g_ij, c) = g_ij`` whenever ``g_ij <= 0``,
    and whenever ``q · g_ij < p · (√(g_ii g_jj) − 1)``: then ``q g_ij < p s`` (``s > √N − 1``),
    so ``g_ij <= c`` (``g_ij`` is an integer). That test is a float64 *screen*
    ``q g (1 + 1e-9) < p (√g_ii √g_jj (1 − 1e-9) − 2)``: its relative margins are a million
    times the rounding error of its few float64 steps (each entry ≤ 2^60, so every
    conversion, square root, product and difference errs by at most a few 2^-53), and the
    −2 covers the −1 where √N is small; a pair it passes satisfies the exact inequality,
    so the screen only decides which pairs need no integer work, never a result. Every
    other pair (the near-copies the cap is for, and pairs too close to call) is computed
    with Python integers (``isqrt``), as ``vouching.capped_agreement`` does. The result is an
    int64 array (``|capped| <= |g_ij|``)."""
    p, q = PAIR_COS_CAP
    out = g.copy()
    if g.size == 0:
        return out
    diag = np.sqrt(np.diagonal(g).astype(np.float64))  # screen; exact ints decide
    bound = p * (np.multiply.outer(diag, diag) * (1 - 1e-9) - 2)
    sure = (g <= 0) | (q * g.astype(np.float64) * (1 + 1e-9) < bound)  # screen; exact ints decide
    dg = np.diagonal(g).tolist()
    for i, j in zip(*np.nonzero(~sure), strict=True):
        out[i, j] = min(int(g[i, j]), math.isqrt(dg[i] * dg[j]) * p // q)
    return out


def novel_peers(g: np.ndarray, rows: Sequence[int]) -> list[bool]:
    """``verdicts.has_novel_peer(verdicts.residual_gram(g, rows), i)`` for every ``i``, with
    the ``k²`` residual entries (Python ints up to ~2^111) computed only for the pairs a
    float64 screen cannot rule out.

    Why it equals the integer rule: the rule needs ``res_ij > 0`` and
    ``q · res_ij >= p · √(res_ii res_jj)`` (``p/q = NOVELTY_COS``). The screen computes
    ``res_ij`` in float64 with an error bound ``E = 1e-12 (|P g_ij| + |a_i a_j|) + 1``
    (a few 2^-53 relative per step, so the true value is at most ``res_f + E``) and
    ``√res_ii`` from the exact diagonal (rounded down by a factor 1 − 1e-9): a pair with
    ``res_f + E <= 0`` or ``q (res_f + E) < p √res_ii √res_jj (1 − 1e-9)`` cannot satisfy
    the rule. Every other pair is checked with Python integers, as ``has_novel_peer``
    does; a row is True iff one of its pairs passes. ``g``: the int64 Gram matrix
    over [rows...; Δ_prev] (:func:`as_int64`)."""
    k = len(rows)
    if k == 0:
        return []
    pos = g.shape[0] - 1
    big_p = int(g[pos, pos])
    idx = np.asarray(rows, dtype=np.intp)
    sub = g[np.ix_(idx, idx)]
    a = g[idx, pos]
    sub_l, a_l = sub.tolist(), a.tolist()
    if big_p == 0:
        diag = [sub_l[i][i] for i in range(k)]
        res_f = sub.astype(np.float64)  # screen; exact ints decide
        err = 1e-12 * np.abs(res_f) + 1
    else:
        diag = [big_p * sub_l[i][i] - a_l[i] * a_l[i] for i in range(k)]
        pg = float(big_p) * sub.astype(np.float64)  # screen; exact ints decide
        aa = np.multiply.outer(a.astype(np.float64), a.astype(np.float64))  # screen only
        res_f = pg - aa
        err = 1e-12 * (np.abs(pg) + np.abs(aa)) + 1
    p, q = NOVELTY_COS
    upper = res_f + err
    root = np.sqrt(np.maximum(np.asarray([float(x) for x in diag]), 0.0))  # screen only
    maybe = (upper > 0) & (q * upper >= p * np.multiply.outer(root, root) * (1 - 1e-9))
    np.fill_diagonal(maybe, False)
    out = [False] * k
    for i, j in zip(*np.nonzero(maybe), strict=True):
        if out[i]:
            continue
        r = sub_l[i][j] if big_p == 0 else big_p * sub_l[i][j] - a_l[i] * a_l[j]
        if r > 0 and q * q * r * r >= p * p * diag[i] * diag[j]:
            out[i] = True
    return out


def near_duplicates(g: np.ndarray, n: int) -> list[tuple[int, int]]:
    """``verdicts.near_duplicate_pairs`` for an int64 Gram matrix from :func:`as_int64`:
    every pair ``i < j < n`` with ``q · dist <= p · mn`` (``dist = g_ii + g_jj − 2 g_ij``,
    ``mn`` the smaller norm, non-zero; ``p/q = DUPLICATE_REL_SQ``), in ``(i, j)`` order.

    Exact in int64: entries ≤ 2^60 keep ``dist`` ≤ 2^62, and for an integer ``dist`` the
    test is ``dist <= floor(p · mn / q) = p · (mn // q) + (p · (mn % q)) // q``."""
    g = g[:n, :n]
    p, q = DUPLICATE_REL_SQ
    diag = np.diagonal(g)
    mn = np.minimum.outer(diag, diag)
    dist = diag[:, None] + diag[None, :] - 2 * g
    hit = (mn > 0) & (dist <= p * (mn // q) + (p * (mn % q)) // q)
    hit &= np.triu(np.ones((n, n), dtype=bool), 1)
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(hit), strict=True)]
