"""The records behind the state's leaves: accounts, tasks, epochs (SPEC §8, §9).

Why a module of their own: ``state`` holds the trees, dirty sets and roots; these are the
values, with the leaf each one hashes to and the record each one serialises to. Clones are
cheap by design: a finished task or finalized epoch is never mutated again, so copies share
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from state_machine import codec
from state_machine.constants import PROTOCOL_CHUNK_ROOT_ONLY
from state_machine.cow import clone_record
from state_machine.crypto import abi_bytes32, abi_uint, keccak256
from state_machine.leaves import account_leaf, task_leaf
from state_machine.phases import (
    ACTIVE,
    AWAITING_GENESIS,
    DONE,
    TASK_RUNNING,
)
from state_machine.tasks import TaskParams
from state_machine.tiles import array_keccak, array_root


def wei(x: int) -> bytes:
    """uint256 wei as 32-byte big-endian, for msgpack records (ints stop at 2^64)."""
    return x.to_bytes(32, "big")


def model_hash(values: np.ndarray) -> bytes:
    """keccak256 of the little-endian bytes of an int32 model or int16 delta."""
    dtype = "<i4" if values.dtype == np.int32 else "<i2"
    return array_keccak(np.asarray(values).astype(dtype, copy=False))  # views, not a copy


def model_hash_on(protocol: int, values: np.ndarray) -> bytes:
    """The recorded hash of a model or delta (Δ_prev, a candidate, an update): keccak256
    through protocol 3, the chunk root of its little-endian bytes (``chunks.content_root``,
    via ``tiles.array_root``: chunks side by side, mapped pages released) from 4 on, so an
    update revealed through either path and Δ_prev compare by one hash (replay evidence)."""
    if protocol >= PROTOCOL_CHUNK_ROOT_ONLY:
        return array_root(values)
    return model_hash(values)


def delta_hash_on(protocol: int, delta: np.ndarray) -> bytes:
    """:func:`model_hash_on` of an int16 delta."""
    return model_hash_on(protocol, np.asarray(delta, dtype=np.int16))


@dataclass
class Account:
    index: int
    l1_address: bytes
    pubkey: bytes
    stake: int
    cumulative_slashed: int = 0
    cumulative_reward: int = 0
    status: int = ACTIVE
    unlock_time: int = 0

    def leaf(self) -> bytes:
        return account_leaf(
            self.l1_address,
            self.pubkey,
            self.stake,
            self.cumulative_slashed,
            self.cumulative_reward,
        )

    def status_leaf(self) -> bytes:
        return keccak256(
            abi_bytes32(self.pubkey), abi_uint(self.status), abi_uint(self.unlock_time)
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "l1_address": self.l1_address,
            "pubkey": self.pubkey,
            "stake": self.stake,
            "cumulative_slashed": self.cumulative_slashed,
            "cumulative_reward": self.cumulative_reward,
            "status": ["active", "unbonding", "ejected"][self.status],
            "unlock_time": self.unlock_time,
        }


@dataclass
class EpochState:
    """Working data and record of one epoch of one task."""

    task_id: int
    epoch: int
    open_height: int
    seed: bytes
    proposers: list[bytes]
    voters: list[bytes]
    global_before: bytes
    update_commits: dict[bytes, bytes] = field(default_factory=dict)
    update_hashes: dict[bytes, bytes] = field(default_factory=dict)
    updates: dict[bytes, np.ndarray] = field(default_factory=dict)
    vote_commits: dict[bytes, bytes] = field(default_factory=dict)
    votes: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    scores: list[dict[str, Any]] = field(default_factory=list)
    verdicts: dict[bytes, str] = field(default_factory=dict)
    voter_verdicts: dict[bytes, str] = field(default_factory=dict)
    candidate: np.ndarray | None = None
    candidate_delta: np.ndarray | None = None
    candidate_hash: bytes = b""
    global_after: bytes = b""
    outcome: str = "pending"
    outcome_reason: str = ""
    aggregate: int | None = None
    accuracy_bps: int | None = None
    medians: dict[str, int] = field(default_factory=dict)
    slashes: list[tuple[bytes, int, str]] = field(default_factory=list)
    rewards: dict[bytes, int] = field(default_factory=dict)
    treasury: int = 0
    phase_log: list[tuple[str, int]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """Everything a client needs to see why it was rewarded or slashed."""
        return {
            "task_id": self.task_id,
            "epoch": self.epoch,
            "open_height": self.open_height,
            "seed": self.seed,
            "proposers": list(self.proposers),
            "voters": list(self.voters),
            "global_before": self.global_before,
            "update_commits": sorted([k, v] for k, v in self.update_commits.items()),
            "update_hashes": sorted([k, v] for k, v in self.update_hashes.items()),
            "vote_commits": sorted([k, v] for k, v in self.vote_commits.items()),
            "votes": sorted([k, a, b] for k, (a, b) in self.votes.items()),
            "scores": self.scores,
            "verdicts": sorted([k, v] for k, v in self.verdicts.items()),
            "voter_verdicts": sorted([k, v] for k, v in self.voter_verdicts.items()),
            "candidate_hash": self.candidate_hash,
            "global_after": self.global_after,
            "outcome": self.outcome,
            "outcome_reason": self.outcome_reason,
            "aggregate": self.aggregate,
            "accuracy_bps": self.accuracy_bps,
            "medians": dict(self.medians),
            "slashes": [[k, wei(a), r] for k, a, r in self.slashes],
            "rewards": sorted([k, wei(v)] for k, v in self.rewards.items()),
            "treasury": wei(self.treasury),
            "phase_log": [[p, h] for p, h in self.phase_log],
        }

    def record_hash(self) -> bytes:
        return keccak256(codec.encode(self.record()))


@dataclass(frozen=True)
class PastRef:
    """A past update's row not held in memory (``Task.past_rows`` after a snapshot restore,
    for a row that was a memory-mapped blob): read at the next reveal close through the
    block's blob reader (``Block.blobs``), which maps the file again (no heap copy)."""

    hash: bytes


