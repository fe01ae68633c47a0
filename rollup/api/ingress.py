"""``POST /v1/actions``: the pure-ASGI fast path, bounded body reading, bounded decoding.

Why hand-written: the action body is canonical msgpack (or its JSON form, see
``rollup.wire``) that must be size-limited *while* it streams in and handed to the
sequencer untouched, so the handler reads the raw stream instead of letting a framework
parse it. The hottest endpoint also skips routing, dependency injection and Request
objects (about a third of the per-request cost under uvicorn).

Hostile bodies cost at most their size: the body is read into one buffer (allocated once
from Content-Length), its structure is checked by ``sequencer.bounded`` before anything is
decoded (so 60 MiB of empty arrays is refused after a few header bytes), and any body
above OFFLOAD_BYTES is checked, decoded and verified on a worker thread, so the event
loop keeps answering (``/v1/healthz`` included) while it is handled.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from starlette.concurrency import run_in_threadpool

from rollup.config import NodeConfig
from rollup.metrics import Metrics
from rollup.wire import wire_from_json
from sequencer.bounded import check_msgpack_shape, loads_json
from sequencer.errors import SubmitError
from sequencer.sequencer import Sequencer
from state_machine.actions import ActionError
from state_machine.reasons import Reason

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
# Bodies above this are decoded and verified on a worker thread so the event loop keeps
# receiving other uploads (hashing/verifying releases the GIL).
OFFLOAD_BYTES = 64 * 1024
# After refusing an oversize body, read (and discard) at most this much more so the client
# sees the 413 instead of a reset connection.
DRAIN_BYTES = 8 * 1024 * 1024

Reply = tuple[int, bytes]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def err(reason: Reason | str, detail: str = "", status: int | None = None) -> Reply:
    e = SubmitError(reason, detail, status)
    return e.status, _dumps(e.to_json())


async def _drain(receive: Any, more: bool) -> None:
    drained = 0
    while more and drained <= DRAIN_BYTES:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        drained += len(msg.get("body", b""))
        more = msg.get("more_body", False)


async def read_limited(receive: Any, limit: int, expected: int | None = None
                       ) -> bytes | bytearray | None:
    """The request body from ASGI ``receive``, or None as soon as it exceeds ``limit``
    bytes (never buffering more than ``limit``; the rest is drained, up to DRAIN_BYTES, so
    the client gets the 413 rather than a reset). With ``expected`` (Content-Length) the
    buffer is allocated once, so peak memory is the body, not a growing copy of it; a
    body that arrives as one message is returned as is (``bytes``)."""
    msg = await receive()
    if msg["type"] == "http.disconnect":
        return None
    chunk = msg.get("body", b"")
    more = msg.get("more_body", False)
    if not more and len(chunk) <= limit and (expected is None or len(chunk) == expected):
        return chunk  # the whole body in one message (every small action): no copy
    buf = bytearray(expected) if expected else bytearray()
    n = 0
    while True:
        if n + len(chunk) > limit or (expected is not None and n + len(chunk) > expected):
            await _drain(receive, more)
            return None
        if expected:
            buf[n:n + len(chunk)] = chunk
        else:
            buf += chunk
        n += len(chunk)
        if not more:
            break
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunk = msg.get("body", b"")
        more = msg.get("more_body", False)
    if expected is not None and n != expected:
        del buf[n:]
    return buf


class FutureBridge:
    """Turns sequencer futures (completed on the writer thread) into asyncio futures,
    waking the event loop once per burst of completions instead of once per future.
    Why: a group commit completes hundreds of acks at once; one ``call_soon_threadsafe``
    (a self-pipe write plus a GIL hand-off) per ack was a large share of the ack cost."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future[Any], Future[Any]]] = []
        self._scheduled = False

    def wrap(self, cf: Future[Any]) -> asyncio.Future[Any]:
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        af: asyncio.Future[Any] = loop.create_future()

        def done(f: Future[Any]) -> None:
            with self._lock:
                self._ready.append((af, f))
                if self._scheduled:
                    return
                self._scheduled = True
            loop.call_soon_threadsafe(self._flush)

        cf.add_done_callback(done)
        return af

    def _flush(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
            self._scheduled = False
        for af, f in ready:
            if af.done():
                continue
            exc = f.exception()
            if exc is not None:
                af.set_exception(exc)
            else:
                af.set_result(f.result())


def content_kind(headers: dict[bytes, bytes]) -> str:
    ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
    if ctype in MSGPACK_TYPES:
        return "msgpack"
    if ctype in ("application/json", ""):
        return "json"
    return "other"


class Ingress:
    """Reads, checks and submits action bodies (used by the fast path, by the documented
    fallback route and, for bodies, by the admin router)."""

    def __init__(self, seq: Sequencer, config: NodeConfig, metrics: Metrics) -> None:
        self.seq = seq
        self.config = config
        self.metrics = metrics
        self.bridge = FutureBridge()

    async def body(self, headers: dict[bytes, bytes], receive: Any
                   ) -> bytes | bytearray | Reply:
        limit = self.config.max_body_bytes
        cl = headers.get(b"content-length")
        expected = None
        if cl is not None:
            if not cl.isdigit() or len(cl) > 19:
                return err(Reason.MALFORMED, "bad Content-Length")
            expected = int(cl)
            if expected > limit:
                self.metrics.action_rejected(Reason.TOO_LARGE)
                await _drain(receive, True)
                return err(Reason.TOO_LARGE, f"body exceeds {limit} bytes")
        raw = await read_limited(receive, limit, expected)
        if raw is None:
            self.metrics.action_rejected(Reason.TOO_LARGE)
            return err(Reason.TOO_LARGE, f"body exceeds {limit} bytes")
        self.metrics.body_received(len(raw))
        return raw

    def _wire(self, kind: str, body: bytes | bytearray) -> bytes:
        """Canonical wire bytes of a body, structure checked first (may run on a worker
        thread). Raises SubmitError / ActionError."""
        if kind == "msgpack":
            check_msgpack_shape(body)
            return bytes(body)
        return wire_from_json(loads_json(body))

    async def _call(self, fn: Callable[..., Any], *args: Any, big: bool) -> Any:
        return await run_in_threadpool(fn, *args) if big else fn(*args)

    async def submit(self, kind: str, body: bytes | bytearray) -> Reply:
        big = len(body) > OFFLOAD_BYTES
        try:
            raw = await self._call(self._wire, kind, body, big=big)
        except (SubmitError, ActionError) as exc:
            self.metrics.action_rejected(exc.reason)
            return err(exc.reason, exc.detail)
        if isinstance(body, bytearray):  # the caller's buffer: free it before the action
            body.clear()  # is held elsewhere (bytes(bytearray) was a copy)
        try:  # refusals below are counted by the sequencer's hooks
            if big:  # hashing/verifying MBs on a worker thread of its own
                fut = await run_in_threadpool(self.seq.submit_nowait, raw)
            else:  # verified and acked on the intake thread, in a batch with others
                fut = self.seq.submit_batched(raw, shape_checked=kind == "msgpack")
            ack = await self.bridge.wrap(fut)
        except SubmitError as exc:
            return exc.status, _dumps(exc.to_json())
        except ActionError as exc:
            return err(exc.reason, exc.detail)
        return 202, ack.json_bytes()

    async def __call__(self, raw_headers: Any, receive: Any) -> Reply:
        headers = {k.lower(): v for k, v in raw_headers}
        kind = content_kind(headers)
        if kind == "other":
            await _drain(receive, True)
            return err(Reason.UNSUPPORTED_CONTENT_TYPE, "use application/msgpack or "
                       "application/json")
        body = await self.body(headers, receive)
        if isinstance(body, tuple):
            return body
        return await self.submit(kind, body)


async def answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def is_action_post(scope: dict[str, Any]) -> bool:
    return (scope["type"] == "http" and scope["method"] == "POST"
            and scope["path"] == "/v1/actions")
