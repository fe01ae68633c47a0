"""What each explorer page shows, read from the sequencer's state and store.

Why from the state and not over HTTP: the explorer runs inside the node, so it reads the
same objects the ``/v1`` handlers read (no second copy of the chain, no admin access). All
records pass through ``rollup.wire.jsonable`` first, so the pages show exactly what the JSON
API serves, in the same 0x-hex and decimal-string forms.
"""

from __future__ import annotations

import weakref
from typing import Any

from rollup.explorer import epochs as ep_rows
from rollup.explorer.fmt import WEI_PER_ETH, as_int
from rollup.wire import jsonable

RECENT_BLOCKS = 25
MAX_BATCHES = 50
# (batch index, task id) -> the task's leaf in that batch's state, per sequencer. A cut
# batch never changes, and rebuilding its state may replay blocks, so pages that refresh
# on every block must not pay for it again.
_BATCH_LEAVES: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], bytes | None]] = \
    weakref.WeakKeyDictionary()


def _epoch_json(st: Any, task_id: int, epoch: int) -> dict[str, Any] | None:
    ep = st.epochs.get((task_id, epoch))
    if ep is None:
        return None
    rec = jsonable(ep.record())
    rec.setdefault("task_id", task_id)
    rec.setdefault("epoch", epoch)
    task = st.tasks.get(task_id)
    rec["phase"] = task.phase if task is not None and task.epoch == epoch else "closed"
    return rec


def task_epochs(st: Any, task_id: int) -> list[dict[str, Any]]:
    """Every epoch record of a task, in order (epochs are numbered from 0)."""
    out = []
    e = 0
    while True:
        rec = _epoch_json(st, task_id, e)
        if rec is None:
            return out
        out.append(rec)
        e += 1


def task_l1(seq: Any, task_id: int) -> dict[str, Any]:
    """Whether the task's current record is committed in the latest batch, and that
    batch's L1 status as far as the node knows (posted by the bridge; ``final`` only when
    the bridge reports it)."""
    b = seq.latest_batch()
    if b is None:
        return {"batch": None, "status": "not yet in a batch"}
    cache = _BATCH_LEAVES.setdefault(seq, {})
    if (b.idx, task_id) not in cache:
        try:
            t_b = seq.batch_state(b.idx).tasks.get(task_id)
            cache[(b.idx, task_id)] = t_b.leaf() if t_b is not None else None
        except Exception:  # a replay failure must not break the page
            return {"batch": b.idx, "status": b.l1_status, "current": False, "tx": None}
    t_now = seq.state.tasks.get(task_id)
    current = t_now is not None and cache[(b.idx, task_id)] == t_now.leaf()
    return {"batch": b.idx, "status": b.l1_status, "current": current,
            "tx": jsonable(b.l1_tx_hash) if b.l1_tx_hash else None}


def task_view(seq: Any, task_id: int) -> dict[str, Any] | None:
    st = seq.state
    t = st.tasks.get(task_id)
    if t is None:
        return None
    rec = jsonable(t.to_record())
    recs = task_epochs(st, task_id)
    rows = [ep_rows.epoch_totals(r) for r in recs]
    escrow, charged = as_int(rec.get("escrow")) or 0, as_int(rec.get("charged")) or 0
    done = rec.get("status") != "running"
    return {
        "task": rec, "epochs": rows, "l1": task_l1(seq, task_id), "height": st.height,
        "blocks_left": max(0, (as_int(rec.get("phase_deadline")) or 0) - st.height),
        "escrow": escrow, "charged": charged, "refund": escrow - charged if done else None,
        "remaining": escrow - charged, "charts": task_charts(rows),
    }


