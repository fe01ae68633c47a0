"""Named epoch steps, each tested on its own: pre-state -> step -> post-state.

Like consensus-specs' epoch-processing tests: a scenario is driven through real blocks up
to the moment a step runs (the *pre* state), then :func:`run_step` applies exactly one
named step to a copy and the test checks the *post* state against the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from stf_harness import Client, Harness, default_params

from state_machine import epochs, penalties
from state_machine.constants import (
    ABSENT_SLASH_BPS,
    BPS,
    FEE_PER_EPOCH,
    MIN_STAKE,
    PROTOCOL_FEE_BPS,
    SLASH_BPS,
    STAKE_AMOUNT,
)
from state_machine.economics import split_by_weight
from state_machine.penalties import SlashReason
from state_machine.state import EJECTED, State

D = 256
N = 7


def run_step(pre: State, step: Callable[[State], object]) -> State:
    """The shared runner: apply one step to a copy; the pre-state stays untouched."""
    post = pre.copy()
    before = pre.state_root()
    step(post)
    assert pre.state_root() == before
    return post


def _honest(rng, pks):
    base = rng.normal(0, 300, D)
    return {pk: (base + rng.normal(0, 300, D)).astype(np.int16) for pk in pks}


def started(voters: int = 0, n_clients: int = N, norm_bound: int = 0):
    h = Harness()
    clients = [Client.make(f"ep{i}") for i in range(n_clients)]
    g = np.zeros(D, dtype=np.int32)
    params = replace(default_params(D, g, proposers=N, f=1, voters=voters), norm_bound=norm_bound)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, params, max_epochs=3))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    return h, {c.pubkey: c for c in clients}


def revealed(h: Harness, by_pk, deltas: dict) -> None:
    """Commit and reveal ``deltas`` (None: stays silent); stop before the reveal closes."""
    ep = h.state.tasks[1].epoch
    sub = [pk for pk, d in deltas.items() if d is not None]
    h.block(*[h.commit(by_pk[pk], 1, ep, deltas[pk]) for pk in sub])
    if not h.block(h.advance(by_pk[sub[0]], 1, ep))[0].applied:
        h.until_phase_changes(1)
    h.block(*[h.reveal(by_pk[pk], 1, ep, deltas[pk]) for pk in sub])


def close_reveal(post: State) -> None:
    task = post.tasks[1]
    epochs.process_reveal_close(post, task, epochs.current_epoch(post, task), b"\x00" * 32)


# ---- process_reveal_close and its sub-steps


def test_slash_absent_only_the_silent_proposer_lightly():
    h, by_pk = started()
    ep = h.state.epochs[(1, 0)]
    deltas = _honest(np.random.default_rng(0), ep.proposers)
    silent = ep.proposers[3]
    deltas[silent] = None
    revealed(h, by_pk, deltas)

    def step(s: State) -> None:
        e = s.epochs[(1, 0)]
        epochs.slash_absent(s, e, e.proposers, e.updates, e.verdicts, SlashReason.ABSENT_PROPOSER)

    post = run_step(h.state, step)
    assert post.epochs[(1, 0)].slashes == [
        (silent, STAKE_AMOUNT * ABSENT_SLASH_BPS // BPS, "absent_proposer")
    ]
    assert post.epochs[(1, 0)].verdicts == {silent: "ABSENT"}


def test_reveal_close_slashes_evidence_aggregates_the_rest_and_records_weights():
    h, by_pk = started(norm_bound=20_000)
    ep = h.state.epochs[(1, 0)]
    deltas = _honest(np.random.default_rng(1), ep.proposers)
    zero, big = ep.proposers[1], ep.proposers[5]
    deltas[zero] = np.zeros(D, dtype=np.int16)
    deltas[big] = (deltas[big].astype(np.int32) * 30).clip(-32768, 32767).astype(np.int16)
    revealed(h, by_pk, deltas)
    post = run_step(h.state, close_reveal)
    e = post.epochs[(1, 0)]
    assert {pk: r for pk, _, r in e.slashes} == {zero: "zero_update", big: "norm_bound"}
    assert all(a == STAKE_AMOUNT * SLASH_BPS // BPS for _, a, _ in e.slashes)
    assert e.verdicts[zero] == "FREE_RIDER" and e.verdicts[big] == "NORM_VIOLATION"
    rest = sorted(set(ep.proposers) - {zero, big})
    want = np.rint(np.mean([deltas[pk] for pk in rest], axis=0))  # the default rule: mean
    assert np.abs(post.tasks[1].global_model - want).max() <= 1
    paid = {s["pubkey"] for s in e.scores if s["reward_weight"] > 0}
    assert paid <= set(rest) and zero not in e.rewards and big not in e.rewards


def test_reveal_close_with_too_few_updates_discards_and_slashes_nobody_for_it():
    h, by_pk = started()
    ep = h.state.epochs[(1, 0)]
    deltas = _honest(np.random.default_rng(2), ep.proposers)
    for pk in ep.proposers[:3]:
        deltas[pk] = None  # 4 < 2f + 3 = 5 reveals
    revealed(h, by_pk, deltas)
    post = run_step(h.state, close_reveal)
    e = post.epochs[(1, 0)]
    assert e.outcome == "discarded" and e.outcome_reason == "too_few_updates"
    assert {r for _, _, r in e.slashes} == {"absent_proposer"}
    assert sorted(v for v in e.verdicts.values() if v != "ABSENT") == ["UNSCORED"] * 4


def test_form_candidate_reports_int32_overflow():
    h, _ = started()
    task = h.state.tasks[1]
    task.global_model = np.full(D, 2**31 - 1, dtype=np.int32)
    ep = h.state.epochs[(1, 0)]
    assert epochs.form_candidate(task, ep, np.ones(D, dtype=np.int16)) == "int32_overflow"
    assert ep.candidate is None


def test_epoch_history_replayable_after_the_global_moves():
    h, by_pk = started()
    ep0 = h.state.epochs[(1, 0)]
    deltas = _honest(np.random.default_rng(3), ep0.proposers)
    revealed(h, by_pk, deltas)
    h.until_phase_changes(1)
    task = h.state.tasks[1]
    assert task.epoch == 1 and task.accepted_epochs == 1
    hist = epochs.epoch_history(h.state, task, h.state.epochs[(1, 1)])
    past = set(h.state.epochs[(1, 0)].update_hashes.values())
    assert past <= hist.replayable and task.prev_delta_hash in hist.replayable
    assert hist.public >= hist.replayable


# ---- process_vote_close and finalize_epoch


def _to_vote(voters: int = 3):
    h, by_pk = started(voters=voters, n_clients=N + voters)
    ep = h.state.epochs[(1, 0)]
    revealed(h, by_pk, _honest(np.random.default_rng(4), ep.proposers))
    h.until_phase_changes(1)
    assert h.state.tasks[1].phase == "vote_commit"
    return h, by_pk


def _votes(h: Harness, by_pk, votes: dict) -> None:
    h.block(*[h.commit_vote(by_pk[pk], 1, 0, *v) for pk, v in votes.items()])
    h.until_phase_changes(1)
    h.block(*[h.reveal_vote(by_pk[pk], 1, 0, *v) for pk, v in votes.items()])


def close_vote(post: State) -> None:
    task = post.tasks[1]
    epochs.process_vote_close(post, task, epochs.current_epoch(post, task), b"\x00" * 32)


def test_rejected_round_slashes_nobody_and_pays_no_proposer():
    h, by_pk = _to_vote()
    ep = h.state.epochs[(1, 0)]
    votes = {pk: (5000, 8000) for pk in ep.voters}
    dissenter = ep.voters[0]
    votes[dissenter] = (8100, 8000)  # +100 against the -3000 median
    _votes(h, by_pk, votes)
    post = run_step(h.state, close_vote)
    e = post.epochs[(1, 0)]
    assert e.outcome == "rejected"
    assert e.slashes == []  # v3: a dissenting vote is no evidence (non-IID test data)
    assert e.voter_verdicts[dissenter] == "DISAGREE"
    assert dissenter not in e.rewards  # it earns nothing instead
    assert post.accounts[dissenter].stake == STAKE_AMOUNT
    assert not set(e.rewards) & set(ep.proposers)
    assert set(e.rewards) == set(ep.voters) - {dissenter}


def test_a_colluding_stake_majority_cannot_slash_the_honest_voter():
    """Two of three voters lie; the honest one is on the other side of the median. It
    loses that epoch's voter reward, never stake."""
    h, by_pk = _to_vote()
    ep = h.state.epochs[(1, 0)]
    assert len(ep.voters) >= 3
    honest = ep.voters[0]
    votes = {pk: (2000, 8000) for pk in ep.voters}  # the colluders: "much worse"
    votes[honest] = (8500, 8000)
    _votes(h, by_pk, votes)
    post = run_step(h.state, close_vote)
    e = post.epochs[(1, 0)]
    assert e.outcome == "rejected" and e.slashes == []
    assert post.accounts[honest].cumulative_slashed == 0


