"""The state-transition function: ``apply_block(state, block) -> (state, receipts)``.

Why check-then-apply handlers: every handler raises ``Rejected(reason)`` before its first
mutation, so a rejected action leaves the state (and root) untouched and is recorded with
its reason. No I/O, no clock, no randomness; floats appear only inside the exact Gram
kernel of ``scoring``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from state_machine import codec
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    CommitVoteBody,
    DepositBody,
    DepositPopBody,
    PublishGenesisBody,
    RevealUpdateBody,
    RevealVoteBody,
    SignedAction,
    TaskCreatedBody,
    UnbondBody,
    pop_message,
    update_commitment,
    vote_commitment,
)
from state_machine.constants import BPS
from state_machine.crypto import keccak256, verify
from state_machine.epochs import (
    can_open,
    close_phase,
    current_epoch,
    open_epoch,
    phase_complete,
    process_deadlines,
)
from state_machine.merkle import MerkleTree
from state_machine.state import (
    ACTIVE,
    AWAITING_GENESIS,
    DONE,
    TASK_REJECTED,
    UNBONDING,
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    WAITING_CLIENTS,
    Account,
    EpochState,
    State,
    Task,
    model_hash,
)
from state_machine.tasks import TaskParamsError, decode_task_params, validate_task_header


class Rejected(Exception):
    """An action the STF refuses; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class BlockError(ValueError):
    """A block that cannot follow the state (wrong height or parent)."""


@dataclass(frozen=True)
class Block:
    height: int
    parent_hash: bytes
    timestamp: int
    actions: Sequence[SignedAction]


@dataclass
class Receipt:
    action_hash: bytes
    applied: bool
    reason: str = "ok"
    detail: str = ""
    events: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        return {
            "action_hash": self.action_hash,
            "applied": self.applied,
            "reason": self.reason,
            "detail": self.detail,
        }


# ---------------------------------------------------------------- stateless + nonce checks


def precheck(state: State, sa: SignedAction) -> None:
    """Signature, chain and nonce checks shared by the STF and the sequencer's mempool."""
    a = sa.action
    if a.chain_id != state.chain_id:
        raise Rejected("bad_chain_id", f"expected {state.chain_id}")
    if not sa.signature_valid():
        raise Rejected("bad_signature")
    expected = state.nonces.get(a.sender, 0)
    if a.nonce != expected:
        raise Rejected("bad_nonce", f"expected nonce {expected}, got {a.nonce}")


def _task(state: State, task_id: int) -> Task:
    task = state.tasks.get(task_id)
    if task is None:
        raise Rejected("unknown_task", str(task_id))
    return task


def _in_phase(task: Task, epoch: int, phase: str) -> None:
    if task.phase in (DONE, AWAITING_GENESIS, WAITING_CLIENTS):
        raise Rejected("wrong_window", f"task is {task.phase}")
    if epoch != task.epoch:
        raise Rejected("wrong_epoch", f"current epoch is {task.epoch}")
    if task.phase != phase:
        raise Rejected("wrong_window", f"task is in {task.phase}, not {phase}")


def _l1_order(state: State, l1_block: int, log_index: int) -> None:
    if state.l1_seen and (l1_block, log_index) <= state.l1_cursor:
        raise Rejected("l1_out_of_order", f"cursor at {state.l1_cursor}")


def _advance_l1(state: State, l1_block: int, log_index: int) -> None:
    state.l1_cursor = (l1_block, log_index)
    state.l1_seen = True


# ---------------------------------------------------------------- handlers