def task_charts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plot specs (one point per finished epoch) for ``explorer.js``."""
    done = [r for r in rows if r["outcome"] not in (None, "pending")]
    xs = [r["epoch"] for r in done]
    acc = {"id": "accuracy", "title": "Accuracy per epoch (%)", "x": xs, "xlabel": "epoch",
           "series": [{"label": "committee accuracy", "color": "#1f77b4", "values":
                       [None if r["accuracy_bps"] is None else r["accuracy_bps"] / 100
                        for r in done]}]}
    if any(r["test_accuracy_bps"] is not None for r in done):
        acc["series"].append({"label": "test accuracy", "color": "#ff7f0e", "values": [
            None if r["test_accuracy_bps"] is None else r["test_accuracy_bps"] / 100
            for r in done]})
    money = {"id": "settlement", "title": "Slashed and rewarded per epoch (ETH)", "x": xs,
             "xlabel": "epoch", "series": [
                 {"label": "slashed", "color": "#d62728",
                  "values": [r["slashed"] / WEI_PER_ETH for r in done]},
                 {"label": "rewarded", "color": "#2ca02c",
                  "values": [r["rewarded"] / WEI_PER_ETH for r in done]}]}
    return [acc, money]


def epoch_view(seq: Any, task_id: int, epoch: int) -> dict[str, Any] | None:
    st = seq.state
    rec = _epoch_json(st, task_id, epoch)
    if rec is None:
        return None
    props = ep_rows.proposer_rows(rec)
    columns, common = ep_rows.split_common(props, ep_rows.number_columns(props))
    return {
        "rec": rec, "proposers": props, "columns": columns, "common": common,
        "voters": ep_rows.voter_rows(rec), "other_slashes": ep_rows.other_slashes(rec),
        "other": ep_rows.other_fields(rec), "totals": ep_rows.epoch_totals(rec),
        "labels": account_labels(st), "has_next": (task_id, epoch + 1) in st.epochs,
    }


def account_labels(st: Any) -> dict[str, str]:
    """``0x…pubkey -> "#index"`` so tables can name accounts compactly."""
    return {"0x" + pk.hex(): f"#{a.index}" for pk, a in st.accounts.items()}


def _role(ep: Any, pk: bytes) -> str | None:
    if pk in ep.proposers:
        return "proposer"
    if pk in ep.voters:
        return "voter"
    return None


def _history_row(rec: dict[str, Any], role: str | None, me: str) -> dict[str, Any]:
    if role == "proposer":
        rows = ep_rows.proposer_rows(rec)
    elif role == "voter":
        rows = ep_rows.voter_rows(rec)
    else:
        rows = [{**r, "slashed": r["amount"], "slash_reasons": r["reasons"], "reasons": []}
                for r in ep_rows.other_slashes(rec)]
    row = next((r for r in rows if r["pubkey"] == me), {})
    return {"task_id": rec["task_id"], "epoch": rec["epoch"], "role": role or "-",
            "outcome": rec.get("outcome"), "verdict": row.get("verdict", "-"),
            "reasons": row.get("reasons", []), "numbers": row.get("numbers", {}),
            "slashed": row.get("slashed", 0), "slash_reasons": row.get("slash_reasons", []),
            "reward": row.get("reward", 0), "vote": row.get("vote")}


def _history(st: Any, me: str) -> list[dict[str, Any]]:
    """Every epoch this key was selected in (or slashed in), oldest first."""
    out = []
    pk = bytes.fromhex(me[2:])
    for (tid, e) in sorted(st.epochs):
        ep = st.epochs[(tid, e)]
        role = _role(ep, pk)
        if role is None and not any(isinstance(s, tuple | list) and s and s[0] == pk
                                    for s in getattr(ep, "slashes", ())):
            continue  # cheap test on raw bytes before building the JSON record
        rec = _epoch_json(st, tid, e)
        if rec is not None:
            out.append(_history_row(rec, role, me))
    return out


def account_view(seq: Any, pubkey: bytes) -> dict[str, Any]:
    st = seq.state
    acc = st.accounts.get(pubkey)
    me = "0x" + pubkey.hex()
    return {"pubkey": me, "account": jsonable(acc.to_record()) if acc else None,
            "nonce": st.nonces.get(pubkey, 0), "history": _history(st, me)}


def accounts_view(seq: Any) -> list[dict[str, Any]]:
    order = sorted(seq.state.accounts.values(), key=lambda a: a.index)
    return [jsonable(a.to_record()) for a in order]


def batch_json(b: Any) -> dict[str, Any]:
    return jsonable({"index": b.idx, "first_height": b.first_height,
                     "last_height": b.last_height, "state_root": b.state_root,
                     "da_hash": b.da_hash, "l1_tx_hash": b.l1_tx_hash or b"",
                     "l1_status": b.l1_status})


def batches_view(seq: Any) -> list[dict[str, Any]]:
    """The latest ``MAX_BATCHES`` batches, newest first (through the sequencer's own
    ``latest_batch`` / ``batch`` reads, the same the ``/v1/batches`` routes use)."""
    last = seq.latest_batch()
    if last is None:
        return []
    rows = (seq.batch(i) for i in range(last.idx, max(-1, last.idx - MAX_BATCHES), -1))
    return [batch_json(b) for b in rows if b is not None]


def batch_of(batches: list[dict[str, Any]], height: int) -> dict[str, Any] | None:
    return next((b for b in batches if b["first_height"] <= height <= b["last_height"]), None)


def blocks_view(seq: Any, upto: int | None = None, n: int = RECENT_BLOCKS) -> dict[str, Any]:
    head = seq.height
    last = head if upto is None else max(0, min(upto, head))
    first = max(1, last - n + 1)
    batches = batches_view(seq)
    rows = []
    for b in seq.store.iter_blocks(first, last) if last >= 1 else []:
        bt = batch_of(batches, b.height)
        older = bt is None and bool(batches) and b.height < batches[-1]["first_height"]
        rows.append({"height": b.height, "hash": jsonable(b.hash), "timestamp": b.timestamp,
                     "state_root": jsonable(b.state_root),
                     "actions": len(seq.store.receipts(b.height)),
                     "batch": bt["index"] if bt else None,
                     "l1_status": bt["l1_status"] if bt else
                     "in an older batch" if older else "not batched"})
    return {"blocks": list(reversed(rows)), "head": head, "first": first}


def block_view(seq: Any, height: int) -> dict[str, Any] | None:
    b = seq.store.block(height)
    if b is None:
        return None
    rs = seq.store.receipts(height)
    bt = batch_of(batches_view(seq), height)
    return {"height": b.height, "hash": jsonable(b.hash), "parent_hash": jsonable(b.parent_hash),
            "timestamp": b.timestamp, "state_root": jsonable(b.state_root), "batch": bt,
            "receipts": [{"action_hash": jsonable(r.action_hash), "applied": r.applied,
                          "reason": r.reason, "detail": r.detail,
                          "events": [e for e in r.events.split(",") if e]} for r in rs]}


def home_view(seq: Any) -> dict[str, Any]:
    st = seq.state
    tasks = [jsonable(st.tasks[t].to_record()) for t in sorted(st.tasks)]
    return {"chain_id": seq.chain_id, "height": st.height, "state_root":
            jsonable(st.state_root()), "head_hash": jsonable(seq.head_hash), "tasks": tasks,
            "accounts": len(st.accounts), "blocks": blocks_view(seq, n=10)["blocks"],
            "batches": batches_view(seq)[:10]}
