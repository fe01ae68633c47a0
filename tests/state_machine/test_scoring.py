"""Exact Krum and the Gram kernel against slow pure-Python references."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine.scoring import (
    ScoringError,
    cos_at_least,
    gram_matrix,
    krum_scores,
    lower_median,
)


def slow_krum(rows: list[list[int]], f: int) -> list[int]:
    n = len(rows)
    d2 = [
        [sum((a - b) ** 2 for a, b in zip(rows[i], rows[j], strict=True)) for j in range(n)]
        for i in range(n)
    ]
    k = n - f - 2
    return [sum(sorted(d2[i][j] for j in range(n) if j != i)[:k]) for i in range(n)]


@st.composite
def krum_inputs(draw):
    f = draw(st.integers(0, 3))
    n = draw(st.integers(2 * f + 3, 2 * f + 6))
    d = draw(st.integers(1, 24))
    pool = draw(st.sampled_from(["full", "ties", "extreme"]))
    if pool == "full":
        elem = st.integers(-(2**15), 2**15 - 1)
    elif pool == "ties":
        elem = st.integers(-1, 1)  # many equal distances
    else:
        elem = st.sampled_from([-(2**15), 2**15 - 1, 0])
    rows = draw(st.lists(st.lists(elem, min_size=d, max_size=d), min_size=n, max_size=n))
    if draw(st.booleans()):  # exact duplicate rows: tied scores
        rows[-1] = list(rows[0])
    return rows, f


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(krum_inputs())
def test_krum_matches_pure_python_reference(case):
    rows, f = case
    arr = np.array(rows, dtype=np.int16)
    got = krum_scores(arr, f)
    assert got == slow_krum(rows, f)
    assert all(type(x) is int for x in got)


def test_n_equals_2f_plus_3_is_accepted_and_smaller_rejected():
    rows = np.arange(5 * 3, dtype=np.int16).reshape(5, 3)
    assert krum_scores(rows, 1) == slow_krum(rows.tolist(), 1)
    with pytest.raises(ScoringError, match="2f"):
        krum_scores(rows[:4], 1)


def test_gram_is_exact_across_blocks_at_the_int16_extremes():
    d = 3 * 2**16 + 5  # crosses several float64 blocks
    rows = np.full((3, d), -(2**15), dtype=np.int16)
    rows[1, ::2] = 2**15 - 1
    g = gram_matrix(rows)
    assert g[0][0] == d * 2**30  # well past 2^53 in total: exact only thanks to blocking
    evens = (d + 1) // 2
    assert g[0][1] == evens * (-(2**15)) * (2**15 - 1) + (d - evens) * 2**30
    # a block larger than the exactness bound is refused
    with pytest.raises(ScoringError):
        gram_matrix(rows, block=2**24)


def test_gram_independent_of_block_size():
    rng = np.random.default_rng(3)
    rows = rng.integers(-(2**15), 2**15, size=(6, 5000), dtype=np.int16)
    assert gram_matrix(rows, block=7) == gram_matrix(rows, block=4096) == gram_matrix(rows)


@given(st.integers(-(10**6), 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_cos_threshold_matches_exact_rational(dot, na, nb):
    from fractions import Fraction

    expected = (
        na > 0 and nb > 0 and dot >= 0 and Fraction(dot * dot, na * nb) >= Fraction(99**2, 100**2)
    )
    assert cos_at_least(dot, na, nb, (99, 100)) == expected


def test_lower_median():
    assert lower_median([5]) == 5
    assert lower_median([4, 1, 3, 2]) == 2
    assert lower_median([3, 1, 2]) == 2


@given(st.integers(-(10**6), 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_negative_cos_threshold_matches_exact_rational(dot, na, nb):
    from fractions import Fraction

    from state_machine.scoring import cos_below_negative

    expected = na > 0 and nb > 0 and dot < 0 and Fraction(dot * dot, na * nb) > Fraction(1, 400)
    assert cos_below_negative(dot, na, nb, (1, 20)) == expected