def _deposit(state: State, sa: SignedAction, b: DepositBody) -> list[str]:
    _l1_order(state, b.l1_block, b.log_index)
    if b.amount <= 0:
        raise Rejected("invalid_body", "deposit amount must be positive")
    acc = state.accounts.get(b.pubkey)
    if acc is not None:
        if acc.l1_address != b.l1_address:
            raise Rejected("pubkey_bound", "pubkey is bound to another L1 address")
        if acc.status != UNBONDING:
            raise Rejected("already_staked")
    for other in state.accounts.values():
        if (
            other.l1_address == b.l1_address
            and other.pubkey != b.pubkey
            and other.status != UNBONDING
        ):
            raise Rejected("address_bound", "L1 address already staked with another pubkey")
    _advance_l1(state, b.l1_block, b.log_index)
    if acc is None:
        state.add_account(Account(len(state.accounts), b.l1_address, b.pubkey, b.amount))
        state.register_sender(b.pubkey)
    else:  # withdrew on L1 after unbonding and staked again
        acc.stake, acc.status, acc.unlock_time = b.amount, ACTIVE, 0
        state.touch_account(b.pubkey)
    return ["staked"]


def _deposit_pop(state: State, sa: SignedAction, b: DepositPopBody) -> list[str]:
    """A deposit binds its pubkey only with a valid proof of possession (issue 11, F-15);
    a copied pubkey is rejected before it can claim the victim's identity."""
    _l1_order(state, b.l1_block, b.log_index)
    if not verify(b.pubkey, pop_message(state.chain_id, b.l1_address), b.pop):
        raise Rejected("bad_pop", "pop is not the pubkey's signature over the L1 address")
    plain = DepositBody(b.l1_address, b.pubkey, b.amount, b.l1_block, b.log_index, b.tx_hash)
    return _deposit(state, sa, plain)


def _unbond(state: State, sa: SignedAction, b: UnbondBody) -> list[str]:
    _l1_order(state, b.l1_block, b.log_index)
    acc = state.accounts.get(b.pubkey)
    if acc is None or acc.l1_address != b.l1_address:
        raise Rejected("unknown_account")
    _advance_l1(state, b.l1_block, b.log_index)
    acc.status, acc.unlock_time = UNBONDING, b.unlock_time
    state.touch_account(b.pubkey)
    return ["unbonding"]


def _task_created(state: State, sa: SignedAction, b: TaskCreatedBody) -> list[str]:
    _l1_order(state, b.l1_block, b.log_index)
    if b.task_id in state.tasks:
        raise Rejected("duplicate_task", str(b.task_id))
    _advance_l1(state, b.l1_block, b.log_index)
    task = Task(
        index=len(state.tasks),
        task_id=b.task_id,
        owner=b.owner,
        spec_hash=b.spec_hash,
        max_epochs=max(b.max_epochs, 1),
        target_accuracy_bps=b.target_accuracy_bps,
        escrow=b.escrow,
        params=None,
    )
    try:
        validate_task_header(b.max_epochs, b.target_accuracy_bps, b.escrow)
        task.params = decode_task_params(b.task_params)
    except TaskParamsError as exc:
        # Recorded, not rejected: the owner must be able to prove the refund on L1.
        task.status, task.phase, task.reject_reason = TASK_REJECTED, DONE, str(exc)
        state.add_task(task)
        return ["task_rejected"]
    state.add_task(task)
    return ["task_created"]


def _publish_genesis(state: State, sa: SignedAction, b: PublishGenesisBody) -> list[str]:
    task = _task(state, b.task_id)
    if task.phase != AWAITING_GENESIS:
        raise Rejected("wrong_window", "genesis already published")
    assert task.params is not None
    if len(b.model_bytes) != 4 * task.params.num_params:
        raise Rejected("wrong_length", f"expected {4 * task.params.num_params} bytes")
    if keccak256(b.model_bytes) != task.params.genesis_model_hash:
        raise Rejected("hash_mismatch", "model bytes do not match genesis_model_hash")
    model = np.frombuffer(b.model_bytes, dtype="<i4").astype(np.int32)
    model.setflags(write=False)
    prev = np.zeros(task.params.num_params, dtype=np.int16)
    prev.setflags(write=False)
    task.global_model, task.global_hash = model, model_hash(model)
    task.prev_delta, task.prev_delta_hash = prev, model_hash(prev)
    task.phase = WAITING_CLIENTS
    state.touch_task(task.task_id)
    return ["genesis_published"]


