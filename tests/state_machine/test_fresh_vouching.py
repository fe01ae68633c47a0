"""fresh_vouched_mean (issue 10): near-copies of the public past neither count nor vouch."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import aggregation as A
from state_machine import fresh_vouching as FV
from state_machine import freshness as F
from state_machine import verdicts as V
from state_machine import vouching as W
from state_machine.constants import AGGREGATORS, DUPLICATE_REL_SQ

D = 256
KEYS = [bytes([i + 1]) * 32 for i in range(12)]
RULE = "fresh_vouched_mean"


def crowd(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Specialists: a weak common direction (Δ_prev-like) plus a large private part each."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, D)
    rows = np.stack([(60 * common + rng.normal(0, 200, D)).astype(np.int16) for _ in range(n)])
    return rows, (60 * common).astype(np.int16)


def jittered(row: np.ndarray, seed: int, ratio: float = 0.01) -> np.ndarray:
    """A copy with ``ratio`` relative noise (never bit-identical: no replay evidence)."""
    rng = np.random.default_rng(seed)
    x = row.astype(np.float64)
    noise = rng.normal(0, ratio * np.sqrt((x * x).mean()), D)
    out = np.rint(x + noise).astype(np.int16)
    out[0] = row[0] + 1 if out[0] == row[0] else out[0]
    return out


def epoch(seed: int, n: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This round's rows, Δ_prev and the public past (last round's crowd); row 0 is a
    1 %-jittered copy of a past update, row 1 opposes row 3 (an in-bound flip)."""
    rows, prev = crowd(seed, n)
    past, _ = crowd(seed + 10_000, n)
    rows[0] = jittered(past[2], seed)
    rows[1] = -rows[3]
    return rows, prev, past


def test_registered_and_named_in_the_rule_list():
    assert RULE in AGGREGATORS and RULE in A.FRESH_VOUCHED and RULE in A.ANCHORED


