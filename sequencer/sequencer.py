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
import pickle
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey
from sqlalchemy import Connection

from blobstore.source import StoreSource
from sequencer import admission
from sequencer.da import build_da
from sequencer.errors import ChainMismatch, RecoveryError, SubmitError
from sequencer.store import BatchRow, BlobWrite, BlockRow, ReceiptRow, Store
from state_machine import codec
from state_machine.actions import (
    ActionError,
    Body,
    SignedAction,
    decode_signed,
    system_action,
)
from state_machine.constants import MAX_ACTION_BYTES, SYSTEM_SENDER
from state_machine.crypto import ACK_DOMAIN, ACTION_DOMAIN, keccak256, verify
from state_machine.epochs import can_open, next_deadline
from state_machine.state import WAITING_CLIENTS, State
from state_machine.transition import (
    GENESIS_PARENT,
    Block,
    Receipt,
    apply_block,
    block_hash,
    block_header,
    genesis_state,
)

log = logging.getLogger("flockchain.sequencer")

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


def ack_message(action_hash: bytes, received_height: int) -> bytes:
    """What the ack signs: ``ACK_DOMAIN || action_hash || received_height`` (8 bytes BE).

    The domain prefix (``b"flockchain/ack/v1"``) keeps an ack from ever being a valid
    signature over an action (whose messages start with the action domain)."""
    return ACK_DOMAIN + action_hash + received_height.to_bytes(8, "big")


def verify_ack(sequencer_pubkey: bytes, action_hash: bytes, received_height: int,
               ack: bytes) -> bool:
    """True iff ``ack`` is the sequencer's signature for this action and height."""
    return verify(sequencer_pubkey, ack_message(action_hash, received_height), ack)


@dataclass(frozen=True)
class SequencerConfig:
    """Tuning knobs; every field has a CLI/env/config-file counterpart in ``rollup.config``."""

    chain_id: int
    block_time: float = 1.0
    max_block_actions: int = 1024
    max_action_bytes: int = MAX_ACTION_BYTES
    snapshot_interval: int = 100
    snapshots_kept: int = 3
    group_commit_max: int = 2048
    # seconds the writer waits for more submissions before committing a small group
    group_commit_wait: float = 0.0
    produce_blocks: bool = True  # run the background block producer
    batch_state_cache: int = 4


@dataclass(frozen=True)
class Ack:
    """The sequencer's receipt of an action (returned with HTTP 202)."""

    action_hash: bytes
    received_height: int
    signature: bytes
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "action_hash": "0x" + self.action_hash.hex(),
            "ack": "0x" + self.signature.hex(),
            "received_height": self.received_height,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class BlockInfo:
    height: int
    hash: bytes
    state_root: bytes
    timestamp: int
    receipts: list[Receipt]


class SequencerHooks:
    """Observation points (metrics). Default: no-op. ``rollup.metrics`` implements them."""

    def action_accepted(self, typ: str, size: int) -> None: ...
    def action_rejected(self, reason: str) -> None: ...
    def block_applied(self, height: int, seconds: float, n_actions: int,
                      receipts: list[Receipt]) -> None: ...
    def epoch_closed(self, seconds: float) -> None: ...
    def acks_committed(self, n: int, seconds: float) -> None: ...


@dataclass(eq=False)
class _Entry:
    """An acknowledged (or being-acknowledged) action."""

    seq: int
    sa: SignedAction
    raw: bytes
    hash: bytes
    received_height: int
    ack: bytes
    future: Future[Ack] = field(default_factory=Future)

    def to_ack(self, duplicate: bool = False) -> Ack:
        return Ack(self.hash, self.received_height, self.ack, duplicate)


@dataclass(eq=False)
class _Job:
    fn: Callable[[Connection], Any]
    future: Future[Any] = field(default_factory=Future)


