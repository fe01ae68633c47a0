"""Fresh vouched aggregation: near-copies of the public past neither count nor vouch.

Why (issue 10, measured with ``bench/efficacy.py``): under ``vouched_mean`` a jittered
copy of a public past update (stale copy, frame replay) cost 7 points at Dirichlet
α = 0.1, *more* than the plain mean. A copy of the past agrees with Δ_prev and with the
crowd as much as the original did, so it is vouched for and kept, and it vouches: its
agreement lifts the rows that resemble the past and pushes the honest specialists whose
updates are new (and therefore agree with nobody in particular) to the bottom of the
order, where the f budget leaves them out. The copier spends no f and re-applies an old
step.

Rule ``fresh_vouched_mean`` (needs the public past: ``History.past_updates``, the last
reveal of each client, plus Δ_prev):

1. *Stale rows out, free of the f budget.* A row whose fresh part — its component
   orthogonal to the span of the public past updates and Δ_prev
   (``freshness.fresh_gram``) — is at most 5 % of its norm (``not fresh_enough``, the
   duplicate rule's copy distance ``DUPLICATE_REL_SQ``, now to the span of the past) adds
   nothing new: it is left out (``EXCLUDED``, never slashed), and it does not vouch for
   anyone (it is not among the peers of step 2). Honest minimum of that ratio, measured:
   0.109 at α = 0.1, 0.207 at α = 0.5; a 1 %-jittered copy: 0.011 (docs/protocol.md).
2. *Vouching among the fresh rows* exactly as ``vouched_mean`` (``vouching``): leave out
   the at most ``f`` lowest vouch scores that are ``<= 0``.
3. The exact integer mean of the rest.

Without the past (``past`` None: the STF before it keeps the previous reveals) the rule
is ``vouched_mean`` exactly. If every row is stale, step 1 is skipped (never every row
out). Every decision is an integer comparison on the Gram matrices (the fresh parts'
squared norms are the Schur complement's diagonal, fraction-free: :func:`fresh_diagonal`),
so it is the same for any tile width and any row order up to the pubkey tie-break.

Measured (quick grid, n = 15, f = 3, 3 seeds × 8 rounds, loss vs the honest-only oracle):
stale copy with 1 % jitter −7.0 → −0.7 points at α = 0.1 and −3.3 → −0.2 at α = 0.5,
frame replay with 1 % jitter −6.6 → −0.7 and −0.6 → −0.2; the other 21 rows and the
no-attack accuracy are those of ``vouched_mean``; 0 honest proposals slashed. The
rule-aware flip, Fang and label flip at α = 0.1 are not helped (docs/protocol.md "Fresh
vouched aggregation" has the variants tried and why they trade one row for another).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from state_machine import freshness, tiles, vouching
from state_machine.tiles import Rows

Gram = Sequence[Sequence[int]]


def fresh_diagonal(gram: Gram, k: int) -> tuple[list[int], int, int]:
    """``freshness.fresh_gram``'s diagonal only: (c · |r_i|² for the first ``k`` rows, rank
    of the rest, c), the same integers.

    Bareiss elimination of the past's pivots, but a candidate row keeps only its diagonal
    and its entries in the past's columns (a candidate-candidate entry never feeds another
    entry): ``O(k m² + m³)`` big-integer steps for ``m`` past rows instead of
    ``O(m (k + m)²)``."""
    m = [list(map(int, row)) for row in gram]
    past = list(range(k, len(m)))
    prev, rank = 1, 0
    for b in past:
        piv = m[b][b]
        if piv == 0:
            continue  # already in the span of the earlier past rows
        later = [p for p in past if p > b]
        for i in range(k):
            mib = m[i][b]
            m[i][i] = (piv * m[i][i] - mib * mib) // prev
            for p in later:
                m[i][p] = (piv * m[i][p] - mib * m[b][p]) // prev
        for p in later:
            mpb = m[p][b]
            for q in later:
                m[p][q] = (piv * m[p][q] - mpb * m[b][q]) // prev
        prev, rank = piv, rank + 1
    return [m[i][i] for i in range(k)], rank, prev


def stale(fresh_sq: Sequence[int], scale: int, norms: Sequence[int]) -> list[bool]:
    """Row ``i`` is stale when its fresh part is at most 5 % of its norm (``fresh_sq``:
    ``scale`` · |r_i|², as :func:`fresh_diagonal` gives them)."""
    return [not freshness.fresh_enough(fresh_sq[i], scale, norms[i]) for i in range(len(norms))]


def select(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
           is_stale: Sequence[bool] | None) -> list[int]:
    """Rows kept (ascending): the fresh rows ``vouched_mean`` keeps among themselves;
    ``is_stale`` None: ``vouched_mean`` on every row."""
    k = len(gram)
    live = [i for i in range(k) if is_stale is None or not is_stale[i]]
    if not live:
        live = list(range(k))
    sub = [[gram[i][j] for j in live] for i in live]
    kept = vouching.vouched_rows(sub, [prev_dots[i] for i in live], prev_sq, f)
    return [live[j] for j in kept]


def stale_rows(src: Rows, norms: Sequence[int], past: np.ndarray | Rows | None,
               cols: int | None = None) -> list[bool] | None:
    """Which rows of ``src`` are stale relative to ``past`` (the public past updates and
    Δ_prev as int16 rows: an array or a ``tiles.Rows``); None without a past. One pass over
    the tiles (``verdicts.judge_epoch`` has this Gram already and passes the flags)."""
    if past is None or past.shape[0] == 0:
        return None
    both = tiles.ConcatRows([src, tiles.as_rows(np.asarray(past, dtype=np.int16).reshape(
        -1, src.shape[1]) if isinstance(past, np.ndarray) else past)])
    fp = freshness.FreshPast(tiles.gram(both, cols), src.shape[0])  # fresh_diagonal's integers
    return stale(fp.diag, fp.scale, norms)
