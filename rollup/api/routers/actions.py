"""``/v1/actions``: submit (served by the ingress fast path) and look up."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rollup.api.deps import Seq, hex_arg
from rollup.api.errors import ApiError
from rollup.schemas import AckBody, ActionStatus, ErrorBody
from state_machine.actions import BODY_TYPES
from state_machine.reasons import Reason

router = APIRouter(prefix="/v1/actions", tags=["actions"])

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
_ERRORS = {s: {"model": ErrorBody} for s in (400, 401, 403, 409, 413, 422, 429, 503)}


@router.post("", status_code=202, openapi_extra=_ACTION_BODY_DOC, response_model=AckBody,
             responses=_ERRORS,  # type: ignore[arg-type]
             summary="Submit a signed action; 202 with the sequencer's ack once durable")
async def post_action(request: Request) -> Response:
    """Served by the ingress fast path (this route documents it and is its fallback)."""
    status, body = await request.app.state.ingress(request.scope.get("headers", ()),
                                                   request.receive)
    return Response(body, status_code=status, media_type="application/json")


@router.get("/{action_hash}", response_model=ActionStatus,
            responses={404: {"model": ErrorBody}})
def get_action(action_hash: str, seq: Seq) -> ActionStatus:
    st = seq.action_status(hex_arg(action_hash, 32, "action hash"))
    if st is None:
        raise ApiError(Reason.UNKNOWN_ACTION, "the sequencer never acknowledged this action")
    return ActionStatus(**st)