_STOP = object()


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
        self._wq: queue.Queue[Any] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._producer: threading.Thread | None = None
        self._maint: threading.Thread | None = None
        self._started = False

        self._by_hash: dict[bytes, _Entry] = {}  # in flight or queued
        self._mempool: deque[_Entry] = deque()  # durable, FIFO by seq
        self._pending: dict[bytes, int] = {}  # sender -> acked, not included
        self._view = admission.PendingView()
        self._batch_states: dict[int, State] = {}
        self.last_block_wall = time.monotonic()

        store.create()
        self._recover()

    # ------------------------------------------------------------------ lifecycle

    def _recover(self) -> None:
        stored = self.store.get_meta("chain_id")
        if stored is not None and int(stored) != self.chain_id:
            raise RecoveryError(f"database belongs to chain {stored}, not {self.chain_id}")
        with self.store.begin() as conn:
            if stored is None:
                self.store.set_meta(conn, "chain_id", str(self.chain_id))
            self.store.set_meta(conn, "sequencer_pubkey", self.pubkey.hex())
        state = genesis_state(self.chain_id)
        parent, ts = GENESIS_PARENT, 0
        head = self.store.head()
        if head is not None:
            start = 0
            snap = self.store.latest_snapshot(head.height)
            if snap is not None:
                h, root, data = snap
                blk = self.store.block(h)
                try:
                    st = pickle.loads(data)
                    ok = blk is not None and st.state_root() == root == blk.state_root
                except Exception as exc:  # a bad snapshot only costs replay time
                    log.warning("snapshot at %d unusable: %s", h, exc)
                    ok = False
                if ok:
                    state, start = st, h
                else:
                    log.warning("ignoring snapshot at height %d (root mismatch)", h)
            t0 = time.perf_counter()
            for b in self.store.iter_blocks(start + 1, head.height):
                state = replay_block(self.store, state, b)
            log.info("recovered height %d (snapshot %d, replayed %d blocks in %.2fs)",
                     head.height, start, head.height - start, time.perf_counter() - t0)
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
        if self._mempool:
            log.info("re-queued %d acknowledged actions", len(self._mempool))

    def start(self) -> Sequencer:
        """Start the writer thread and (if configured) the block producer."""
        if self._started:
            return self
        self._started = True
        self._writer = threading.Thread(target=self._writer_loop, name="seq-writer", daemon=True)
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
            self._wq.put(_STOP)
            assert self._writer is not None
            self._writer.join()
            self._started = False
            while True:  # anything that raced with shutdown: refuse, never leave hanging
                try:
                    job = self._wq.get_nowait()
                except queue.Empty:
                    break
                if isinstance(job, (_Entry, _Job)):
                    job.future.set_exception(SubmitError("shutting_down"))
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
            for e in self._by_hash.values():
                if e.sa.action.is_system:
                    b = e.sa.action.body
                    pos = (b.l1_block, b.log_index)  # type: ignore[attr-defined]
                    if best is None or pos > best:
                        best = pos
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

    def submit_action(self, sa: SignedAction, timeout: float | None = None) -> Ack:
        return self.submit(sa.encode(), timeout)

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
        if not self._started or self._stopping.is_set():
            raise SubmitError("shutting_down", "sequencer is not running")
        if len(raw) > self.config.max_action_bytes:
            raise self._refuse("too_large", f"action exceeds {self.config.max_action_bytes} bytes")
        if sa is None:
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
                admission.static_checks(self._state, sa)
                _blob_available(self.store, sa)
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
                        admission.window_checks(state, sa, self._view,
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
                self._wq.put(entry)
                return entry.future
        # nonce mismatch: the same action acknowledged earlier (and since included) is a
        # duplicate, anything else is a nonce conflict
        row = self.store.action_meta_by_hash(h)
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

    def _writer_loop(self) -> None:
        self._w = self.store.writer()
        try:
            self._writer_run()
        finally:
            self._w.close()

    def _writer_run(self) -> None:
        carry: Any = None
        wait = self.config.group_commit_wait
        while True:
            job = carry if carry is not None else self._wq.get()
            carry = None
            if job is _STOP:
                return
            if isinstance(job, _Entry):
                group = [job]
                deadline = time.monotonic() + wait
                while len(group) < self.config.group_commit_max:
                    try:
                        nxt = self._wq.get_nowait()
                    except queue.Empty:
                        # a short wait lets concurrent submissions share the commit (fsync)
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        try:
                            nxt = self._wq.get(timeout=left)
                        except queue.Empty:
                            break
                    if isinstance(nxt, _Entry):
                        group.append(nxt)
                    else:
                        carry = nxt
                        break
                self._commit_acks(group)
            else:
                try:
                    with self._w.begin() as conn:
                        result = job.fn(conn)
                except BaseException as exc:  # handed to the waiting caller
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(result)

    def _commit_acks(self, group: list[_Entry]) -> None:
        rows = [
            {
                "seq": e.seq, "hash": e.hash, "bytes": e.raw, "sender": e.sa.action.sender,
                "nonce": e.sa.action.nonce, "type": e.sa.action.type, "size": len(e.raw),
                "status": "queued", "reason": None, "detail": None,
                "received_height": e.received_height, "ack": e.ack,
                "block_height": None, "block_index": None,
            }
            for e in group
        ]
        t0 = time.perf_counter()
        try:
            self._w.insert_actions(rows)
        except Exception as exc:
            log.exception("ack commit failed for %d actions", len(group))
            with self._lock:
                for e in group:
                    self._forget(e)
            err = SubmitError("storage_error", str(exc)[:200])
            for e in group:
                e.future.set_exception(err)
            return
        self.hooks.acks_committed(len(group), time.perf_counter() - t0)
        with self._lock:
            was_empty = not self._mempool
            self._mempool.extend(group)
            full = len(self._mempool) >= self.config.max_block_actions
        for e in group:
            self.hooks.action_accepted(e.sa.action.type, len(e.raw))
            e.future.set_result(e.to_ack())
        if full or was_empty:
            self._wake.set()

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

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one transaction on the writer thread and wait for it."""
        if not self._started:
            with self.store.begin() as conn:
                return fn(conn)
        job = _Job(fn)
        self._wq.put(job)
        return job.future.result()

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
                    log.exception("block production failed; retrying")
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
                          blobs=StoreSource(self.store.blobstore))
            t0 = time.perf_counter()
            new_state, receipts = apply_block(state, block)
            root = new_state.state_root()
            header = block_header(block, root, receipts)
            bh = block_hash(header)
            apply_s = time.perf_counter() - t0
            row = BlockRow(height, bh, parent, ts, root, codec.encode(header), len(entries))
            rrows = [
                ReceiptRow(height, i, r.action_hash, r.applied, r.reason, r.detail,
                           ",".join(r.events))
                for i, r in enumerate(receipts)
            ]
            updates = [
                {
                    "b_seq": e.seq, "b_status": "included" if r.applied else "rejected",
                    "b_reason": r.reason, "b_detail": r.detail or None, "b_height": height,
                    "b_index": i,
                }
                for i, (e, r) in enumerate(zip(entries, receipts, strict=True))
            ]
            blobs = _collect_blobs(state, new_state, entries, receipts)
            snapshot = None
            interval = self.config.snapshot_interval
            if interval > 0 and height % interval == 0:
                snapshot = (root, pickle.dumps(new_state, protocol=5))

            def _commit(conn: Connection) -> None:
                self.store.write_block(conn, row, rrows, updates, blobs, snapshot)
                if snapshot is not None:
                    self.store.prune_snapshots(conn, self.config.snapshots_kept)

            self._write(_commit)
            with self._lock:
                self._state = new_state
                self._head_hash = bh
                self._head_ts = ts
                for e in entries:
                    head = self._mempool.popleft()
                    assert head is e
                    self._forget(e)
            self.last_block_wall = time.monotonic()
            self.hooks.block_applied(height, apply_s, len(entries), receipts)
            if _closed_epoch(state, new_state):
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
        chain_id = self.chain_id

        def _cut(conn: Connection) -> Batch | None:
            last = self.store.latest_batch(conn)
            first = last.last_height + 1 if last else 1
            idx = last.idx + 1 if last else 0
            end = head_h if max_blocks is None else min(head_h, first + max_blocks - 1)
            if first > end:
                return None
            blk = next(iter(self.store.iter_blocks(end, end, conn=conn)))
            da = build_da(self.store, conn, chain_id, idx, first, end)
            row = BatchRow(idx, first, end, blk.hash, blk.state_root, keccak256(da), None,
                           "pending")
            self.store.insert_batch(conn, row)
            return row

        batch: Batch | None = self._write(_cut)
        if batch is not None and batch.last_height == head_h:
            with self._lock:
                self._batch_states[batch.idx] = state
                while len(self._batch_states) > self.config.batch_state_cache:
                    self._batch_states.pop(min(self._batch_states))
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
        """The state after block ``height`` (current, cached batch state, or snapshot plus
        replay). Raises KeyError if the chain is not that high."""
        st = self._state
        if height == st.height:
            return st
        if height > st.height or height < 0:
            raise KeyError(f"no block {height}")
        for s in list(self._batch_states.values()):
            if s.height == height:
                return s
        state = genesis_state(self.chain_id)
        snap = self.store.latest_snapshot(height)
        if snap is not None:
            state = pickle.loads(snap[2])
        for b in self.store.iter_blocks(state.height + 1, height):
            state = replay_block(self.store, state, b)
        return state

    def batch_state(self, index: int) -> State:
        """The state a batch commits to (for proofs against its state root)."""
        s = self._batch_states.get(index)
        if s is not None:
            return s
        b = self.store.batch(index)
        if b is None:
            raise KeyError(f"no batch {index}")
        return self.state_at(b.last_height)


# ---------------------------------------------------------------------- helpers


def replay_block(store: Store, state: State, b: BlockRow) -> State:
    """Re-apply stored block ``b`` to ``state`` and check its root and hash."""
    acts = [decode_signed(raw) for raw in store.block_action_bytes(b.height)]
    block = Block(b.height, b.parent_hash, b.timestamp, acts,
                  blobs=StoreSource(store.blobstore))
    new_state, receipts = apply_block(state, block)
    root = new_state.state_root()
    h = block_hash(block_header(block, root, receipts))
    if root != b.state_root or h != b.hash:
        raise ChainMismatch(b.height, b.state_root, root, b.hash, h)
    return new_state


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


def _blob_available(store: Store, sa: SignedAction) -> None:
    """A v2 reveal is acked only once its blob is stored (never deleted afterwards), so the
    block that includes it and every replay of that block see the same bytes."""
    if sa.action.type == "reveal_update_v2":
        h = sa.action.body.update_hash  # type: ignore[attr-defined]
        if store.blobstore is None or not store.blobstore.has(h):
            raise SubmitError("blob_unavailable", "upload the update (POST /v1/blobs/uploads) "
                              "before revealing it", status=409)


def _closed_epoch(old: State, new: State) -> bool:
    for key, ep in new.epochs.items():
        if ep.outcome != "pending":
            prev = old.epochs.get(key)
            if prev is None or prev.outcome == "pending":
                return True
    return False


def _collect_blobs(old: State, new: State, entries: list[_Entry],
                   receipts: list[Receipt]) -> list[BlobWrite]:
    """Blobs a block makes available: applied reveal updates (by reference to their
    action), and every global model, previous delta and vote candidate that changed."""
    out: list[BlobWrite] = []
    for e, r in zip(entries, receipts, strict=True):
        a = e.sa.action
        if r.applied and a.type == "reveal_update":
            b = a.body
            ep = new.epochs[(b.task_id, b.epoch)]  # type: ignore[attr-defined]
            out.append(BlobWrite(ep.update_hashes[a.sender], "update",
                                 len(b.update_bytes), action_seq=e.seq))  # type: ignore[attr-defined]
        elif r.applied and a.type == "reveal_update_v2":  # bytes already in the blob store
            out.append(BlobWrite(a.body.update_hash, "update", a.body.size))  # type: ignore[attr-defined]
    for tid, t in new.tasks.items():
        o = old.tasks.get(tid)
        if t.global_model is not None and (o is None or o.global_hash != t.global_hash):
            data = t.global_model.astype("<i4").tobytes()
            out.append(BlobWrite(t.global_hash, "global_model", len(data), data=data))
        if t.prev_delta is not None and (o is None or o.prev_delta_hash != t.prev_delta_hash):
            data = t.prev_delta.astype("<i2").tobytes()
            out.append(BlobWrite(t.prev_delta_hash, "prev_delta", len(data), data=data))
        ep = new.epochs.get((tid, t.epoch))
        if ep is not None and ep.candidate is not None:
            prev = old.epochs.get((tid, t.epoch))
            if prev is None or prev.candidate_hash != ep.candidate_hash:
                data = ep.candidate.astype("<i4").tobytes()
                out.append(BlobWrite(ep.candidate_hash, "candidate", len(data), data=data))
    return out