def _record_commitment(
    state: State, sa: SignedAction, task_id: int, epoch: int, commitment: bytes, phase: str
) -> None:
    """Shared checks of ``commit_update`` and ``commit_vote`` (one role each)."""
    task = _task(state, task_id)
    _in_phase(task, epoch, phase)
    ep = current_epoch(state, task)
    voting = phase == VOTE_COMMIT
    selected, commits = (ep.voters, ep.vote_commits) if voting else (ep.proposers,
                                                                      ep.update_commits)
    sender = sa.action.sender
    if sender not in selected:
        role = "voter" if voting else "proposer"
        raise Rejected("not_selected", f"sender is not a {role} of this epoch")
    if sender in commits:
        raise Rejected("already_committed")
    if commitment in commits.values():
        raise Rejected("duplicate_commitment", "another participant committed the same value")
    commits[sender] = commitment
    state.touch_epoch(ep.task_id, ep.epoch)


def _commit_update(state: State, sa: SignedAction, b: CommitUpdateBody) -> list[str]:
    _record_commitment(state, sa, b.task_id, b.epoch, b.commitment, UPDATE_COMMIT)
    return ["update_committed"]


def _revealing(
    state: State, sa: SignedAction, task_id: int, epoch: int, phase: str
) -> tuple[Task, EpochState, bytes]:
    """Shared checks of ``reveal_update`` and ``reveal_vote``: the sender was selected,
    committed, and has not revealed yet. Returns (task, epoch state, committed value)."""
    task = _task(state, task_id)
    _in_phase(task, epoch, phase)
    ep = current_epoch(state, task)
    voting = phase == VOTE_REVEAL
    selected = ep.voters if voting else ep.proposers
    commits = ep.vote_commits if voting else ep.update_commits
    revealed = ep.votes if voting else ep.update_hashes
    sender = sa.action.sender
    if sender not in selected:
        raise Rejected("not_selected")
    if sender not in commits:
        raise Rejected("not_committed")
    if sender in revealed:
        raise Rejected("already_revealed")
    return task, ep, commits[sender]


def _reveal_update(state: State, sa: SignedAction, b: RevealUpdateBody) -> list[str]:
    task, ep, committed = _revealing(state, sa, b.task_id, b.epoch, UPDATE_REVEAL)
    sender = sa.action.sender
    assert task.params is not None
    if len(b.update_bytes) != 2 * task.params.num_params:
        raise Rejected("wrong_length", f"expected {2 * task.params.num_params} bytes")
    if update_commitment(b.update_bytes, b.salt) != committed:
        raise Rejected("commitment_mismatch")
    delta = np.frombuffer(b.update_bytes, dtype="<i2").astype(np.int16)
    delta.setflags(write=False)
    ep.updates[sender] = delta
    ep.update_hashes[sender] = keccak256(b.update_bytes)
    state.touch_epoch(ep.task_id, ep.epoch)
    return ["update_revealed"]


def _commit_vote(state: State, sa: SignedAction, b: CommitVoteBody) -> list[str]:
    _record_commitment(state, sa, b.task_id, b.epoch, b.commitment, VOTE_COMMIT)
    return ["vote_committed"]


def _reveal_vote(state: State, sa: SignedAction, b: RevealVoteBody) -> list[str]:
    _, ep, committed = _revealing(state, sa, b.task_id, b.epoch, VOTE_REVEAL)
    if b.acc_candidate_bps > BPS or b.acc_current_bps > BPS:
        raise Rejected("invalid_body", "accuracies are basis points in [0, 10000]")
    c = vote_commitment(b.acc_candidate_bps, b.acc_current_bps, b.salt)
    if c != committed:
        raise Rejected("commitment_mismatch")
    ep.votes[sa.action.sender] = (b.acc_candidate_bps, b.acc_current_bps)
    state.touch_epoch(ep.task_id, ep.epoch)
    return ["vote_revealed"]


