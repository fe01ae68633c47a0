"""Admission: refuse, before anything is stored, what can never apply.

Why: an acknowledged action is stored forever, included in a block and published in DA,
so the sequencer refuses what cannot apply (unknown task, wrong update length, a window that
has closed, a sender that is not staked or not selected) before it stores anything. But the
state moves between the ack and the inclusion (phases close at block start, queued
``advance`` actions close phases early, queued deposits stake new keys), so only *sound*
refusals are made here: an action is refused only if no sequence of the actions already
queued (the :class:`PendingView`) and the blocks that can pass before its inclusion can make
it apply. The rules themselves are the STF's (``state_machine.rules``); what is admission's
own is that reasoning about the future.

Three kinds of checks:

* :func:`static_checks`: facts about the action and the task that never change (length of
  an update, genesis size and hash, vote ranges). Possibly expensive (hashing tens of MB),
  so they run outside the sequencer's lock.
* :func:`role_checks`: who may send it. A participant action from a key that is neither
  eligible (staked, active) nor has a deposit queued can never be selected; a reveal needs
  the sender's commitment in the state or in the queue. Cheap, under the lock.
* :func:`window_checks`: position of the action relative to the task's current
  ``(epoch, phase)``; cheap, under the lock with the mempool's pending view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sequencer.errors import SubmitError
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    CommitVoteBody,
    PublishGenesisBody,
    PublishGenesisV2Body,
    RevealUpdateBody,
    RevealUpdateV2Body,
    RevealVoteBody,
    SignedAction,
)
from state_machine.constants import MAX_NUM_PARAMS_CHUNKED
from state_machine.epochs import can_open
from state_machine.reasons import Reason
from state_machine.rules import (
    ACTIVE_PHASES,
    PHASE_OF,
    Rejected,
    check_awaiting_genesis,
    check_can_reveal,
    check_epoch_not_past,
    check_epoch_reachable,
    check_genesis_model,
    check_not_committed,
    check_not_done,
    check_selected,
    check_update_length,
    check_vote_values,
    is_eligible,
)
from state_machine.state import (
    AWAITING_GENESIS,
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    WAITING_CLIENTS,
    State,
    Task,
)
from state_machine.tasks import TaskParams, TaskParamsError, decode_task_params

_RANK = {
    AWAITING_GENESIS: 0,
    WAITING_CLIENTS: 1,
    UPDATE_COMMIT: 2,
    UPDATE_REVEAL: 3,
    VOTE_COMMIT: 4,
    VOTE_REVEAL: 5,
}
PARTICIPANT_TYPES = frozenset(PHASE_OF)
_COMMIT_OF = {"reveal_update": "commit_update", "reveal_update_v2": "commit_update",
              "reveal_vote": "commit_vote"}


def _bump(d: dict, k: object, by: int) -> None:
    v = d.get(k, 0) + by
    if v > 0:
        d[k] = v
    else:
        d.pop(k, None)


@dataclass
class PendingView:
    """What the mempool (acked, not yet included) will do: created tasks (with their
    parameters), queued ``advance`` / ``publish_genesis`` counts per task, queued deposits
    per pubkey, queued participant actions per (type, task, epoch, sender)."""

    tasks_created: dict[int, int] = field(default_factory=dict)
    task_params: dict[int, TaskParams | None] = field(default_factory=dict)
    advances: dict[int, int] = field(default_factory=dict)
    geneses: dict[int, int] = field(default_factory=dict)
    deposits: dict[bytes, int] = field(default_factory=dict)
    participant: dict[tuple[str, int, int, bytes], int] = field(default_factory=dict)

    def add(self, sa: SignedAction, by: int = 1) -> None:
        a = sa.action
        b = a.body
        if a.type in ("l1_task_created", "l1_task_created_v2"):
            tid = b.task_id  # type: ignore[attr-defined]
            _bump(self.tasks_created, tid, by)
            if tid not in self.tasks_created:
                self.task_params.pop(tid, None)
            elif tid not in self.task_params:
                try:
                    # the widest bound of any protocol: this view is advisory (the STF applies the
                    # chain's own bound when the task is included)
                    self.task_params[tid] = decode_task_params(  # type: ignore[attr-defined]
                        b.task_params, MAX_NUM_PARAMS_CHUNKED)  # type: ignore[attr-defined]
                except TaskParamsError:
                    self.task_params[tid] = None
        elif a.type == "l1_deposit":
            _bump(self.deposits, b.pubkey, by)  # type: ignore[attr-defined]
        elif a.type == "advance":
            _bump(self.advances, b.task_id, by)  # type: ignore[attr-defined]
        elif a.type in ("publish_genesis", "publish_genesis_v2"):
            _bump(self.geneses, b.task_id, by)  # type: ignore[attr-defined]
        elif a.type in PARTICIPANT_TYPES:
            key = (a.type, b.task_id, b.epoch, a.sender)  # type: ignore[attr-defined]
            _bump(self.participant, key, by)

    def remove(self, sa: SignedAction) -> None:
        self.add(sa, -1)

    def queued(self, typ: str, task_id: int, epoch: int, sender: bytes) -> bool:
        return self.participant.get((typ, task_id, epoch, sender), 0) > 0


def _refuse(r: Rejected) -> SubmitError:
    return SubmitError(r.reason, r.detail)


def _task_or_pending(state: State, task_id: int, view: PendingView | None) -> Task | None:
    task = state.tasks.get(task_id)
    if task is None and (view is None or task_id not in view.tasks_created):
        raise SubmitError(Reason.UNKNOWN_TASK, f"task {task_id} does not exist")
    return task


def _params(state: State, task_id: int, view: PendingView | None) -> TaskParams | None:
    task = state.tasks.get(task_id)
    if task is not None:
        return task.params
    return view.task_params.get(task_id) if view is not None else None


def static_checks(state: State, sa: SignedAction, view: PendingView | None = None) -> None:
    """Checks that hold whatever happens before inclusion. Raises SubmitError."""
    body = sa.action.body
    try:
        if isinstance(body, RevealVoteBody):
            check_vote_values(body.acc_candidate_bps, body.acc_current_bps)
        task_id = getattr(body, "task_id", None)
        if task_id is None:
            return
        p = _params(state, task_id, view)
        if isinstance(body, PublishGenesisBody):
            task = state.tasks.get(task_id)
            if task is not None:
                check_awaiting_genesis(task)
            elif view is not None and task_id in view.tasks_created and p is None:
                raise Rejected(Reason.WRONG_WINDOW, "the queued task has invalid parameters")
            if p is not None:  # the one upload anyone may make: only the declared model
                check_genesis_model(p, body.model_bytes)
        elif isinstance(body, RevealUpdateBody) and p is not None:
            # The commitment (keccak256(update_bytes || salt)) is deliberately not checked
            # here: it costs a full hash of the update on the ingest path, and the STF
            # checks it anyway; only a committed proposer gets this far (role_checks).
            check_update_length(p, body.update_bytes)
    except Rejected as r:
        raise _refuse(r) from None


def role_checks(state: State, sa: SignedAction, view: PendingView) -> None:
    """Who may make the node store this action. Raises SubmitError.

    * participant actions: the sender is eligible now or has a deposit queued (selection
      only ever picks eligible keys, and a deposit acked later is included later);
    * reveals: the sender's commitment is in the open epoch or queued (the STF requires
      it, and nothing else can put it there);
    * ``publish_genesis``: at most one queued per task (a queued genesis with the declared
      hash applies unless another genesis applies first).
    """
    a = sa.action
    b = a.body
    if a.type in PARTICIPANT_TYPES:
        if not is_eligible(state, a.sender) and view.deposits.get(a.sender, 0) == 0:
            raise SubmitError(Reason.NOT_STAKED, "sender has no active stake (nor a queued "
                              "deposit): it can never be selected")
        commit = _COMMIT_OF.get(a.type)
        if commit is not None:
            _check_commit_known(state, a.type, commit, b, a.sender, view)
        if view.queued(a.type, b.task_id, b.epoch, a.sender):  # type: ignore[attr-defined]
            already = Reason.ALREADY_COMMITTED if commit is None else Reason.ALREADY_REVEALED
            raise SubmitError(already, f"a {a.type} from this sender is already queued")
    elif isinstance(b, (PublishGenesisBody, PublishGenesisV2Body)):
        if view.geneses.get(b.task_id, 0) > 0:
            raise SubmitError(Reason.WRONG_WINDOW, "a genesis for this task is already queued")


def _check_commit_known(state: State, typ: str, commit: str, b: object, sender: bytes,
                        view: PendingView) -> None:
    task_id, epoch = b.task_id, b.epoch  # type: ignore[attr-defined]
    if view.queued(commit, task_id, epoch, sender):
        return
    ep = state.epochs.get((task_id, epoch))
    commits = None
    if ep is not None:
        commits = ep.vote_commits if typ == "reveal_vote" else ep.update_commits
    if commits is None or sender not in commits:
        raise SubmitError(Reason.NOT_COMMITTED, "no commitment from sender in this epoch "
                          "(applied or queued)")


def window_checks(state: State, sa: SignedAction, view: PendingView,
                  max_inclusion_height: int) -> None:
    """Refuse actions whose window has passed, or has not come and cannot come before
    ``max_inclusion_height`` (the latest block the action can land in)."""
    body = sa.action.body
    try:
        if isinstance(body, PublishGenesisBody):
            task = _task_or_pending(state, body.task_id, view)
            if task is not None:
                check_awaiting_genesis(task)
        elif isinstance(body, AdvanceBody):
            task = _task_or_pending(state, body.task_id, view)
            if task is not None:
                if task.phase == "done":
                    raise Rejected(Reason.NOTHING_TO_ADVANCE, f"task {task.task_id} is done")
                check_epoch_reachable(task, body.epoch)
                if (task.phase == WAITING_CLIENTS and body.epoch == task.epoch
                        and not view.deposits and not can_open(state, task)):
                    raise Rejected(Reason.NOTHING_TO_ADVANCE, "not enough eligible clients "
                                   "(and no deposit queued)")
        elif isinstance(body, (CommitUpdateBody, RevealUpdateBody, RevealUpdateV2Body,
                               CommitVoteBody, RevealVoteBody)):
            task = _task_or_pending(state, body.task_id, view)
            if task is not None:
                _participant_window(state, sa, task, view, max_inclusion_height)
    except Rejected as r:
        raise _refuse(r) from None


def _participant_window(state: State, sa: SignedAction, task: Task, view: PendingView,
                        max_inclusion_height: int) -> None:
    a = sa.action
    body = a.body
    check_not_done(task)
    check_epoch_reachable(task, body.epoch)  # type: ignore[attr-defined]
    want = PHASE_OF[a.type]
    epoch = body.epoch  # type: ignore[attr-defined]
    ep = state.epochs.get((task.task_id, epoch)) if epoch == task.epoch else None
    if ep is not None:  # the epoch is open: who may act in it is fixed
        check_selected(ep, a.sender, a.type)
    here = (task.epoch, _RANK[task.phase])
    there = (epoch, _RANK[want])
    if there < here:
        check_epoch_not_past(task, epoch)
        raise Rejected(Reason.WRONG_WINDOW, f"task is in {task.phase}, {want} has closed")
    if there > here:
        can_move = (
            (task.phase in ACTIVE_PHASES and task.phase_deadline < max_inclusion_height)
            or view.advances.get(task.task_id, 0) > 0
            or task.phase == WAITING_CLIENTS
            or (task.phase == AWAITING_GENESIS and view.geneses.get(task.task_id, 0) > 0)
        )
        if not can_move:
            if epoch != task.epoch:
                raise Rejected(Reason.WRONG_EPOCH, f"current epoch is {task.epoch}")
            raise Rejected(Reason.WRONG_WINDOW, f"task is in {task.phase}, not {want}")
        return
    if ep is None:  # same epoch and phase
        return
    sender = a.sender
    if a.type == "commit_update":
        check_not_committed(ep.update_commits, sender)
    elif a.type == "commit_vote":
        check_not_committed(ep.vote_commits, sender)
    elif a.type in ("reveal_update", "reveal_update_v2"):
        check_can_reveal(ep.update_commits, ep.update_hashes, sender)
    else:
        check_can_reveal(ep.vote_commits, ep.votes, sender)
