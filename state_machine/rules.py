"""The protocol's rules as named predicates, shared by the STF handlers
(``state_machine.transition``) and the node's admission (``sequencer.admission``).

Why here: a rule written twice drifts (the mempool and the STF once disagreed on the reason
for an out-of-range vote). Each function checks one rule against the state it is given and
raises :class:`Rejected` with a :class:`~state_machine.reasons.Reason`; it never mutates.
The STF calls them on the state an action is applied to; admission calls the ones that can
not change before inclusion on the current state (see ``sequencer/admission.py`` for which
and why) and keeps for itself only what is its own: whether a window can still be open when
the action is included.
"""

from __future__ import annotations

from collections.abc import Container

from state_machine.actions import Action, SignedAction
from state_machine.chunks import CONTENT_CHUNK_SIZE
from state_machine.commitments import CommitBinding
from state_machine.constants import (
    BPS,
    MIN_STAKE,
    PROTOCOL_BOUND_COMMITMENTS,
    PROTOCOL_CHUNK_ROOT_ONLY,
)
from state_machine.crypto import keccak256
from state_machine.epochs import can_open, current_epoch, phase_complete
from state_machine.pacing import deadline_passed
from state_machine.reasons import Reason
from state_machine.state import (
    ACTIVE,
    AWAITING_GENESIS,
    DONE,
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    WAITING_CLIENTS,
    EpochState,
    State,
    Task,
)
from state_machine.tasks import TaskParams

ACTIVE_PHASES = (UPDATE_COMMIT, UPDATE_REVEAL, VOTE_COMMIT, VOTE_REVEAL)
# the phase in which each participant action is valid, and whether voters (not proposers)
# send it
PHASE_OF = {
    "commit_update": UPDATE_COMMIT,
    "reveal_update": UPDATE_REVEAL,
    "reveal_update_v2": UPDATE_REVEAL,
    "commit_vote": VOTE_COMMIT,
    "reveal_vote": VOTE_REVEAL,
}
VOTER_ACTIONS = frozenset({"commit_vote", "reveal_vote"})


class Rejected(Exception):
    """An action the STF refuses; ``reason`` is machine-readable."""

    def __init__(self, reason: Reason | str, detail: str = "") -> None:
        super().__init__(str(reason))
        self.reason = str(Reason(reason))
        self.detail = detail


# ---------------------------------------------------------------- envelope


def check_chain_id(state: State, a: Action) -> None:
    if a.chain_id != state.chain_id:
        raise Rejected(Reason.BAD_CHAIN_ID, f"expected {state.chain_id}")


def check_signature(sa: SignedAction, verified: Container[bytes] = ()) -> None:
    """ed25519 over the envelope. ``verified`` holds action hashes whose signature the
    caller itself checked (the sequencer, at admission): the action hash binds the
    envelope (sender included) and the signature, so a hit means these exact bytes were
    verified and the ~50 µs check is not repeated. Anything else is verified here."""
    if verified and not sa.action.is_system and sa.hash in verified:
        return
    if not sa.signature_valid():
        raise Rejected(Reason.BAD_SIGNATURE)


def check_nonce(expected: int, a: Action) -> None:
    if a.nonce != expected:
        raise Rejected(Reason.BAD_NONCE, f"expected nonce {expected}, got {a.nonce}")


# ---------------------------------------------------------------- accounts


def is_eligible(state: State, pubkey: bytes) -> bool:
    """Can be selected when an epoch opens: active and staked at least MIN_STAKE."""
    acc = state.accounts.get(pubkey)
    return acc is not None and acc.status == ACTIVE and acc.stake >= MIN_STAKE


# ---------------------------------------------------------------- tasks and windows


def task_of(state: State, task_id: int) -> Task:
    task = state.tasks.get(task_id)
    if task is None:
        raise Rejected(Reason.UNKNOWN_TASK, str(task_id))
    return task


def check_in_phase(task: Task, epoch: int, phase: str) -> None:
    """The task is running ``epoch`` and is in ``phase``."""
    if task.phase in (DONE, AWAITING_GENESIS, WAITING_CLIENTS):
        raise Rejected(Reason.WRONG_WINDOW, f"task is {task.phase}")
    if epoch != task.epoch:
        raise Rejected(Reason.WRONG_EPOCH, f"current epoch is {task.epoch}")
    if task.phase != phase:
        raise Rejected(Reason.WRONG_WINDOW, f"task is in {task.phase}, not {phase}")


def check_awaiting_genesis(task: Task) -> None:
    if task.phase != AWAITING_GENESIS:
        raise Rejected(Reason.WRONG_WINDOW, "genesis already published")


def check_not_done(task: Task) -> None:
    if task.phase == DONE:
        raise Rejected(Reason.WRONG_WINDOW, f"task {task.task_id} is done")


def check_epoch_not_past(task: Task, epoch: int) -> None:
    if epoch < task.epoch:
        raise Rejected(Reason.WRONG_EPOCH, f"current epoch is {task.epoch}")


def check_epoch_reachable(task: Task, epoch: int) -> None:
    """``epoch`` is the task's current epoch or the next one: no block can move a task
    more than one epoch ahead of the state an action is checked against (an epoch ends
    only by finalising the current one), so anything further can never apply."""
    check_epoch_not_past(task, epoch)
    if epoch > task.epoch + 1:
        raise Rejected(Reason.WRONG_EPOCH, f"current epoch is {task.epoch}; {epoch} "
                       "cannot open before this action is included")


