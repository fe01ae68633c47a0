"""recorded_vouched_mean (issue 10): caught opposing the first step, held while out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state_machine import aggregation as A
from state_machine import fresh_vouching as FV
from state_machine import recorded_vouching as RV
from state_machine import verdicts as V
from state_machine.constants import AGGREGATORS
from tests.state_machine.test_fresh_vouching import KEYS, epoch

RULE = "recorded_vouched_mean"


def gram_of(rows: np.ndarray) -> list[list[int]]:
    r = rows.astype(np.int64)
    return (r @ r.T).tolist()


def test_registered_and_named_in_the_rule_lists():
    assert RULE in AGGREGATORS
    assert RULE in A.RECORDED and RULE in A.FRESH_VOUCHED and RULE in A.ANCHORED


def test_a_task_cannot_name_it_on_chain():
    """The STF keeps no record yet: a task naming the rule would silently get
    fresh_vouched_mean, so task params refuse it (simulations only)."""
    from dataclasses import asdict, replace

    from state_machine import codec
    from state_machine.constants import TASK_AGGREGATORS
    from state_machine.tasks import TaskParamsError, decode_task_params
    from tests.stf_harness import default_params

    assert RULE not in TASK_AGGREGATORS and "fresh_vouched_mean" in TASK_AGGREGATORS
    ok = default_params(4, np.zeros(4, dtype=np.int32))
    assert decode_task_params(codec.encode(asdict(ok))) == ok
    bad = codec.encode(asdict(replace(ok, aggregator=RULE)))
    with pytest.raises(TaskParamsError, match="aggregator must be one of"):
        decode_task_params(bad)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 9), st.integers(0, 4), st.booleans())
def test_without_a_record_it_is_fresh_vouched_mean(seed, k, f, with_prev):
    rng = np.random.default_rng(seed)
    rows = rng.integers(-50, 50, size=(k + 1, 12))
    g = gram_of(rows[:k])
    p = rows[k] if with_prev else np.zeros(12, dtype=np.int64)
    dots, sq = [int(x @ p) for x in rows[:k]], int(p @ p)
    stale = [bool(b) for b in rng.integers(0, 2, k)]
    for flags in (None, stale):
        assert RV.select(g, dots, sq, f, flags, [False] * k) == FV.select(g, dots, sq, f, flags)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 9), st.integers(0, 4))
def test_at_most_f_fresh_rows_out_and_recorded_rows_go_first(seed, k, f):
    rng = np.random.default_rng(seed)
    rows = rng.integers(-50, 50, size=(k + 1, 12))
    g = gram_of(rows[:k])
    dots, sq = [int(x @ rows[k]) for x in rows[:k]], int(rows[k] @ rows[k])
    stale = [bool(b) for b in rng.integers(0, 4, k) == 0]
    rec = [bool(b) for b in rng.integers(0, 2, k)]
    kept = RV.select(g, dots, sq, f, stale, rec)
    live = [i for i in range(k) if not stale[i]] or list(range(k))
    out = [i for i in live if i not in kept]
    assert kept and set(kept) <= set(live)
    assert len(out) <= min(f, len(live) - 1)
    # the budget goes to recorded rows before any unrecorded one
    if any(not rec[i] for i in out):
        assert all(i not in kept for i in live if rec[i])


def test_a_held_row_is_out_although_the_anchor_vouches_for_it():
    # row 3 agrees with Δ_prev (the anchor vouches) and mildly with the peers
    g = [[9, 3, 3, 1], [3, 9, 3, 1], [3, 3, 9, 1], [1, 1, 1, 9]]
    dots, sq = [3, 3, 3, 6], 9
    assert FV.select(g, dots, sq, 1, None) == [0, 1, 2, 3]  # nobody is <= 0
    assert RV.select(g, dots, sq, 1, None, [False, False, False, True]) == [0, 1, 2]
    assert RV.select(g, dots, sq, 0, None, [False, False, False, True]) == [0, 1, 2, 3]
    # two recorded rows, budget 1: the lower vouch score is held. x_0 = 7 + 4 * 3 = 19,
    # x_3 = 3 + 4 * 4 = 19 (both |d| = 3): a tie, the lower pubkey (row 0) is held
    assert RV.select(g, dots, sq, 1, None, [True, False, False, True]) == [1, 2, 3]
    g2 = [row[:] for row in g]
    g2[3][1] = g2[1][3] = 2  # one more agreeing peer for row 3: row 0 is the lower
    assert RV.select(g2, dots, sq, 1, None, [True, False, False, True]) == [1, 2, 3]
    g2[0][1] = g2[1][0] = 4  # row 0: 8 + 12 = 20, row 3: 4 + 16 = 20, a tie again
    assert RV.select(g2, dots, sq, 1, None, [True, False, False, True]) == [1, 2, 3]
    g2[0][2] = g2[2][0] = 4  # row 0: 21 > 20: row 3 is the lower and is held
    assert RV.select(g2, dots, sq, 1, None, [True, False, False, True]) == [0, 1, 2]


def test_entry_at_cos_minus_a_quarter_exactly():
    # |d|^2 = 16, |S|^2 = 16: <d, S> = -4 is cos -1/4 (enters), -3 is not
    assert RV.opposes(-4, 16, 16) and not RV.opposes(-3, 16, 16)
    assert not RV.opposes(4, 16, 16) and not RV.opposes(0, 16, 0)


def test_next_record_enters_by_opposing_the_step_and_persists_while_held():
    keys = KEYS[:4]
    # rows 0, 1 kept (S = d0 + d1); row 2 opposes S (and rows 0, 1); row 3 is orthogonal
    rows = np.array([[4, 0, 0], [4, 1, 0], [-4, -1, 0], [0, 0, 5]])
    g = gram_of(rows)
    out = [False, False, True, True]
    assert RV.next_record(keys, g, [0, 1], out, frozenset()) == {keys[2]}
    # row 3 held (on the record and left out): stays; a kept row leaves the record
    assert RV.next_record(keys, g, [0, 1], out, frozenset({keys[3], keys[0]})) == {
        keys[2], keys[3]}
    # an epoch with Δ_prev adds nobody (entry only in the first scored epoch); held stay
    assert RV.next_record(keys, g, [0, 1], out, frozenset(), anchored=True) == frozenset()
    assert RV.next_record(keys, g, [0, 1], out, frozenset({keys[3]}), anchored=True) == {
        keys[3]}
    # opposing the step but no single row at cos <= -1/3: not recorded
    rows2 = np.array([[4, 0, 0, 0], [0, 4, 0, 0], [-1, -1, 3, 0], [0, 0, 0, 5]])
    assert RV.next_record(keys, gram_of(rows2), [0, 1], out, frozenset()) == frozenset()
    rows2[2] = [-3, -1, 2, 0]  # cos with row 0 = -3/sqrt(14) < -1/3: recorded
    assert RV.next_record(keys, gram_of(rows2), [0, 1], out, frozenset()) == {keys[2]}
    # nobody left out: empty record
    assert RV.next_record(keys, g, [0, 1, 2, 3], [False] * 4, frozenset(keys)) == frozenset()


def test_judge_epoch_holds_the_recorded_key_and_never_slashes():
    rows, prev, past = epoch(5)
    hist = V.History(prev, past_updates=past)
    base = V.judge_epoch(V.SimParams(f=2, aggregator="fresh_vouched_mean"), hist, KEYS[:10], rows)
    same = V.judge_epoch(V.SimParams(f=2, aggregator=RULE), hist, KEYS[:10], rows)
    assert [v.to_record() for v in base.verdicts] == [v.to_record() for v in same.verdicts]
    kept = [v.pubkey for v in base.verdicts if v.verdict == V.ACCEPTED]
    target = kept[-1]
    rec = V.History(prev, past_updates=past, suspects=frozenset({target}))
    j = V.judge_epoch(V.SimParams(f=2, aggregator=RULE), rec, KEYS[:10], rows)
    v = j.by_pubkey()
    assert v[target].verdict == V.EXCLUDED and "not_admitted" in v[target].reasons
    assert all(x.slash is None for x in j.verdicts)
    out = [x for x in j.verdicts if x.verdict == V.EXCLUDED and not x.slash]
    stale = [x for x in base.verdicts if x.verdict == V.EXCLUDED]
    assert len(out) <= 2 + len(stale)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.permutations(list(range(10))), st.integers(0, 3),
       st.sampled_from([None, 7, 64]), st.sets(st.integers(0, 9), max_size=4))
def test_any_row_order_and_tile_width_give_the_same_verdicts_and_bits(seed, perm, f, cols,
                                                                      recorded):
    rows, prev, past = epoch(seed % 1000)
    k = KEYS[:10]
    hist = V.History(prev, past_updates=past, suspects=frozenset(k[i] for i in recorded))
    params = V.SimParams(f=f, aggregator=RULE)
    a = V.judge_epoch(params, hist, k, rows)
    b = V.judge_epoch(params, hist, [k[i] for i in perm], rows[perm], cols=cols)
    assert [v.to_record() for v in a.verdicts] == [v.to_record() for v in b.verdicts]
    assert a.aggregate.tobytes() == b.aggregate.tobytes()
    assert a.reward_weights == b.reward_weights
    g = gram_of(rows)
    kept = [i for i, v in enumerate(a.verdicts) if v.verdict == V.ACCEPTED]
    ex = ["not_admitted" in v.reasons for v in a.verdicts]
    gp = gram_of(rows[perm])
    kept_p = [perm.index(i) for i in kept]
    ex_p = [ex[i] for i in perm]
    assert RV.next_record(k, g, kept, ex, hist.suspects) == RV.next_record(
        [k[i] for i in perm], gp, kept_p, ex_p, hist.suspects)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 9), st.sets(st.integers(0, 8)))
def test_after_the_first_epoch_the_record_only_shrinks(seed, k, rec_idx):
    rng = np.random.default_rng(seed)
    rows = rng.integers(-50, 50, size=(k, 8))
    g = gram_of(rows)
    keys = KEYS[:k]
    record = frozenset(keys[i] for i in rec_idx if i < k)
    kept = sorted(int(i) for i in rng.choice(k, size=max(1, k // 2), replace=False))
    out = [i not in kept for i in range(k)]
    later = RV.next_record(keys, g, kept, out, record, anchored=True)
    assert later == {keys[i] for i in range(k) if out[i] and keys[i] in record}
    first = RV.next_record(keys, g, kept, out, record)
    assert later <= first and all(out[keys.index(x)] for x in first)
