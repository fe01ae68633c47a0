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
Epoch close reads the same integers from :class:`FreshPast` (one elimination of the past
block, the rest modulo small primes; off-diagonal entries only when the gate reads them):
at n = 512, m = 64 past rows and d = 2^18 the elimination of :func:`fresh_gram` took
~90 CPU s, ~25× one GEMM of the epoch's shape; ``FreshPast`` ~0.6 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from state_machine.constants import DUPLICATE_REL_SQ, REWARD_SIGMAS

Fresh = tuple[Sequence[Sequence[int]], int, int]  # (c · fresh Gram, rank of the past, c)


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


# ------------------------------------------------- the same integers, multi-modular

_PRIMES: dict[int, list[int]] = {}
_COLUMNS = 128  # rows of the epoch per block of the modular product


def _primes(bits: int) -> list[int]:
    """The primes in ``[2^bits - 2^17, 2^bits)``, largest first (sieved once per width)."""
    if bits not in _PRIMES:
        top, lo = 1 << bits, (1 << bits) - (1 << 17)
        live = np.ones(top - lo, dtype=bool)
        for q in range(2, math.isqrt(top) + 1):
            live[(-lo) % q :: q] = False
        _PRIMES[bits] = [lo + int(i) for i in np.flatnonzero(live)[::-1]]
    return _PRIMES[bits]


def past_pivots(gram: Sequence[Sequence[int]], k: int) -> tuple[list[int], list[int]]:
    """(independent past rows, Bareiss pivots) of rows ``k..`` of ``gram``, in the order
    :func:`fresh_gram` eliminates them (a zero pivot: in the span of the earlier ones).

    The past block alone, upper triangle: ``O(m^3 / 6)`` big-integer steps."""
    idx = list(range(k, len(gram)))
    a = [[int(gram[x][y]) for y in idx] for x in idx]
    basis, pivots, prev = [], [], 1
    for t in range(len(idx)):
        row_t, piv = a[t], a[t][t]
        if piv == 0:
            continue
        for x in range(t + 1, len(idx)):
            row_x, mtx = a[x], row_t[x]
            for y in range(x, len(idx)):
                row_x[y] = (piv * row_x[y] - mtx * row_t[y]) // prev
        prev = piv
        basis.append(idx[t])
        pivots.append(piv)
    return basis, pivots


