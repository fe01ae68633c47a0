"""The state-transition function: ``apply_block(state, block) -> (state, receipts)`` and
``execute_block`` (state, receipts, root, header, hash).

Why check-then-apply handlers: every handler raises ``Rejected(reason)`` before its first
mutation, so a rejected action leaves the state (and root) untouched and is recorded with
its reason. No I/O, no clock, no randomness; floats appear only inside the exact Gram
kernel of ``scoring``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from state_machine import codec, genesis, l1_actions, pacing, tiles
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    CommitVoteBody,
    ForcedActionBody,
    RevealUpdateBody,
    RevealUpdateV2Body,
    RevealVoteBody,
    SignedAction,
)
from state_machine.chunks import content_root
from state_machine.commitments import (
    CommitBinding,
    update_commitment_of_hash,
    update_commitment_v2,
    vote_commitment,
)
from state_machine.constants import CURRENT_PROTOCOL, KNOWN_PROTOCOLS
from state_machine.crypto import keccak256, keccak_hasher
from state_machine.epochs import (
    blob_reader,
    close_phase,
    current_epoch,
    open_epoch,
    process_deadlines,
)
from state_machine.forced import apply_forced, receipt_detail
from state_machine.merkle import MerkleTree
from state_machine.reasons import Reason
from state_machine.rules import (
    Rejected,
    binds_sender,
    check_advance,
    check_can_reveal,
    check_chain_id,
    check_fresh_commitment,
    check_in_phase,
    check_nonce,
    check_not_committed,
    check_root_addressed,
    check_selected,
    check_signature,
    check_update_length,
    check_vote_values,
    chunk_root_only,
    commit_binding,
    task_of,
)
from state_machine.state import (
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    EpochState,
    State,
    Task,
)


class BlockError(ValueError):
    """A block that cannot follow the state (wrong height or parent)."""


@dataclass(frozen=True)
class Block:
    height: int
    parent_hash: bytes
    timestamp: int
    actions: Sequence[SignedAction]
    # v2 updates' bytes by keccak256 (``.get(hash) -> VerifiedBlob | None``), resolved by the
    # sequencer or verifier from its blob store: the STF reads them and does no I/O
    blobs: Any = None
    # where d-long outputs (aggregate, candidate) live: ``tiles.ArraySink``; None: the heap.
    # The node and verifier pass memory-mapped files (bit-identical results, bounded RSS)
    arrays: Any = None


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

    def encode(self) -> bytes:
        """``codec.encode(self.to_record())``: the receipt's leaf in ``receipts_root``.
        Written directly (keys in canonical order) when the fields have their declared
        types, which the STF always gives them; anything else takes the generic path."""
        if (type(self.action_hash) is bytes and type(self.applied) is bool
                and isinstance(self.reason, str) and isinstance(self.detail, str)):
            return codec.encode_ordered({"action_hash": self.action_hash,
                                         "applied": self.applied, "detail": self.detail,
                                         "reason": self.reason})
        return codec.encode(self.to_record())


# ---------------------------------------------------------------- stateless + nonce checks


def precheck(state: State, sa: SignedAction, verified: Container[bytes] = ()) -> None:
    """Chain id, signature and nonce: the envelope rules (``state_machine.rules``), which
    the sequencer's admission applies too (``verified``: see :func:`apply_block`)."""
    a = sa.action
    check_chain_id(state, a)
    check_signature(sa, verified)
    check_nonce(state.nonces.get(a.sender, 0), a)


def _record_commitment(
    state: State, sa: SignedAction, task_id: int, epoch: int, commitment: bytes, phase: str
) -> None:
    """Shared checks of ``commit_update`` and ``commit_vote`` (one role each)."""
    task = task_of(state, task_id)
    check_in_phase(task, epoch, phase)
    ep = current_epoch(state, task)
    commits = ep.vote_commits if phase == VOTE_COMMIT else ep.update_commits
    sender = sa.action.sender
    check_selected(ep, sender, sa.action.type)
    check_not_committed(commits, sender)
    check_fresh_commitment(state, commits, commitment)
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
    task = task_of(state, task_id)
    check_in_phase(task, epoch, phase)
    ep = current_epoch(state, task)
    voting = phase == VOTE_REVEAL
    commits = ep.vote_commits if voting else ep.update_commits
    revealed: dict[bytes, Any] = ep.votes if voting else ep.update_hashes  # type: ignore[assignment]
    sender = sa.action.sender
    check_selected(ep, sender, sa.action.type, detail=False)
    check_can_reveal(commits, revealed, sender)
    return task, ep, commits[sender]


