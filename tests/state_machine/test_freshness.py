"""Freshness gate on rewards (issue 10): a jittered copy of a public past update earns ~0."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import freshness as F
from state_machine import verdicts as V
from state_machine.scoring import gram_matrix

D = 400
KEYS = [bytes([i + 1]) * 32 for i in range(12)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(0, 5), st.booleans())
def test_fresh_gram_is_the_residual_gram_up_to_a_positive_scale(seed, k, m, dependent):
    rng = np.random.default_rng(seed)
    d = 12
    rows = rng.integers(-50, 50, (k, d))
    past = rng.integers(-50, 50, (m, d))
    if dependent and m >= 2:
        past[1] = 2 * past[0]  # a past vector already in the span: skipped pivot
    if m:
        past[-1] = 0 if dependent else past[-1]
    g = gram_matrix(np.vstack([rows, past]).astype(np.int16))
    fresh, rank, c = F.fresh_gram(g, k)
    basis = past[np.abs(past).sum(1) > 0].astype(np.float64)
    if len(basis):
        _, sv, vt = np.linalg.svd(basis, full_matrices=False)
        q = vt[sv > 1e-9 * sv.max()].T
        res = rows - (rows @ q) @ q.T
    else:
        q, res = np.zeros((d, 0)), rows.astype(np.float64)
    want = res @ res.T
    assert rank == q.shape[1]
    assert c > 0
    assert np.allclose(np.array(fresh, dtype=float) / c, want, rtol=1e-6, atol=1e-6)
    assert all(fresh[i][i] >= 0 for i in range(k))


def test_a_copy_of_a_past_update_has_no_fresh_part_and_no_fresh_peer():
    rng = np.random.default_rng(1)
    past = rng.integers(-300, 300, (3, D))
    rows = np.vstack([past[0], rng.integers(-300, 300, (2, D))])
    fresh, rank, c = F.fresh_gram(gram_matrix(np.vstack([rows, past]).astype(np.int16)), 3)
    assert rank == 3 and fresh[0][0] == 0
    assert not F.has_fresh_peer(fresh, 0, D - rank)
    assert not F.is_fresh((fresh, rank, c), 0, int((rows[0] ** 2).sum()), D)


def test_fresh_enough_is_more_than_five_percent_of_the_norm():
    # |r|^2 / |d|^2 = 1/400 exactly is a copy of the past; just above is fresh
    assert not F.fresh_enough(fresh_ii=7 * 1, scale=7, norm_sq=400)
    assert F.fresh_enough(fresh_ii=7 * 2, scale=7, norm_sq=401)
    assert not F.fresh_enough(fresh_ii=0, scale=1, norm_sq=1)


def test_fresh_peer_needs_agreement_beyond_three_sigmas_of_chance():
    # cos(a, b) exactly 0.3 vs the chance level 3 / sqrt(dim)
    fresh = [[100, 30], [30, 100]]
    assert F.has_fresh_peer(fresh, 0, 101)  # 3/sqrt(101) = 0.299 <= 0.3
    assert not F.has_fresh_peer(fresh, 0, 99)  # 3/sqrt(99) = 0.302 > 0.3
    assert not F.has_fresh_peer([[100, -30], [-30, 100]], 0, 10**6)  # opposition never


def world(seed: int = 2):
    """Last round's public updates, a Δ_prev, and this round: 7 honest + 1 jittered copy."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, D)
    group = [rng.normal(0, 1, D) for _ in range(4)]  # class-mates share a direction
    own = [group[i // 2] + 0.5 * rng.normal(0, 1, D) for i in range(8)]
    drift = rng.normal(0, 1, D)  # what this round's training adds for everyone

    def upd(i: int, t: int) -> np.ndarray:
        return 80 * common + 150 * own[i] + t * (60 * drift + 60 * rng.normal(0, 1, D))

    past = np.stack([upd(i, 0) for i in range(8)]).astype(np.int16)
    prev = past.astype(np.int64).mean(0).astype(np.int16)
    rows = np.stack([upd(i, 1) for i in range(8)]).astype(np.int16)
    jitter = rng.normal(0, 0.01 * np.sqrt((past[7].astype(float) ** 2).mean()), D)
    rows[7] = (past[7] + jitter).astype(np.int16)  # stale copy with 1 % jitter
    return rows, past, prev


def test_jittered_stale_copy_is_unpaid_only_with_the_past_updates():
    rows, past, prev = world()
    params = V.SimParams(f=1, norm_bound=0, aggregator="mean")
    without = V.judge_epoch(params, V.History(prev), KEYS[:8], rows).by_pubkey()
    assert without[KEYS[7]].reward_weight > 0  # the old rule pays the copy
    gated = V.judge_epoch(params, V.History(prev, past_updates=past), KEYS[:8], rows).by_pubkey()
    assert gated[KEYS[7]].reward_weight == 0
    assert all(gated[KEYS[i]].reward_weight > 0 for i in range(7))
    assert all(gated[KEYS[i]].reward_weight == without[KEYS[i]].reward_weight for i in range(7))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**16), st.permutations(list(range(8))))
def test_freshness_is_independent_of_update_order(seed, perm):
    rows, past, prev = world(seed)
    params = V.SimParams(f=1, norm_bound=0, aggregator="vouched_mean")
    h = V.History(prev, past_updates=past)
    a = V.judge_epoch(params, h, KEYS[:8], rows)
    b = V.judge_epoch(params, h, [KEYS[i] for i in perm], rows[perm])
    assert a.reward_weights == b.reward_weights
    assert [v.to_record() for v in a.verdicts] == [v.to_record() for v in b.verdicts]
