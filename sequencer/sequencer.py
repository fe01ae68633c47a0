"""The sequencer: admission, durable acks (group commit), block production, recovery,
batches.

Why this design:

* **Ack only after commit.** An ack is the sequencer's signed promise to include the action
  (SPEC §12). It is returned only after the action row is committed, so a crash can never
  lose an acknowledged action: on restart it is either in a stored block or re-queued.
* **One writer thread.** Every write (ack groups, blocks, batches) goes through one thread
  and one transaction at a time. SQLite then never sees competing writers, and acks that
  arrive while a commit is in flight are committed together in the next transaction
  (group commit: one fsync for many acks).
* **Pure STF outside the lock.** ``apply_block`` (which may score and aggregate large
  models) runs without holding the admission lock, against an immutable state; the new
  state is swapped in only after the block is durable. Submissions meanwhile are checked
  against the old state plus the mempool, which still contains the block's actions.
* **Pending view.** A sender's next nonce is its state nonce plus its acked-but-not-included
  actions, so a client can pipeline actions; a second, different action for a nonce that
  is already taken is refused (409), the very same action is acked again (idempotent).

Thread model: any thread may call ``submit*``; the background producer (or a test calling
:meth:`produce_block`) builds blocks; the writer thread owns all writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from itertools import islice
from typing import Any

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from sequencer import admission
from sequencer.batches import cut_batch
from sequencer.blocks import build_block, closed_epoch
from sequencer.bounded import check_msgpack_shape
from sequencer.da import build_da
from sequencer.errors import RecoveryError, SubmitError
from sequencer.health import WriteHealth
from sequencer.history import History
from sequencer.mempool import EntryIndex
from sequencer.mempool_guard import AdmissionGate, rejected_rows
from sequencer.ratelog import RateLimitedLog
from sequencer.store import BatchRow, Store
from sequencer.types import Ack, BlockInfo, SequencerConfig, SequencerHooks
from sequencer.types import Entry as _Entry
from sequencer.writer import GroupCommitWriter
from state_machine import codec
from state_machine.actions import (
    ActionError,
    Body,
    SignedAction,
    decode_signed,
    system_action,
)
from state_machine.constants import SYSTEM_SENDER
from state_machine.crypto import (  # noqa: F401  (verify_ack re-exported)
    ACTION_DOMAIN,
    ack_message,
    keccak256,
    verify_ack,
)
from state_machine.epochs import can_open, next_deadline
from state_machine.state import WAITING_CLIENTS, State
from state_machine.transition import (
    GENESIS_PARENT,
    Block,
    genesis_state,
)

log = logging.getLogger("flockchain.sequencer")
_write_log = RateLimitedLog(log, every_s=30.0)  # a full disk fails every write

try:  # C keccak (safe-pysha3, in the lock): ~7x faster than pycryptodome for small inputs
    from sha3 import keccak_256 as _keccak_256

    def _action_hash(env: bytes, sig: bytes) -> bytes:
        h = _keccak_256(env)
        h.update(sig)
        return h.digest()
except ImportError:  # pragma: no cover - same result, slower

    def _action_hash(env: bytes, sig: bytes) -> bytes:
        return keccak256(env, sig)

Batch = BatchRow




def _done(value: Ack) -> Future[Ack]:
    f: Future[Ack] = Future()
    f.set_result(value)
    return f


class Sequencer:
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

        self._by_hash: EntryIndex = EntryIndex()  # in flight or queued
        self._mempool: deque[_Entry] = deque()  # durable, FIFO by seq
        self._pending: dict[bytes, int] = {}  # sender -> acked, not included
        self._view = admission.PendingView()
        self._history = History(store, config.chain_id, config.snapshot_interval,
                                config.batch_state_cache)
        self._gate = AdmissionGate(config.limits)
        self.last_block_wall = time.monotonic()

        store.create()
        self._recover()

    # ------------------------------------------------------------------ lifecycle

    def _recover(self) -> None:
        stored = self.store.get_meta("chain_id")
        if stored is not None and int(stored) != self.chain_id:
            raise RecoveryError(f"database belongs to chain {stored}, not {self.chain_id}")
        try:
            with self.store.begin() as conn:
                if stored is None:
                    self.store.set_meta(conn, "chain_id", str(self.chain_id))
                self.store.set_meta(conn, "sequencer_pubkey", self.pubkey.hex())
        except (SQLAlchemyError, OSError) as exc:
            if stored is None:
                raise
            # e.g. a full disk: serve reads of the stored chain, refuse writes (503)
            log.error("database not writable (%s): starting read-only", exc)
            self.write_health.failed(exc)
            self.write_health.read_only = True
        state = genesis_state(self.chain_id)
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
            self._by_hash[e.hash] = e
            self._mempool.append(e)
            self._pending[sa.action.sender] = self._pending.get(sa.action.sender, 0) + 1
            self._view.add(sa)
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
        if self.config.produce_blocks:
            self._producer = threading.Thread(target=self._producer_loop, name="seq-producer",
                                              daemon=True)
            self._producer.start()
        if self.store.is_sqlite:
            self._maint = threading.Thread(target=self._maintenance_loop, name="seq-maint",
                                           daemon=True)
            self._maint.start()
        return self

    def _maintenance_loop(self) -> None:
        """Background WAL checkpoints (SQLite), so commits on the ack path stay short."""
        while not self._stopping.wait(0.25):
            try:
                self.store.checkpoint()
            except Exception as exc:  # busy or closing: try again next time
                log.debug("checkpoint skipped: %s", exc)

    def close(self) -> None:
        """Stop producing, flush pending writes, release the database."""
        if self._started:
            self._stopping.set()
            self._wake.set()
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
            best = self._state.l1_cursor if self._state.l1_seen else None
            queued = self._by_hash.last_l1_position()
            if queued is not None and (best is None or queued > best):
                best = queued
            return best

    def action_status(self, action_hash: bytes) -> dict[str, Any] | None:
        """Status of an action: queued/included/rejected with block and reason; None if
        the sequencer never acknowledged it."""
        with self._lock:
            e = self._by_hash.get(action_hash)
            if e is not None:
                return {
                    "action_hash": action_hash, "status": "queued", "seq": e.seq,
                    "type": e.sa.action.type, "sender": e.sa.action.sender,
                    "nonce": e.sa.action.nonce, "received_height": e.received_height,
                    "ack": e.ack, "block_height": None, "block_index": None,
                    "reason": None, "detail": None,
                }
        row = self.store.action_meta_by_hash(action_hash)
        if row is None:
            return None
        row["action_hash"] = row.pop("hash")
        return row

    # ------------------------------------------------------------------ submission

    def submit(self, raw: bytes, timeout: float | None = None) -> Ack:
        """Admit a signed action (canonical wire bytes); returns once it is durable."""
        return self.submit_nowait(raw).result(timeout)

    def submit_system(self, sa: SignedAction, timeout: float | None = None) -> Ack:
        """Admit a system action (``l1_*``, zero sender, empty signature) from the bridge.
        Its nonce must be the system sender's pending nonce (``pending_nonce(SYSTEM_SENDER)``),
        and its L1 position must be after :meth:`pending_l1_cursor`."""
        return self._submit(sa.encode(), system=True, sa=sa).result(timeout)

    def submit_l1_event(self, typ: str, body: Body, timeout: float | None = None) -> Ack:
        """Build and admit the system action for an L1 log, assigning the system nonce.
        Raises SubmitError("l1_out_of_order") if that log (or a later one) was already
        submitted: the bridge treats that as "already done"."""
        with self._lock:
            nonce = self.pending_nonce(SYSTEM_SENDER)
            sa = system_action(typ, self.chain_id, nonce, body)
            fut = self._submit(sa.encode(), system=True, sa=sa)
        return fut.result(timeout)

    def submit_nowait(self, raw: bytes) -> Future[Ack]:
        """Like :meth:`submit` but returns a future (the HTTP API awaits it). Raises
        SubmitError at once for a refused action."""
        return self._submit(raw, system=False)

    def _refuse(self, reason: str, detail: str = "") -> SubmitError:
        self.hooks.action_rejected(reason)
        return SubmitError(reason, detail)

    def _submit(self, raw: bytes, system: bool, sa: SignedAction | None = None) -> Future[Ack]:
        if self.write_health.read_only:
            raise SubmitError("read_only", "the database is not writable (disk full?)")
        if not self._started or self._stopping.is_set():
            raise SubmitError("shutting_down", "sequencer is not running")
        if len(raw) > self.config.max_action_bytes:
            raise self._refuse("too_large", f"action exceeds {self.config.max_action_bytes} bytes")
        if sa is None:
            try:
                check_msgpack_shape(raw)
            except SubmitError as exc:
                self.hooks.action_rejected(exc.reason)
                raise
            try:
                sa = decode_signed(raw)
            except ActionError as exc:
                raise self._refuse(exc.reason, exc.detail) from None
        a = sa.action
        if a.is_system and not system:
            raise self._refuse("system_action", "l1_* actions are submitted by the bridge only")
        if system and not a.is_system:
            raise self._refuse("not_system", "submit_system takes l1_* actions only")
        if a.chain_id != self.chain_id:
            raise self._refuse("bad_chain_id", f"expected chain_id {self.chain_id}")
        env = _envelope_bytes(raw, sa)
        h = _action_hash(env, sa.signature)
        with self._lock:
            e = self._by_hash.get(h)
        if e is not None:
            return self._dup_future(e)
        if system:
            if not sa.signature_valid():
                raise self._refuse("malformed", "system actions have a zero sender, no signature")
        else:
            if a.sender == SYSTEM_SENDER or not _verify_env(a.sender, env, sa.signature):
                raise self._refuse("bad_signature", "ed25519 signature does not verify")
            try:
                admission.static_checks(self._state, sa, self._view)
            except SubmitError as exc:
                self.hooks.action_rejected(exc.reason)
                raise
        with self._lock:
            e = self._by_hash.get(h)
            if e is not None:
                return self._dup_future(e)
            state = self._state
            expected = state.nonces.get(a.sender, 0) + self._pending.get(a.sender, 0)
            if a.nonce == expected:
                try:
                    if system:
                        self._check_l1_order(sa)
                    else:
                        backlog = len(self._by_hash) // max(1, self.config.max_block_actions)
                        self._gate.admit(state, sa, h, len(raw), self._view,
                                         self._pending.get(a.sender, 0), len(self._by_hash),
                                         state.height + 2 + backlog)
                except SubmitError as exc:
                    self.hooks.action_rejected(exc.reason)
                    raise
                entry = _Entry(self._next_seq, sa, raw, h, state.height, b"")
                entry.ack = self._sk.sign(ack_message(h, state.height)).signature
                self._next_seq += 1
                self._by_hash[h] = entry
                self._pending[a.sender] = self._pending.get(a.sender, 0) + 1
                self._view.add(sa)
                self._gate.mempool_bytes += len(raw)
                self._wq.put(entry)
                return entry.future
        # nonce mismatch: the same action acknowledged earlier (and since included) is a
        # duplicate, anything else is a nonce conflict
        row = self.store.action_meta_by_hash(h)
        if row is not None and row["status"] == "rejected":
            raise self._refuse("already_rejected", "these signed bytes were included and "
                               "rejected; sign a new action")
        if row is not None:
            return _done(Ack(h, row["received_height"], row["ack"], duplicate=True))
        raise self._refuse("bad_nonce", f"expected nonce {expected}, got {a.nonce}")

    def _dup_future(self, e: _Entry) -> Future[Ack]:
        out: Future[Ack] = Future()

        def _copy(f: Future[Ack]) -> None:
            exc = f.exception()
            if exc is not None:
                out.set_exception(exc)
            else:
                out.set_result(e.to_ack(duplicate=True))

        e.future.add_done_callback(_copy)
        return out

    def _check_l1_order(self, sa: SignedAction) -> None:
        b = sa.action.body
        pos = (b.l1_block, b.log_index)  # type: ignore[attr-defined]
        cur = self.pending_l1_cursor()
        if cur is not None and pos <= cur:
            raise SubmitError("l1_out_of_order", f"L1 cursor is at {cur}")

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
            e.future.set_result(e.to_ack())
        if full or was_empty:
            self._wake.set()

    def _ack_failed(self, group: list[_Entry], err: SubmitError) -> None:
        with self._lock:
            for e in group:
                self._forget(e)
        for e in group:
            e.future.set_exception(err)

    def _forget(self, e: _Entry) -> None:
        """Drop an entry from the pending view (included in a block, or failed to store)."""
        self._by_hash.pop(e.hash, None)
        s = e.sa.action.sender
        n = self._pending.get(s, 0) - 1
        if n > 0:
            self._pending[s] = n
        else:
            self._pending.pop(s, None)
        self._view.remove(e.sa)
        self._gate.mempool_bytes -= len(e.raw)

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one transaction on the writer thread and wait for it."""
        return self._writer.write(fn)

    # ------------------------------------------------------------------ blocks

    def wants_block(self) -> bool:
        """A block is due if actions wait, a phase deadline is pending (blocks must keep
        coming so it passes), or a task waiting for clients can now open its epoch."""
        if self._mempool:
            return True
        st = self._state
        if next_deadline(st) is not None:
            return True
        return any(t.phase == WAITING_CLIENTS and can_open(st, t) for t in st.tasks.values())

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
            block = Block(height, parent, ts, [e.sa for e in entries])
            t0 = time.perf_counter()
            built = build_block(state, block, [e.seq for e in entries])
            apply_s = time.perf_counter() - t0
            new_state, receipts, root, bh = (built.result.state, built.result.receipts,
                                             built.result.state_root, built.result.hash)

            def _commit(conn: Connection) -> None:
                self.store.write_block(conn, built.row, built.receipt_rows,
                                       built.action_updates, built.blobs, None)
                self._history.on_block(conn, new_state)

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
        b = self.store.batch(index)
        if b is None:
            return None
        with self.store.engine.connect() as conn:
            return build_da(self.store, conn, self.chain_id, b.idx, b.first_height,
                            b.last_height)

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


# ---------------------------------------------------------------------- helpers


def _verify_env(pubkey: bytes, env: bytes, sig: bytes) -> bool:
    """ed25519 check of ``sig`` over ``ACTION_DOMAIN || env`` (same as
    ``SignedAction.signature_valid``, with one copy of a large message instead of three)."""
    try:
        crypto_sign_open(sig + ACTION_DOMAIN + env, pubkey)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def _envelope_bytes(raw: bytes, sa: SignedAction) -> bytes:
    """The canonical envelope bytes inside canonical wire bytes ``raw``, without
    re-encoding (tens of MB for a reveal). Wire layout: fixmap(2), "envelope", <envelope>,
    "signature", bin(signature); falls back to re-encoding if the layout differs."""
    tail = codec.encode({"signature": sa.signature})[1:]
    if raw[:10] == _ENV_PREFIX and raw.endswith(tail):
        return raw[10 : len(raw) - len(tail)]
    return sa.action.encode()


_ENV_PREFIX = b"\x82\xa8envelope"
