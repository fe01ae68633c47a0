"""The sequencer: a thin facade over admission (``submit``: one action or a batch; the
intake thread, ``intake``), the mempool (``mempool``), the group-commit writer (``writer``),
block production (``blocks``), batches (``batches``) and historical states (``history``).

Why this design:

* **Ack only after commit.** An ack is the sequencer's signed promise to include the action
  (SPEC §12). It is returned only after the action row is committed (one writer thread,
  group commit), so a crash can never lose an acknowledged action.
* **Pure STF outside the lock.** ``execute_block`` runs without the admission lock, on an
  immutable (sealed, copy-on-write) state; the new state is swapped in only after the
  block is durable. Submissions meanwhile are checked against the old state plus the
  mempool, which still contains the block's actions (the *pending view*: a sender's next
  nonce is its state nonce plus its queued actions).

Thread model: any thread may call ``submit*``; the background producer (or a test calling
:meth:`produce_block`) builds blocks; the writer thread owns all writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from nacl.bindings import crypto_sign_seed_keypair
from nacl.signing import SigningKey
from sqlalchemy import Connection

from blobstore.arrays import arrays_for
from blobstore.source import StoreSource
from sequencer.batches import cut_batch, read_da
from sequencer.blocks import block_due, build_block, closed_epoch
from sequencer.errors import SubmitError
from sequencer.health import WriteHealth, claim_store
from sequencer.history import History
from sequencer.intake import Intake, settle
from sequencer.mempool import Mempool
from sequencer.mempool_guard import AdmissionGate, rejected_rows
from sequencer.ratelog import RateLimitedLog
from sequencer.store import BatchRow, Store
from sequencer.submit import SubmitPath
from sequencer.types import Ack, BlockInfo, SequencerConfig, SequencerHooks  # noqa: F401  (Ack re-exported)
from sequencer.types import Entry as _Entry
from sequencer.writer import GroupCommitWriter, checkpoint_thread
from state_machine.actions import decode_signed
from state_machine.crypto import ack_message, verify_ack  # noqa: F401  (verify_ack re-exported)
from state_machine.state import State
from state_machine.transition import GENESIS_PARENT, Block, genesis_state

log = logging.getLogger("flockchain.sequencer")
_write_log = RateLimitedLog(log, every_s=30.0)  # a full disk fails every write

Batch = BatchRow


class Sequencer(SubmitPath):
    """Orders actions into blocks over a :class:`Store`. Use as a context manager, or call
    :meth:`start` / :meth:`close`.

    Opening a sequencer recovers the chain from the store: latest snapshot, then replay of
    the blocks after it (each root and hash checked), then re-queue of acked actions that
    were not included yet.
    """

    def __init__(self, store: Store, key_seed: bytes, config: SequencerConfig,
                 clock: Callable[[], int] | None = None,
                 hooks: SequencerHooks | None = None) -> None:
        self.store = store
        self.config = config
        self.chain_id = config.chain_id
        self._sk = SigningKey(key_seed)
        # the 64-byte secret key: acks are signed with nacl.bindings.crypto_sign directly
        # (SigningKey.sign wraps each signature in a SignedMessage object per action)
        self._ack_sk = crypto_sign_seed_keypair(key_seed)[1]
        self.pubkey = bytes(self._sk.verify_key)
        self._clock = clock or (lambda: int(time.time()))
        self.hooks = hooks or SequencerHooks()

        self._lock = threading.RLock()
        self._produce_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.write_health = WriteHealth()
        self._writer = GroupCommitWriter(store, config.group_commit_max,
                                         config.group_commit_wait, self._acked, self._ack_failed,
                                         self.write_health)
        self._wq = self._writer.queue  # admission puts acks here
        self._producer: threading.Thread | None = None
        self._maint: threading.Thread | None = None
        self._started = False

        self._mp = Mempool()  # the names below are its parts (admission uses them directly)
        self._by_hash, self._mempool = self._mp.by_hash, self._mp.queue
        self._pending, self._view = self._mp.pending, self._mp.view
        self._history = History(store, config.chain_id, config.snapshot_interval,
                                config.batch_state_cache)
        self._gate = AdmissionGate(config.limits)
        # everything queued on the intake passed check_msgpack_shape (submit_batched)
        self._intake = Intake(lambda raws, futs: self.submit_many(raws, futs, True))
        self.last_block_wall = time.monotonic()

        store.create()
        self._recover()

    # ------------------------------------------------------------------ lifecycle

    def _recover(self) -> None:
        self.protocol = claim_store(self.store, self.chain_id, self.pubkey, self.write_health,
                                    self.config.protocol)
        self._history.protocol = self.protocol
        state = genesis_state(self.chain_id, self.protocol)
        parent, ts = GENESIS_PARENT, 0
        head = self.store.head()
        if head is not None:
            state = self._history.recover(head)
            parent, ts = head.hash, head.timestamp
        self._state = state
        self._head_hash = parent
        self._head_ts = ts
        self._next_seq = self.store.max_seq() + 1
        for row in self.store.queued_actions():
            sa = decode_signed(row.bytes)
            e = _Entry(row.seq, sa, row.bytes, row.hash, row.received_height, row.ack)
            e.future.set_result(e.to_ack())
            self._mp.requeue(e)
            self._gate.mempool_bytes += len(row.bytes)
        self._gate.recover(rejected_rows(self.store), state)
        if self._mempool:
            log.info("re-queued %d acknowledged actions", len(self._mempool))

    def start(self) -> Sequencer:
        """Start the writer thread and (if configured) the block producer (neither in
        read-only mode)."""
        if self._started or self.write_health.read_only:
            return self
        self._started = True
        self._writer.start()
        self._intake.start()
        if self.config.produce_blocks:
            self._producer = threading.Thread(target=self._producer_loop, name="seq-producer",
                                              daemon=True)
            self._producer.start()
        if self.store.is_sqlite:
            self._maint = checkpoint_thread(self.store, self._stopping)
        return self

    def close(self) -> None:
        """Stop producing, flush pending writes, release the database."""
        if self._started:
            self._stopping.set()
            self._wake.set()
            self._intake.stop()  # what it still holds is refused (shutting_down)
            if self._producer is not None:
                self._producer.join()
            if self._maint is not None:
                self._maint.join()
            self._writer.stop()  # anything that raced with shutdown is refused
            self._started = False
        self.store.close()

    def __enter__(self) -> Sequencer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ read access

    @property
    def state(self) -> State:
        """The state after the latest block. Read-only: the STF never mutates a state that
        has been swapped in (``apply_block`` works on a copy)."""
        return self._state

    @property
    def height(self) -> int:
        return self._state.height

    @property
    def head_hash(self) -> bytes:
        return self._head_hash

    @property
    def head_timestamp(self) -> int:
        return self._head_ts

    @property
    def mempool_size(self) -> int:
        return len(self._mempool)

    def pending_nonce(self, sender: bytes) -> int:
        """The nonce the sender's next action must carry (state nonce + queued)."""
        with self._lock:
            return self._state.nonces.get(sender, 0) + self._pending.get(sender, 0)

    def pending_l1_cursor(self) -> tuple[int, int] | None:
        """Highest ``(l1_block, log_index)`` applied or queued: the bridge resumes after it."""
        with self._lock:
            return self._mp.l1_cursor(self._state)

    def action_status(self, action_hash: bytes) -> dict[str, Any] | None:
        """Status of an action: queued/included/rejected with block and reason; None if
        the sequencer never acknowledged it."""
        with self._lock:
            queued = self._mp.status(action_hash)
        if queued is not None:
            return queued
        row = self.store.action_meta_by_hash(action_hash)
        if row is None:
            return None
        row["action_hash"] = row.pop("hash")
        return row

    # ------------------------------------------------------------------ writer thread

    def _acked(self, group: list[_Entry], seconds: float) -> None:
        """A group of acks is durable: queue the actions for blocks, answer the callers."""
        self.hooks.acks_committed(len(group), seconds)
        with self._lock:
            was_empty = not self._mempool
            self._mempool.extend(group)
            full = len(self._mempool) >= self.config.max_block_actions
        for e in group:
            self.hooks.action_accepted(e.sa.action.type, len(e.raw))
            settle(e.future, e.to_ack())
        if full or was_empty:
            self._wake.set()

    def _ack_failed(self, group: list[_Entry], err: SubmitError) -> None:
        with self._lock:
            for e in group:
                self._forget(e)
        for e in group:
            settle(e.future, exc=err)

    def _forget(self, e: _Entry) -> None:
        """Drop an entry from the pending view (included in a block, or failed to store)."""
        self._mp.forget(e)
        self._gate.mempool_bytes -= len(e.raw)

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one transaction on the writer thread and wait for it."""
        return self._writer.write(fn)

    # ------------------------------------------------------------------ blocks

    def wants_block(self) -> bool:
        """A block is due if actions wait, a phase deadline is pending (blocks must keep
        coming so it passes), or a task waiting for clients can now open its epoch."""
        return bool(self._mempool) or block_due(self._state)

    def _producer_loop(self) -> None:
        bt = self.config.block_time
        while not self._stopping.is_set():
            elapsed = time.monotonic() - self.last_block_wall
            full = len(self._mempool) >= self.config.max_block_actions
            if full or (elapsed >= bt and self.wants_block()):
                try:
                    self.produce_block()
                except Exception:
                    _write_log.exception("block production failed; retrying")
                    self._stopping.wait(bt)
                continue
            self._wake.wait(max(0.0, bt - elapsed) if elapsed < bt else bt)
            self._wake.clear()

    def produce_block(self) -> BlockInfo:
        """Build, apply and durably store the next block from the head of the mempool
        (possibly empty). Safe to call from tests with ``produce_blocks=False``."""
        with self._produce_lock:
            with self._lock:
                entries = list(islice(self._mempool, self.config.max_block_actions))
                state = self._state
                parent = self._head_hash
            height = state.height + 1
            ts = max(int(self._clock()), self._head_ts)
            block = Block(height, parent, ts, [e.sa for e in entries],
                          blobs=StoreSource(self.store.blobstore),
                          arrays=arrays_for(self.store.blobstore))
            t0 = time.perf_counter()
            verified = frozenset(e.hash for e in entries if e.sig_verified)
            built = build_block(state, block, [e.seq for e in entries], verified)
            apply_s = time.perf_counter() - t0
            new_state, receipts, root, bh = (built.result.state, built.result.receipts,
                                             built.result.state_root, built.result.hash)

            def _commit(conn: Connection) -> None:
                self.store.write_block(conn, built.row, built.receipt_rows,
                                       built.action_updates, built.blobs, None)
                self._history.on_block(conn, new_state)

            with self._history.transaction(height):  # a snapshot is a base once committed
                self._write(_commit)
            with self._lock:
                self._state = new_state
                self._head_hash = bh
                self._head_ts = ts
                for e in entries:
                    head = self._mempool.popleft()
                    assert head is e
                    self._forget(e)
                self._gate.block_applied(
                    ((e.sa, e.hash, r.applied) for e, r in zip(entries, receipts, strict=True)),
                    new_state)
            self.last_block_wall = time.monotonic()
            self.hooks.block_applied(height, apply_s, len(entries), receipts)
            if closed_epoch(state, new_state):
                self.hooks.epoch_closed(apply_s)
            return BlockInfo(height, bh, root, ts, receipts)

    # ------------------------------------------------------------------ batches

    def make_batch(self, max_blocks: int | None = None) -> Batch | None:
        """Cut the next batch over the consecutive blocks not yet in a batch (up to the
        head, or ``max_blocks`` of them). Returns None if there is no new block. The batch
        is stored with ``l1_status="pending"``; the bridge posts it and calls
        :meth:`mark_posted`."""
        with self._lock:
            state = self._state
            head_h = state.height

        def _cut(conn: Connection) -> Batch | None:
            return cut_batch(self.store, self._history, conn, self.chain_id, state, max_blocks)

        with self._history.transaction(head_h):
            batch: Batch | None = self._write(_cut)
        if batch is not None and batch.last_height == head_h:
            self._history.remember(state)
        return batch

    def mark_posted(self, index: int, l1_tx_hash: bytes | None, status: str = "posted") -> None:
        """Record the L1 fate of a batch (``posted``, ``final``, ``challenged``,
        ``deleted``...)."""

        def _mark(conn: Connection) -> int:
            return self.store.update_batch(conn, index, l1_tx_hash, status)

        if self._write(_mark) == 0:
            raise KeyError(f"no batch {index}")

    def batch(self, index: int) -> Batch | None:
        return self.store.batch(index)

    def latest_batch(self) -> Batch | None:
        return self.store.latest_batch()

    def da(self, index: int) -> bytes | None:
        """The DA payload of batch ``index`` (its keccak256 is the batch's da_hash)."""
        return read_da(self.store, self.chain_id, index)

    def state_at(self, height: int) -> State:
        """The state after block ``height`` (current, cached, or nearest snapshot plus at
        most ``snapshot_interval`` blocks of replay). KeyError if the chain is not that
        high."""
        return self._history.state_at(height, self._state)

    def batch_state(self, index: int) -> State:
        """The state a batch commits to (for proofs against its state root)."""
        b = self.store.batch(index)
        if b is None:
            raise KeyError(f"no batch {index}")
        return self.state_at(b.last_height)
