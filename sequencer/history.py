"""Historical states: snapshots, recovery and ``state_at`` (one implementation).

Why: every slash relay and reward claim needs a proof against an old *final* batch's state
root. Replaying from genesis for that cost O(chain length) per request. Now:

* a snapshot at every batch end (and every ``snapshot_interval`` blocks), incremental and
  array-free (``state_machine.snapshot``), written in the same transaction as the block or
  batch it describes;
* a state for any height = nearest snapshot at or below it (at most ``FULL_EVERY`` small
  rows) plus replay of at most ``snapshot_interval`` blocks; batch ends need no replay;
* recent states stay in memory (copy-on-write states share nearly everything, so keeping
  many costs little).

Restart = latest snapshot + the blocks after it: it grows with blocks since that snapshot,
not with chain length. Snapshots are all kept (proofs may be asked against any final
batch): an incremental one holds only the entries its blocks touched (a few hundred bytes
for a quiet batch), a full one (every ``FULL_EVERY``-th) is O(state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from blobstore.arrays import arrays_for
from blobstore.source import StoreSource
from sequencer.store import BlockRow, Store
from state_machine import snapshot
from state_machine.actions import decode_signed
from state_machine.constants import CURRENT_PROTOCOL
from state_machine.state import State
from state_machine.transition import Block, execute_block, genesis_state

log = logging.getLogger("flockchain.sequencer")

LOG_KEEP = 4096  # heights of touched keys kept below the newest snapshot


def replay_block(store: Store, state: State, b: BlockRow) -> State:
    """Re-execute stored block ``b`` on ``state``; raise ChainMismatch on a wrong root/hash."""
    acts = [decode_signed(raw) for raw in store.block_action_bytes(b.height)]
    block = Block(b.height, b.parent_hash, b.timestamp, acts, blobs=StoreSource(store.blobstore),
                  arrays=arrays_for(store.blobstore))
    return execute_block(state, block, b.state_root, b.hash).state


class History:
    """Snapshots and historical states of one chain (see the module docstring)."""

    def __init__(self, store: Store, chain_id: int, interval: int, cache: int) -> None:
        self.store = store
        self.chain_id = chain_id
        self.protocol = CURRENT_PROTOCOL  # the chain's, set by the sequencer from the store
        self.interval = interval
        self.cache_size = max(1, cache)
        self._cache: OrderedDict[int, State] = OrderedDict()
        self._lock = threading.Lock()
        self._log: dict[int, dict[str, list[Any]]] = {}  # height -> keys it touched
        self._snaps: dict[int, int] = {}  # committed snapshot height -> depth in its chain
        self._written: dict[int, int] = {}  # written in a transaction not yet committed
        self._snap_lock = threading.Lock()  # _snaps/_written: writer and caller threads

    # ------------------------------------------------------------------ recovery

    def recover(self, head: BlockRow) -> State:
        """The state after ``head``: latest usable snapshot, then replay of later blocks."""
        state, start = genesis_state(self.chain_id, self.protocol), 0
        snap = self.store.latest_snapshot(head.height)
        if snap is not None:
            loaded = self.load(snap[0], track=True)
            if loaded is not None:
                state, start = loaded, snap[0]
        t0 = time.perf_counter()
        for b in self.store.iter_blocks(start + 1, head.height):
            state = replay_block(self.store, state, b)
            self._log[b.height] = state.touched()
        log.info("recovered height %d (snapshot %d, replayed %d blocks in %.2fs)",
                 head.height, start, head.height - start, time.perf_counter() - t0)
        return state

    def load(self, height: int, track: bool = False) -> State | None:
        """Restore the snapshot at ``height`` and check it against the stored block; None
        (and a warning) if it is unusable: a bad snapshot only costs replay time."""
        try:
            rows = self.store.snapshots_upto(height, snapshot.FULL_EVERY)  # one query
            chain: list[dict[str, Any]] = []
            h: int | None = height
            while h is not None:
                row = rows.get(h) or self.store.snapshot_at(h)
                if row is None:
                    raise ValueError(f"base snapshot {h} is missing")
                chain.insert(0, snapshot.decode(row[1]))
                h = chain[0]["base"]
            state = snapshot.restore(chain, self.store.blob)
            blk = self.store.block(height)
            if blk is None or not state.state_root() == rows[height][0] == blk.state_root:
                raise ValueError("root mismatch")
        except Exception as exc:
            log.warning("snapshot at %d unusable: %s", height, exc)
            return None
        state.seal()
        if track:  # the writer's base for the next incremental snapshot
            with self._snap_lock:
                self._snaps[height] = chain[-1]["depth"]
        return state

    # ------------------------------------------------------------------ writing

    def on_block(self, conn: Connection, state: State) -> None:
        """In the block's transaction: remember what it touched; snapshot if due."""
        self._log[state.height] = state.touched()
        if self.interval > 0 and state.height % self.interval == 0:
            self.write_snapshot(conn, state)

    def committed(self, height: int) -> None:
        """The transaction that wrote a snapshot at ``height`` (if any) committed: it may
        now be the base of later incremental snapshots."""
        with self._snap_lock:
            depth = self._written.pop(height, None)
            if depth is not None:
                self._snaps[height] = depth
                if len(self._snaps) > 256:  # older ones can no longer be bases (log pruned)
                    newest = max(self._snaps)
                    for k in [k for k in self._snaps if k < newest - LOG_KEEP]:
                        del self._snaps[k]

    def rolled_back(self, height: int) -> None:
        with self._snap_lock:
            self._written.pop(height, None)

    @contextmanager
    def transaction(self, height: int) -> Iterator[None]:
        """Around the write of a block or batch at ``height``: its snapshot (if any) may
        become a base only if the transaction committed."""
        try:
            yield
        except BaseException:
            self.rolled_back(height)
            raise
        self.committed(height)

    def write_snapshot(self, conn: Connection, state: State) -> None:
        """Snapshot ``state`` (incremental when the touched log reaches a known base)."""
        h = state.height
        if self.store.snapshot_at(h, conn) is not None:
            return
        with self._snap_lock:
            snaps = dict(self._snaps)
        bases = [k for k in snaps if k < h]
        base = max(bases) if bases else None
        changed: dict[str, set[Any]] | None = None
        depth = 0
        if base is not None and snaps[base] + 1 < snapshot.FULL_EVERY and all(
            k in self._log for k in range(base + 1, h + 1)
        ):
            changed = {}
            for k in range(base + 1, h + 1):
                for name, keys in self._log[k].items():
                    changed.setdefault(name, set()).update(keys)
            depth = snaps[base] + 1
        data = snapshot.encode(state, changed, base, depth)
        self.store.insert_snapshot(conn, h, state.state_root(), data)
        with self._snap_lock:
            self._written[h] = depth
        newest = max(snaps, default=h)
        for k in [k for k in self._log if k <= newest - LOG_KEEP]:
            del self._log[k]

    # ------------------------------------------------------------------ reading

    def remember(self, state: State) -> None:
        with self._lock:
            self._cache[state.height] = state
            self._cache.move_to_end(state.height)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def state_at(self, height: int, current: State) -> State:
        """The state after block ``height``. Raises KeyError if the chain is not that high."""
        if height == current.height:
            return current
        if height > current.height or height < 0:
            raise KeyError(f"no block {height}")
        with self._lock:
            cached = self._cache.get(height)
        if cached is not None:
            return cached
        state: State | None = None
        snap = self.store.latest_snapshot(height)
        if snap is not None:
            state = self.load(snap[0])
        if state is None:
            state = genesis_state(self.chain_id, self.protocol)
        for b in self.store.iter_blocks(state.height + 1, height):
            state = replay_block(self.store, state, b)
        self.remember(state)
        return state
