"""The node's HTTP API (SPEC §12), all under ``/v1``.

Why FastAPI with hand-written handlers for ``POST /v1/actions``: the action body is
canonical msgpack (or its JSON form, see ``rollup.wire``) that must be size-limited *while*
it streams in and then handed to the sequencer untouched, so the handler reads the raw
stream instead of letting a framework parse it. Every error is JSON
``{"reason": <machine-readable>, "detail": <human text>}`` with the status code of
``sequencer.errors.STATUS_BY_REASON``.

Admin endpoints (``/v1/admin/...``: system actions from the bridge, cutting and marking
batches) exist only when the node is configured with ``admin_token`` and require
``Authorization: Bearer <admin_token>``. In-process callers use the ``Sequencer`` methods
instead.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rollup.config import NodeConfig
from rollup.explorer import router as explorer_router
from rollup.metrics import Metrics
from rollup.wire import jsonable, unhex, wire_from_json
from sequencer.errors import SubmitError
from sequencer.sequencer import Sequencer
from state_machine import codec
from state_machine.actions import BODY_TYPES, SYSTEM_TYPES, ActionError, decode_signed
from state_machine.epochs import next_deadline

log = logging.getLogger("flockchain.api")

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
# Bodies above this are decoded and verified on a worker thread so the event loop keeps
# receiving other uploads (hashing/verifying releases the GIL).
OFFLOAD_BYTES = 64 * 1024
# After refusing an oversize body, read (and discard) at most this much more so the client
# sees the 413 instead of a reset connection.
DRAIN_BYTES = 8 * 1024 * 1024

_ACTION_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "A signed action: canonical msgpack wire bytes "
        "(application/msgpack) or the JSON form (application/json, see rollup.wire).",
        "content": {
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "envelope": {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string", "enum": sorted(BODY_TYPES)},
                                "chain_id": {"type": "integer"},
                                "sender": {"type": "string", "description": "0x-hex, 32 bytes"},
                                "nonce": {"type": "integer"},
                                "body": {"type": "object"},
                            },
                        },
                        "signature": {"type": "string", "description": "0x-hex, 64 bytes"},
                    },
                }
            },
        },
    }
}


def error(status: int, reason: str, detail: str = "") -> JSONResponse:
    return JSONResponse({"reason": reason, "detail": detail}, status_code=status)


def _json(obj: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable(obj), status_code=status)


class _BadInput(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _hex_arg(s: str, n: int, what: str) -> bytes:
    try:
        return unhex(s, n, what)
    except ValueError as exc:
        raise _BadInput(str(exc)) from None


async def _read_limited(receive: Any, limit: int) -> bytes | None:
    """The request body from ASGI ``receive``, or None as soon as it exceeds ``limit``
    bytes (never buffering more than ``limit``; the rest is drained, up to DRAIN_BYTES, so
    the client gets the 413 rather than a reset)."""
    buf = bytearray()
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        buf += msg.get("body", b"")
        more = msg.get("more_body", False)
        if len(buf) > limit:
            drained = 0
            while more and drained <= DRAIN_BYTES:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    break
                drained += len(msg.get("body", b""))
                more = msg.get("more_body", False)
            return None
    return bytes(buf)


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


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class ActionIngress:
    """Pure-ASGI fast path for ``POST /v1/actions``: the hottest endpoint skips routing,
    dependency injection and Request objects (about a third of the per-request cost under
    uvicorn). Everything else goes to the FastAPI app."""

    def __init__(self, app: Any, handler: Any) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] == "/v1/actions"):
            status, body = await self.handler(scope.get("headers", ()), receive)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def create_app(sequencer: Sequencer, config: NodeConfig, metrics: Metrics | None = None,
               manage: bool = True) -> FastAPI:
    """The ASGI app over ``sequencer``. With ``manage`` the app's lifespan starts the
    sequencer's threads and closes it (and its database) at shutdown."""
    metrics = metrics or Metrics()
    seq = sequencer
    metrics.gauges["flockchain_mempool_size"] = lambda: float(seq.mempool_size)
    metrics.height = seq.height
    bridge = FutureBridge()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage:
            seq.start()
        try:
            yield
        finally:
            if manage:
                await run_in_threadpool(seq.close)

    app = FastAPI(
        title="FLockChain node",
        version="1",
        description="Micro-rollup node for federated learning (SPEC §12). Errors are "
        "`{reason, detail}` JSON.",
        lifespan=lifespan,
    )
    app.state.sequencer = seq
    app.state.metrics = metrics
    app.state.config = config

    # ------------------------------------------------------------------ errors

    @app.exception_handler(StarletteHTTPException)
    async def _http_exc(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, reason, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "malformed", "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ))

    @app.exception_handler(_BadInput)
    async def _bad_input(_r: Request, exc: _BadInput) -> JSONResponse:
        return error(400, "malformed", exc.detail)

    @app.exception_handler(Exception)
    async def _internal(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error(500, "internal_error", type(exc).__name__)

    # ------------------------------------------------------------------ actions

    async def _submit(raw: bytes, system: bool = False) -> tuple[int, bytes]:
        try:
            if system:
                sa = decode_signed(raw)
                ack = await run_in_threadpool(seq.submit_system, sa)
            else:
                if len(raw) > OFFLOAD_BYTES:
                    fut = await run_in_threadpool(seq.submit_nowait, raw)
                else:
                    fut = seq.submit_nowait(raw)
                ack = await bridge.wrap(fut)
        except SubmitError as exc:
            return exc.status, _dumps(exc.to_json())
        except ActionError as exc:
            return 400, _dumps({"reason": exc.reason, "detail": exc.detail})
        return 202, _dumps(ack.to_json())

    def _err(status: int, reason: str, detail: str = "") -> tuple[int, bytes]:
        return status, _dumps({"reason": reason, "detail": detail})

    async def _body(headers: dict[bytes, bytes], receive: Any) -> bytes | tuple[int, bytes]:
        limit = config.max_body_bytes
        cl = headers.get(b"content-length")
        if cl is not None:
            if not cl.isdigit():
                return _err(400, "malformed", "bad Content-Length")
            if int(cl) > limit:
                metrics.action_rejected("too_large")
                await _read_limited(receive, 0)
                return _err(413, "too_large", f"body exceeds {limit} bytes")
        raw = await _read_limited(receive, limit)
        if raw is None:
            metrics.action_rejected("too_large")
            return _err(413, "too_large", f"body exceeds {limit} bytes")
        metrics.body_received(len(raw))
        return raw

    def _content_kind(headers: dict[bytes, bytes]) -> str:
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode()
        if ctype in MSGPACK_TYPES:
            return "msgpack"
        if ctype in ("application/json", ""):
            return "json"
        return "other"

    async def ingest(raw_headers: Any, receive: Any) -> tuple[int, bytes]:
        headers = {k.lower(): v for k, v in raw_headers}
        body = await _body(headers, receive)
        if isinstance(body, tuple):
            return body
        kind = _content_kind(headers)
        if kind == "msgpack":
            raw = body
        elif kind == "json":
            try:
                raw = wire_from_json(json.loads(body))
            except (ValueError, UnicodeDecodeError) as exc:
                metrics.action_rejected("malformed")
                return _err(400, "malformed", f"invalid JSON: {exc}")
            except ActionError as exc:
                metrics.action_rejected(exc.reason)
                return _err(400, exc.reason, exc.detail)
        else:
            return _err(400, "unsupported_content_type",
                        "use application/msgpack or application/json")
        return await _submit(raw)

    app.add_middleware(ActionIngress, handler=ingest)

    @app.post("/v1/actions", status_code=202, tags=["actions"], openapi_extra=_ACTION_BODY_DOC,
              summary="Submit a signed action; 202 with the sequencer's ack once durable")
    async def post_action(request: Request) -> Response:
        """Served by ``ActionIngress`` (this route documents it and is its fallback)."""
        status, body = await ingest(request.scope.get("headers", ()), request.receive)
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/v1/actions/{action_hash}", tags=["actions"])
    def get_action(action_hash: str) -> Response:
        h = _hex_arg(action_hash, 32, "action hash")
        st = seq.action_status(h)
        if st is None:
            return error(404, "unknown_action", "the sequencer never acknowledged this action")
        return _json(st)

    # ------------------------------------------------------------------ blocks and state

    def _block_view(height: int) -> Response:
        b = seq.store.block(height)
        if b is None:
            return error(404, "unknown_block", f"no block at height {height}")
        rs = seq.store.receipts(height)
        return _json({
            "height": b.height,
            "hash": b.hash,
            "parent_hash": b.parent_hash,
            "timestamp": b.timestamp,
            "state_root": b.state_root,
            "header": codec.decode(b.header),
            "actions": [r.action_hash for r in rs],
            "receipts": [
                {"action_hash": r.action_hash, "applied": r.applied, "reason": r.reason,
                 "detail": r.detail, "events": [e for e in r.events.split(",") if e]}
                for r in rs
            ],
        })

    @app.get("/v1/blocks/latest", tags=["chain"])
    def latest_block() -> Response:
        if seq.height == 0:
            return error(404, "unknown_block", "no block yet")
        return _block_view(seq.height)

    @app.get("/v1/blocks/{height}", tags=["chain"])
    def get_block(height: int) -> Response:
        return _block_view(height)

    @app.get("/v1/state/root", tags=["chain"])
    def state_root() -> Response:
        st = seq.state
        return _json({
            "chain_id": seq.chain_id,
            "height": st.height,
            "state_root": st.state_root(),
            "block_hash": seq.head_hash,
            "timestamp": seq.head_timestamp,
        })

    def _proof_state(batch: int | None) -> tuple[Any, int | None] | Response:
        if batch is None:
            st = seq.state
            latest = seq.latest_batch()
            valid = latest.idx if latest is not None and latest.state_root == st.state_root() \
                else None
            return st, valid
        try:
            return seq.batch_state(batch), batch
        except KeyError:
            return error(404, "unknown_batch", f"no batch {batch}")

    @app.get("/v1/accounts/{pubkey}", tags=["state"])
    def get_account(pubkey: str) -> Response:
        pk = _hex_arg(pubkey, 32, "pubkey")
        st = seq.state
        acc = st.accounts.get(pk)
        return _json({
            "pubkey": pk,
            "nonce": st.nonces.get(pk, 0),
            "next_nonce": seq.pending_nonce(pk),
            "staked": acc is not None,
            "account": acc.to_record() if acc is not None else None,
        })

    @app.get("/v1/accounts", tags=["state"])
    def list_accounts(batch: int | None = Query(None, ge=0)) -> Response:
        """Every staked account (index order), at the head or at a batch's state."""
        got = _proof_state(batch)
        if isinstance(got, Response):
            return got
        st, valid = got
        order = sorted(st.accounts.values(), key=lambda a: a.index)
        return _json({"accounts": [a.to_record() for a in order], "height": st.height,
                      "batch_index": valid})

    @app.get("/v1/accounts/{pubkey}/proof", tags=["state"])
    def account_proof(pubkey: str, batch: int | None = Query(None, ge=0)) -> Response:
        pk = _hex_arg(pubkey, 32, "pubkey")
        got = _proof_state(batch)
        if isinstance(got, Response):
            return got
        st, valid = got
        if pk not in st.accounts:
            return error(404, "unknown_account", "no staked account with this pubkey")
        p = st.account_proof(pk)
        p.update(height=st.height, batch_index=valid)
        return _json(p)

    @app.get("/v1/tasks", tags=["state"])
    def list_tasks() -> Response:
        st = seq.state
        return _json({"tasks": [st.tasks[t].to_record() for t in sorted(st.tasks)],
                      "height": st.height, "next_deadline": next_deadline(st)})

    @app.get("/v1/tasks/{task_id}", tags=["state"])
    def get_task(task_id: int) -> Response:
        t = seq.state.tasks.get(task_id)
        if t is None:
            return error(404, "unknown_task", f"no task {task_id}")
        return _json(t.to_record())

    @app.get("/v1/tasks/{task_id}/epochs/{epoch}", tags=["state"])
    def get_epoch(task_id: int, epoch: int) -> Response:
        st = seq.state
        if task_id not in st.tasks:
            return error(404, "unknown_task", f"no task {task_id}")
        ep = st.epochs.get((task_id, epoch))
        if ep is None:
            return error(404, "unknown_epoch", f"task {task_id} has no epoch {epoch}")
        rec = ep.record()
        rec["phase"] = st.tasks[task_id].phase if st.tasks[task_id].epoch == epoch else "closed"
        return _json(rec)

    @app.get("/v1/tasks/{task_id}/proof", tags=["state"])
    def task_proof(task_id: int, batch: int | None = Query(None, ge=0)) -> Response:
        got = _proof_state(batch)
        if isinstance(got, Response):
            return got
        st, valid = got
        if task_id not in st.tasks:
            return error(404, "unknown_task", f"no task {task_id}")
        p = st.task_proof(task_id)
        p.update(height=st.height, batch_index=valid)
        return _json(p)

    @app.get("/v1/blobs/{blob_hash}", tags=["data"],
             response_class=Response, summary="Raw bytes of a model, update or candidate")
    def get_blob(blob_hash: str) -> Response:
        h = _hex_arg(blob_hash, 32, "blob hash")
        data = seq.store.blob(h)
        if data is None:
            return error(404, "unknown_blob", "no blob with this keccak256")
        return Response(data, media_type="application/octet-stream")

    # ------------------------------------------------------------------ batches and DA

    def _batch_json(b: Any) -> dict[str, Any]:
        return {
            "index": b.idx, "first_height": b.first_height, "last_height": b.last_height,
            "last_block_hash": b.last_block_hash, "state_root": b.state_root,
            "da_hash": b.da_hash, "l1_tx_hash": b.l1_tx_hash, "l1_status": b.l1_status,
        }

    @app.get("/v1/batches/latest", tags=["batches"])
    def latest_batch() -> Response:
        b = seq.latest_batch()
        if b is None:
            return error(404, "unknown_batch", "no batch yet")
        return _json(_batch_json(b))

    @app.get("/v1/batches/{index}", tags=["batches"])
    def get_batch(index: int) -> Response:
        b = seq.batch(index)
        if b is None:
            return error(404, "unknown_batch", f"no batch {index}")
        return _json(_batch_json(b))

    @app.get("/v1/da/{index}", tags=["batches"], response_class=Response,
             summary="DA payload of a batch (canonical msgpack; keccak256 = da_hash)")
    def get_da(index: int) -> Response:
        data = seq.da(index)
        if data is None:
            return error(404, "unknown_batch", f"no batch {index}")
        return Response(data, media_type="application/msgpack")

    # ------------------------------------------------------------------ ops

    @app.get("/v1/healthz", tags=["ops"])
    def healthz() -> Response:
        return _json({
            "ok": True, "chain_id": seq.chain_id, "height": seq.height,
            "block_hash": seq.head_hash, "sequencer_pubkey": seq.pubkey,
            "mempool": seq.mempool_size, "max_body_bytes": config.max_body_bytes,
            "l1_cursor": seq.pending_l1_cursor(),
        })

    @app.get("/v1/metrics", tags=["ops"], response_class=Response)
    def get_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    # ------------------------------------------------------------------ admin

    def _authorized(request: Request) -> Response | None:
        token = config.admin_token
        if not token:
            return error(404, "not_found", "admin endpoints are disabled")
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            return error(401, "unauthorized", "bad or missing admin token")
        return None

    @app.post("/v1/admin/system", tags=["admin"], status_code=202,
              summary="Bridge: submit a system (l1_*) action")
    async def admin_system(request: Request) -> Response:
        """msgpack: the signed system action (its nonce must be the pending system nonce);
        JSON ``{"type": "l1_deposit", "body": {...}}``: the node assigns the nonce."""
        denied = _authorized(request)
        if denied is not None:
            return denied
        headers = {k.lower(): v for k, v in request.scope.get("headers", ())}
        body = await _body(headers, request.receive)
        if isinstance(body, tuple):
            return Response(body[1], status_code=body[0], media_type="application/json")
        if _content_kind(headers) == "msgpack":
            status, out = await _submit(body, system=True)
            return Response(out, status_code=status, media_type="application/json")
        try:
            obj = json.loads(body)
            typ = obj["type"]
            if typ not in SYSTEM_TYPES:
                return error(400, "not_system", f"{typ!r} is not a system action type")
            wire = wire_from_json({
                "envelope": {"type": typ, "chain_id": seq.chain_id, "sender": "0x" + "00" * 32,
                             "nonce": 0, "body": obj["body"]},
                "signature": "0x",
            })
            sa = decode_signed(wire)
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, "malformed", str(exc))
        except ActionError as exc:
            return error(400, exc.reason, exc.detail)
        try:
            ack = await run_in_threadpool(seq.submit_l1_event, typ, sa.action.body)
        except SubmitError as exc:
            return error(exc.status, exc.reason, exc.detail)
        return JSONResponse(ack.to_json(), status_code=202)

    @app.post("/v1/admin/batches", tags=["admin"], summary="Cut the next batch")
    async def admin_make_batch(request: Request,
                               max_blocks: int | None = Query(None, ge=1)) -> Response:
        denied = _authorized(request)
        if denied is not None:
            return denied
        b = await run_in_threadpool(seq.make_batch, max_blocks)
        if b is None:
            return error(409, "no_new_blocks", "every block is already in a batch")
        return _json(_batch_json(b), 201)

    @app.post("/v1/admin/batches/{index}/posted", tags=["admin"],
              summary="Record a batch's L1 transaction and status")
    async def admin_mark_posted(index: int, request: Request) -> Response:
        denied = _authorized(request)
        if denied is not None:
            return denied
        try:
            obj = json.loads(await request.body() or b"{}")
            tx = obj.get("l1_tx_hash")
            txb = _hex_arg(tx, 32, "l1_tx_hash") if tx else None
            status = str(obj.get("status", "posted"))
        except (ValueError, AttributeError) as exc:
            return error(400, "malformed", str(exc))
        try:
            await run_in_threadpool(seq.mark_posted, index, txb, status)
        except KeyError:
            return error(404, "unknown_batch", f"no batch {index}")
        b = seq.batch(index)
        return _json(_batch_json(b))

    app.include_router(explorer_router)  # /explorer/ pages and /v1/tasks/{id}/model
    return app