def test_finalize_pays_proposers_by_contribution_weight():
    h, by_pk = started()
    ep = h.state.epochs[(1, 0)]
    revealed(h, by_pk, _honest(np.random.default_rng(5), ep.proposers))
    post = run_step(h.state, close_reveal)  # no committee: finalizes
    e = post.epochs[(1, 0)]
    weights = epochs.proposer_weights(e)
    assert weights and all(w > 0 for _, w in weights)
    pool = FEE_PER_EPOCH - FEE_PER_EPOCH * PROTOCOL_FEE_BPS // BPS
    want, _ = split_by_weight(pool, weights)
    assert e.rewards == want
    assert sum(e.rewards.values()) + e.treasury == FEE_PER_EPOCH


# ---- penalties


def test_penalty_table_and_ejection():
    assert penalties.penalty_amount(SlashReason.REPLAY, 10**18) == 10**18 * SLASH_BPS // BPS
    assert penalties.penalty_amount(SlashReason.ABSENT_VOTER, 10**18) == 10**16
    assert "disagreeing_voter" not in {r.value for r in SlashReason}  # v3
    assert set(penalties.SLASH_BPS_BY_REASON) == set(SlashReason)
    h, _ = started()
    pk = h.state.epochs[(1, 0)].proposers[0]

    def step(s: State) -> None:
        s.accounts[pk].stake = MIN_STAKE
        penalties.apply_penalty(s, s.epochs[(1, 0)], pk, SlashReason.DUPLICATE)

    post = run_step(h.state, step)
    acc = post.accounts[pk]
    assert acc.stake == MIN_STAKE - MIN_STAKE * SLASH_BPS // BPS and acc.status == EJECTED


def test_task_params_carry_a_known_aggregator_and_a_bounded_norm_bound():
    from state_machine import codec
    from state_machine.constants import MAX_NORM_BOUND
    from state_machine.tasks import TaskParamsError, decode_task_params

    good = default_params(D, np.zeros(D, dtype=np.int32))
    assert decode_task_params(good.encode()) == good
    for field, value in (("aggregator", "krum2"), ("norm_bound", MAX_NORM_BOUND + 1)):
        raw = {**good.to_record(), field: value}
        with pytest.raises(TaskParamsError):
            decode_task_params(codec.encode(raw))
