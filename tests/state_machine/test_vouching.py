"""Vouched aggregation (issue 10): one test per rule, exactness, and permutation properties."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import aggregation as A
from state_machine import verdicts as V
from state_machine import vouching as W
from state_machine.scoring import gram_matrix

D = 256
KEYS = [bytes([i + 1]) * 32 for i in range(12)]


def crowd(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Specialists: a weak common direction (Δ_prev-like) plus a large private part each."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, D)
    rows = np.stack([(60 * common + rng.normal(0, 200, D)).astype(np.int16) for _ in range(n)])
    return rows, (60 * common).astype(np.int16)


def anchor(rows: np.ndarray, prev: np.ndarray) -> tuple[list[int], int]:
    r, p = rows.astype(np.int64), prev.astype(np.int64)
    return [int(x @ p) for x in r], int(p @ p)


def test_capped_agreement_counts_a_pair_at_most_as_cos_one_half():
    assert W.capped_agreement(100, 100, 100) == 50  # a copy vouches like cos 1/2
    assert W.capped_agreement(30, 100, 100) == 30  # weaker agreement in full
    assert W.capped_agreement(-90, 100, 100) == -90  # opposition in full
    assert V.pair_credit(100, 100, 100) == 50  # the reward's cap is the same rule


def test_vouch_numerators_sum_capped_peers_and_k_times_capped_history():
    g = [[4, 2, -4], [2, 4, 0], [-4, 0, 4]]
    # <d0, d1> = 2 is exactly cos 1/2 (the cap); <d0, d2> = -4 counts in full
    assert W.vouch_numerators(g, [0, 0, 0], 0) == [2 - 4, 2 + 0, -4 + 0]
    # with Δ_prev (|p|^2 = 4) as k = 3 peers: rows 0, 1 agree fully (capped at 2), row 2 opposes
    assert W.vouch_numerators(g, [4, 4, -4], 4) == [-2 + 3 * 2, 2 + 3 * 2, -4 - 3 * 4]


@given(st.lists(st.tuples(st.integers(-10**6, 10**6), st.integers(0, 10**6)), min_size=2,
                max_size=2))
def test_compare_scores_is_the_exact_order_of_x_over_root_n(pair):
    (xa, na), (xb, nb) = pair
    sa = xa / math.sqrt(na) if na else 0.0
    sb = xb / math.sqrt(nb) if nb else 0.0
    c = W.compare_scores(xa, na, xb, nb)
    if abs(sa - sb) > 1e-9 * max(1.0, abs(sa), abs(sb)):
        assert c == (1 if sa > sb else -1)
    assert W.compare_scores(xb, nb, xa, na) == -c


def test_vouched_mean_leaves_out_rows_that_oppose_peers_and_history():
    rows, prev = crowd(1, 10)
    rows[3] = -rows[0]  # a sign flip of one specialist
    rows[7] = (-2 * prev.astype(np.int64)).clip(-32768, 32767)  # opposes the crowd's history
    g = gram_matrix(rows)
    dots, sq = anchor(rows, prev)
    kept = W.vouched_rows(g, dots, sq, f=2)
    assert 3 not in kept and 7 not in kept and len(kept) == 8
    out = A.aggregate("vouched_mean", rows, 2, KEYS[:10], b"s" * 32, g, prev=(dots, sq))
    assert out.tobytes() == A.mean_round_half_even(rows[kept]).tobytes()
    assert A.admitted_rows("vouched_mean", rows, 2, g, prev=(dots, sq)) == kept


def test_vouched_mean_never_leaves_out_more_than_f_nor_a_vouched_row():
    rows, prev = crowd(2, 10)
    dots, sq = anchor(rows, prev)
    g = gram_matrix(rows)
    assert W.vouched_rows(g, dots, sq, f=3) == list(range(10))  # all vouched: nobody out
    flipped = -rows.astype(np.int64)  # everyone opposes the history
    dots_f, _ = anchor(flipped.astype(np.int16), prev)
    kept = W.vouched_rows(gram_matrix(flipped.astype(np.int16)), dots_f, sq, f=3)
    assert len(kept) == 7  # at most f, however bad the round looks
    assert W.vouched_rows(g, dots, sq, f=20) == list(range(10))
    assert len(W.vouched_rows(g, dots, sq, f=20, drop_all=True)) == 1  # never every row


def test_vouched_drop_f_always_leaves_out_the_f_lowest():
    rows, prev = crowd(3, 9)
    dots, sq = anchor(rows, prev)
    g = gram_matrix(rows)
    x = W.vouch_numerators(g, dots, sq)
    scores = [x[i] / math.sqrt(g[i][i]) for i in range(9)]
    lowest = sorted(range(9), key=lambda i: scores[i])[:2]
    assert W.vouched_rows(g, dots, sq, f=2, drop_all=True) == sorted(set(range(9)) - set(lowest))


def test_history_decides_when_the_peers_alone_cannot():
    """Two rows oppose each other (victim and flipper): the public Δ_prev tells them apart."""
    rows, prev = crowd(4, 8)
    rows[5] = -rows[2]
    g = gram_matrix(rows)
    dots, sq = anchor(rows, prev)
    assert 5 not in W.vouched_rows(g, dots, sq, f=1) and 2 in W.vouched_rows(g, dots, sq, f=1)


def test_zero_rows_score_zero_and_ties_break_by_pubkey_order():
    g = [[0, 0, 0], [0, 0, 0], [0, 0, 9]]
    assert W.vouch_order(g, [0, 0, 0]) == [0, 1, 2]
    assert W.vouched_rows(g, [0, 0, 0], 0, f=1) == [1, 2]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.permutations(list(range(9))),
       st.sampled_from(A.VOUCHED), st.integers(0, 3))
def test_permuting_pubkeys_and_update_order_changes_nothing(seed, perm, rule, f):
    rows, prev = crowd(seed % 1000, 9)
    rng = np.random.default_rng(seed)
    rows[rng.integers(0, 9)] = -rows[rng.integers(0, 9)]
    params = V.SimParams(f=f, norm_bound=0, aggregator=rule)
    hist = V.History(prev, seed=b"\x05" * 32)
    k = KEYS[:9]
    a = V.judge_epoch(params, hist, k, rows)
    b = V.judge_epoch(params, hist, [k[i] for i in perm], rows[perm])
    assert [v.to_record() for v in a.verdicts] == [v.to_record() for v in b.verdicts]
    assert a.aggregate.tobytes() == b.aggregate.tobytes()
    assert a.reward_weights == b.reward_weights
    relabelled = [k[i] for i in perm]  # relabelling keys only moves verdicts with rows
    c = V.judge_epoch(params, hist, relabelled, rows).by_pubkey()
    first = a.by_pubkey()
    for i in range(9):
        assert c[relabelled[i]].verdict == first[k[i]].verdict


def test_judge_epoch_marks_left_out_rows_excluded_not_slashed():
    rows, prev = crowd(5, 10)
    rows[4] = -rows[1]
    j = V.judge_epoch(V.SimParams(f=2, aggregator="vouched_mean"), V.History(prev), KEYS[:10],
                      rows)
    v = j.by_pubkey()[KEYS[4]]
    assert v.verdict == V.EXCLUDED and v.slash is None and "not_admitted" in v.reasons
    assert all(x.slash is None for x in j.verdicts)
