"""The sequencer's submit path: admission of one action or a batch, up to the writer.

Why a module of its own: ``Sequencer`` is a facade over admission, the mempool, the writer,
block production, batches and history (``sequencer.sequencer``); the submit path is the
largest of its parts and the hottest (every action goes through it once). It is a mixin:
the state it reads and writes (the lock, the mempool's indexes, the admission gate, the
writer's queue, the intake) belongs to the ``Sequencer`` that inherits it.

Order of checks for one action (``_prepare`` outside the lock, ``_admit`` under it): node
state, size, bounded shape, canonical decoding, kind, chain id; a queued duplicate; the
ed25519 signature; the static checks (``sequencer.admission``) and, for a v2 reveal, the
blob's presence; then under the lock the duplicate again, the nonce, the quotas and the
role/window checks (``AdmissionGate``), and the signed ack. A nonce mismatch is a duplicate
of an included action or ``bad_nonce`` (``_mismatch``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from nacl.bindings import crypto_sign

from sequencer import admission
from sequencer.bounded import check_msgpack_shape
from sequencer.envelope import verify_env as _verify_env
from sequencer.errors import SubmitError
from sequencer.health import WriteHealth
from sequencer.intake import Intake
from sequencer.mempool_guard import AdmissionGate
from sequencer.store import Store
from sequencer.types import Ack, SequencerConfig, SequencerHooks
from sequencer.types import Entry as _Entry
from state_machine.actions import ActionError, Body, SignedAction, decode_signed, system_action
from state_machine.constants import SYSTEM_SENDER
from state_machine.crypto import ack_message
from state_machine.reasons import Reason

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from sequencer.admission import PendingView
    from state_machine.state import State


def _done(value: Ack) -> Future[Ack]:
    f: Future[Ack] = Future()
    f.set_result(value)
    return f


class SubmitPath:
    """Admission methods of :class:`~sequencer.sequencer.Sequencer` (see the module
    docstring); the attributes below are the Sequencer's."""

    store: Store
    config: SequencerConfig
    chain_id: int
    hooks: SequencerHooks
    write_health: WriteHealth
    _sk: SigningKey
    _ack_sk: bytes
    _lock: threading.RLock
    _stopping: threading.Event
    _started: bool
    _state: State
    _by_hash: Any
    _pending: dict[bytes, int]
    _view: PendingView
    _gate: AdmissionGate
    _wq: Any
    _next_seq: int
    _intake: Intake

    def pending_nonce(self, sender: bytes) -> int:  # the Sequencer's (the pending view)
        raise NotImplementedError

    def pending_l1_cursor(self) -> tuple[int, int] | None:  # the Sequencer's
        raise NotImplementedError

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

    def submit_batched(self, raw: bytes, shape_checked: bool = False) -> Future[Ack]:
        """Like :meth:`submit_nowait`, but admitted on the intake thread together with the
        other actions queued meanwhile (``sequencer.intake``); a refusal fails the future
        with the same SubmitError. ``shape_checked``: the caller (the HTTP ingress) already
        ran ``check_msgpack_shape`` on ``raw``; otherwise it runs here, before queueing, so
        the intake never decodes unchecked bytes. Falls back to :meth:`submit_nowait` when
        the intake is not running (not started, read-only), so the refusal reason is the
        same."""
        if not self._intake.running:
            return self.submit_nowait(raw)
        if not shape_checked:
            try:
                check_msgpack_shape(raw)
            except SubmitError as exc:
                raise self._refuse(exc.reason, exc.detail) from None
        try:
            return self._intake.submit(raw)
        except SubmitError:  # closed meanwhile: the direct path says why
            return self.submit_nowait(raw)

    def _refuse(self, reason: Reason | str, detail: str = "") -> SubmitError:
        self.hooks.action_rejected(reason)
        return SubmitError(reason, detail)

    def _decoded(self, raw: bytes, system: bool, sa: SignedAction | None,
                 shape_checked: bool = False) -> SignedAction:
        """Stateless checks of a submission (node state, size, bounded decoding, kind,
        chain id); the decoded action. ``shape_checked``: ``check_msgpack_shape(raw)``
        already passed (``submit_batched``), so it is not walked twice."""
        if self.write_health.read_only:
            raise SubmitError(Reason.READ_ONLY, "the database is not writable (disk full?)")
        if not self._started or self._stopping.is_set():
            raise SubmitError(Reason.SHUTTING_DOWN, "sequencer is not running")
        if len(raw) > self.config.max_action_bytes:
            raise self._refuse(Reason.TOO_LARGE,
                               f"action exceeds {self.config.max_action_bytes} bytes")
        if sa is None:
            try:
                if not shape_checked:  # before any object is built (sequencer/bounded.py)
                    check_msgpack_shape(raw)
                sa = decode_signed(raw)
            except (SubmitError, ActionError) as exc:
                raise self._refuse(exc.reason, exc.detail) from None
        a = sa.action
        if a.is_system and not system:
            raise self._refuse(Reason.SYSTEM_ACTION,
                               "l1_* actions are submitted by the bridge only")
        if system and not a.is_system:
            raise self._refuse(Reason.NOT_SYSTEM, "submit_system takes l1_* actions only")
        if a.chain_id != self.chain_id:
            raise self._refuse(Reason.BAD_CHAIN_ID, f"expected chain_id {self.chain_id}")
        return sa

    def _submit(self, raw: bytes, system: bool, sa: SignedAction | None = None) -> Future[Ack]:
        p = self._prepare(raw, system, sa)
        if isinstance(p, Future):
            return p
        with self._lock:
            new: list[_Entry] = []
            r = self._admit(p, raw, system, new)
            if new:
                self._wq.put(new[0])
        return r if isinstance(r, Future) else self._mismatch(p, r)

    def submit_many(self, raws: Sequence[bytes],
                    futures: Sequence[Future[Ack]] | None = None,
                    shape_checked: bool = False) -> list[Future[Ack] | Exception]:
        """:meth:`submit_nowait` for a batch of user actions, in order: for each, the future
        of its ack or the SubmitError that refused it (or the exception a bug raised while
        admitting it: the other actions of the batch are not affected). Same checks, same
        reasons, same order of admission as one call per action; what differs is the cost: one lock
        acquisition for the batch, and the admitted actions reach the writer together, so
        they share one group commit (one transaction, one fsync). With ``futures`` (one per
        action, not done), an admitted action's ack completes its own future (returned as
        is): the intake thread hands over the futures its callers already wait on."""
        out: list[Any] = []  # a Future or an exception per action, in order
        ready: list[tuple[int, SignedAction, bytes]] = []
        for raw in raws:
            try:
                p = self._prepare(raw, False, None, shape_checked)
            except Exception as exc:  # a refusal, or a bug confined to this action
                out.append(exc)
                continue
            if isinstance(p, Future):
                out.append(p)
            else:
                ready.append((len(out), p, raw))
                out.append(None)  # decided under the lock below
        mismatched: list[tuple[int, SignedAction, int]] = []
        with self._lock:
            new: list[_Entry] = []
            try:
                for i, sa, raw in ready:
                    try:
                        r = self._admit(sa, raw, False, new,
                                        futures[i] if futures is not None else None)
                    except Exception as exc:
                        out[i] = exc
                        continue
                    if isinstance(r, Future):
                        out[i] = r
                    else:
                        mismatched.append((i, sa, r))
            finally:  # whatever was admitted is stored, and acked once durable
                if new:
                    self._wq.put(new)  # one group: committed in one transaction
        for i, sa, expected in mismatched:
            try:
                out[i] = self._mismatch(sa, expected)
            except Exception as exc:
                out[i] = exc
        return out

    def _prepare(self, raw: bytes, system: bool, sa: SignedAction | None,
                 shape_checked: bool = False) -> SignedAction | Future[Ack]:
        """Everything before the lock: stateless checks, the signature, the static checks.
        The decoded action, or the future of an already-queued identical one."""
        sa = self._decoded(raw, system, sa, shape_checked)
        a = sa.action
        env = sa.action.encode()  # the wire's own envelope bytes (kept by decode_signed)
        h = sa.hash  # hashed once: block production and its receipts read the same object
        with self._lock:
            e = self._by_hash.get(h)
        if e is not None:
            return self._dup_future(e)
        if system:
            if not sa.signature_valid():
                raise self._refuse(Reason.MALFORMED,
                                   "system actions have a zero sender, no signature")
        else:
            if a.sender == SYSTEM_SENDER or not _verify_env(a.sender, env, sa.signature):
                raise self._refuse(Reason.BAD_SIGNATURE, "ed25519 signature does not verify")
            try:
                admission.static_checks(self._state, sa, self._view)
                _blob_available(self.store, sa)
            except SubmitError as exc:
                self.hooks.action_rejected(exc.reason)
                raise
        return sa

    def _admit(self, sa: SignedAction, raw: bytes, system: bool, new: list[_Entry],
               future: Future[Ack] | None = None) -> Future[Ack] | int:
        """Under the lock: admit ``sa`` (its entry, ack signed, is appended to ``new`` for
        the caller to hand to the writer), or the future of a queued duplicate, or, on a
        nonce mismatch, the expected nonce (see :meth:`_mismatch`)."""
        a, h = sa.action, sa.hash
        e = self._by_hash.get(h)
        if e is not None:
            return self._dup_future(e)
        state = self._state
        expected: int = state.nonces.get(a.sender, 0) + self._pending.get(a.sender, 0)
        if a.nonce != expected:
            return expected
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
        # = SigningKey.sign(...).signature, without a SignedMessage object per action
        ack = crypto_sign(ack_message(h, state.height), self._ack_sk)[:64]
        entry = (_Entry(self._next_seq, sa, raw, h, state.height, ack, sig_verified=not system)
                 if future is None else
                 _Entry(self._next_seq, sa, raw, h, state.height, ack, future, not system))
        self._next_seq += 1
        self._by_hash[h] = entry
        self._pending[a.sender] = self._pending.get(a.sender, 0) + 1
        self._view.add(sa)
        self._gate.mempool_bytes += len(raw)
        new.append(entry)
        return entry.future

    def _mismatch(self, sa: SignedAction, expected: int) -> Future[Ack]:
        """A nonce mismatch: the same action acknowledged earlier (and since included) is a
        duplicate, anything else is a nonce conflict."""
        h = sa.hash
        row = self.store.action_meta_by_hash(h)
        if row is not None and row["status"] == "rejected":
            raise self._refuse(Reason.ALREADY_REJECTED, "these signed bytes were included and "
                               "rejected; sign a new action")
        if row is not None:
            return _done(Ack(h, row["received_height"], row["ack"], duplicate=True))
        raise self._refuse(Reason.BAD_NONCE, f"expected nonce {expected}, got {sa.action.nonce}")

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
            raise SubmitError(Reason.L1_OUT_OF_ORDER, f"L1 cursor is at {cur}")


def _blob_available(store: Store, sa: SignedAction) -> None:
    """A v2 reveal is acked only once its blob is stored (never deleted afterwards), so the
    block that includes it and every replay of that block see the same bytes."""
    if sa.action.type in ("reveal_update_v2", "publish_genesis_v2"):
        b = sa.action.body
        h = b.update_hash if sa.action.type == "reveal_update_v2" else b.model_root  # type: ignore[attr-defined]
        if store.blobstore is None or not store.blobstore.has(h):
            raise SubmitError(Reason.BLOB_UNAVAILABLE, "upload the update (POST /v1/blobs/uploads) "
                              "before revealing it")
