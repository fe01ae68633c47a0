"""Freshness: pay only for what is new relative to the public past (issue 10).

Why: a free-rider that resubmits its own previous update, or a victim's, with 1 % jitter
is not bit-identical to anything public (no ``replay`` evidence) and agrees with the crowd
as much as the original did, so the leave-one-out reward paid it 0.6–1.2 × an honest
client. Whatever an update shares with public past updates was already paid for; its
*fresh part* — the component orthogonal to every public past update and Δ_prev — is
jitter for a copy and new training for an honest client. Jitter agrees with nobody beyond
chance; an honest client's fresh part agrees with some peer's (measured best-peer cosine
of fresh parts at α = 0.1: honest median 0.26, 5th percentile 0.08; jittered copies at
most 0.064, docs/protocol.md).

Gate, two tests, one per way of hiding a copy (:func:`is_fresh`):

* :func:`fresh_enough`: the fresh part is more than 5 % of the update's norm
  (``|r|² > |d|² · DUPLICATE_REL_SQ``, the duplicate rule's "copy" distance, now to the
  span of the public past). A copy with small jitter fails (1 % jitter: 0.011 measured;
  honest minimum 0.109 at α = 0.1, 0.207 at α = 0.5). Small jitter is also what makes the
  next test unreliable: after int16 rounding it is a few ±1 coordinates, whose cosine with
  the peers' (anisotropic) fresh parts is not at the chance level of a dense direction.
* :func:`has_fresh_peer`: some other admitted update's fresh part has cos ≥
  ``REWARD_SIGMAS / √d'`` with this one's (``d' = d − rank of the past``): three standard
  deviations of the cosine between a random direction and a fixed one, the same chance
  level as the reward's chance term. A copy with jitter large enough to pass the first
  test has a dense noise fresh part, which agrees with nobody beyond chance.

Exact integers: the fresh parts' Gram matrix is the Schur
complement of the past's block in the Gram matrix of [rows; past], computed fraction-free
(Bareiss), so it is that Gram matrix times a positive integer — cosines are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from state_machine.constants import DUPLICATE_REL_SQ, REWARD_SIGMAS

Fresh = tuple[list[list[int]], int, int]  # (c · fresh Gram, rank of the past, c)


def fresh_gram(gram: Sequence[Sequence[int]], k: int) -> Fresh:
    """(c · <r_i, r_j> over the first ``k`` rows, rank of the rest, c), with ``c > 0``
    (the last pivot: the determinant of the past's independent part's Gram matrix) and
    ``r_i`` row ``i``'s part orthogonal to the span of rows ``k..`` of ``gram``.

    Fraction-free elimination of the past's pivots (Bareiss): after eliminating pivots
    ``b_1..b_t`` every remaining entry is ``det(G[b, b]) × (Schur complement)``, an exact
    integer. A zero pivot is a past vector already in the span of the earlier ones (its
    row and column are zero in the positive semi-definite complement): skipped."""
    m = [list(map(int, row)) for row in gram]
    size, prev, rank = len(m), 1, 0
    for b in range(k, size):
        piv = m[b][b]
        if piv == 0:
            continue
        rest = [i for i in range(size) if i != b and (i < k or i > b)]
        row_b = m[b]
        for x, i in enumerate(rest):  # symmetric: the upper triangle, mirrored
            row_i, mib = m[i], m[i][b]
            for j in rest[x:]:
                row_i[j] = m[j][i] = (piv * row_i[j] - mib * row_b[j]) // prev
        prev, rank = piv, rank + 1
    return [m[i][:k] for i in range(k)], rank, prev


def fresh_enough(fresh_ii: int, scale: int, norm_sq: int) -> bool:
    """|r_i|² > |d_i|² · p / q (DUPLICATE_REL_SQ): more than 5 % of the update is new."""
    p, q = DUPLICATE_REL_SQ
    return q * fresh_ii > p * scale * norm_sq


def is_fresh(fresh: Fresh, i: int, norm_sq: int, dim: int) -> bool:
    """Both tests (module docstring) for admitted row ``i`` of ``fresh``; ``dim``: d."""
    g, rank, scale = fresh
    return fresh_enough(g[i][i], scale, norm_sq) and has_fresh_peer(g, i, max(dim - rank, 1))


def has_fresh_peer(fresh: Sequence[Sequence[int]], i: int, dim: int) -> bool:
    """Some other row's fresh part has cos >= REWARD_SIGMAS / sqrt(dim) with row i's
    (``fresh``: the rows' fresh Gram, any positive scale; ``dim``: d − rank of the past)."""
    if fresh[i][i] <= 0:
        return False  # nothing new at all
    s2 = REWARD_SIGMAS * REWARD_SIGMAS
    for j in range(len(fresh)):
        g = fresh[i][j]
        if j != i and g > 0 and dim * g * g >= s2 * fresh[i][i] * fresh[j][j]:
            return True
    return False
