"""Integer mean, vote tally and fee split against exact rational references."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from state_machine.aggregation import AggregationError, apply_delta, mean_round_half_even
from state_machine.economics import epoch_payout, split_by_weight
from state_machine.penalties import SlashReason, penalty_amount
from state_machine.voting import Vote, tally, weighted_lower_median


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


def test_tally_agreement_and_rewards():
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
    assert not out[b"c"].agrees and out[b"c"].reward_weight == 0
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


def test_penalty_amount_floors():
    assert penalty_amount(SlashReason.ZERO_UPDATE, 10**17) == 10**16  # SLASH_BPS = 1000
    assert penalty_amount(SlashReason.ABSENT_PROPOSER, 999) == 9  # ABSENT_SLASH_BPS = 100


# ---- v2 robust aggregators: exact integer references


int16_rows = st.lists(
    st.lists(st.integers(-(2**15), 2**15 - 1), min_size=3, max_size=3), min_size=1, max_size=9
)


@given(int16_rows)
def test_median_matches_exact_reference(rows):
    from state_machine.aggregation import coordinate_median

    got = coordinate_median(np.array(rows, dtype=np.int16)).tolist()
    k = len(rows)
    want = []
    for c in range(3):
        col = sorted(r[c] for r in rows)
        want.append(col[k // 2] if k % 2 else round(Fraction(col[k // 2 - 1] + col[k // 2], 2)))
    assert got == want


@given(int16_rows, st.integers(0, 3))
def test_trimmed_mean_matches_exact_reference(rows, f):
    from state_machine.aggregation import coordinate_median, trimmed_mean

    arr = np.array(rows, dtype=np.int16)
    got = trimmed_mean(arr, f).tolist()
    k = len(rows)
    if k <= 2 * f:
        assert got == coordinate_median(arr).tolist()
        return
    want = []
    for c in range(3):
        col = sorted(r[c] for r in rows)[f : k - f]
        want.append(round(Fraction(sum(col), len(col))))
    assert got == want


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=40), st.integers(0, 10**6))
def test_clip_to_norm_never_exceeds_the_bound_and_keeps_small_rows(row, tau):
    from state_machine.aggregation import clip_to_norm

    x = np.array(row, dtype=np.int64)
    out = clip_to_norm(x.astype(np.int16), tau)
    if int(x @ x) <= tau * tau:
        assert out.tolist() == row  # within the bound: untouched
    else:
        assert int(out @ out) <= tau * tau  # exact: truncation only shrinks
    assert all(abs(a) <= abs(b) for a, b in zip(out.tolist(), row, strict=True))


@given(st.integers(0, 2**32 - 1), st.permutations(list(range(7))))
def test_every_rule_is_a_function_of_the_keyed_rows_not_their_order(seed, perm):
    from state_machine.aggregation import aggregate
    from state_machine.constants import AGGREGATORS

    rng = np.random.default_rng(seed)
    rows = rng.integers(-3000, 3000, size=(7, 16)).astype(np.int16)
    keys = [bytes([i + 1]) * 32 for i in range(7)]
    for rule in AGGREGATORS:
        a = aggregate(rule, rows, 1, keys, b"s" * 32)
        # rules see rows in pubkey order: callers sort, so feed the same sorted input
        order = sorted(range(7), key=lambda i: [keys[j] for j in perm][i])
        pk = [[keys[j] for j in perm][i] for i in order]
        b = aggregate(rule, rows[perm][order], 1, pk, b"s" * 32)
        assert a.dtype == np.int16 and np.array_equal(a, b), rule


def test_multi_krum_leaves_out_the_far_row_and_centered_clip_bounds_it():
    from state_machine.aggregation import admitted_rows, aggregate

    rng = np.random.default_rng(0)
    rows = rng.integers(-100, 100, size=(7, 32)).astype(np.int16)
    rows[3] = 30000
    assert admitted_rows("multi_krum", rows, 1) == [0, 1, 2, 4, 5, 6]
    keys = [bytes([i + 1]) * 32 for i in range(7)]
    for rule in ("median", "trimmed_mean", "clipped_mean", "centered_clip", "multi_krum"):
        out = aggregate(rule, rows, 1, keys, b"\x01" * 32)
        assert int(np.abs(out.astype(np.int64)).max()) < 3000, rule  # the mean would be 4000+
    assert int(aggregate("mean", rows, 1, keys, b"\x01" * 32).max()) > 4000


def test_unknown_rule_is_an_error():
    from state_machine.aggregation import aggregate

    with pytest.raises(AggregationError):
        aggregate("krum2", np.zeros((3, 2), dtype=np.int16), 0, [b"a", b"b", b"c"], b"")
