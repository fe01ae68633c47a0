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
not with chain length.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import Connection

from sequencer.store import BlockRow, Store
from state_machine import snapshot
from state_machine.actions import decode_signed
from state_machine.state import State
from state_machine.transition import Block, execute_block, genesis_state

log = logging.getLogger("flockchain.sequencer")

LOG_KEEP = 4096  # heights of touched keys kept below the newest snapshot


def replay_block(store: Store, state: State, b: BlockRow) -> State:
    """Re-execute stored block ``b`` on ``state``; raise ChainMismatch on a wrong root/hash."""
    acts = [decode_signed(raw) for raw in store.block_action_bytes(b.height)]
    block = Block(b.height, b.parent_hash, b.timestamp, acts)
    return execute_block(state, block, b.state_root, b.hash).state


class History:
    """Snapshots and historical states of one chain (see the module docstring)."""

    def __init__(self, store: Store, chain_id: int, interval: int, cache: int) -> None:
        self.store = store
        self.chain_id = chain_id
        self.interval = interval
        self.cache_size = max(1, cache)
        self._cache: OrderedDict[int, State] = OrderedDict()
        self._lock = threading.Lock()
        self._log: dict[int, dict[str, list[Any]]] = {}  # height -> keys it touched
        self._snaps: dict[int, int] = {}  # snapshot height -> depth in its chain

    # ------------------------------------------------------------------ recovery

    def recover(self, head: BlockRow) -> State:
        """The state after ``head``: latest usable snapshot, then replay of later blocks."""
        state, start = genesis_state(self.chain_id), 0
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
            self._snaps[height] = chain[-1]["depth"]
        return state

    # ------------------------------------------------------------------ writing

    def on_block(self, conn: Connection, state: State) -> None:
        """In the block's transaction: remember what it touched; snapshot if due."""
        self._log[state.height] = state.touched()
        if self.interval > 0 and state.height % self.interval == 0:
            self.write_snapshot(conn, state)

    def write_snapshot(self, conn: Connection, state: State) -> None:
        """Snapshot ``state`` (incremental when the touched log reaches a known base)."""
        h = state.height
        if h in self._snaps or self.store.snapshot_at(h, conn) is not None:
            return
        bases = [k for k in self._snaps if k < h]
        base = max(bases) if bases else None
        changed: dict[str, set[Any]] | None = None
        depth = 0
        if base is not None and self._snaps[base] + 1 < snapshot.FULL_EVERY and all(
            k in self._log for k in range(base + 1, h + 1)
        ):
            changed = {}
            for k in range(base + 1, h + 1):
                for name, keys in self._log[k].items():
                    changed.setdefault(name, set()).update(keys)
            depth = self._snaps[base] + 1
        data = snapshot.encode(state, changed, base, depth)
        self.store.insert_snapshot(conn, h, state.state_root(), data)
        self._snaps[h] = depth
        newest = max(self._snaps)
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
            state = genesis_state(self.chain_id)
        for b in self.store.iter_blocks(state.height + 1, height):
            state = replay_block(self.store, state, b)
        self.remember(state)
        return state