def _inverse_mod(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Inverse of every ``a[s]`` modulo ``p[s]``, in place (Gauss-Jordan, no row
    exchanges: every leading minor is a unit mod ``p[s]``); int64 residues < 2^23."""
    p3 = p[:, None, None]
    for t in range(a.shape[1]):
        inv = _pow_mod(a[:, t, t], p - 2, p)
        row = a[:, t, :] * inv[:, None] % p[:, None]  # row[t] == 1
        col = a[:, :, t].copy()
        a -= col[:, :, None] * row[:, None, :]
        a %= p3
        a[:, t, :] = row
        a[:, :, t] = -col * inv[:, None] % p[:, None]
        a[:, t, t] = inv
    return a


def _pow_mod(x: np.ndarray, e: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``x ** e % p`` elementwise (square and multiply; every factor < 2^23)."""
    out = np.ones_like(x)
    x, e = x % p, e.copy()
    while e.any():
        odd = (e & 1).astype(bool)
        out = np.where(odd, out * x % p, out)
        x, e = x * x % p, e >> 1
    return out


class FreshPast:
    """:func:`fresh_gram`'s and ``fresh_vouching.fresh_diagonal``'s integers for any rows
    of the first ``k`` of ``gram`` (a Gram matrix: positive semi-definite, entries below
    2^63), without their ``O(m k^2)`` big-integer steps.

    With ``B`` the past rows that :func:`past_pivots` keeps, ``c = det G[B, B]`` (the last
    pivot) and ``u_i = G[B, i]``, Bareiss leaves (Sylvester's identity) the bordered minor
    ``c G_ij - u_i^T adj(G[B, B]) u_j``. ``W = adj(G[B, B]) U`` is computed modulo enough
    23-bit primes (none divides a pivot, so Gauss-Jordan needs no row exchange), its
    column ``i`` rebuilt by the Chinese remainder theorem when row ``i``'s off-diagonal
    entries are first asked for; the diagonal is rebuilt for every row at once. Bounds
    (``H = G[B + i, B + i]`` is PSD, Hadamard, Cauchy-Binet): ``0 <= c G_ii - ... <=
    prod G_aa * G_ii`` and ``|W_bi| <= prod_{a in B} G_aa * max(G_ii, 1)``: the primes'
    product exceeds twice that (beyond the table of primes: :func:`fresh_gram` itself)."""

    def __init__(self, gram: Sequence[Sequence[int]], k: int) -> None:
        self.k = k
        self.basis, pivots = past_pivots(gram, k)
        self.rank = len(self.basis)
        self.scale = pivots[-1] if pivots else 1
        self._gram = gram
        self._w: dict[int, list[int]] = {}
        self._u = [[int(gram[b][i]) for b in self.basis] for i in range(k)]
        diag = [int(gram[i][i]) for i in range(k)]
        self._exact: Sequence[Sequence[int]] | None = None
        if not self.basis:
            self.diag = diag
            return
        # r (p - 1)^2 < 2^53: float64 products and sums of r of them are exact
        bits = min(23, (53 - self.rank.bit_length()) // 2)
        bound = 1
        for b in self.basis:
            bound *= int(gram[b][b])
        bound *= max([1, *diag])
        primes, mod = [], 1
        for q in _primes(bits) if bits >= 18 else []:
            if all(piv % q for piv in pivots):
                primes.append(q)
                mod *= q
                if mod > 2 * bound + 1:
                    break
        if mod <= 2 * bound + 1:  # beyond the prime table (not at PAST_UPDATES_MAX rows)
            self._exact = fresh_gram(gram, k)[0]
            self.diag = [self._exact[i][i] for i in range(k)]
            return
        self._mod = mod
        self._crt = [mod // q * pow(mod // q, -1, q) for q in primes]
        p = np.array(primes, dtype=np.int64)
        p3 = p[:, None, None]
        g_bb = np.array([[int(gram[a][b]) for b in self.basis] for a in self.basis],
                        dtype=np.int64)
        u = np.array(self._u, dtype=np.int64).reshape(k, self.rank).T  # (r, k)
        sc = np.array([self.scale % q for q in primes], dtype=np.int64)
        adj = _inverse_mod(g_bb[None, :, :] % p3, p) * sc[:, None, None] % p3
        adj_f = adj.astype(np.float64)  # residues < 2^23: exact in float64
        self._wres = np.empty((len(primes), self.rank, k), dtype=np.int32)  # W mod p
        quad = np.empty((len(primes), k), dtype=np.int64)
        for lo in range(0, k, _COLUMNS):  # bounded scratch: ~8 MiB a block at r = 65
            u_p = (u[None, :, lo : lo + _COLUMNS] % p3).astype(np.float64)  # exact residues
            w = np.matmul(adj_f, u_p).astype(np.int64)  # exact: every sum < 2^53
            w %= p3
            self._wres[:, :, lo : lo + _COLUMNS] = w
            w_f = w.astype(np.float64)  # exact: r products of residues < 2^23 sum below 2^53
            quad[:, lo : lo + _COLUMNS] = np.einsum("prk,prk->pk", w_f, u_p)
        cg = np.array(diag, dtype=np.int64)[None, :] % p[:, None] * sc[:, None]
        dres = ((cg - quad) % p[:, None]).T.tolist()
        self.diag = [self._rebuild(col) for col in dres]

    def _rebuild(self, res: Sequence[int]) -> int:
        x = sum(map(int.__mul__, res, self._crt)) % self._mod
        return x - self._mod if 2 * x > self._mod else x

    def _col(self, i: int) -> list[int]:
        if i not in self._w:
            self._w[i] = [self._rebuild(col) for col in self._wres[:, :, i].T.tolist()]
        return self._w[i]

    def entry(self, i: int, j: int) -> int:
        """``c`` times the inner product of rows ``i`` and ``j``'s fresh parts."""
        if i == j:
            return self.diag[i]
        if self._exact is not None:
            return self._exact[i][j]
        g = int(self._gram[i][j])
        if not self.basis:
            return g
        if j in self._w and i not in self._w:
            i, j = j, i
        return self.scale * g - sum(map(int.__mul__, self._col(i), self._u[j]))

    def view(self, idx: Sequence[int]) -> Fresh:
        """:func:`fresh_gram` of ``gram``'s rows ``idx`` and the past: the same triple, its
        matrix read lazily (row ``i``'s entries computed on first use)."""
        return _LazyGram(self, list(idx)), self.rank, self.scale


class _LazyRow(Sequence[int]):
    """Row ``i`` of :meth:`FreshPast.view`: an entry is computed when read."""

    def __init__(self, src: FreshPast, idx: list[int], i: int) -> None:
        self.src, self.idx, self.i = src, idx, idx[i]

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, j: int) -> int:  # type: ignore[override]
        return self.src.entry(self.i, self.idx[j])


class _LazyGram(Sequence[Sequence[int]]):
    """:meth:`FreshPast.view`'s matrix: rows made on first use, entries when read."""

    def __init__(self, src: FreshPast, idx: list[int]) -> None:
        self.src, self.idx = src, idx
        self.rows: dict[int, _LazyRow] = {}

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> _LazyRow:  # type: ignore[override]
        row = self.rows.get(i)
        if row is None:
            row = self.rows[i] = _LazyRow(self.src, self.idx, i)
        return row
