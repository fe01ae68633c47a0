"""``/v1/blocks`` and ``/v1/state/root``."""

from __future__ import annotations

from fastapi import APIRouter

from rollup.api.deps import Height, Seq
from rollup.api.errors import ApiError
from rollup.schemas import BlockView, ErrorBody, ReceiptView, StateRootView
from sequencer.sequencer import Sequencer
from state_machine import codec
from state_machine.reasons import Reason

router = APIRouter(prefix="/v1", tags=["chain"])
_404 = {404: {"model": ErrorBody}}


def _block_view(seq: Sequencer, height: int) -> BlockView:
    b = seq.store.block(height)
    if b is None:
        raise ApiError(Reason.UNKNOWN_BLOCK, f"no block at height {height}")
    rs = seq.store.receipts(height)
    return BlockView(
        height=b.height, hash=b.hash, parent_hash=b.parent_hash, timestamp=b.timestamp,
        state_root=b.state_root, header=_plain(codec.decode(b.header)),
        actions=[r.action_hash for r in rs],
        receipts=[ReceiptView(action_hash=r.action_hash, applied=r.applied, reason=r.reason,
                              detail=r.detail, events=[e for e in r.events.split(",") if e])
                  for r in rs],
    )


def _plain(header: dict) -> dict:
    return {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in header.items()}


@router.get("/blocks/latest", response_model=BlockView, responses=_404)  # type: ignore[arg-type]
def latest_block(seq: Seq) -> BlockView:
    if seq.height == 0:
        raise ApiError(Reason.UNKNOWN_BLOCK, "no block yet")
    return _block_view(seq, seq.height)


@router.get("/blocks/{height}", response_model=BlockView, responses=_404)  # type: ignore[arg-type]
def get_block(height: Height, seq: Seq) -> BlockView:
    return _block_view(seq, height)


@router.get("/state/root", response_model=StateRootView)
def state_root(seq: Seq) -> StateRootView:
    st = seq.state
    return StateRootView(chain_id=seq.chain_id, height=st.height, state_root=st.state_root(),
                         block_hash=seq.head_hash, timestamp=seq.head_timestamp)
