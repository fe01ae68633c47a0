"""Issue 14: the vectorised O(n²) steps of epoch close equal the pair-by-pair integer rules.

Each new function is compared with the definition (the Python-integer loops kept beside it)
on random Gram matrices of integer rows: ties (tiny entries, so cos = 1/2, 1/5 and the
duplicate distance are hit exactly), zero rows, copies, negated rows, Δ_prev plus noise,
int16 extremes, and the same matrices scaled by up to 2^36 (entries ~2^50-2^58, as at
large d).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import pairs as P
from state_machine import tiles
from state_machine import verdicts as V
from state_machine import vouching as W
from state_machine.constants import NOVELTY_COS, REWARD_SIGMAS

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def rows_and_prev(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """(rows, scale): the last row plays Δ_prev; the Gram matrix is ``scale`` · rows rowsᵀ
    (``scale`` · G is the Gram matrix of √scale · rows: still a Gram matrix)."""
    n = draw(st.integers(1, 9))
    d = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["tiny", "int16", "extreme"]))
    if kind == "tiny":
        vals = st.integers(-2, 2)
    elif kind == "int16":
        vals = st.integers(-32768, 32767)
    else:
        vals = st.sampled_from([-32768, -32767, -1, 0, 1, 32767])
    base = [draw(st.lists(vals, min_size=d, max_size=d)) for _ in range(n)]
    prev = draw(st.lists(vals, min_size=d, max_size=d))
    out = []
    for r in base:  # copies, negations, zeros, Δ_prev + noise
        how = draw(st.sampled_from(["own", "own", "copy", "neg", "zero", "prev"]))
        if how == "copy" and out:
            r = list(out[draw(st.integers(0, len(out) - 1))])
        elif how == "neg" and out:
            r = [-x for x in out[draw(st.integers(0, len(out) - 1))]]
        elif how == "zero":
            r = [0] * d
        elif how == "prev":
            r = [max(-32768, min(32767, p + x // 1000)) for p, x in zip(prev, r, strict=True)]
        out.append(r)
    rows = np.array([*out, prev], dtype=np.int64)
    scale = draw(st.sampled_from([1, 1, 3, 1 << 20, (1 << 26) + 7]))
    return rows, scale


def gram_of(rows: np.ndarray, scale: int) -> list[list[int]]:
    r = [[int(x) for x in row] for row in rows]
    return [[scale * sum(a * b for a, b in zip(x, y, strict=True)) for y in r] for x in r]


def old_weights(gram, admitted, dim):
    """contribution_weights as it was (pair by pair, Python integers; no fresh gate)."""
    k = len(admitted)
    m = [[gram[i][j] for j in admitted] for i in admitted]
    res = V.residual_gram(gram, admitted)
    total = sum(sum(row) for row in m)
    out = []
    for i in range(k):
        agree = sum(V.pair_credit(m[i][j], m[i][i], m[j][j]) for j in range(k) if j != i)
        s_sq = total - 2 * sum(m[i]) + m[i][i]
        chance = math.isqrt(REWARD_SIGMAS * REWARD_SIGMAS * m[i][i] * max(s_sq, 0) // dim)
        out.append(max(0, agree - chance) if V.has_novel_peer(res, i) else 0)
    return out


def novel(gram, rows):
    return P.novel_peers(P.as_int64(gram), rows)


def old_duplicate_pairs(gram, n):
    return [(i, j) for i in range(n) for j in range(i + 1, n)
            if V.near_duplicate(gram[i][i] + gram[j][j] - 2 * gram[i][j], gram[i][i],
                                gram[j][j])]


@SETTINGS
@given(rows_and_prev())
def test_capped_matrix_equals_capped_agreement(case):
    g = gram_of(*case)
    arr = P.as_int64(g)
    assert arr is not None
    c = P.capped_matrix(arr).tolist()
    k = len(g)
    assert c == [[W.capped_agreement(g[i][j], g[i][i], g[j][j]) for j in range(k)]
                 for i in range(k)]


@SETTINGS
@given(rows_and_prev())
def test_vouch_numerators_equal_the_pair_loop(case):
    g = gram_of(*case)
    n = len(g) - 1
    sub = [row[:n] for row in g[:n]]
    dots, psq = [g[i][n] for i in range(n)], g[n][n]
    assert W.vouch_numerators(sub, dots, psq) == W.vouch_numerators_py(sub, dots, psq)
    assert W.vouch_numerators(sub, dots, 0) == W.vouch_numerators_py(sub, dots, 0)


@SETTINGS
@given(rows_and_prev(), st.randoms(use_true_random=False))
def test_novel_peers_and_weights_equal_the_pair_loops(case, rnd):
    g = gram_of(*case)
    n = len(g) - 1
    admitted = sorted(rnd.sample(range(n), rnd.randint(0, n)))
    res = V.residual_gram(g, admitted)
    assert novel(g, admitted) == [V.has_novel_peer(res, i) for i in range(len(admitted))]
    for dim in (1, 7, 1 << 18):
        assert V.contribution_weights(g, admitted, dim) == \
            old_weights(g, admitted, dim)
    g0 = [[*row[:n], 0] for row in g[:n]] + [[0] * (n + 1)]  # no Δ_prev yet: P = 0
    res0 = V.residual_gram(g0, admitted)
    assert novel(g0, admitted) == [V.has_novel_peer(res0, i)
                                           for i in range(len(admitted))]
    assert V.contribution_weights(g0, admitted, 9) == old_weights(g0, admitted, 9)


@SETTINGS
@given(rows_and_prev())
def test_near_duplicate_pairs_equal_the_pair_loop(case):
    g = gram_of(*case)
    n = len(g) - 1
    assert V.near_duplicate_pairs(g, n) == old_duplicate_pairs(g, n)


def test_ties_at_the_exact_thresholds():
    # cos = 1/2 exactly (the cap), cos = 1/5 exactly (the novelty gate), at 2^40 scale too
    for scale in (1, 1 << 40):
        rows = np.array([[1, 0, 0, 0], [1, 1, 1, 1], [1, 2, 2, 4], [0, 0, 0, 0]])
        g = gram_of(rows, scale)
        assert P.capped_matrix(P.as_int64(g)).tolist() == [
            [W.capped_agreement(g[i][j], g[i][i], g[j][j]) for j in range(4)] for i in range(4)]
        res = V.residual_gram(g, [0, 1, 2])
        assert novel(g, [0, 1, 2]) == [V.has_novel_peer(res, i) for i in range(3)]
    p, q = NOVELTY_COS
    assert (p, q) == (1, 5)


def test_entries_beyond_int64_take_the_python_path():
    big = 1 << 70
    g = [[big, big // 2, 0], [big // 2, big, 0], [0, 0, 0]]
    assert P.as_int64(g) is None
    assert W.vouch_numerators(g, [0, 0, 0], 0) == W.vouch_numerators_py(g, [0, 0, 0], 0)
    assert V.contribution_weights(g, [0, 1], 5) == old_weights(g, [0, 1], 5)
    assert V.near_duplicate_pairs(g, 2) == old_duplicate_pairs(g, 2)


def test_row_sums_are_exact_near_int64_limits():
    a = np.array([[P.INT64_SAFE] * 600, [-P.INT64_SAFE] * 600, [P.INT64_SAFE, -1, 3] * 200],
                 dtype=np.int64)
    assert P.row_sums(a) == [sum(int(x) for x in row) for row in a]


def test_pick_returns_views_with_the_same_tiles():
    rows = np.arange(5 * 7, dtype=np.int16).reshape(5, 7)
    assert tiles.pick(rows, range(5)).tile(0, 7).tolist() == rows.tolist()
    src = tiles.ArrayRows(rows)
    assert tiles.pick(src, range(5)) is src
    twice = tiles.pick(tiles.pick(rows, [4, 2, 0, 1]), [3, 0, 2])
    assert isinstance(twice, tiles.PickedRows)
    assert twice.tile(2, 6).tolist() == rows[[1, 4, 0], 2:6].tolist()


@SETTINGS
@given(rows_and_prev())
def test_python_fallbacks_equal_the_vectorised_paths(case):
    g = gram_of(*case)
    n = len(g) - 1
    sub = [row[:n] for row in g[:n]]
    dots = [g[i][n] for i in range(n)]
    fast = (W.vouch_numerators(sub, dots, g[n][n]), V.contribution_weights(g, range(n), 5),
            V.near_duplicate_pairs(g, n))
    real = P.as_int64
    try:
        P.as_int64 = lambda gram: None  # every caller takes the Python-integer definition
        slow = (W.vouch_numerators(sub, dots, g[n][n]), V.contribution_weights(g, range(n), 5),
                V.near_duplicate_pairs(g, n))
    finally:
        P.as_int64 = real
    assert fast == slow


def test_gram_of_parts_equals_gram_of_the_stacked_rows():
    rng = np.random.default_rng(3)
    a = rng.integers(-32768, 32767, (5, 300), dtype=np.int16)
    b = rng.integers(-32768, 32767, (3, 300), dtype=np.int16)
    e = np.full(300, -32768, dtype=np.int16)
    from state_machine.scoring import gram_int64
    assert gram_int64([a, b, e[None, :]], 128).tolist() == \
        gram_int64(np.vstack([a, b, e]), 128).tolist()
    both = tiles.ConcatRows([tiles.ArrayRows(a), tiles.ArrayRows(b)])
    g, h = tiles.gram_and_hashes(both, e, cols=70)  # hashed rows span both parts
    assert g == gram_int64(np.vstack([a, b, e])).tolist()
    assert h == [V.delta_hash(r) for r in np.vstack([a, b])]
    g2, h2 = tiles.gram_and_hashes(both, e, cols=70, hashed=5)
    assert (g2, h2) == (g, h[:5])
