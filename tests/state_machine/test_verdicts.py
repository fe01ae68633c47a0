"""Verdicts v2: one test (or more) per rule, framing attempts, and permutation properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import verdicts as V
from state_machine.constants import AGGREGATORS
from state_machine.penalties import SlashReason
from state_machine.scoring import gram_matrix

D = 512


def keys(n: int) -> list[bytes]:
    return [bytes([i + 1]) * 32 for i in range(n)]


def honest(rng: np.random.Generator, n: int, base: np.ndarray | None = None) -> np.ndarray:
    base = rng.normal(0, 300, D) if base is None else base
    return np.stack([(base + rng.normal(0, 300, D)).astype(np.int16) for _ in range(n)])


def hist(prev: np.ndarray | None = None, replayable=(), public=()) -> V.History:
    p = np.zeros(D, dtype=np.int16) if prev is None else prev
    pub = frozenset(public) | frozenset(replayable)
    return V.History(p, frozenset(replayable), pub, b"\x07" * 32)


PARAMS = V.SimParams(f=1, norm_bound=20_000, aggregator="mean")


# ---- step 1: evidence, one rule at a time


def test_norm_violation_only_above_a_declared_bound():
    assert V.norm_violations([100, 101, 0], 10) == [False, True, False]
    assert V.norm_violations([10**12], 0) == [False]  # no bound declared: never


def test_zero_update_is_exactly_zero_norm():
    assert V.zero_updates([0, 1, 5]) == [True, False, False]


def test_replay_is_bit_identical_match_against_replayable_history():
    h = hist(replayable={b"a"}, public={b"b"})
    assert V.replays([b"a", b"b", b"c"], h) == [True, False, False]


def test_near_duplicate_threshold_is_relative_distance_five_percent():
    assert V.near_duplicate(25, 10_000, 10_000)  # |a-b|^2 = |a|^2 / 400
    assert not V.near_duplicate(26, 10_000, 10_000)
    assert not V.near_duplicate(0, 0, 0)  # zero rows are the zero rule's business


def test_same_round_copies_from_two_keys_are_both_slashed():
    rng = np.random.default_rng(1)
    rows = honest(rng, 6)
    rows[4] = (rows[1].astype(np.int32) + rng.integers(-2, 3, D)).astype(np.int16)
    j = V.judge_epoch(PARAMS, hist(), keys(6), rows)
    got = {v.pubkey: v for v in j.verdicts}
    k = keys(6)
    assert got[k[1]].slash is got[k[4]].slash is SlashReason.DUPLICATE
    assert got[k[1]].duplicate_of == [k[4]]
    assert all(got[x].slash is None for x in k if x not in (k[1], k[4]))


def test_framing_by_replaying_a_victims_past_update_hits_only_the_replayer():
    rng = np.random.default_rng(2)
    past = honest(rng, 6)
    now = honest(rng, 6)
    victim_past = past[2]
    # the victim's fresh update happens to be very close to its past one (worst case)
    now[2] = (victim_past.astype(np.int32) + rng.integers(-1, 2, D)).astype(np.int16)
    now[5] = victim_past  # the framer replays the public bytes exactly
    h = hist(replayable={V.delta_hash(r) for r in past})
    j = V.judge_epoch(PARAMS, h, keys(6), now)
    assert j.verdicts[5].slash is SlashReason.REPLAY
    assert j.verdicts[2].slash is None  # the pair is exempt: one side is public bytes
    assert "copy_of_public_update" in j.verdicts[2].reasons
    assert j.verdicts[2].verdict == V.EXCLUDED  # costs the victim at most this reward


def test_updates_revealed_against_the_same_global_are_public_not_replays():
    rng = np.random.default_rng(3)
    rows = honest(rng, 5)
    h = hist(public={V.delta_hash(rows[0])})  # e.g. a discarded epoch, same global model
    j = V.judge_epoch(PARAMS, h, keys(5), rows)
    assert all(v.slash is None for v in j.verdicts)


def test_precedence_norm_then_zero_then_replay_then_duplicate():
    order = list(V.VERDICT_OF)
    assert order == [
        SlashReason.NORM_BOUND,
        SlashReason.ZERO_UPDATE,
        SlashReason.REPLAY,
        SlashReason.DUPLICATE,
    ]
    rng = np.random.default_rng(4)
    rows = honest(rng, 5)
    rows[3] = (rows[0].astype(np.int32) * 40).clip(-32768, 32767).astype(np.int16)
    rows[4] = rows[3]  # a same-round copy that also breaks the bound
    j = V.judge_epoch(PARAMS, hist(), keys(5), rows)
    assert j.verdicts[3].slash is SlashReason.NORM_BOUND
    assert j.verdicts[3].reasons == ["norm_bound", "duplicate"]


# ---- step 2: aggregate


def test_aggregate_is_the_rule_over_rows_without_evidence_and_f_shrinks():
    rng = np.random.default_rng(5)
    rows = honest(rng, 7)
    rows[0] = 0
    params = V.SimParams(f=2, norm_bound=0, aggregator="multi_krum")
    j = V.judge_epoch(params, hist(), keys(7), rows)
    assert j.verdicts[0].verdict == V.FREE_RIDER
    # f left = 1 for the 6 candidates: Multi-Krum keeps 5 of them
    assert j.numbers["admitted"] == 5
    assert sum(v.verdict == V.EXCLUDED for v in j.verdicts) == 1


def test_nothing_admitted_gives_no_aggregate():
    rows = np.zeros((5, D), dtype=np.int16)
    j = V.judge_epoch(PARAMS, hist(), keys(5), rows)
    assert j.aggregate is None and j.reward_weights == []


# ---- step 3: rewards


def test_noise_and_small_noise_earn_nothing():
    rng = np.random.default_rng(6)
    base = rng.normal(0, 300, D)
    rows = honest(rng, 8, base)
    prev = (0.5 * base + rng.normal(0, 300, D)).astype(np.int16)  # last step, partly along
    rows[5] = rng.normal(0, 400, D).astype(np.int16)  # noise at the honest norm
    rows[6] = rng.normal(0, 300, D).astype(np.int16)  # noise below the honest norm
    rows[7] = (rng.normal(0, 20, D)).astype(np.int16)  # small noise
    j = V.judge_epoch(V.SimParams(f=1), hist(prev), keys(8), rows)
    w = {v.pubkey: v.reward_weight for v in j.verdicts}
    k = keys(8)
    honest_avg = sum(w[k[i]] for i in range(5)) / 5
    assert honest_avg > 0
    for i in (5, 6, 7):
        assert w[k[i]] < 0.05 * honest_avg, i


def test_leave_one_out_own_size_buys_nothing():
    # two orthogonal updates: each agrees with nobody, so neither is paid for its size
    a = np.zeros(D, dtype=np.int16)
    b = np.zeros(D, dtype=np.int16)
    a[0], b[1] = 1000, 1000
    g = gram_matrix(np.stack([a, b, np.zeros(D, dtype=np.int16)]))
    assert V.contribution_weights(g, [0, 1], D) == [0, 0]
    assert V.pair_credit(100, 100, 100) == 50 and V.pair_credit(-7, 100, 100) == -7


# ---- determinism


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**32 - 1),
    st.permutations(list(range(8))),
    st.sampled_from(AGGREGATORS),
)
def test_no_permutation_of_update_order_changes_a_verdict(seed, perm, rule):
    rng = np.random.default_rng(seed)
    rows = honest(rng, 8)
    rows[0] = 0
    rows[3] = rows[1]
    rows[6] = (rows[2].astype(np.int32) * 30).clip(-32768, 32767).astype(np.int16)
    params = V.SimParams(f=1, norm_bound=20_000, aggregator=rule)
    k = keys(8)
    a = V.judge_epoch(params, hist(), k, rows)
    b = V.judge_epoch(params, hist(), [k[i] for i in perm], rows[perm])
    assert [v.to_record() for v in a.verdicts] == [v.to_record() for v in b.verdicts]
    assert np.array_equal(a.aggregate, b.aggregate)
    assert a.reward_weights == b.reward_weights


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.permutations(list(range(6))))
def test_relabelling_pubkeys_moves_verdicts_with_their_updates(seed, perm):
    """Which key sends an update changes nothing but the label on its verdict."""
    rng = np.random.default_rng(seed)
    rows = honest(rng, 6)
    rows[2] = 0
    rows[4] = rows[1]
    k = keys(6)
    relabelled = [k[i] for i in perm]
    a = V.judge_epoch(PARAMS, hist(), k, rows).by_pubkey()
    b = V.judge_epoch(PARAMS, hist(), relabelled, rows).by_pubkey()
    for i in range(6):
        va, vb = a[k[i]], b[relabelled[i]]
        assert (va.verdict, va.slash, va.norm_sq) == (vb.verdict, vb.slash, vb.norm_sq)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        V.judge_epoch(PARAMS, hist(), keys(2) + keys(1), np.zeros((3, D), dtype=np.int16))
    with pytest.raises(ValueError):
        V.judge_epoch(PARAMS, hist(np.zeros(3, dtype=np.int16)), keys(3), np.zeros((3, D)))


def test_disguised_free_rider_is_not_paid_for_the_previous_step():
    rng = np.random.default_rng(7)
    prev = rng.normal(0, 300, D).astype(np.int16)
    base = 0.8 * prev + rng.normal(0, 200, D)  # this round's consensus: mostly Δ_prev again
    rows = honest(rng, 8, base)
    rows[7] = (prev.astype(np.int32) + rng.normal(0, 300, D)).astype(np.int16)  # Δ + noise
    j = V.judge_epoch(V.SimParams(f=1), hist(prev), keys(8), rows)
    w = [v.reward_weight for v in j.verdicts]
    assert w[7] == 0 and all(x > 0 for x in w[:7])
    res = V.residual_gram(gram_matrix(np.vstack([rows, prev[None, :]])), list(range(8)))
    assert not V.has_novel_peer(res, 7) and V.has_novel_peer(res, 0)
