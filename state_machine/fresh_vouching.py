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
out). Every decision is an integer comparison on the Gram matrices (the fresh Gram is
the Schur complement, fraction-free), so it is the same for any tile width and any row
order up to the pubkey tie-break.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from state_machine import freshness, tiles, vouching
from state_machine.tiles import Rows

Gram = Sequence[Sequence[int]]


def stale(fresh: freshness.Fresh, norms: Sequence[int]) -> list[bool]:
    """Row ``i`` is stale when its fresh part is at most 5 % of its norm."""
    g, _, scale = fresh
    return [not freshness.fresh_enough(g[i][i], scale, norms[i]) for i in range(len(norms))]


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


class _Concat:
    """Rows of a source followed by in-memory rows (the public past), read by tiles."""

    def __init__(self, src: Rows, extra: np.ndarray) -> None:
        self.src, self.extra = src, extra

    @property
    def shape(self) -> tuple[int, int]:
        return self.src.shape[0] + self.extra.shape[0], self.src.shape[1]

    def tile(self, lo: int, hi: int) -> np.ndarray:
        return np.vstack([self.src.tile(lo, hi), self.extra[:, lo:hi]])


def stale_rows(src: Rows, norms: Sequence[int], past: np.ndarray | None,
               cols: int | None = None) -> list[bool] | None:
    """Which rows of ``src`` are stale relative to ``past`` (the public past updates and
    Δ_prev as int16 rows); None without a past. One pass over the tiles."""
    if past is None or len(past) == 0:
        return None
    basis = np.asarray(past, dtype=np.int16).reshape(len(past), src.shape[1])
    g = tiles.gram(_Concat(src, basis), cols)
    return stale(freshness.fresh_gram(g, src.shape[0]), norms)


def peel(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
         live: Sequence[int]) -> list[int]:
    """Greedy peeling: up to ``f`` times, leave out the live row with the lowest vouch
    score if it is ``<= 0``, then score again among the rows still in (a left-out row
    neither vouches nor opposes any more). Pair terms are computed once."""
    live = list(live)
    cap = {(i, j): vouching.capped_agreement(gram[i][j], gram[i][i], gram[j][j])
           for i in live for j in live if i != j}
    pv = {i: vouching.capped_agreement(prev_dots[i], gram[i][i], prev_sq) if prev_sq > 0 else 0
          for i in live}
    peer = {i: sum(cap[i, j] for j in live if j != i) for i in live}
    for _ in range(max(f, 0)):
        if len(live) <= 1:
            break
        k = len(live)
        x = {i: peer[i] + k * pv[i] for i in live}

        def cmp_key(a: int, b: int) -> int:
            c = vouching.compare_scores(x[a], gram[a][a], x[b], gram[b][b])
            return c if c else (a > b) - (a < b)

        from functools import cmp_to_key
        low = sorted(live, key=cmp_to_key(cmp_key))[0]
        if x[low] > 0:
            break
        live.remove(low)
        for i in live:
            peer[i] -= cap[i, low]
    return sorted(live)


CONFLICT_COS = (1, 3)


def conflict_select(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
                    live: Sequence[int]) -> list[int]:
    """Experimental: in a pair with cos <= -1/3 the lower-vouched row is a suspect;
    suspects go first (lowest first), then rows with a score <= 0, at most f in all."""
    live = list(live)
    sub = [[gram[i][j] for j in live] for i in live]
    k = len(sub)
    x = vouching.vouch_numerators(sub, [prev_dots[i] for i in live], prev_sq)
    order = vouching.vouch_order(sub, x)
    rank = {r: pos for pos, r in enumerate(order)}
    p, q = CONFLICT_COS
    suspect = [False] * k
    for a in range(k):
        for b in range(a + 1, k):
            g = sub[a][b]
            if g < 0 and q * q * g * g >= p * p * sub[a][a] * sub[b][b]:
                suspect[a if rank[a] < rank[b] else b] = True
    cand = [r for r in order if suspect[r]] + [r for r in order if not suspect[r] and x[r] <= 0]
    out = set(cand[: min(max(f, 0), k - 1)])
    return [live[j] for j in range(k) if j not in out]


def weighted_select(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
                    live: Sequence[int], w: tuple[int, int]) -> list[int]:
    """Experimental: vouched_mean with the history counted as ``k * p / q`` peers."""
    live = list(live)
    sub = [[gram[i][j] for j in live] for i in live]
    k = len(sub)
    p, q = w
    x = []
    for i in range(k):
        peers = sum(vouching.capped_agreement(sub[i][j], sub[i][i], sub[j][j])
                    for j in range(k) if j != i)
        pr = vouching.capped_agreement(prev_dots[live[i]], sub[i][i], prev_sq) if prev_sq else 0
        x.append(q * peers + p * k * pr)
    low = vouching.vouch_order(sub, x)[: min(max(f, 0), k - 1)]
    out = {i for i in low if x[i] <= 0}
    return [live[j] for j in range(k) if j not in out]


def pairs_select(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
                 live: Sequence[int], vouch_first: bool = False) -> list[int]:
    """Experimental: strongly opposing pairs (cos <= -1/3), most opposed first, leave out
    both rows (at most f pairs); then vouched_mean among the rest with the rest of f."""
    from functools import cmp_to_key
    live = list(live)
    if vouch_first:
        sub = [[gram[i][j] for j in live] for i in live]
        live = [live[j] for j in vouching.vouched_rows(sub, [prev_dots[i] for i in live],
                                                        prev_sq, f)]
    p, q = CONFLICT_COS
    edges = [(a, b) for ai, a in enumerate(live) for b in live[ai + 1:]
             if gram[a][b] < 0 and q * q * gram[a][b] ** 2 >= p * p * gram[a][a] * gram[b][b]]

    def cmp(e1: tuple[int, int], e2: tuple[int, int]) -> int:
        (a, b), (c, d) = e1, e2
        lhs = gram[a][b] ** 2 * gram[c][c] * gram[d][d]
        rhs = gram[c][d] ** 2 * gram[a][a] * gram[b][b]
        if lhs != rhs:
            return -1 if lhs > rhs else 1
        return (e1 > e2) - (e1 < e2)

    out: set[int] = set()
    pairs = 0
    for a, b in sorted(edges, key=cmp_to_key(cmp)):
        if pairs >= f or len(live) - len(out) <= 3:
            break
        if a in out or b in out:
            continue
        out |= {a, b}
        pairs += 1
    rest = [i for i in live if i not in out]
    if vouch_first:
        return rest
    sub = [[gram[i][j] for j in rest] for i in rest]
    kept = vouching.vouched_rows(sub, [prev_dots[i] for i in rest], prev_sq, f - pairs)
    return [rest[j] for j in kept]
