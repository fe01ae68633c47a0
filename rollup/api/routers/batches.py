"""``/v1/batches`` and ``/v1/da``: what is (to be) posted to L1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from rollup.api.deps import Index, Seq
from rollup.api.errors import ApiError
from rollup.schemas import BatchView, ErrorBody
from state_machine.reasons import Reason

router = APIRouter(prefix="/v1", tags=["batches"])
_404 = {404: {"model": ErrorBody}}


def batch_view(b: Any) -> BatchView:
    return BatchView(index=b.idx, first_height=b.first_height, last_height=b.last_height,
                     last_block_hash=b.last_block_hash, state_root=b.state_root,
                     da_hash=b.da_hash, l1_tx_hash=b.l1_tx_hash, l1_status=b.l1_status)


@router.get("/batches/latest", response_model=BatchView, responses=_404)  # type: ignore[arg-type]
def latest_batch(seq: Seq) -> BatchView:
    b = seq.latest_batch()
    if b is None:
        raise ApiError(Reason.UNKNOWN_BATCH, "no batch yet")
    return batch_view(b)


@router.get("/batches/{index}", response_model=BatchView, responses=_404)  # type: ignore[arg-type]
def get_batch(index: Index, seq: Seq) -> BatchView:
    b = seq.batch(index)
    if b is None:
        raise ApiError(Reason.UNKNOWN_BATCH, f"no batch {index}")
    return batch_view(b)


@router.get("/da/{index}", response_class=Response, responses=_404,  # type: ignore[arg-type]
            summary="DA payload of a batch (canonical msgpack; keccak256 = da_hash)")
def get_da(index: Index, seq: Seq) -> Response:
    data = seq.da(index)
    if data is None:
        raise ApiError(Reason.UNKNOWN_BATCH, f"no batch {index}")
    return Response(data, media_type="application/msgpack")
