"""``GET /v1/tasks/{id}/model?format=safetensors``: the accepted global model as floats.

Why safetensors: it is the format a task owner's tooling loads without our code
(``safetensors.torch.load_file``), it cannot execute code on load (unlike pickle), and it
carries string metadata, where we put what makes the file checkable: the keccak256 of the
int32 model the chain holds (``global_hash``), the state root and height it was read at,
and, for the current model, the task leaf's Merkle proof against that root (the batch's
root when a batch already commits to this model, so it can be checked against L1).

Tensors carry the names and shapes of the task's torch model (``named_parameters()``
order, which is the order of the flat vector, SPEC §4; the node knows them from
``layouts.py``, without torch) and the values ``q / 2**S`` as float32: exact for every
``|q| < 2**24``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from rollup.explorer.layouts import LAYOUTS, size
from rollup.schemas import MAX_SQL_INT
from rollup.wire import jsonable

FORMAT = "flockchain-model/v1"
router = APIRouter(tags=["state"])


class ExportError(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def _which_model(st: Any, task_id: int, epoch: int | None) -> tuple[Any, bytes, int]:
    """(task, model hash, epoch) of the accepted model: the current global model, or the
    model an epoch ended with (its ``global_after``)."""
    task = st.tasks.get(task_id)
    if task is None:
        raise ExportError(404, "unknown_task", f"no task {task_id}")
    if task.params is None:
        raise ExportError(409, "no_params", "the task has no parameters")
    if epoch is None:
        if task.global_model is None and task.phase == "awaiting_genesis":
            raise ExportError(409, "no_model", "the task has no genesis model yet")
        return task, task.global_hash, _epoch_of(st, task)
    ep = st.epochs.get((task_id, epoch))
    if ep is None:
        raise ExportError(404, "unknown_epoch", f"task {task_id} has no epoch {epoch}")
    if ep.outcome == "pending" or not ep.global_after:
        raise ExportError(409, "epoch_pending", f"epoch {epoch} has not finished")
    return task, ep.global_after, epoch


def _epoch_of(st: Any, task: Any) -> int:
    """The last epoch that ended with the current model (-1: still the genesis model);
    a discarded epoch leaves the model of the epoch before."""
    for e in range(task.epochs_run - 1, -1, -1):
        ep = st.epochs.get((task.task_id, e))
        if ep is not None and ep.outcome == "accepted" and ep.global_after == task.global_hash:
            return e
    return -1


def _proof(seq: Any, task_id: int, model_hash: bytes, current: bool) -> dict[str, Any]:
    """Where this model is proven: the latest batch's state if it holds it, else the head."""
    st = seq.state
    b = seq.latest_batch()
    if b is not None and current:
        try:
            bst = seq.batch_state(b.idx)
            bt = bst.tasks.get(task_id)
            if bt is not None and bt.global_hash == model_hash:
                p = bst.task_proof(task_id)
                p.update(height=bst.height, batch_index=b.idx)
                return p
        except KeyError:
            pass
    if current:
        p = st.task_proof(task_id)
        p.update(height=st.height, batch_index=None)
        return p
    return {"state_root": st.state_root(), "height": st.height, "batch_index": None}


def named_arrays(model_name: str, q: np.ndarray, scale_bits: int) -> dict[str, np.ndarray]:
    """``{parameter name: float32 array}`` of the de-quantised flat int32 model ``q``."""
    layout = LAYOUTS[model_name]
    if size(layout) != len(q):
        raise ExportError(409, "bad_model", f"model has {len(q)} values, {model_name} "
                          f"needs {size(layout)}")
    flat = np.ldexp(q.astype(np.float64), -scale_bits).astype(np.float32)
    out, off = {}, 0
    for name, shape in layout:
        n = size(((name, shape),))
        out[name] = flat[off:off + n].reshape(shape)
        off += n
    return out


def export_safetensors(seq: Any, task_id: int, epoch: int | None = None) -> tuple[bytes,
                                                                                dict[str, str]]:
    """The safetensors bytes and their metadata (also returned for response headers)."""
    from safetensors.numpy import save

    st = seq.state
    task, h, ep = _which_model(st, task_id, epoch)
    name = task.params.model
    if name not in LAYOUTS:
        raise ExportError(409, "unknown_model", f"this node cannot name the tensors of model "
                          f"{name!r} (known: {sorted(LAYOUTS)}); use 'flockchain model "
                          "export --module' with your module")
    raw = seq.store.blob(h)
    if raw is None:
        raise ExportError(404, "unknown_blob", "the model's bytes are not stored here")
    if len(raw) != 4 * task.params.num_params:
        raise ExportError(409, "bad_model", "stored model has the wrong length")
    q = np.frombuffer(raw, dtype="<i4").astype(np.int32)
    proof = jsonable(_proof(seq, task_id, h, epoch is None or h == task.global_hash))
    meta = {
        "format": FORMAT, "task_id": str(task_id), "epoch": str(ep), "model": name,
        "spec_hash": "0x" + task.spec_hash.hex(), "global_hash": "0x" + h.hex(),
        "scale_bits": str(task.params.scale_bits), "num_params": str(len(q)),
        "state_root": proof["state_root"], "height": str(proof["height"]),
        "batch_index": "" if proof["batch_index"] is None else str(proof["batch_index"]),
        "accuracy_bps": "" if task.accuracy_bps is None else str(task.accuracy_bps),
        "proof": json.dumps(proof, separators=(",", ":")),
    }
    return save(named_arrays(name, q, task.params.scale_bits), metadata=meta), meta


@router.get("/v1/tasks/{task_id}/model", response_class=Response,
            summary="The accepted global model as float tensors (safetensors)")
def get_model(request: Request, task_id: Annotated[int, Path(ge=0, le=MAX_SQL_INT)],
              epoch: int | None = Query(None, ge=0, le=MAX_SQL_INT),
              format: str = Query("safetensors")) -> Response:
    if format != "safetensors":
        return JSONResponse({"reason": "unsupported_format",
                             "detail": "only format=safetensors"}, status_code=400)
    try:
        data, meta = export_safetensors(request.app.state.sequencer, task_id, epoch)
    except ExportError as exc:
        return JSONResponse({"reason": exc.reason, "detail": exc.detail},
                            status_code=exc.status)
    fname = f"task{task_id}-epoch{meta['epoch']}.safetensors"
    return Response(data, media_type="application/octet-stream", headers={
        "content-disposition": f'attachment; filename="{fname}"',
        "x-model-hash": meta["global_hash"], "x-state-root": meta["state_root"]})
