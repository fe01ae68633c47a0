"""The bridge's view of a node (``bridge.ports``): in-process or over HTTP.

Why two: the embedded demo runs the bridge next to the sequencer in one process, while
the ``flockchain aggregator`` daemon and the local network reach a node over HTTP with
the admin token. Both give the bridge services the same few methods.
"""

from __future__ import annotations

from typing import Any

from bridge.ports import BatchHeader
from rollup.client import NodeClient
from rollup.wire import unhex
from sequencer.sequencer import Sequencer
from state_machine.actions import Body
from state_machine.reasons import Reason


def _header(b: Any) -> BatchHeader:
    return BatchHeader(
        b.idx, b.first_height, b.last_height, b.last_block_hash, b.state_root, b.da_hash
    )


class InProcessPorts:
    """Ports over a Sequencer object in this process."""

    def __init__(self, seq: Sequencer) -> None:
        self.seq = seq

    # SystemSink
    def l1_cursor(self) -> tuple[int, int] | None:
        return self.seq.pending_l1_cursor()

    def submit_system(self, typ: str, body: Body) -> bytes:
        return self.seq.submit_l1_event(typ, body).action_hash

    # BatchSource
    def cut_batch(self) -> BatchHeader | None:
        b = self.seq.make_batch()
        return _header(b) if b is not None else None

    def unposted_batches(self) -> list[BatchHeader]:
        latest = self.seq.latest_batch()
        if latest is None:
            return []
        out = []
        for i in range(latest.idx, -1, -1):
            b = self.seq.batch(i)
            if b is None or b.l1_status != "pending":
                break
            out.append(_header(b))
        return out[::-1]

    def mark_posted(self, index: int, tx_hash: bytes) -> None:
        self.seq.mark_posted(index, tx_hash or None)

    # ProofSource
    def account_proofs(self, batch_index: int) -> list[dict[str, Any]]:
        st = self.seq.batch_state(batch_index)
        order = sorted(st.accounts, key=lambda p: st.accounts[p].index)
        return [st.account_proof(pk) for pk in order]

    def task_proof(self, batch_index: int, task_id: int) -> dict[str, Any]:
        return self.seq.batch_state(batch_index).task_proof(task_id)


def _proof_from_json(p: dict[str, Any]) -> dict[str, Any]:
    """JSON proof (0x-hex, decimal-string wei) back to the in-process form."""
    f = dict(p["fields"])
    for k in ("l1_address", "pubkey", "owner", "spec_hash", "global_hash", "prev_delta_hash"):
        if isinstance(f.get(k), str):
            f[k] = unhex(f[k])
    for k in ("stake", "cumulative_slashed", "cumulative_reward", "escrow", "charged", "treasury"):
        if k in f and f[k] is not None:
            f[k] = int(f[k])
    out = {
        "fields": f,
        "proof": [unhex(x, 32) for x in p["proof"]],
        "state_root": unhex(p["state_root"], 32),
    }
    if "leaf" in p:
        out["leaf"] = unhex(p["leaf"], 32)
    if "detail_hash" in p:
        out["detail_hash"] = unhex(p["detail_hash"], 32)
    return out


class HttpPorts:
    """Ports over a remote node's public and admin HTTP endpoints."""

    def __init__(self, node: NodeClient, admin_token: str) -> None:
        self.node = node
        self.token = admin_token

    def _admin(self, method: str, path: str, **kw: Any) -> Any:
        auth = {"authorization": f"Bearer {self.token}"}
        r = self.node.http.request(method, path, headers=auth, **kw)
        if r.status_code >= 400 and r.status_code != 409:
            raise RuntimeError(f"{path}: {r.status_code} {r.text}")
        return r

    def l1_cursor(self) -> tuple[int, int] | None:
        c = self.node.health().get("l1_cursor")
        return (int(c[0]), int(c[1])) if c else None

    def submit_system(self, typ: str, body: Body) -> bytes:
        from rollup.wire import jsonable

        r = self._admin(
            "POST", "/v1/admin/system", json={"type": typ, "body": jsonable(body.to_wire())}
        )
        if r.status_code == 409 and r.json().get("reason") == Reason.L1_OUT_OF_ORDER:
            return b""  # that log (or a later one) is already on L2: nothing to do
        return unhex(r.json()["action_hash"], 32)

    def cut_batch(self) -> BatchHeader | None:
        r = self._admin("POST", "/v1/admin/batches")
        return None if r.status_code == 409 else self._batch(r.json())

    @staticmethod
    def _batch(j: dict[str, Any]) -> BatchHeader:
        return BatchHeader(
            int(j["index"]),
            int(j["first_height"]),
            int(j["last_height"]),
            unhex(j["last_block_hash"], 32),
            unhex(j["state_root"], 32),
            unhex(j["da_hash"], 32),
        )

    def unposted_batches(self) -> list[BatchHeader]:
        try:
            latest = self.node.get_json("/v1/batches/latest")
        except Exception:
            return []
        out = []
        for i in range(int(latest["index"]), -1, -1):
            j = self.node.batch(i)
            if j.get("l1_status") != "pending":
                break
            out.append(self._batch(j))
        return out[::-1]

    def mark_posted(self, index: int, tx_hash: bytes) -> None:
        payload: dict[str, Any] = {"status": "posted"}
        if tx_hash:
            payload["l1_tx_hash"] = "0x" + tx_hash.hex()
        self._admin("POST", f"/v1/admin/batches/{index}/posted", json=payload)

    def account_proofs(self, batch_index: int) -> list[dict[str, Any]]:
        accounts = self.node.get_json("/v1/accounts", batch=batch_index)["accounts"]
        return [
            _proof_from_json(self.node.account_proof(unhex(a["pubkey"], 32), batch_index))
            for a in accounts
        ]

    def task_proof(self, batch_index: int, task_id: int) -> dict[str, Any]:
        return _proof_from_json(self.node.task_proof(task_id, batch_index))
