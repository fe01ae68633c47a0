"""``/v1/accounts``, ``/v1/tasks`` (epochs, proofs) and ``/v1/blobs``: the L2 state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from rollup.api.deps import BatchQuery, EpochNo, Seq, TaskId, hex_arg
from rollup.api.errors import ApiError
from rollup.schemas import (
    AccountList,
    AccountProof,
    AccountRecord,
    AccountView,
    EpochRecord,
    ErrorBody,
    TaskList,
    TaskProof,
    TaskRecord,
)
from sequencer.sequencer import Sequencer
from state_machine.epochs import next_deadline
from state_machine.reasons import Reason
from state_machine.state import State

router = APIRouter(prefix="/v1", tags=["state"])
_404 = {404: {"model": ErrorBody}}


def _proof_state(seq: Sequencer, batch: int | None) -> tuple[State, int | None]:
    """The state at the head (with the latest batch index if it commits to it) or at a
    batch."""
    if batch is None:
        st = seq.state
        latest = seq.latest_batch()
        valid = latest.idx if latest is not None and latest.state_root == st.state_root() \
            else None
        return st, valid
    try:
        return seq.batch_state(batch), batch
    except KeyError:
        raise ApiError(Reason.UNKNOWN_BATCH, f"no batch {batch}") from None


@router.get("/accounts/{pubkey}", response_model=AccountView, responses=_404)  # type: ignore[arg-type]
def get_account(pubkey: str, seq: Seq) -> AccountView:
    pk = hex_arg(pubkey, 32, "pubkey")
    st = seq.state
    acc = st.accounts.get(pk)
    return AccountView(pubkey=pk, nonce=st.nonces.get(pk, 0), next_nonce=seq.pending_nonce(pk),
                       staked=acc is not None,
                       account=AccountRecord(**acc.to_record()) if acc is not None else None)


@router.get("/accounts", response_model=AccountList, responses=_404)  # type: ignore[arg-type]
def list_accounts(seq: Seq, batch: BatchQuery = None) -> AccountList:
    """Every staked account (index order), at the head or at a batch's state."""
    st, valid = _proof_state(seq, batch)
    order = sorted(st.accounts.values(), key=lambda a: a.index)
    return AccountList(accounts=[AccountRecord(**a.to_record()) for a in order],
                       height=st.height, batch_index=valid)


@router.get("/accounts/{pubkey}/proof", response_model=AccountProof, responses=_404)  # type: ignore[arg-type]
def account_proof(pubkey: str, seq: Seq, batch: BatchQuery = None) -> AccountProof:
    pk = hex_arg(pubkey, 32, "pubkey")
    st, valid = _proof_state(seq, batch)
    if pk not in st.accounts:
        raise ApiError(Reason.UNKNOWN_ACCOUNT, "no staked account with this pubkey")
    p: dict[str, Any] = st.account_proof(pk)
    return AccountProof(**p, height=st.height, batch_index=valid)


@router.get("/tasks", response_model=TaskList)
def list_tasks(seq: Seq) -> TaskList:
    st = seq.state
    return TaskList(tasks=[TaskRecord(**st.tasks[t].to_record()) for t in sorted(st.tasks)],
                    height=st.height, next_deadline=next_deadline(st))


@router.get("/tasks/{task_id}", response_model=TaskRecord, responses=_404)  # type: ignore[arg-type]
def get_task(task_id: TaskId, seq: Seq) -> TaskRecord:
    t = seq.state.tasks.get(task_id)
    if t is None:
        raise ApiError(Reason.UNKNOWN_TASK, f"no task {task_id}", status=404)
    return TaskRecord(**t.to_record())


@router.get("/tasks/{task_id}/epochs/{epoch}", response_model=EpochRecord, responses=_404)  # type: ignore[arg-type]
def get_epoch(task_id: TaskId, epoch: EpochNo, seq: Seq) -> EpochRecord:
    st = seq.state
    if task_id not in st.tasks:
        raise ApiError(Reason.UNKNOWN_TASK, f"no task {task_id}", status=404)
    ep = st.epochs.get((task_id, epoch))
    if ep is None:
        raise ApiError(Reason.UNKNOWN_EPOCH, f"task {task_id} has no epoch {epoch}")
    rec = ep.record()
    rec["phase"] = st.tasks[task_id].phase if st.tasks[task_id].epoch == epoch else "closed"
    return EpochRecord(**rec)


@router.get("/tasks/{task_id}/proof", response_model=TaskProof, responses=_404)  # type: ignore[arg-type]
def task_proof(task_id: TaskId, seq: Seq, batch: BatchQuery = None) -> TaskProof:
    st, valid = _proof_state(seq, batch)
    if task_id not in st.tasks:
        raise ApiError(Reason.UNKNOWN_TASK, f"no task {task_id}", status=404)
    p: dict[str, Any] = st.task_proof(task_id)
    return TaskProof(**p, height=st.height, batch_index=valid)


@router.get("/blobs/{blob_hash}", tags=["data"], response_class=Response, responses=_404,  # type: ignore[arg-type]
            summary="Raw bytes of a model, update or candidate")
def get_blob(blob_hash: str, seq: Seq) -> Response:
    data = seq.store.blob(hex_arg(blob_hash, 32, "blob hash"))
    if data is None:
        raise ApiError(Reason.UNKNOWN_BLOB, "no blob with this keccak256")
    return Response(data, media_type="application/octet-stream")