def _check_opens(state: State, sa: SignedAction, task_id: int, epoch: int,
                 opened: Callable[[CommitBinding | None], bytes], committed: bytes) -> None:
    """The reveal must open the sender's own commitment. On protocol 2 the binding holds
    the sender, so a reveal of copied values by a copier fails here (issue 10)."""
    if opened(commit_binding(state, sa.action.sender, task_id, epoch)) != committed:
        detail = ("does not open the sender's own commitment (bound to sender, task, epoch)"
                  if binds_sender(state) else "")
        raise Rejected(Reason.COMMITMENT_MISMATCH, detail)


def _commitment_and_hash(update_bytes: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """Protocol 1: the commitment ``keccak256(update_bytes || salt)`` and the update's hash
    in one pass over the bytes: the running hash
    after ``update_bytes`` is copied before the salt goes in (tens of MB hashed once, not
    twice; ``tests/state_machine/test_work_done_once.py`` checks the equality)."""
    running = keccak_hasher(update_bytes)
    update_hash = running.copy().digest()
    running.update(salt)
    return running.digest(), update_hash


def _reveal_update(state: State, sa: SignedAction, b: RevealUpdateBody) -> list[str]:
    task, ep, committed = _revealing(state, sa, b.task_id, b.epoch, UPDATE_REVEAL)
    sender = sa.action.sender
    assert task.params is not None
    check_update_length(task.params, b.update_bytes)
    if binds_sender(state):  # protocol 2: the commitment binds the update's hash
        update_hash = keccak256(b.update_bytes)
        opens = update_commitment_of_hash(update_hash, b.salt,
                                          CommitBinding(sender, b.task_id, b.epoch))
        if chunk_root_only(state):  # protocol 4: recorded by the one content hash (replays
            update_hash = content_root(b.update_bytes)  # of blobs and Δ_prev compare to it)
    else:  # protocol 1: keccak256(update_bytes || salt); both hashes in one pass
        opens, update_hash = _commitment_and_hash(b.update_bytes, b.salt)
    _check_opens(state, sa, b.task_id, b.epoch, lambda _bind: opens, committed)
    delta = np.frombuffer(b.update_bytes, dtype="<i2").astype(np.int16)
    delta.setflags(write=False)
    ep.updates[sender] = delta
    ep.update_hashes[sender] = update_hash
    state.touch_epoch(ep.task_id, ep.epoch)
    return ["update_revealed"]


def _reveal_update_v2(state: State, sa: SignedAction, b: RevealUpdateV2Body,
                      blobs: Any) -> list[str]:
    """A v2 reveal: the signed hash, size and chunk root must open the commitment, and
    the blob beside the block must be the one they name (hashed once, when streamed)."""
    task, ep, committed = _revealing(state, sa, b.task_id, b.epoch, UPDATE_REVEAL)
    assert task.params is not None
    if b.size != 2 * task.params.num_params:
        raise Rejected(Reason.WRONG_LENGTH, f"expected {2 * task.params.num_params} bytes")
    check_root_addressed(state, b.update_hash, b.chunk_size, b.chunk_root)
    _check_opens(state, sa, b.task_id, b.epoch,
                 lambda bind: update_commitment_v2(b.update_hash, b.size, b.chunk_size,
                                                   b.chunk_root, b.salt, bind), committed)
    blob = blobs.get(b.update_hash) if blobs is not None else None
    if blob is None:
        raise Rejected(Reason.BLOB_UNAVAILABLE, "update bytes are not in the blob store")
    if (blob.key, blob.size, blob.chunk_size, blob.root) != (
            b.update_hash, b.size, b.chunk_size, b.chunk_root) or (
            not chunk_root_only(state) and blob.keccak != b.update_hash):
        raise Rejected(Reason.BLOB_MISMATCH, "stored blob differs from the signed hash/root")
    delta = np.frombuffer(blob.data, dtype="<i2").astype(np.int16, copy=False)  # a view
    delta.setflags(write=False)
    ep.updates[sa.action.sender] = delta
    ep.update_hashes[sa.action.sender] = b.update_hash
    state.touch_epoch(ep.task_id, ep.epoch)
    return ["update_revealed"]


def _commit_vote(state: State, sa: SignedAction, b: CommitVoteBody) -> list[str]:
    _record_commitment(state, sa, b.task_id, b.epoch, b.commitment, VOTE_COMMIT)
    return ["vote_committed"]


def _reveal_vote(state: State, sa: SignedAction, b: RevealVoteBody) -> list[str]:
    _, ep, committed = _revealing(state, sa, b.task_id, b.epoch, VOTE_REVEAL)
    check_vote_values(b.acc_candidate_bps, b.acc_current_bps)
    _check_opens(state, sa, b.task_id, b.epoch,
                 lambda bind: vote_commitment(b.acc_candidate_bps, b.acc_current_bps, b.salt,
                                              bind), committed)
    ep.votes[sa.action.sender] = (b.acc_candidate_bps, b.acc_current_bps)
    state.touch_epoch(ep.task_id, ep.epoch)
    return ["vote_revealed"]


def _advance(state: State, sa: SignedAction, b: AdvanceBody, pre_root: bytes) -> list[str]:
    task = task_of(state, b.task_id)
    if check_advance(state, task, b.epoch, state.height):
        open_epoch(state, task, pre_root)
        return ["epoch_opened"]
    close_phase(state, task, pre_root)
    return ["phase_closed"]


def _forced_action(state: State, sa: SignedAction, b: ForcedActionBody, pre_root: bytes,
                   blobs: Any) -> list[str]:
    """A client's signed action forced through L1 (F-12, ``state_machine.forced``): the
    inner action gets exactly the mempool checks; the L1 position is consumed either way."""
    l1_actions.l1_order(state, b.l1_block, b.log_index)
    events = apply_forced(b, lambda inner: process_action(state, inner, pre_root, blobs))
    l1_actions.advance_l1(state, b.l1_block, b.log_index)
    return events


_HANDLERS: dict[str, Callable[..., list[str]]] = {
    "l1_deposit": l1_actions.deposit,
    "l1_deposit_pop": l1_actions.deposit_pop,
    "l1_unbond": l1_actions.unbond,
    "l1_beacon": l1_actions.beacon,
    "l1_task_created": l1_actions.task_created,
    "l1_task_created_v2": l1_actions.task_created_v2,
    "publish_genesis": genesis.publish_genesis,
    "commit_update": _commit_update,
    "reveal_update": _reveal_update,
    "commit_vote": _commit_vote,
    "reveal_vote": _reveal_vote,
}


def process_action(state: State, sa: SignedAction, pre_root: bytes,
                   blobs: Any = None, verified: Container[bytes] = ()) -> list[str]:
    """Apply one action or raise Rejected (state untouched on rejection)."""
    precheck(state, sa, verified)
    a = sa.action
    if a.type == "advance":
        events = _advance(state, sa, a.body, pre_root)  # type: ignore[arg-type]
    elif a.type == "reveal_update_v2":
        events = _reveal_update_v2(state, sa, a.body, blobs)  # type: ignore[arg-type]
    elif a.type == "publish_genesis_v2":
        events = genesis.publish_genesis_v2(state, sa, a.body, blobs)  # type: ignore[arg-type]
    elif a.type == "l1_forced_action":
        events = _forced_action(state, sa, a.body, pre_root, blobs)  # type: ignore[arg-type]
    else:
        events = _HANDLERS[a.type](state, sa, a.body)
    state.bump_nonce(a.sender)
    return events


def apply_block(state: State, block: Block, verified: Container[bytes] = ()
                ) -> tuple[State, list[Receipt]]:
    """Apply ``block`` to a copy of ``state``; return the new state and one receipt per
    action. Phase deadlines are processed first, then actions in block order. From
    protocol 3 the block's timestamp may not go below its parent's (``pacing``).

    ``verified``: action hashes whose ed25519 signatures the caller has itself verified
    (only the sequencer passes it: admission checked each signature before the ack). Their
    check is not repeated; every other signature is verified. The outcome is the same as
    without it (it only skips work whose result is known), so replay, DA replay and
    verifiers, which pass nothing, reach the same roots.

    ``state`` is never modified. The copy is copy-on-write, so the cost follows what the
    block touches, not how much state exists; each action runs inside a savepoint and a
    rejected one is rolled back exactly. The new state is returned sealed (flushed, its
    root computed, writes refused): copy it to change it."""
    if block.height != state.height + 1:
        raise BlockError(f"expected height {state.height + 1}, got {block.height}")
    bad_clock = pacing.timestamp_error(state, block.timestamp)
    if bad_clock:
        raise BlockError(bad_clock)
    with tiles.array_sink(block.arrays), blob_reader(block.blobs):
        return _apply(state, block, verified)


def _apply(state: State, block: Block, verified: Container[bytes]
           ) -> tuple[State, list[Receipt]]:
    pre_root = state.state_root()
    st = state.copy()
    st.height = block.height
    pacing.stamp(st, block.timestamp)
    process_deadlines(st, pre_root)
    receipts = []
    for sa in block.actions:
        st.begin_action()
        try:
            events = process_action(st, sa, pre_root, block.blobs, verified)
        except Rejected as r:
            st.rollback_action()
            receipts.append(Receipt(sa.hash, False, r.reason, r.detail))
        else:
            st.commit_action()
            receipts.append(Receipt(sa.hash, True, "ok", receipt_detail(events), events))
    st.state_root()
    st.seal()
    return st, receipts


@dataclass(frozen=True)
class BlockResult:
    """Everything executing a block yields: the one place that derives root and hash."""

    state: State
    receipts: list[Receipt]
    state_root: bytes
    header: dict[str, Any]
    hash: bytes


class ChainMismatch(RuntimeError):
    """Re-executing block ``height`` gave a different state root or block hash."""

    def __init__(self, height: int, expected_root: bytes, got_root: bytes,
                 expected_hash: bytes, got_hash: bytes) -> None:
        super().__init__(
            f"block {height}: stored root 0x{expected_root.hex()} hash 0x{expected_hash.hex()}, "
            f"replayed root 0x{got_root.hex()} hash 0x{got_hash.hex()}"
        )
        self.height = height
        self.expected_root = expected_root
        self.got_root = got_root
        self.expected_hash = expected_hash
        self.got_hash = got_hash


def execute_block(state: State, block: Block, expect_root: bytes | None = None,
                  expect_hash: bytes | None = None, verified: Container[bytes] = ()
                  ) -> BlockResult:
    """Apply ``block`` and derive its state root, header and hash (production, replay, DA
    replay and tests all go through here). With ``expect_*`` given (re-execution of a
    stored or published block), raise :class:`ChainMismatch` unless both match.
    ``verified``: signatures already checked by the caller (:func:`apply_block`)."""
    new_state, receipts = apply_block(state, block, verified)
    root = new_state.state_root()
    header = block_header(block, root, receipts)
    h = block_hash(header)
    if expect_root is not None and (root != expect_root or h != expect_hash):
        raise ChainMismatch(block.height, expect_root, root, expect_hash or b"", h)
    return BlockResult(new_state, receipts, root, header, h)


def genesis_state(chain_id: int, protocol: int = CURRENT_PROTOCOL) -> State:
    """The empty state every chain starts from. ``protocol`` is the chain's rule set
    (``constants.PROTOCOL_*``), fixed at genesis like ``chain_id``: new chains get the
    current one; chains recorded before a fork pass the version they were created with."""
    if protocol not in KNOWN_PROTOCOLS:
        raise ValueError(f"unknown protocol version {protocol}")
    return State(chain_id=chain_id, protocol=protocol)


# ---------------------------------------------------------------- block header


def actions_root(actions: Sequence[SignedAction]) -> bytes:
    return MerkleTree([sa.hash for sa in actions]).root()


def receipts_root(receipts: Sequence[Receipt]) -> bytes:
    return MerkleTree([keccak256(r.encode()) for r in receipts]).root()


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
