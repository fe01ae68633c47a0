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
  uint256 unlock_time))``; a beacon (once seen), the protocol version (from 2 on) and the
  latest block timestamp (from 3 on) are appended (see ``State.meta_root``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from state_machine import codec, indexes
from state_machine.constants import PROTOCOL_PACED_WINDOWS, PROTOCOL_V1
from state_machine.cow import CowMap
from state_machine.crypto import abi_bytes32, abi_uint, keccak256
from state_machine.leaves import (
    SUBROOT_ACCOUNTS,
    SUBROOT_TASKS,
    compose_state_root,
    epoch_leaf,
    state_proof,
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
from state_machine.records import (  # noqa: F401  (re-exported: the STF's names for them)
    Account,
    EpochState,
    Task,
    clone_account,
    clone_epoch,
    clone_task,
    delta_hash_on,
    model_hash,
    model_hash_on,
    wei,
)


@dataclass
class State:
    """The whole L2 state. Mutate only through the STF (``transition``).

    Maps are copy-on-write (``state_machine.cow``): ``state.accounts[pk]`` hands out an
    entry this state may mutate; ``peek``, ``values()`` and ``items()`` are read-only views
    (shared with parent states). States returned by ``apply_block`` are sealed."""

    chain_id: int
    # rule set (constants.PROTOCOL_*) fixed at genesis; default: snapshots older than it
    protocol: int = PROTOCOL_V1
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
    # protocol 3: timestamp of the latest block (``pacing``; 0 and uncommitted before)
    timestamp: int = 0
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
        """Commits to the senders and status trees, the L1 cursor, once one was seen the
        latest randomness beacon (a chain without beacons keeps its v1 roots) and, from
        protocol 2 on, the protocol version (so a replay under the wrong rule set differs
        from block 1; protocol 1 chains keep their roots) and, from protocol 3 on, the latest
        block timestamp (phase windows read it: ``state_machine.pacing``)."""
        beacon = (abi_uint(self.beacon[0]), abi_bytes32(self.beacon[1])) if self.beacon[0] else ()
        version = (abi_uint(self.protocol),) if self.protocol != PROTOCOL_V1 else ()
        clock = (abi_uint(self.timestamp),) if self.protocol >= PROTOCOL_PACED_WINDOWS else ()
        return keccak256(
            abi_bytes32(self.senders_tree.root()),
            abi_bytes32(self.status_tree.root()),
            abi_uint(self.l1_cursor[0]),
            abi_uint(self.l1_cursor[1]),
            *beacon,
            *version,
            *clock,
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