def check_advance(state: State, task: Task, epoch: int, height: int) -> bool:
    """``advance(epoch)`` applies to ``task`` in a block at ``height``: it opens the epoch
    (True) or closes the current phase (False). Raises Rejected otherwise."""
    if task.phase == WAITING_CLIENTS:
        if epoch != task.epoch or not can_open(state, task):
            raise Rejected(Reason.NOTHING_TO_ADVANCE, "not enough eligible clients")
        return True
    if task.phase not in ACTIVE_PHASES:
        raise Rejected(Reason.NOTHING_TO_ADVANCE, f"task is {task.phase}")
    if epoch != task.epoch:
        raise Rejected(Reason.WRONG_EPOCH, f"current epoch is {task.epoch}")
    if not (phase_complete(task, current_epoch(state, task))
            or deadline_passed(state, task, height)):
        floor = f", not before time {task.phase_not_before}" if task.phase_not_before else ""
        raise Rejected(Reason.PHASE_INCOMPLETE, f"deadline at height {task.phase_deadline}{floor}")
    return False


# ---------------------------------------------------------------- roles


def check_selected(ep: EpochState, sender: bytes, typ: str, detail: bool = True) -> None:
    """The sender was selected for the role that sends ``typ`` in this epoch.
    (``detail=False``: reveal receipts have always carried no detail, and a receipt's
    detail is part of the block hash.)"""
    voting = typ in VOTER_ACTIONS
    if sender not in (ep.voters if voting else ep.proposers):
        role = "voter" if voting else "proposer"
        raise Rejected(Reason.NOT_SELECTED,
                       f"sender is not a {role} of this epoch" if detail else "")


def check_not_committed(commits: dict[bytes, bytes], sender: bytes) -> None:
    if sender in commits:
        raise Rejected(Reason.ALREADY_COMMITTED)


def binds_sender(state: State) -> bool:
    """Whether this chain's commitments bind sender, task and epoch (protocol >= 2)."""
    return state.protocol >= PROTOCOL_BOUND_COMMITMENTS


def chunk_root_only(state: State) -> bool:
    """Whether the chunk root is an update's only content hash (protocol >= 4)."""
    return state.protocol >= PROTOCOL_CHUNK_ROOT_ONLY


def check_root_addressed(state: State, update_hash: bytes, chunk_size: int,
                         root: bytes) -> None:
    """Protocol 4: a v2 reveal's ``update_hash`` *is* its chunk root, at the one chunk size
    ``CONTENT_CHUNK_SIZE`` (so one content has one hash and a replay cannot re-chunk its way
    past the replay evidence). Earlier protocols: no constraint (a whole keccak)."""
    if not chunk_root_only(state):
        return
    if chunk_size != CONTENT_CHUNK_SIZE:
        raise Rejected(Reason.BAD_CHUNK_SIZE, f"protocol {state.protocol} chunks content at "
                                              f"{CONTENT_CHUNK_SIZE} bytes")
    if update_hash != root:
        raise Rejected(Reason.NOT_CHUNK_ROOT, "update_hash must be the chunk root (protocol "
                                              f"{state.protocol})")


def commit_binding(state: State, sender: bytes, task_id: int, epoch: int) -> CommitBinding | None:
    """What a commitment of ``sender`` in (task, epoch) must bind on this chain: None on
    protocol 1 chains (payload-only commitments, kept so they replay)."""
    return CommitBinding(sender, task_id, epoch) if binds_sender(state) else None


def check_fresh_commitment(state: State, commits: dict[bytes, bytes], commitment: bytes) -> None:
    """Protocol 1 only: refuse a commitment another participant already made this epoch.

    Why only there: with payload-only commitments a copier could open a copied commitment
    with the victim's reveal (both slashed `duplicate`), so copies had to be refused, which
    let a front-runner get the victim's own commit refused (victim `absent_*`). From
    protocol 2 on a commitment binds its sender, so a copy opens for nobody but its author:
    refusing it protects no one and only lets the first of two equal values win, which is
    exactly the front-runner's attack. The copier is then simply absent."""
    if binds_sender(state):
        return
    if commitment in commits.values():
        raise Rejected(Reason.DUPLICATE_COMMITMENT,
                       "another participant committed the same value")


def check_can_reveal(commits: dict[bytes, bytes], revealed: dict[bytes, object],
                     sender: bytes) -> None:
    """Committed in this epoch and not revealed yet."""
    if sender not in commits:
        raise Rejected(Reason.NOT_COMMITTED)
    if sender in revealed:
        raise Rejected(Reason.ALREADY_REVEALED)


# ---------------------------------------------------------------- payloads


def check_update_length(params: TaskParams, update_bytes: bytes) -> None:
    want = 2 * params.num_params
    if len(update_bytes) != want:
        raise Rejected(Reason.WRONG_LENGTH, f"expected {want} bytes")


def check_genesis_model(params: TaskParams, model_bytes: bytes) -> None:
    """The model has the task's size and hashes to its declared ``genesis_model_hash``."""
    if len(model_bytes) != 4 * params.num_params:
        raise Rejected(Reason.WRONG_LENGTH, f"expected {4 * params.num_params} bytes")
    if keccak256(model_bytes) != params.genesis_model_hash:
        raise Rejected(Reason.HASH_MISMATCH, "model bytes do not match genesis_model_hash")


def check_vote_values(acc_candidate_bps: int, acc_current_bps: int) -> None:
    if acc_candidate_bps > BPS or acc_current_bps > BPS:
        raise Rejected(Reason.INVALID_BODY, "accuracies are basis points in [0, 10000]")