def _advance(state: State, sa: SignedAction, b: AdvanceBody, pre_root: bytes) -> list[str]:
    task = _task(state, b.task_id)
    if task.phase == WAITING_CLIENTS:
        if b.epoch != task.epoch or not can_open(state, task):
            raise Rejected("nothing_to_advance", "not enough eligible clients")
        open_epoch(state, task, pre_root)
        return ["epoch_opened"]
    if task.phase not in (UPDATE_COMMIT, UPDATE_REVEAL, VOTE_COMMIT, VOTE_REVEAL):
        raise Rejected("nothing_to_advance", f"task is {task.phase}")
    if b.epoch != task.epoch:
        raise Rejected("wrong_epoch", f"current epoch is {task.epoch}")
    ep = current_epoch(state, task)
    if not (phase_complete(task, ep) or state.height > task.phase_deadline):
        raise Rejected("phase_incomplete", f"deadline at height {task.phase_deadline}")
    close_phase(state, task, pre_root)
    return ["phase_closed"]


_HANDLERS: dict[str, Callable[..., list[str]]] = {
    "l1_deposit": _deposit,
    "l1_deposit_pop": _deposit_pop,
    "l1_unbond": _unbond,
    "l1_task_created": _task_created,
    "publish_genesis": _publish_genesis,
    "commit_update": _commit_update,
    "reveal_update": _reveal_update,
    "commit_vote": _commit_vote,
    "reveal_vote": _reveal_vote,
}


def process_action(state: State, sa: SignedAction, pre_root: bytes) -> list[str]:
    """Apply one action or raise Rejected (state untouched on rejection)."""
    precheck(state, sa)
    a = sa.action
    if a.type == "advance":
        events = _advance(state, sa, a.body, pre_root)  # type: ignore[arg-type]
    else:
        events = _HANDLERS[a.type](state, sa, a.body)
    state.bump_nonce(a.sender)
    return events


def apply_block(state: State, block: Block) -> tuple[State, list[Receipt]]:
    """Apply ``block`` to a copy of ``state``; return the new state and one receipt per
    action. Phase deadlines are processed first, then actions in block order."""
    if block.height != state.height + 1:
        raise BlockError(f"expected height {state.height + 1}, got {block.height}")
    pre_root = state.state_root()
    st = state.copy()
    st.height = block.height
    process_deadlines(st, pre_root)
    receipts = []
    for sa in block.actions:
        try:
            events = process_action(st, sa, pre_root)
            receipts.append(Receipt(sa.hash, True, "ok", "", events))
        except Rejected as r:
            receipts.append(Receipt(sa.hash, False, r.reason, r.detail))
    return st, receipts


def genesis_state(chain_id: int) -> State:
    """The empty state every chain starts from."""
    return State(chain_id=chain_id)


# ---------------------------------------------------------------- block header


def actions_root(actions: Sequence[SignedAction]) -> bytes:
    return MerkleTree([sa.hash for sa in actions]).root()


def receipts_root(receipts: Sequence[Receipt]) -> bytes:
    return MerkleTree([keccak256(codec.encode(r.to_record())) for r in receipts]).root()


def block_header(block: Block, state_root: bytes, receipts: Sequence[Receipt]) -> dict[str, Any]:
    """SPEC §10 block: {height, parent_hash, timestamp, actions_root, state_root, receipts}."""
    return {
        "height": block.height,
        "parent_hash": block.parent_hash,
        "timestamp": block.timestamp,
        "actions_root": actions_root(block.actions),
        "state_root": state_root,
        "receipts_root": receipts_root(receipts),
    }


def block_hash(header: dict[str, Any]) -> bytes:
    return keccak256(codec.encode(header))


GENESIS_PARENT = b"\x00" * 32