@dataclass
class Task:
    index: int
    task_id: int
    owner: bytes
    spec_hash: bytes
    max_epochs: int
    target_accuracy_bps: int
    escrow: int
    params: TaskParams | None
    status: int = TASK_RUNNING
    phase: str = AWAITING_GENESIS
    phase_deadline: int = 0
    epoch: int = 0
    epochs_run: int = 0
    charged: int = 0
    treasury: int = 0
    accuracy_bps: int | None = None
    global_model: np.ndarray | None = None
    global_hash: bytes = b"\x00" * 32
    prev_delta: np.ndarray | None = None
    prev_delta_hash: bytes = b"\x00" * 32
    reject_reason: str = ""
    accepted_epochs: int = 0
    # height after which an idle task expires (``state_machine.lifecycle``); None for tasks
    # created by v1 ``l1_task_created`` (no expiry: recorded v1 chains keep their roots)
    idle_deadline: int | None = None
    # protocol 3: least block timestamp at which the current phase may close
    # (``state_machine.pacing``); None on protocol 1 and 2 chains (their roots unchanged)
    phase_not_before: int | None = None
    # protocol 5: the public past of the freshness gate (``epochs.record_past_updates``):
    # ``[pubkey, epoch, update_hash]`` of each client's last reveal in an earlier epoch,
    # pubkey order, at most ``PAST_UPDATES_MAX`` distinct hashes. None before protocol 5
    # and before the task's first reveal close (roots of older chains unchanged)
    past_updates: list[list[Any]] | None = None
    # the rows of ``past_updates`` by hash: not state (not in the leaf), the arrays the
    # reveals already resolved (v1 inline bytes, v2 blob maps), kept until superseded;
    # snapshots store them by hash (``snapshot.BlobRef``) like an epoch's revealed updates,
    # a memory-mapped blob as a :class:`PastRef` (read again through the blob reader)
    past_rows: dict[bytes, np.ndarray | PastRef] | None = None

    @property
    def fee_per_epoch(self) -> int:
        return self.escrow // self.max_epochs

    def detail(self) -> dict[str, Any]:
        d = {
            "task_id": self.task_id,
            "spec_hash": self.spec_hash,
            "max_epochs": self.max_epochs,
            "target_accuracy_bps": self.target_accuracy_bps,
            "params": self.params.to_record() if self.params else None,
            "phase": self.phase,
            "phase_deadline": self.phase_deadline,
            "epoch": self.epoch,
            "epochs_run": self.epochs_run,
            "accepted_epochs": self.accepted_epochs,
            "accuracy_bps": self.accuracy_bps,
            "global_hash": self.global_hash,
            "prev_delta_hash": self.prev_delta_hash,
            "reject_reason": self.reject_reason,
        }
        if self.idle_deadline is not None:  # v2 tasks only (see ``idle_deadline``)
            d["idle_deadline"] = self.idle_deadline
        if self.phase_not_before is not None:  # protocol 3 only (``pacing``)
            d["phase_not_before"] = self.phase_not_before
        if self.past_updates is not None:  # protocol 5 only (``epochs``)
            d["past_updates"] = [list(e) for e in self.past_updates]
        return d

    def leaf(self) -> bytes:
        detail_hash = keccak256(codec.encode(self.detail()))
        return task_leaf(
            self.task_id,
            self.owner,
            self.escrow,
            self.charged,
            self.treasury,
            self.status,
            detail_hash,
        )

    def to_record(self) -> dict[str, Any]:
        rec = self.detail()
        rec.update(
            owner=self.owner,
            escrow=self.escrow,
            charged=self.charged,
            treasury=self.treasury,
            status=["running", "completed", "rejected"][self.status],
            fee_per_epoch=self.fee_per_epoch,
        )
        return rec


def clone_account(acc: Account) -> Account:
    new = object.__new__(Account)
    new.__dict__.update(acc.__dict__)
    return new


def clone_task(task: Task) -> Task:
    """A finished task is never mutated again: share it."""
    return task if task.phase == DONE else clone_record(task)  # type: ignore[no-any-return]


def clone_epoch(ep: EpochState) -> EpochState:
    """A finalized epoch is never mutated again: share it."""
    return ep if ep.outcome != "pending" else clone_record(ep)  # type: ignore[no-any-return]