def test_stale_is_the_duplicate_distance_to_the_span_of_the_past():
    p, q = DUPLICATE_REL_SQ  # |r|^2 <= |d|^2 p / q: at most 5 % new
    norm = 400 * 7
    assert FV.stale([p * 7], 1, [norm]) == [True]  # exactly 5 %: stale
    assert FV.stale([p * 7 + 1], 1, [norm]) == [False]
    assert FV.stale([3 * (p * 7)], 3, [norm]) == [True]  # any positive scale
    assert FV.stale([0], 1, [0]) == [True]  # a zero row adds nothing
    assert q == 400


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(0, 6), st.integers(0, 2))
def test_fresh_diagonal_is_fresh_grams_diagonal(seed, k, m, dependent):
    """The same integers as ``freshness.fresh_gram`` (also with dependent or zero past
    rows, whose pivots are skipped)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(-300, 300, size=(k + m, 16)).astype(np.int64)
    for j in range(min(dependent, m)):
        rows[k + m - 1 - j] = rows[k] * (j + 1) if j < m - 1 else 0
    g = (rows @ rows.T).tolist()
    full, rank, scale = F.fresh_gram(g, k)
    assert FV.fresh_diagonal(g, k) == ([full[i][i] for i in range(k)], rank, scale)


def test_select_drops_stale_rows_without_spending_f():
    g = [[4, 2, -4, 2], [2, 4, 0, 2], [-4, 0, 4, -2], [2, 2, -2, 4]]
    dots, sq = [0, 0, 0, 0], 0
    # row 2 opposes everyone: vouched_mean with f = 1 drops it
    assert W.vouched_rows(g, dots, sq, 1) == [0, 1, 3]
    # row 0 stale: out for free, and row 2 is still dropped with the f budget of 1
    assert FV.select(g, dots, sq, 1, [True, False, False, False]) == [1, 3]
    assert FV.select(g, dots, sq, 1, None) == W.vouched_rows(g, dots, sq, 1)
    # every row stale: step 1 is skipped, never every row out
    assert FV.select(g, dots, sq, 1, [True] * 4) == W.vouched_rows(g, dots, sq, 1)


def test_a_stale_row_vouches_for_nobody():
    # rows 0 and 1 agree only with each other; rows 2, 3 agree; row 0 is a stale copy:
    # without it row 1 has no voucher left and is the one left out
    g = [[8, 4, -1, -1], [4, 8, -1, -1], [-1, -1, 8, 4], [-1, -1, 4, 8]]
    assert W.vouched_rows(g, [0] * 4, 0, 1) == [0, 1, 2, 3]  # everyone vouched
    assert FV.select(g, [0] * 4, 0, 1, [True, False, False, False]) == [2, 3]


def test_jittered_copy_of_the_past_is_excluded_not_slashed_and_f_still_catches_the_flip():
    rows, prev, past = epoch(3)
    hist = V.History(prev, past_updates=past)
    j = V.judge_epoch(V.SimParams(f=1, aggregator=RULE), hist, KEYS[:10], rows)
    v = j.by_pubkey()
    assert v[KEYS[0]].verdict == V.EXCLUDED and "not_admitted" in v[KEYS[0]].reasons
    assert v[KEYS[1]].verdict == V.EXCLUDED  # the f = 1 budget went to the flip
    assert all(x.slash is None for x in j.verdicts)
    assert j.numbers["admitted"] == 8
    # vouched_mean keeps the copy (it is vouched for like its original)
    old = V.judge_epoch(V.SimParams(f=1, aggregator="vouched_mean"), hist, KEYS[:10], rows)
    assert old.by_pubkey()[KEYS[0]].verdict == V.ACCEPTED
    keep = [i for i in range(10) if i not in (0, 1)]
    assert j.aggregate.tobytes() == A.mean_round_half_even(rows[keep]).tobytes()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(0, 3))
def test_without_past_updates_it_is_vouched_mean_exactly(seed, f):
    rows, prev, _ = epoch(seed % 1000)
    hist = V.History(prev)
    a = V.judge_epoch(V.SimParams(f=f, aggregator=RULE), hist, KEYS[:10], rows)
    b = V.judge_epoch(V.SimParams(f=f, aggregator="vouched_mean"), hist, KEYS[:10], rows)
    assert [v.to_record() for v in a.verdicts] == [v.to_record() for v in b.verdicts]
    assert a.aggregate.tobytes() == b.aggregate.tobytes()
    assert A.aggregate(RULE, rows, f, KEYS[:10], b"\x00" * 32).tobytes() == A.aggregate(
        "vouched_mean", rows, f, KEYS[:10], b"\x00" * 32).tobytes()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.permutations(list(range(10))), st.integers(0, 3),
       st.sampled_from([None, 7, 64]))
def test_any_row_order_and_tile_width_give_the_same_verdicts_and_bits(seed, perm, f, cols):
    rows, prev, past = epoch(seed % 1000)
    hist = V.History(prev, past_updates=past)
    params = V.SimParams(f=f, aggregator=RULE)
    k = KEYS[:10]
    a = V.judge_epoch(params, hist, k, rows)
    b = V.judge_epoch(params, hist, [k[i] for i in perm], rows[perm], cols=cols)
    assert [v.to_record() for v in a.verdicts] == [v.to_record() for v in b.verdicts]
    assert a.aggregate.tobytes() == b.aggregate.tobytes()
    assert a.reward_weights == b.reward_weights
    # the aggregator on its own agrees with the verdicts' aggregate
    basis = np.vstack([past, prev[None, :]])
    r, p = rows.astype(np.int64), prev.astype(np.int64)
    anchor = ([int(x @ p) for x in r], int(p @ p))
    direct = A.aggregate(RULE, rows, f, k, b"\x00" * 32, None, cols, anchor, basis)
    assert direct.tobytes() == a.aggregate.tobytes()
    kept = A.admitted_rows(RULE, rows, f, None, cols, anchor, basis)
    assert kept == [i for i, v in enumerate(a.verdicts) if v.verdict == V.ACCEPTED]
