"""Incremental state snapshots: small, array-free, rebuilt without replaying blocks.

Why: a snapshot used to pickle the whole state, revealed updates included, into one SQL
blob; a reveal phase holding more than ~1 GB of updates could then never pass a snapshot
height (``string or blob too big``), and every snapshot cost O(state). Now:

* **Arrays by reference.** Models, deltas and revealed updates are replaced by
  :class:`BlobRef` (keccak256 of their little-endian bytes, which the node stores as blobs
  anyway); ``restore`` fetches them through a callback. A snapshot never holds update bytes.
* **Incremental.** A snapshot holds the scalars plus only the map entries changed since its
  base snapshot (``State.touched()`` per block, collected by the node); every
  ``FULL_EVERY``-th snapshot in a chain is full, so a restore reads at most that many.
* **Trees rebuilt.** Merkle trees are derived data; ``restore`` rebuilds them from the
  entries (O(state), no blocks) and the caller checks the root against the block's.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from state_machine import indexes
from state_machine.cow import CowMap, clone_record
from state_machine.crypto import abi_bytes32, abi_uint, keccak256
from state_machine.leaves import epoch_leaf
from state_machine.merkle import MerkleTree
from state_machine.records import PastRef
from state_machine.state import EpochState, State, Task, model_hash
from state_machine.tiles import is_mapped

SNAPSHOT_VERSION = 2
FULL_EVERY = 32  # longest chain of incremental snapshots before a full one


@dataclass(frozen=True)
class BlobRef:
    """An array stored outside the snapshot: its blob hash and dtype."""

    hash: bytes
    dtype: str  # "<i2" or "<i4"


def _ref(arr: np.ndarray | None, h: bytes) -> BlobRef | None:
    if arr is None:
        return None
    return BlobRef(h, "<i4" if arr.dtype == np.int32 else "<i2")


def _past_ref(h: bytes, row: np.ndarray | PastRef) -> BlobRef | PastRef:
    """A past row in a snapshot: a blob file's map stays a :class:`PastRef` on restore
    (mapped again through the blob reader at the next close, not copied onto the heap);
    an in-memory row (a v1 reveal's bytes) is a BlobRef, fetched back on restore."""
    if isinstance(row, PastRef) or is_mapped(row):
        return PastRef(h)
    return BlobRef(h, "<i2")


def _strip_task(t: Task) -> Task:
    c: Task = clone_record(t)
    c.global_model = _ref(t.global_model, t.global_hash)  # type: ignore[assignment]
    c.prev_delta = _ref(t.prev_delta, t.prev_delta_hash)  # type: ignore[assignment]
    if t.past_rows is not None:  # protocol 5: the gate's past rows, by their blob hash
        c.past_rows = {h: _past_ref(h, r) for h, r in t.past_rows.items()}  # type: ignore[misc]
    return c


def _strip_epoch(ep: EpochState) -> EpochState:
    c: EpochState = clone_record(ep)
    c.updates = {pk: BlobRef(ep.update_hashes[pk], "<i2") for pk in ep.updates}  # type: ignore[misc]
    c.candidate = _ref(ep.candidate, ep.candidate_hash)  # type: ignore[assignment]
    if ep.candidate_delta is not None:
        c.candidate_delta = _ref(ep.candidate_delta, model_hash(ep.candidate_delta))  # type: ignore[assignment]
    return c


_STRIP: dict[str, Callable[[Any], Any]] = {"tasks": _strip_task, "epochs": _strip_epoch}


def encode(state: State, changed: Mapping[str, Iterable[Any]] | None, base: int | None,
           depth: int) -> bytes:
    """Snapshot of ``state``: all entries (``changed`` None: a full snapshot) or only the
    keys in ``changed`` per map name, as a diff against snapshot ``base``."""
    maps: dict[str, dict[Any, Any]] = {}
    scalars: dict[str, Any] = {}
    for name, v in state.__dict__.items():
        if isinstance(v, CowMap) and name[0] != "_":  # derived indexes are rebuilt
            keys = list(v) if changed is None else [k for k in changed.get(name, ()) if k in v]
            strip = _STRIP.get(name, lambda x: x)
            maps[name] = {k: strip(v.peek(k)) for k in keys}
        elif not isinstance(v, (set, list, dict)) and not hasattr(v, "root") and name[0] != "_":
            scalars[name] = v
    payload = {"version": SNAPSHOT_VERSION, "base": None if changed is None else base,
               "depth": 0 if changed is None else depth, "height": state.height,
               "scalars": scalars, "maps": maps}
    return pickle.dumps(payload, protocol=5)


def decode(data: bytes) -> dict[str, Any]:
    payload = pickle.loads(data)
    if not isinstance(payload, dict) or payload.get("version") != SNAPSHOT_VERSION:
        raise ValueError("not a snapshot of a known version")
    return payload


def restore(chain: list[dict[str, Any]], fetch: Callable[[bytes], bytes | None]) -> State:
    """The state of the last payload in ``chain`` (a full snapshot first, then diffs in
    height order). ``fetch(hash)`` returns blob bytes. The caller checks the root."""
    if not chain or chain[0]["base"] is not None:
        raise ValueError("a snapshot chain starts with a full snapshot")
    state = State(chain_id=chain[-1]["scalars"]["chain_id"])
    merged: dict[str, dict[Any, Any]] = {}
    for p in chain:
        for name, entries in p["maps"].items():
            merged.setdefault(name, {}).update(entries)
    for name, entries in merged.items():
        m = getattr(state, name)
        resolve = _RESOLVE.get(name)
        for k, v in entries.items():
            m._own[k] = resolve(v, fetch) if resolve else v
        m._len = len(m._own)
    state.__dict__.update(chain[-1]["scalars"])
    rebuild_trees(state)
    return state


def rebuild_trees(state: State) -> None:
    """Derive every tree from the entries (after a restore): O(state), no blocks."""
    accs = sorted(state.accounts.values(), key=lambda a: a.index)
    state.accounts_tree = MerkleTree([a.leaf() for a in accs])
    state.status_tree = MerkleTree([a.status_leaf() for a in accs])
    senders = sorted(state.sender_index.items(), key=lambda kv: kv[1])
    state.senders_tree = MerkleTree(
        [keccak256(abi_bytes32(pk), abi_uint(state.nonces.peek(pk))) for pk, _ in senders]
    )
    state.tasks_tree = MerkleTree([t.leaf() for t in sorted(state.tasks.values(),
                                                           key=lambda t: t.index)])
    eps = sorted(state.epoch_index.items(), key=lambda kv: kv[1])
    state.epochs_tree = MerkleTree(
        [epoch_leaf(k[0], k[1], state.epochs.peek(k).record_hash()) for k, _ in eps]
    )
    for dirty in (state.dirty_accounts, state.dirty_senders, state.dirty_tasks,
                  state.dirty_epochs):
        dirty.clear()
    indexes.rebuild(state)


def _array(ref: Any, fetch: Callable[[bytes], bytes | None]) -> Any:
    if not isinstance(ref, BlobRef):
        return ref
    data = fetch(ref.hash)
    if data is None:
        raise ValueError(f"blob 0x{ref.hash.hex()} is missing")
    arr = np.frombuffer(data, dtype=ref.dtype).astype(np.int32 if ref.dtype == "<i4" else np.int16)
    arr.setflags(write=False)
    return arr


def _resolve_task(t: Task, fetch: Callable[[bytes], bytes | None]) -> Task:
    c: Task = clone_record(t)
    c.global_model, c.prev_delta = _array(t.global_model, fetch), _array(t.prev_delta, fetch)
    if getattr(t, "past_rows", None) is not None:
        c.past_rows = {h: _array(r, fetch) for h, r in t.past_rows.items()}
    return c


def _resolve_epoch(ep: EpochState, fetch: Callable[[bytes], bytes | None]) -> EpochState:
    c: EpochState = clone_record(ep)
    c.updates = {pk: _array(r, fetch) for pk, r in ep.updates.items()}
    c.candidate = _array(ep.candidate, fetch)
    c.candidate_delta = _array(ep.candidate_delta, fetch)
    return c


_RESOLVE: dict[str, Callable[[Any, Callable[[bytes], bytes | None]], Any]] = {
    "tasks": _resolve_task, "epochs": _resolve_epoch,
}
