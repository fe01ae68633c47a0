"""Epoch lifecycle: selection, phase deadlines, scoring, voting and finalization (SPEC §3).

Why phases advance at block start: a phase ends at a fixed height, so the first block past
the deadline processes it before any action (like consensus-specs' ``process_slots``),
whether or not anyone sends ``advance``. ``advance`` closes a phase early once every
selected participant has acted, which is safe because nobody else may act in it.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from state_machine import scoring, voting
from state_machine.aggregation import AggregationError, apply_delta, mean_round_half_even
from state_machine.constants import ABSENT_SLASH_BPS, MIN_STAKE, REJECT_SLASH_BPS, SLASH_BPS
from state_machine.crypto import abi_uint, keccak256
from state_machine.economics import epoch_payout, slash_amount
from state_machine.randomness import epoch_seed
from state_machine.state import (
    ACTIVE,
    DONE,
    EJECTED,
    TASK_COMPLETED,
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    WAITING_CLIENTS,
    EpochState,
    State,
    Task,
    model_hash,
)


def selection_seed(state_root: bytes, task_id: int, epoch: int) -> bytes:
    """keccak256(state_root_at_open || task_id || epoch), integers as uint256 words."""
    return keccak256(state_root, abi_uint(task_id), abi_uint(epoch))


def eligible_clients(state: State) -> list[bytes]:
    """Active, not ejected, stake at least MIN_STAKE; pubkey order."""
    return sorted(
        pk for pk, a in state.accounts.items() if a.status == ACTIVE and a.stake >= MIN_STAKE
    )


def select(seed: bytes, pubkeys: list[bytes], n_prop: int, n_vote: int) -> tuple[list, list]:
    """Order by keccak256(seed || pubkey) (ties by pubkey); first proposers, next voters."""
    ranked = sorted(pubkeys, key=lambda pk: (keccak256(seed, pk), pk))
    proposers = sorted(ranked[:n_prop])
    voters = sorted(ranked[n_prop : n_prop + n_vote])
    return proposers, voters


def can_open(state: State, task: Task) -> bool:
    p = task.params
    assert p is not None
    need = 2 * p.f + 3 + (1 if p.voters_per_epoch > 0 else 0)
    return len(eligible_clients(state)) >= need


def open_epoch(state: State, task: Task, pre_root: bytes) -> None:
    """Start epoch ``task.epoch`` at the current height with a fresh selection."""
    p = task.params
    assert p is not None
    seed = epoch_seed(state, pre_root, task.task_id, task.epoch)
    proposers, voters = select(
        seed, eligible_clients(state), p.proposers_per_epoch, p.voters_per_epoch
    )
    ep = EpochState(
        task_id=task.task_id,
        epoch=task.epoch,
        open_height=state.height,
        seed=seed,
        proposers=proposers,
        voters=voters,
        global_before=task.global_hash,
    )
    state.add_epoch(ep)
    _enter(state, task, ep, UPDATE_COMMIT, p.commit_window)


def _enter(state: State, task: Task, ep: EpochState, phase: str, window: int) -> None:
    task.phase = phase
    task.phase_deadline = state.height + window
    ep.phase_log.append((phase, state.height))
    state.touch_task(task.task_id)
    state.touch_epoch(ep.task_id, ep.epoch)


def current_epoch(state: State, task: Task) -> EpochState:
    return state.epochs[(task.task_id, task.epoch)]


def slash(state: State, ep: EpochState, pubkey: bytes, amount: int, reason: str) -> None:
    """Move ``amount`` wei from stake to cumulative_slashed; eject below MIN_STAKE."""
    acc = state.accounts[pubkey]
    amount = min(amount, acc.stake)
    if amount <= 0:
        return
    acc.stake -= amount
    acc.cumulative_slashed += amount
    if acc.stake < MIN_STAKE and acc.status == ACTIVE:
        acc.status = EJECTED
    ep.slashes.append((pubkey, amount, reason))
    state.touch_account(pubkey)


def phase_complete(task: Task, ep: EpochState) -> bool:
    """True when every selected participant of the current phase has acted."""
    if task.phase == UPDATE_COMMIT:
        return len(ep.update_commits) == len(ep.proposers)
    if task.phase == UPDATE_REVEAL:
        return len(ep.update_hashes) == len(ep.update_commits)
    if task.phase == VOTE_COMMIT:
        return len(ep.vote_commits) == len(ep.voters)
    if task.phase == VOTE_REVEAL:
        return len(ep.votes) == len(ep.vote_commits)
    return False


def close_phase(state: State, task: Task, pre_root: bytes) -> None:
    """End the current phase of ``task`` and enter the next one."""
    p = task.params
    assert p is not None
    ep = current_epoch(state, task)
    if task.phase == UPDATE_COMMIT:
        if ep.update_commits:
            _enter(state, task, ep, UPDATE_REVEAL, p.reveal_window)
        else:
            _score(state, task, ep, pre_root)
    elif task.phase == UPDATE_REVEAL:
        _score(state, task, ep, pre_root)
    elif task.phase == VOTE_COMMIT:
        if ep.vote_commits:
            _enter(state, task, ep, VOTE_REVEAL, p.vote_reveal_window)
        else:
            _tally(state, task, ep, pre_root)
    elif task.phase == VOTE_REVEAL:
        _tally(state, task, ep, pre_root)
    else:  # pragma: no cover - callers check
        raise AssertionError(task.phase)


def _slash_absent(
    state: State,
    ep: EpochState,
    selected: list[bytes],
    acted: Collection[bytes],
    verdicts: dict[bytes, str],
    reason: str,
) -> None:
    """Every selected participant who did not act gets ``ABSENT`` and ABSENT_SLASH_BPS."""
    for pk in selected:
        if pk not in acted:
            verdicts[pk] = scoring.ABSENT
            slash(state, ep, pk, slash_amount(state.accounts[pk].stake, ABSENT_SLASH_BPS), reason)


def _score(state: State, task: Task, ep: EpochState, pre_root: bytes) -> None:
    """SPEC §5-§6 at the first block after the reveal deadline."""
    p = task.params
    assert p is not None and task.global_model is not None and task.prev_delta is not None
    revealed = sorted(ep.updates)
    _slash_absent(state, ep, ep.proposers, ep.updates, ep.verdicts, "absent_proposer")
    if len(revealed) < 2 * p.f + 3:
        for pk in revealed:
            ep.verdicts[pk] = "UNSCORED"
        ep.updates = {}
        _finalize(state, task, ep, accepted=False, reason="too_few_updates", pre_root=pre_root)
        return
    deltas = np.stack([ep.updates[pk] for pk in revealed])
    result = scoring.score_updates(revealed, deltas, task.prev_delta, p.f)
    ep.scores = [s.to_record() for s in result.scores]
    ep.medians = {
        "krum": result.median_krum,
        "norm_sq": result.median_norm_sq,
        "prev_norm_sq": result.prev_norm_sq,
    }
    for s in result.scores:
        ep.verdicts[s.pubkey] = s.verdict
        if s.verdict in scoring.SLASHABLE_VERDICTS:
            amount = slash_amount(state.accounts[s.pubkey].stake, SLASH_BPS)
            slash(state, ep, s.pubkey, amount, s.verdict.lower())
    accepted = result.accepted_indices()
    ep.updates = {}  # served from blobs/DA from now on; the STF no longer needs them
    if not accepted:
        _finalize(state, task, ep, accepted=False, reason="no_accepted_update", pre_root=pre_root)
        return
    delta = mean_round_half_even(deltas[accepted] if len(accepted) < len(revealed) else deltas)
    try:
        candidate = apply_delta(task.global_model, delta)
    except AggregationError:
        _finalize(state, task, ep, accepted=False, reason="int32_overflow", pre_root=pre_root)
        return
    ep.candidate, ep.candidate_delta = candidate, delta
    ep.candidate_hash = model_hash(candidate)
    state.touch_epoch(ep.task_id, ep.epoch)
    if p.voters_per_epoch > 0 and ep.voters:
        _enter(state, task, ep, VOTE_COMMIT, p.vote_commit_window)
    else:
        _finalize(state, task, ep, accepted=True, reason="no_committee", pre_root=pre_root)


def _tally(state: State, task: Task, ep: EpochState, pre_root: bytes) -> None:
    """SPEC §7: aggregate the revealed votes, slash absent and disagreeing voters."""
    _slash_absent(state, ep, ep.voters, ep.votes, ep.voter_verdicts, "absent_voter")
    if not ep.votes:
        _finalize(state, task, ep, accepted=False, reason="no_votes", pre_root=pre_root)
        return
    votes = [
        voting.Vote(pk, state.accounts[pk].stake, a, b) for pk, (a, b) in sorted(ep.votes.items())
    ]
    result = voting.tally(votes)
    ep.aggregate = result.aggregate
    weights = []
    for o in result.outcomes:
        ep.voter_verdicts[o.pubkey] = "AGREE" if o.agrees else "DISAGREE"
        if o.agrees:
            weights.append((o.pubkey, o.reward_weight))
        else:
            amount = voting.voter_slash_amount(state.accounts[o.pubkey].stake, o.slash_bps_num)
            slash(state, ep, o.pubkey, amount, "disagreeing_voter")
    if result.accepted:
        ep.accuracy_bps = result.accuracy_bps
        _finalize(
            state,
            task,
            ep,
            accepted=True,
            reason="vote_accepted",
            pre_root=pre_root,
            voter_weights=weights,
        )
    else:
        for pk, verdict in sorted(ep.verdicts.items()):
            if verdict == scoring.ACCEPTED:
                amount = slash_amount(state.accounts[pk].stake, REJECT_SLASH_BPS)
                slash(state, ep, pk, amount, "round_rejected")
        _finalize(
            state,
            task,
            ep,
            accepted=False,
            reason="vote_rejected",
            pre_root=pre_root,
            voter_weights=weights,
        )


def _finalize(
    state: State,
    task: Task,
    ep: EpochState,
    accepted: bool,
    reason: str,
    pre_root: bytes,
    voter_weights: list[tuple[bytes, int]] | None = None,
) -> None:
    """Apply the candidate (or not), pay the epoch's fee, complete or open the next epoch."""
    p = task.params
    assert p is not None
    proposers: list[tuple[bytes, int]] = []
    if accepted:
        assert ep.candidate is not None and ep.candidate_delta is not None
        task.global_model, task.global_hash = ep.candidate, ep.candidate_hash
        task.prev_delta, task.prev_delta_hash = ep.candidate_delta, model_hash(ep.candidate_delta)
        task.accepted_epochs += 1
        if ep.accuracy_bps is not None:
            task.accuracy_bps = ep.accuracy_bps
        proposers = [
            (pk, state.accounts[pk].stake)
            for pk, v in sorted(ep.verdicts.items())
            if v == scoring.ACCEPTED
        ]
    payout = epoch_payout(
        task.fee_per_epoch, proposers, voter_weights or [], p.voters_per_epoch > 0
    )
    for pk, amount in sorted(payout.rewards.items()):
        state.accounts[pk].cumulative_reward += amount
        state.touch_account(pk)
    ep.rewards = dict(payout.rewards)
    ep.treasury = payout.treasury
    task.treasury += payout.treasury
    state.treasury_total += payout.treasury
    ep.outcome = (
        "accepted" if accepted else ("rejected" if reason == "vote_rejected" else "discarded")
    )
    ep.outcome_reason = reason
    ep.global_after = task.global_hash
    ep.candidate = None
    ep.candidate_delta = None
    ep.phase_log.append(("finalized", state.height))
    state.touch_epoch(ep.task_id, ep.epoch)
    task.epochs_run += 1
    reached = (
        accepted and ep.accuracy_bps is not None and ep.accuracy_bps >= task.target_accuracy_bps
    )
    if reached or task.epochs_run >= task.max_epochs:
        task.status = TASK_COMPLETED
        task.phase = DONE
        task.phase_deadline = 0
        task.charged = task.epochs_run * task.fee_per_epoch
    else:
        task.epoch += 1
        task.phase = WAITING_CLIENTS
        task.phase_deadline = 0
        if can_open(state, task):
            open_epoch(state, task, pre_root)
    state.touch_task(task.task_id)


def process_deadlines(state: State, pre_root: bytes) -> None:
    """Block-start processing: close every phase whose deadline height has passed and
    open epochs for tasks waiting on clients. Tasks in task_id order."""
    for task_id in sorted(state.tasks):
        task = state.tasks[task_id]
        if task.phase == WAITING_CLIENTS:
            if can_open(state, task):
                open_epoch(state, task, pre_root)
            continue
        if task.phase in (UPDATE_COMMIT, UPDATE_REVEAL, VOTE_COMMIT, VOTE_REVEAL):
            if state.height > task.phase_deadline:
                close_phase(state, task, pre_root)


def next_deadline(state: State) -> int | None:
    """The lowest pending deadline height (the sequencer produces a block to pass it)."""
    pending = [
        t.phase_deadline
        for t in state.tasks.values()
        if t.phase in (UPDATE_COMMIT, UPDATE_REVEAL, VOTE_COMMIT, VOTE_REVEAL)
    ]
    return min(pending) if pending else None
