"""Vouched aggregation: leave out the updates nobody vouches for (issue 10).

Why: at Dirichlet α = 0.1 the honest mean is short (about 0.22 B for bound B) while every
update may use the whole bound, so three in-bound updates that *oppose* the honest crowd
(sign flip, IPM, Fang, the bound-sized flip) outweigh twelve honest specialists that mostly
agree with nobody in particular. Distance rules cannot tell an opposing attacker from a
specialist (both are far from everyone); coordinate rules cost specialists 20 points. What
does separate them, measured (docs/protocol.md "Vouched aggregation"): an honest update
agrees, however weakly, with the round's other updates and with the public last step
Δ_prev (cos with Δ_prev −0.08–0.65 for honest specialists at α = 0.1, below 0.01 only in
the last round of one seed; −0.51–0.08 for sign flip, the bound-sized flip, IPM and Fang),
while an opposing update disagrees with both.

The vouch score of row i (``x_i / |d_i|``; ``x_i`` is an exact integer):

    x_i = Σ_{j≠i} capped(<d_i, d_j>) + k · capped(<d_i, Δ_prev>)

``capped`` counts a pair at most as cos = ``PAIR_COS_CAP`` (1/2), the reward's rule, so
colluders sending near-copies vouch for each other no more than two agreeing clients.
The public last step counts as ``k`` peers: Δ_prev is the mean of the previous round's
admitted rows, so ``k · Δ_prev`` is their sum (the previous crowd), and a row that opposes
it opposes the crowd's history. Rule ``vouched_mean``: leave out the at most ``f`` rows
with the lowest scores whose score is ``<= 0`` (ties by pubkey order), the exact integer
mean of the rest. ``vouched_drop_f``: always the ``f`` lowest (a task that expects
attackers every round and can spare ``f`` specialists).

Bounds (why it cannot make things worse than the mean by much): at most ``f`` rows are
left out per round, whatever the history; a rule-aware attacker that aligns with the crowd
to be kept must spend part of its norm agreeing with it, and is then averaged like any
row (the mean's bound f/n · B). Left-out rows are ``EXCLUDED`` (unpaid that epoch), never
slashed: a score is a judgement, not evidence.

Every number is an exact integer (``isqrt`` only); comparisons of ``x/√N`` are made by
cross-multiplying squares, so the selection is a pure function of the Gram matrix and is
the same for any tile width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cmp_to_key

import numpy as np

from state_machine import pairs
from state_machine.constants import PAIR_COS_CAP

Gram = Sequence[Sequence[int]]


def capped_agreement(g_ij: int, g_ii: int, g_jj: int) -> int:
    """<d_i, d_j> counted at most as if cos = PAIR_COS_CAP (near-copies vouch no more
    than two clients that merely agree); negative agreement counts in full."""
    p, q = PAIR_COS_CAP
    return min(g_ij, math.isqrt(g_ii * g_jj) * p // q)


def vouch_numerators(gram: Gram, prev_dots: Sequence[int], prev_sq: int) -> list[int]:
    """``x_i`` for every row of ``gram`` (see the module docstring).

    ``prev_dots[i] = <d_i, Δ_prev>``, ``prev_sq = |Δ_prev|²``; with ``prev_sq = 0`` (no
    accepted step yet) only the peers vouch. The peers' sum is ``pairs.capped_matrix``'s
    exact row sums (the diagonal zeroed) when the entries fit int64, else
    :func:`vouch_numerators_py` (the same integers)."""
    k = len(gram)
    g = pairs.as_int64(gram) if k else None
    if g is None:
        return vouch_numerators_py(gram, prev_dots, prev_sq)
    c = pairs.capped_matrix(g)
    np.fill_diagonal(c, 0)
    out = pairs.row_sums(c)
    if prev_sq > 0:
        dg = np.diagonal(g).tolist()
        for i in range(k):
            out[i] += k * capped_agreement(prev_dots[i], dg[i], prev_sq)
    return out


def vouch_numerators_py(gram: Gram, prev_dots: Sequence[int], prev_sq: int) -> list[int]:
    """:func:`vouch_numerators` with Python integers, pair by pair (the definition)."""
    k = len(gram)
    out = []
    for i in range(k):
        x = sum(capped_agreement(gram[i][j], gram[i][i], gram[j][j]) for j in range(k) if j != i)
        if prev_sq > 0:
            x += k * capped_agreement(prev_dots[i], gram[i][i], prev_sq)
        out.append(x)
    return out


def compare_scores(x_a: int, n_a: int, x_b: int, n_b: int) -> int:
    """Sign of ``x_a/√n_a − x_b/√n_b``, exactly (a zero row, ``n = 0``, scores 0)."""
    sa = ((x_a > 0) - (x_a < 0)) if n_a else 0
    sb = ((x_b > 0) - (x_b < 0)) if n_b else 0
    if sa != sb or sa == 0:
        return (sa > sb) - (sa < sb)
    lhs, rhs = x_a * x_a * n_b, x_b * x_b * n_a  # |score_a|² vs |score_b|², scaled
    return ((lhs > rhs) - (lhs < rhs)) * sa


def vouch_order(gram: Gram, x: Sequence[int]) -> list[int]:
    """Rows from the lowest vouch score ``x_i/|d_i|`` up; ties by row (= pubkey) order."""

    def cmp(a: int, b: int) -> int:
        c = compare_scores(x[a], gram[a][a], x[b], gram[b][b])
        return c if c else (a > b) - (a < b)

    return sorted(range(len(gram)), key=cmp_to_key(cmp))


def vouched_rows(gram: Gram, prev_dots: Sequence[int], prev_sq: int, f: int,
                 drop_all: bool = False) -> list[int]:
    """Rows kept by ``vouched_mean`` (``drop_all``: ``vouched_drop_f``), ascending.

    Leaves out at most ``f`` rows, and never every row."""
    k = len(gram)
    x = vouch_numerators(gram, prev_dots, prev_sq)
    low = vouch_order(gram, x)[: min(max(f, 0), k - 1)]
    out = set(low) if drop_all else {i for i in low if x[i] <= 0}
    return [i for i in range(k) if i not in out]
