"""``/v1/healthz`` and ``/v1/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from rollup.api.deps import Config, MetricsDep, Seq
from rollup.schemas import Health, dump

router = APIRouter(prefix="/v1", tags=["ops"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(seq: Seq, config: Config) -> JSONResponse:
    """200 while writes succeed; 503 with ``status`` ``degraded`` while the latest write
    failed (e.g. disk full) or ``read_only`` when the node started without a writable
    database. Reads keep working in both."""
    wh = seq.write_health
    status = wh.status
    h = Health(ok=status == "ok", status=status, chain_id=seq.chain_id, protocol=seq.protocol,
               height=seq.height,
               block_hash=seq.head_hash, sequencer_pubkey=seq.pubkey, mempool=seq.mempool_size,
               max_body_bytes=config.max_body_bytes, l1_cursor=seq.pending_l1_cursor(),
               read_only=wh.read_only, last_write_error=wh.last_error if status != "ok" else None)
    return JSONResponse(dump(h), status_code=200 if status == "ok" else 503)


@router.get("/metrics", response_class=Response)
def get_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
