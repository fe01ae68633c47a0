"""``/v1/admin/*``: the bridge's system actions and batch bookkeeping.

Every route depends on :func:`rollup.api.deps.require_admin` (token, loopback, rate-limited
failures). What an admin can do, and why it is bounded by the L1 log behind it, is in
``rollup/NODE.md`` ("Admin API").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from rollup.api.deps import Index, Seq, hex_arg, require_admin
from rollup.api.errors import ApiError
from rollup.api.ingress import Ingress, content_kind
from rollup.api.routers.batches import batch_view
from rollup.schemas import AckBody, BatchView, ErrorBody, dump
from rollup.wire import wire_from_json
from sequencer.bounded import check_msgpack_shape, loads_json
from state_machine.actions import SYSTEM_TYPES, decode_signed
from state_machine.reasons import Reason

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses={s: {"model": ErrorBody} for s in (400, 401, 403, 404, 429)})  # type: ignore[arg-type]

L1_STATUS_MAX = 16  # batches.l1_status is VARCHAR(16) on every database
MAX_POSTED_BODY = 4096


def _system_from_json(obj: Any, chain_id: int) -> tuple[str, Any]:
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ApiError(Reason.MALFORMED, "expected {type, body}")
    typ = obj["type"]
    if typ not in SYSTEM_TYPES:
        raise ApiError(Reason.NOT_SYSTEM, f"{typ!r} is not a system action type")
    wire = wire_from_json({
        "envelope": {"type": typ, "chain_id": chain_id, "sender": "0x" + "00" * 32,
                     "nonce": 0, "body": obj.get("body")},
        "signature": "0x",
    })
    return typ, decode_signed(wire).action.body


@router.post("/system", status_code=202, response_model=AckBody,
             summary="Bridge: submit a system (l1_*) action")
async def admin_system(request: Request, seq: Seq) -> Response:
    """msgpack: the signed system action (its nonce must be the pending system nonce);
    JSON ``{"type": "l1_deposit", "body": {...}}``: the node assigns the nonce."""
    ingress: Ingress = request.app.state.ingress
    headers = {k.lower(): v for k, v in request.scope.get("headers", ())}
    body = await ingress.body(headers, request.receive)
    if isinstance(body, tuple):
        return Response(body[1], status_code=body[0], media_type="application/json")
    if content_kind(headers) == "msgpack":
        check_msgpack_shape(body)
        sa = decode_signed(bytes(body))
        ack = await run_in_threadpool(seq.submit_system, sa)
    else:
        obj = await run_in_threadpool(loads_json, body)
        typ, sbody = _system_from_json(obj, seq.chain_id)
        ack = await run_in_threadpool(seq.submit_l1_event, typ, sbody)
    return JSONResponse(dump(AckBody(action_hash=ack.action_hash, ack=ack.signature,
                                     received_height=ack.received_height,
                                     duplicate=ack.duplicate)), status_code=202)


@router.post("/batches", status_code=201, response_model=BatchView,
             responses={409: {"model": ErrorBody}}, summary="Cut the next batch")
async def admin_make_batch(
    seq: Seq, max_blocks: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> BatchView:
    b = await run_in_threadpool(seq.make_batch, max_blocks)
    if b is None:
        raise ApiError(Reason.NO_NEW_BLOCKS, "every block is already in a batch")
    return batch_view(b)


@router.post("/batches/{index}/posted", response_model=BatchView,
             summary="Record a batch's L1 transaction and status")
async def admin_mark_posted(index: Index, request: Request, seq: Seq) -> BatchView:
    ingress: Ingress = request.app.state.ingress
    headers = {k.lower(): v for k, v in request.scope.get("headers", ())}
    raw = await ingress.body(headers, request.receive)
    if isinstance(raw, tuple):
        return Response(raw[1], status_code=raw[0], media_type="application/json")  # type: ignore[return-value]
    if len(raw) > MAX_POSTED_BODY:
        raise ApiError(Reason.TOO_LARGE, f"at most {MAX_POSTED_BODY} bytes")
    obj = loads_json(raw or b"{}")
    if not isinstance(obj, dict):
        raise ApiError(Reason.MALFORMED, "expected a JSON object")
    tx = obj.get("l1_tx_hash")
    txb = hex_arg(tx, 32, "l1_tx_hash") if tx else None
    status = obj.get("status", "posted")
    if not isinstance(status, str) or not 0 < len(status) <= L1_STATUS_MAX:
        raise ApiError(Reason.MALFORMED, f"status must be a string of 1..{L1_STATUS_MAX} chars")
    try:
        await run_in_threadpool(seq.mark_posted, index, txb, status)
    except KeyError:
        raise ApiError(Reason.UNKNOWN_BATCH, f"no batch {index}") from None
    return batch_view(seq.batch(index))
