"""Integer mean, vote tally and fee split against exact rational references."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from state_machine.aggregation import AggregationError, apply_delta, mean_round_half_even
from state_machine.economics import epoch_payout, slash_amount, split_by_weight
from state_machine.voting import Vote, tally, voter_slash_amount, weighted_lower_median


def round_half_even(x: Fraction) -> int:
    return round(x)  # Python's round on Fraction is exact banker's rounding


@given(
    st.lists(
        st.lists(st.integers(-(2**15), 2**15 - 1), min_size=3, max_size=3), min_size=1, max_size=9
    )
)
def test_mean_matches_exact_rational_rounding(rows):
    got = mean_round_half_even(np.array(rows, dtype=np.int16)).tolist()
    k = len(rows)
    want = [round_half_even(Fraction(sum(r[c] for r in rows), k)) for c in range(3)]
    assert got == want


def test_apply_delta_overflow_is_detected():
    g = np.array([2**31 - 1, 0], dtype=np.int32)
    with pytest.raises(AggregationError):
        apply_delta(g, np.array([1, 0], dtype=np.int16))
    assert apply_delta(g, np.array([-1, 5], dtype=np.int16)).tolist() == [2**31 - 2, 5]


def test_weighted_lower_median_and_ties():
    assert weighted_lower_median([(5, b"a", 1), (1, b"b", 1), (3, b"c", 1)]) == 3
    assert weighted_lower_median([(5, b"a", 10), (1, b"b", 1), (3, b"c", 1)]) == 5
    assert weighted_lower_median([(2, b"a", 1), (1, b"b", 1)]) == 1  # lower median


def test_tally_agreement_rewards_and_slashes():
    votes = [
        Vote(b"a", 100, 9000, 8000),  # +1000
        Vote(b"b", 100, 9000, 8800),  # +200
        Vote(b"c", 100, 7000, 8000),  # -1000 (dishonest)
    ]
    r = tally(votes)
    assert r.aggregate == 200 and r.accepted
    out = {o.pubkey: o for o in r.outcomes}
    assert out[b"b"].reward_weight == 100 * 500
    assert out[b"a"].reward_weight == 0  # agrees, but |v - A| > T
    assert not out[b"c"].agrees
    assert voter_slash_amount(100_000, out[b"c"].slash_bps_num) == 100_000 * 1000 // 10_000
    assert r.accuracy_bps == 9000


@given(
    st.integers(0, 10**18),
    st.lists(st.tuples(st.binary(min_size=1, max_size=2), st.integers(0, 10**18)), max_size=6),
)
def test_split_conserves_wei(pool, weights):
    out, dust = split_by_weight(pool, weights)
    assert sum(out.values()) + dust == pool and dust >= 0


@given(st.integers(1, 10**18), st.booleans())
def test_epoch_payout_conserves_the_fee(fee, committee):
    p = epoch_payout(fee, [(b"p1", 3), (b"p2", 7)], [(b"v1", 5)], committee)
    assert sum(p.rewards.values()) + p.treasury == fee
    assert p.treasury >= fee * 200 // 10_000


def test_slash_amount_floors():
    assert slash_amount(10**17, 1000) == 10**16
    assert slash_amount(999, 100) == 9
