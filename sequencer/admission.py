"""Cheap admission checks against the *pending* view of the chain.

Why: an acknowledged action is stored forever and included in a block, so the sequencer
should refuse what can never apply (unknown task, wrong update length, a window that has
already closed) before it stores anything. But the state moves between the ack and the
inclusion (phases close at block start, queued ``advance`` actions close phases early), so
only *sound* refusals are made here: an action is refused for being early only when no
transition can happen before it is included. Everything else is left to the STF, which
records a rejection with its reason.

Two kinds of checks:

* :func:`static_checks`: facts about the action and the task that never change (length of
  an update, genesis hash, the commitment a reveal must open). Possibly expensive (hashing
  tens of MB), so they run outside the sequencer's lock.
* :func:`window_checks`: position of the action relative to the task's current
  ``(epoch, phase)``; cheap, run under the lock with the mempool's pending view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sequencer.errors import SubmitError
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    CommitVoteBody,
    PublishGenesisBody,
    RevealUpdateBody,
    RevealVoteBody,
    SignedAction,
)
from state_machine.constants import BPS
from state_machine.crypto import keccak256
from state_machine.state import (
    AWAITING_GENESIS,
    DONE,
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    WAITING_CLIENTS,
    State,
    Task,
)

_RANK = {
    AWAITING_GENESIS: 0,
    WAITING_CLIENTS: 1,
    UPDATE_COMMIT: 2,
    UPDATE_REVEAL: 3,
    VOTE_COMMIT: 4,
    VOTE_REVEAL: 5,
}
_ACTION_PHASE = {
    "commit_update": UPDATE_COMMIT,
    "reveal_update": UPDATE_REVEAL,
    "commit_vote": VOTE_COMMIT,
    "reveal_vote": VOTE_REVEAL,
}
_ACTIVE = (UPDATE_COMMIT, UPDATE_REVEAL, VOTE_COMMIT, VOTE_REVEAL)


@dataclass
class PendingView:
    """What the mempool (acked, not yet included) will do to tasks: created task ids,
    queued ``advance`` and ``publish_genesis`` counts per task."""

    tasks_created: dict[int, int] = field(default_factory=dict)
    advances: dict[int, int] = field(default_factory=dict)
    geneses: dict[int, int] = field(default_factory=dict)

    def _bump(self, d: dict[int, int], k: int, by: int) -> None:
        v = d.get(k, 0) + by
        if v > 0:
            d[k] = v
        else:
            d.pop(k, None)

    def add(self, sa: SignedAction, by: int = 1) -> None:
        a = sa.action
        if a.type == "l1_task_created":
            self._bump(self.tasks_created, a.body.task_id, by)  # type: ignore[attr-defined]
        elif a.type == "advance":
            self._bump(self.advances, a.body.task_id, by)  # type: ignore[attr-defined]
        elif a.type == "publish_genesis":
            self._bump(self.geneses, a.body.task_id, by)  # type: ignore[attr-defined]

    def remove(self, sa: SignedAction) -> None:
        self.add(sa, -1)


def _task_or_pending(state: State, task_id: int, view: PendingView | None) -> Task | None:
    task = state.tasks.get(task_id)
    if task is None and (view is None or task_id not in view.tasks_created):
        raise SubmitError("unknown_task", f"task {task_id} does not exist")
    return task


def static_checks(state: State, sa: SignedAction) -> None:
    """Checks that hold whatever happens before inclusion. Raises SubmitError."""
    a = sa.action
    body = a.body
    task_id = getattr(body, "task_id", None)
    if task_id is None:
        return
    task = state.tasks.get(task_id)
    if task is None or task.params is None:
        return  # unknown tasks are judged in window_checks (they may be queued)
    p = task.params
    if isinstance(body, RevealUpdateBody):
        if len(body.update_bytes) != 2 * p.num_params:
            raise SubmitError(
                "wrong_length", f"update must be {2 * p.num_params} bytes "
                f"(num_params={p.num_params} int16), got {len(body.update_bytes)}"
            )
        # The commitment (keccak256(update_bytes || salt)) is deliberately not checked
        # here: it costs a full hash of the update (~9 ms per 4 MiB) on the ingest path,
        # and the STF checks it anyway (receipt "commitment_mismatch"); a proposer can
        # only waste its own reveal, since its nonce and window allow one.
    elif isinstance(body, PublishGenesisBody):
        if task.phase == AWAITING_GENESIS:
            if len(body.model_bytes) != 4 * p.num_params:
                raise SubmitError("wrong_length", f"model must be {4 * p.num_params} bytes")
            if keccak256(body.model_bytes) != p.genesis_model_hash:
                raise SubmitError("hash_mismatch", "model bytes do not match genesis_model_hash")
    elif isinstance(body, RevealVoteBody):
        if body.acc_candidate_bps > BPS or body.acc_current_bps > BPS:
            raise SubmitError("invalid_value", "accuracies are basis points in [0, 10000]")


def window_checks(state: State, sa: SignedAction, view: PendingView,
                  max_inclusion_height: int) -> None:
    """Refuse actions whose window has passed, or has not come and cannot come before
    ``max_inclusion_height`` (the latest block the action can land in)."""
    a = sa.action
    body = a.body
    if isinstance(body, PublishGenesisBody):
        task = _task_or_pending(state, body.task_id, view)
        if task is not None and task.phase != AWAITING_GENESIS:
            raise SubmitError("wrong_window", "genesis already published")
        return
    if isinstance(body, AdvanceBody):
        task = _task_or_pending(state, body.task_id, view)
        if task is None:
            return
        if task.phase == DONE:
            raise SubmitError("nothing_to_advance", f"task {task.task_id} is done")
        if body.epoch < task.epoch:
            raise SubmitError("wrong_epoch", f"current epoch is {task.epoch}")
        return
    if not isinstance(body, (CommitUpdateBody, RevealUpdateBody, CommitVoteBody, RevealVoteBody)):
        return
    task = _task_or_pending(state, body.task_id, view)
    if task is None:
        return
    if task.phase == DONE:
        raise SubmitError("wrong_window", f"task {task.task_id} is done")
    want = _ACTION_PHASE[a.type]
    ep = state.epochs.get((task.task_id, body.epoch)) if body.epoch == task.epoch else None
    if ep is not None:  # the epoch is open: who may act in it is fixed
        role = ep.proposers if a.type in ("commit_update", "reveal_update") else ep.voters
        if a.sender not in role:
            kind = "proposer" if role is ep.proposers else "voter"
            raise SubmitError("not_selected", f"sender is not a {kind} of this epoch")
    here = (task.epoch, _RANK[task.phase])
    there = (body.epoch, _RANK[want])
    if there < here:
        if body.epoch < task.epoch:
            raise SubmitError("wrong_epoch", f"current epoch is {task.epoch}")
        raise SubmitError("wrong_window", f"task is in {task.phase}, {want} has closed")
    if there > here:
        can_move = (
            (task.phase in _ACTIVE and task.phase_deadline < max_inclusion_height)
            or view.advances.get(task.task_id, 0) > 0
            or task.phase == WAITING_CLIENTS
            or (task.phase == AWAITING_GENESIS and view.geneses.get(task.task_id, 0) > 0)
        )
        if not can_move:
            if body.epoch != task.epoch:
                raise SubmitError("wrong_epoch", f"current epoch is {task.epoch}")
            raise SubmitError("wrong_window", f"task is in {task.phase}, not {want}")
        return
    # same epoch and phase
    if ep is None:
        return
    sender = a.sender
    if a.type == "commit_update" and sender in ep.update_commits:
        raise SubmitError("already_committed")
    if a.type == "reveal_update":
        if sender not in ep.update_commits:
            raise SubmitError("not_committed", "no update commitment from sender")
        if sender in ep.update_hashes:
            raise SubmitError("already_revealed")
    if a.type == "commit_vote" and sender in ep.vote_commits:
        raise SubmitError("already_committed")
    if a.type == "reveal_vote":
        if sender not in ep.vote_commits:
            raise SubmitError("not_committed", "no vote commitment from sender")
        if sender in ep.votes:
            raise SubmitError("already_revealed")
