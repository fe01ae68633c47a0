"""The rollup state and its commitment (SPEC §8, §9).

Why dirty sets: every mutation marks the leaf it touches; ``state_root()`` rehashes only
those leaves (O(k log n) for k changes) instead of rebuilding the trees.

Sub-trees (each a ``MerkleTree`` indexed by insertion order):

* accounts: ``account_leaf(l1_address, pubkey, stake, cumulative_slashed, cumulative_reward)``
* tasks: ``task_leaf(task_id, owner, escrow, charged, treasury, status, detail_hash)``
* epochs: ``epoch_leaf(task_id, epoch, keccak256(msgpack(epoch record)))``
* meta root: ``keccak256(abi.encode(senders_root, status_root, l1_block, l1_log_index))``
  where senders leaves are ``keccak256(abi.encode(bytes32 pubkey, uint256 nonce))`` and
  status leaves (one per account) ``keccak256(abi.encode(bytes32 pubkey, uint256 status,
  uint256 unlock_time))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from state_machine import codec, indexes
from state_machine.cow import CowMap, clone_record
from state_machine.crypto import abi_bytes32, abi_uint, keccak256
from state_machine.leaves import (
    SUBROOT_ACCOUNTS,
    SUBROOT_TASKS,
    account_leaf,
    compose_state_root,
    epoch_leaf,
    state_proof,
    task_leaf,
)
from state_machine.merkle import MerkleTree
from state_machine.phases import (  # noqa: F401  (re-exported: the STF's names for them)
    ACTIVE,
    AWAITING_GENESIS,
    DEADLINE_PHASES,
    DONE,
    EJECTED,
    TASK_COMPLETED,
    TASK_REJECTED,
    TASK_RUNNING,
    UNBONDING,
    UPDATE_COMMIT,
    UPDATE_REVEAL,
    VOTE_COMMIT,
    VOTE_REVEAL,
    WAITING_CLIENTS,
)
from state_machine.tasks import TaskParams


def wei(x: int) -> bytes:
    """uint256 wei as 32-byte big-endian, for msgpack records (ints stop at 2^64)."""
    return x.to_bytes(32, "big")


def model_hash(values: np.ndarray) -> bytes:
    """keccak256 of the little-endian bytes of an int32 model or int16 delta."""
    dtype = "<i4" if values.dtype == np.int32 else "<i2"
    return keccak256(values.astype(dtype, copy=False).tobytes())


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

    @property
    def fee_per_epoch(self) -> int:
        return self.escrow // self.max_epochs

    def detail(self) -> dict[str, Any]:
        return {
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


@dataclass
class State:
    """The whole L2 state. Mutate only through the STF (``transition``).

    Maps are copy-on-write (``state_machine.cow``): ``state.accounts[pk]`` hands out an
    entry this state may mutate; ``peek``, ``values()`` and ``items()`` are read-only views
    (shared with parent states). States returned by ``apply_block`` are sealed."""

    chain_id: int
    height: int = 0
    accounts: CowMap[bytes, Account] = field(default_factory=lambda: CowMap(None, clone_account))
    nonces: CowMap[bytes, int] = field(default_factory=CowMap)
    sender_index: CowMap[bytes, int] = field(default_factory=CowMap)
    tasks: CowMap[int, Task] = field(default_factory=lambda: CowMap(None, clone_task))
    epochs: CowMap[tuple[int, int], EpochState] = field(
        default_factory=lambda: CowMap(None, clone_epoch)
    )
    epoch_index: CowMap[tuple[int, int], int] = field(default_factory=CowMap)
    # l1_address -> pubkeys ever staked from it (deposit checks without scanning accounts)
    address_index: CowMap[bytes, tuple[bytes, ...]] = field(default_factory=CowMap)
    l1_cursor: tuple[int, int] = (0, 0)
    l1_seen: bool = False
    # latest L1 randomness beacon (number, prevrandao); number 0: none seen (v1 chains)
    beacon: tuple[int, bytes] = (0, b"\x00" * 32)
    treasury_total: int = 0
    accounts_tree: MerkleTree = field(default_factory=MerkleTree)
    status_tree: MerkleTree = field(default_factory=MerkleTree)
    senders_tree: MerkleTree = field(default_factory=MerkleTree)
    tasks_tree: MerkleTree = field(default_factory=MerkleTree)
    epochs_tree: MerkleTree = field(default_factory=MerkleTree)
    dirty_accounts: set[bytes] = field(default_factory=set)
    dirty_senders: set[bytes] = field(default_factory=set)
    dirty_tasks: set[int] = field(default_factory=set)
    dirty_epochs: set[tuple[int, int]] = field(default_factory=set)
    # savepoint of the action being applied: scalars and dirty keys added since (rollback)
    _saved: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _dirty_added: list[tuple[set[Any], Any]] = field(default_factory=list, repr=False,
                                                    compare=False)
    # derived indexes (``state_machine.indexes``; no part of any root, not snapshotted)
    _active_tasks: frozenset[int] = field(default=frozenset(), repr=False, compare=False)
    _waiting_tasks: frozenset[int] = field(default=frozenset(), repr=False, compare=False)
    _eligible: CowMap[bytes, bool] = field(default_factory=CowMap, repr=False, compare=False)
    _eligible_count: int = field(default=0, repr=False, compare=False)

    # ---- copying ----
    def copy(self) -> State:
        """A writable copy in O(touched + log n): maps and trees are copy-on-write, numpy
        arrays are shared because the STF never mutates them."""
        st = State.__new__(State)
        d = self.__dict__.copy()
        for k in _MAP_FIELDS:
            d[k] = d[k].child()
        for k in _TREE_FIELDS:
            d[k] = d[k].copy()
        for k in _SET_FIELDS:
            d[k] = set(d[k])
        d["_saved"], d["_dirty_added"] = None, []
        st.__dict__ = d
        return st

    def seal(self) -> None:
        """Refuse writes from now on (the state is handed out to readers)."""
        for m in self._maps():
            m.seal()

    def _maps(self) -> list[CowMap[Any, Any]]:
        d = self.__dict__
        return [d[k] for k in _MAP_FIELDS]

    def touched(self) -> dict[str, list[Any]]:
        """Keys of every map written since this state was copied from its parent."""
        return {k: self.__dict__[k].own_keys() for k in _MAP_FIELDS}

    # ---- savepoints (one action) ----
    def begin_action(self) -> None:
        """Journal everything the next action changes, so :meth:`rollback_action` can undo
        it exactly."""
        d = self.__dict__
        self._saved = {k: d[k] for k in _SCALAR_FIELDS}
        self._dirty_added = []
        for m in self._maps():
            m.begin()

    def commit_action(self) -> None:
        for m in self._maps():
            m.commit()
        self._saved, self._dirty_added = None, []

    def rollback_action(self) -> None:
        saved = self._saved
        assert saved is not None, "rollback without begin_action"
        for m in self._maps():
            m.rollback()
        for dirty, key in self._dirty_added:
            dirty.discard(key)
        self.__dict__.update(saved)
        self._saved, self._dirty_added = None, []

    # ---- mutation markers ----
    def _mark(self, dirty: set[Any], key: Any) -> None:
        if key not in dirty:
            dirty.add(key)
            if self._saved is not None:
                self._dirty_added.append((dirty, key))

    def touch_account(self, pubkey: bytes) -> None:
        self._mark(self.dirty_accounts, pubkey)

    def touch_task(self, task_id: int) -> None:
        self._mark(self.dirty_tasks, task_id)

    def touch_epoch(self, task_id: int, epoch: int) -> None:
        self._mark(self.dirty_epochs, (task_id, epoch))

    def register_sender(self, sender: bytes) -> None:
        """Give ``sender`` its leaf in the senders tree (staked clients get theirs at
        deposit, in L1 order, so the order of their later actions cannot move leaves)."""
        if sender not in self.sender_index:
            self.sender_index[sender] = len(self.sender_index)
            if sender not in self.nonces:
                self.nonces[sender] = 0
            self._mark(self.dirty_senders, sender)

    def bump_nonce(self, sender: bytes) -> None:
        self.register_sender(sender)
        self.nonces[sender] = self.nonces.get(sender, 0) + 1
        self._mark(self.dirty_senders, sender)

    def add_account(self, account: Account) -> None:
        self.accounts[account.pubkey] = account
        addr = account.l1_address
        self.address_index[addr] = (*self.address_index.get(addr, ()), account.pubkey)
        self.touch_account(account.pubkey)

    def add_task(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self.touch_task(task.task_id)

    def add_epoch(self, ep: EpochState) -> None:
        key = (ep.task_id, ep.epoch)
        self.epochs[key] = ep
        self.touch_epoch(*key)

    # ---- commitment ----
    def _flush(self) -> None:
        """Write every dirty leaf, then rehash each changed interior node once per tree
        (leaves touched by one block share the upper part of their paths)."""
        accounts, tasks, epochs = self.accounts, self.tasks, self.epochs
        accs = sorted((accounts.peek(p) for p in self.dirty_accounts), key=lambda a: a.index)
        self.accounts_tree.update_many([(a.index, a.leaf()) for a in accs])
        self.status_tree.update_many([(a.index, a.status_leaf()) for a in accs])
        idx = self.sender_index
        self.senders_tree.update_many([
            (idx[pk], keccak256(abi_bytes32(pk), abi_uint(self.nonces[pk])))
            for pk in sorted(self.dirty_senders, key=lambda p: idx[p])
        ])
        ts = sorted((tasks.peek(t) for t in self.dirty_tasks), key=lambda t: t.index)
        self.tasks_tree.update_many([(t.index, t.leaf()) for t in ts])
        eleaves = []
        fresh = len(self.epochs_tree)  # new epochs get the next indices, in this order
        for key in sorted(self.dirty_epochs, key=lambda k: self.epoch_index.get(k, 1 << 62)):
            ep = epochs.peek(key)
            if key not in self.epoch_index:
                self.epoch_index[key], fresh = fresh, fresh + 1
            eleaves.append((self.epoch_index[key], epoch_leaf(ep.task_id, ep.epoch,
                                                              ep.record_hash())))
        self.epochs_tree.update_many(eleaves)
        indexes.index_accounts(self, accs)
        indexes.index_tasks(self, ts)
        self.dirty_accounts.clear()
        self.dirty_senders.clear()
        self.dirty_tasks.clear()
        self.dirty_epochs.clear()

    def meta_root(self) -> bytes:
        """Commits to the senders and status trees, the L1 cursor and, once one was seen,
        the latest randomness beacon (a chain without beacons keeps its v1 roots)."""
        beacon = (abi_uint(self.beacon[0]), abi_bytes32(self.beacon[1])) if self.beacon[0] else ()
        return keccak256(
            abi_bytes32(self.senders_tree.root()),
            abi_bytes32(self.status_tree.root()),
            abi_uint(self.l1_cursor[0]),
            abi_uint(self.l1_cursor[1]),
            *beacon,
        )

    def subroots(self) -> list[bytes]:
        self._flush()
        return [
            self.accounts_tree.root(),
            self.tasks_tree.root(),
            self.epochs_tree.root(),
            self.meta_root(),
        ]

    def state_root(self) -> bytes:
        return compose_state_root(self.subroots())

    # ---- proofs ----
    def account_proof(self, pubkey: bytes) -> dict[str, Any]:
        """Leaf fields and the state proof that SlashingManager/RewardManager verify."""
        subroots = self.subroots()
        acc = self.accounts.peek(pubkey)
        if acc is None:
            raise KeyError(pubkey)
        return {
            "leaf": acc.leaf(),
            "fields": acc.to_record(),
            "proof": state_proof(subroots, SUBROOT_ACCOUNTS, self.accounts_tree.proof(acc.index)),
            "state_root": compose_state_root(subroots),
        }

    def task_proof(self, task_id: int) -> dict[str, Any]:
        subroots = self.subroots()
        task = self.tasks.peek(task_id)
        if task is None:
            raise KeyError(task_id)
        return {
            "leaf": task.leaf(),
            "detail_hash": keccak256(codec.encode(task.detail())),
            "fields": task.to_record(),
            "proof": state_proof(subroots, SUBROOT_TASKS, self.tasks_tree.proof(task.index)),
            "state_root": compose_state_root(subroots),
        }


def _fields_of(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(State) if str(f.type).startswith(kind))


_MAP_FIELDS = _fields_of("CowMap")
_TREE_FIELDS = _fields_of("MerkleTree")
_SET_FIELDS = _fields_of("set")
_SCALAR_FIELDS = tuple(
    f.name for f in fields(State)
    if f.name[0] != "_" and f.name not in _MAP_FIELDS + _TREE_FIELDS + _SET_FIELDS
)


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
