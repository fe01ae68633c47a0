"""Python SDK for FLockChain nodes: keys, building and signing actions, submitting with
retries, waiting for inclusion, and reading state, proofs and blobs.

Why submissions are retried blindly on connection errors: an action's hash is fixed once
it is signed, and the node acknowledges the same action again (HTTP 202, ``duplicate``)
instead of failing, so resending after a timeout can never double-apply anything.

Salts: commit-reveal salts are derived from the secret key,
``keccak256(seed || "flockchain/salt/v1" || kind || task_id || epoch)``, so a client that
restarts between commit and reveal needs only its key file and (for updates) the update
bytes. They stay secret because the seed does.

    node = NodeClient("http://127.0.0.1:8700")
    me = FlockClient(node, Keypair.load("client.key"))
    me.commit_update(task_id=1, epoch=0, update=delta_int16, wait=True)
    me.reveal_update(task_id=1, epoch=0, wait=True)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from rollup.keys import Keypair, load_or_create
from rollup.schemas import (
    AccountProof,
    AccountView,
    AckBody,
    ActionStatus,
    BatchView,
    BlockView,
    EpochRecord,
    Health,
    StateRootView,
    TaskProof,
    TaskRecord,
)
from rollup.wire import unhex
from state_machine.actions import (
    AdvanceBody,
    Body,
    CommitUpdateBody,
    CommitVoteBody,
    PublishGenesisBody,
    RevealUpdateBody,
    RevealVoteBody,
    SignedAction,
    make_action,
)
from state_machine.chunks import CONTENT_CHUNK_SIZE, content_root, verify_blob_root
from state_machine.commitments import CommitBinding, update_commitment, vote_commitment
from state_machine.constants import PROTOCOL_BOUND_COMMITMENTS, PROTOCOL_CHUNK_ROOT_ONLY
from state_machine.crypto import keccak256, verify_ack
from state_machine.reasons import Reason

__all__ = [
    "FlockClient",
    "Keypair",
    "NodeClient",
    "NodeError",
    "SubmitResult",
    "load_or_create",
]

MSGPACK = "application/msgpack"
FINAL_STATUSES = ("included", "rejected")


class NodeError(Exception):
    """The node answered with an error: ``status`` (HTTP), ``reason`` (machine-readable)."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {detail}" if detail else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SubmitResult:
    """The node's ack of a submitted action."""

    action_hash: bytes
    ack: bytes
    received_height: int
    duplicate: bool

    @classmethod
    def from_json(cls, j: Any) -> SubmitResult:
        a = AckBody.model_validate(j)
        return cls(a.action_hash, a.ack, a.received_height, a.duplicate)

    def verify(self, sequencer_pubkey: bytes) -> bool:
        """Check the ack: ed25519 over ``ACK_DOMAIN || action_hash || height (8 BE)``."""
        return verify_ack(sequencer_pubkey, self.action_hash, self.received_height, self.ack)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


class NodeClient:
    """HTTP access to one node. ``http`` may be any ``httpx.Client`` (e.g. FastAPI's
    ``TestClient`` for in-process tests); otherwise one is created for ``url``."""

    def __init__(self, url: str = "http://127.0.0.1:8700", *, http: httpx.Client | None = None,
                 timeout: float = 60.0, retries: int = 8, backoff: float = 0.1) -> None:
        self.url = url.rstrip("/")
        self._own = http is None
        self.http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout)
        self.retries = retries
        self.backoff = backoff

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, *, retry: bool = True, **kw: Any) -> httpx.Response:
        attempts = self.retries + 1 if retry else 1
        for i in range(attempts):
            try:
                return self.http.request(method, path, **kw)
            except httpx.TransportError:
                if i == attempts - 1:
                    raise
                time.sleep(min(self.backoff * 2**i, 2.0))
        raise AssertionError("unreachable")

    @staticmethod
    def _check(r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                j = r.json()
                raise NodeError(r.status_code, j.get("reason", "error"), j.get("detail", ""))
            except (ValueError, AttributeError):
                raise NodeError(r.status_code, "error", r.text[:200]) from None
        return r

    def get_json(self, path: str, **params: Any) -> Any:
        p = {k: v for k, v in params.items() if v is not None}
        return self._check(self._request("GET", path, params=p)).json()

    def get_bytes(self, path: str) -> bytes:
        return self._check(self._request("GET", path)).content

    # ------------------------------------------------------------------ submit

    def submit_raw(self, raw: bytes) -> SubmitResult:
        """POST canonical wire bytes; retried on connection errors (idempotent by hash)."""
        r = self._check(self._request("POST", "/v1/actions", content=raw,
                                      headers={"content-type": MSGPACK}))
        return SubmitResult.from_json(r.json())

    def submit(self, sa: SignedAction) -> SubmitResult:
        return self.submit_raw(sa.encode())

    def submit_system(self, typ: str, body: dict[str, Any], admin_token: str) -> SubmitResult:
        """Bridge path over HTTP: JSON ``{type, body}`` to ``/v1/admin/system``."""
        r = self._check(self._request(
            "POST", "/v1/admin/system", json={"type": typ, "body": body},
            headers={"authorization": f"Bearer {admin_token}"},
        ))
        return SubmitResult.from_json(r.json())

    def action(self, action_hash: bytes) -> ActionStatus:
        return ActionStatus.model_validate(self.get_json(f"/v1/actions/{_hex(action_hash)}"))

    def wait_included(self, action_hash: bytes, timeout: float = 60.0,
                      poll: float = 0.05) -> ActionStatus:
        """Poll until the action is in a block (status ``included`` or ``rejected``)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.action(action_hash)
            if st["status"] in FINAL_STATUSES:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"action {_hex(action_hash)} still {st['status']}")
            time.sleep(poll)

    # ------------------------------------------------------------------ reads

    def health(self) -> Health:
        """The node's health; a degraded or read-only node (503) still answers it."""
        r = self._request("GET", "/v1/healthz")
        if r.status_code == 503:
            try:
                return Health.model_validate(r.json())
            except ValueError:
                pass
        return Health.model_validate(self._check(r).json())

    def state_root(self) -> StateRootView:
        return StateRootView.model_validate(self.get_json("/v1/state/root"))

    def latest_block(self) -> BlockView:
        return BlockView.model_validate(self.get_json("/v1/blocks/latest"))

    def block(self, height: int) -> BlockView:
        return BlockView.model_validate(self.get_json(f"/v1/blocks/{height}"))

    def account(self, pubkey: bytes) -> AccountView:
        return AccountView.model_validate(self.get_json(f"/v1/accounts/{_hex(pubkey)}"))

    def account_proof(self, pubkey: bytes, batch: int | None = None) -> AccountProof:
        return AccountProof.model_validate(
            self.get_json(f"/v1/accounts/{_hex(pubkey)}/proof", batch=batch))

    def tasks(self) -> list[TaskRecord]:
        return [TaskRecord.model_validate(t) for t in self.get_json("/v1/tasks")["tasks"]]

    def task(self, task_id: int) -> TaskRecord:
        return TaskRecord.model_validate(self.get_json(f"/v1/tasks/{task_id}"))

    def epoch(self, task_id: int, epoch: int) -> EpochRecord:
        return EpochRecord.model_validate(self.get_json(f"/v1/tasks/{task_id}/epochs/{epoch}"))

    def task_proof(self, task_id: int, batch: int | None = None) -> TaskProof:
        return TaskProof.model_validate(self.get_json(f"/v1/tasks/{task_id}/proof", batch=batch))

    def blob(self, blob_hash: bytes, verify_hash: bool = True) -> bytes:
        data = self.get_bytes(f"/v1/blobs/{_hex(blob_hash)}")
        if verify_hash and keccak256(data) != blob_hash and content_root(data) != blob_hash:
            raise NodeError(200, "blob_hash_mismatch", "served bytes do not hash to the key")
        return data

    def global_model(self, task_id: int) -> np.ndarray:
        """The task's current global model (int32, verified against its global_hash)."""
        h = self.task(task_id).global_hash
        return np.frombuffer(self.blob(h), dtype="<i4").astype(np.int32)

    def batch(self, index: int) -> BatchView:
        return BatchView.model_validate(self.get_json(f"/v1/batches/{index}"))

    def da(self, index: int) -> bytes:
        return self.get_bytes(f"/v1/da/{index}")

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0,
                 poll: float = 0.05, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(poll)

    def wait_phase(self, task_id: int, phase: str, epoch: int | None = None,
                   timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the task is in ``phase`` (and ``epoch``, if given)."""
        out: dict[str, Any] = {}

        def ok() -> bool:
            t = self.task(task_id)
            out.update(t)
            return t["phase"] == phase and (epoch is None or t["epoch"] == epoch)

        self.wait_for(ok, timeout, what=f"task {task_id} phase {phase}")
        return out


class FlockClient:
    """A participant: signs actions with its key, tracks its nonce, manages salts."""

    def __init__(self, node: NodeClient | str, key: Keypair, chain_id: int | None = None,
                 protocol: int | None = None) -> None:
        self.node = node if isinstance(node, NodeClient) else NodeClient(node)
        self.key = key
        self._chain_id = chain_id
        self._protocol = protocol
        self._nonce: int | None = None
        self._updates: dict[tuple[int, int], bytes] = {}
        self._votes: dict[tuple[int, int], tuple[int, int]] = {}

    @property
    def pubkey(self) -> bytes:
        return self.key.pubkey

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.node.health().chain_id
        return self._chain_id

    @property
    def protocol(self) -> int:
        """The chain's protocol version (asked of the node once): it decides what a
        commitment binds."""
        if self._protocol is None:
            self._protocol = self.node.health().protocol
        return self._protocol

    def binding(self, task_id: int, epoch: int) -> CommitBinding | None:
        """What this key's commitments bind on this chain: sender, task and epoch from
        protocol 2 on (a copied commitment opens for nobody else), nothing on protocol 1."""
        if self.protocol >= PROTOCOL_BOUND_COMMITMENTS:
            return CommitBinding(self.pubkey, task_id, epoch)
        return None

    # ------------------------------------------------------------------ nonce and signing

    def refresh_nonce(self) -> int:
        """Re-read the next nonce from the node (state nonce + this key's queued actions)."""
        self._nonce = self.node.account(self.pubkey).next_nonce
        return self._nonce

    def sign(self, typ: str, body: Body, nonce: int | None = None) -> SignedAction:
        if nonce is None:
            nonce = self._nonce if self._nonce is not None else self.refresh_nonce()
        return make_action(self.key.seed, typ, self.chain_id, nonce, body, self.pubkey)

    def send(self, typ: str, body: Body, wait: bool = False,
             timeout: float = 60.0) -> SubmitResult | ActionStatus:
        """Sign with the next nonce and submit. On a nonce conflict (another process used
        this key, or an earlier action of ours was rejected in a block) the nonce is
        re-read once and the action re-signed. ``wait`` returns the inclusion status."""
        for attempt in range(2):
            sa = self.sign(typ, body)
            try:
                res = self.node.submit(sa)
            except NodeError as exc:
                if exc.reason == Reason.BAD_NONCE and attempt == 0:
                    self.refresh_nonce()
                    continue
                raise
            self._nonce = sa.action.nonce + 1
            if wait:
                return self.node.wait_included(res.action_hash, timeout)
            return res
        raise AssertionError("unreachable")

    def salt(self, kind: str, task_id: int, epoch: int) -> bytes:
        return keccak256(self.key.seed, b"flockchain/salt/v1", kind.encode(),
                         task_id.to_bytes(8, "big"), epoch.to_bytes(8, "big"))

    # ------------------------------------------------------------------ actions

    def publish_genesis(self, task_id: int, model: np.ndarray | bytes,
                        **kw: Any) -> SubmitResult | ActionStatus:
        data = model if isinstance(model, bytes) else np.asarray(model).astype("<i4").tobytes()
        return self.send("publish_genesis", PublishGenesisBody(task_id, data), **kw)

    def commit_update(self, task_id: int, epoch: int, update: np.ndarray | bytes,
                      **kw: Any) -> SubmitResult | ActionStatus:
        """Commit to an int16 delta (kept in memory for :meth:`reveal_update`)."""
        data = update if isinstance(update, bytes) else np.asarray(update).astype("<i2").tobytes()
        self._updates[(task_id, epoch)] = data
        c = update_commitment(data, self.salt("update", task_id, epoch),
                              self.binding(task_id, epoch))
        return self.send("commit_update", CommitUpdateBody(task_id, epoch, c), **kw)

    def reveal_update(self, task_id: int, epoch: int, update: np.ndarray | bytes | None = None,
                      **kw: Any) -> SubmitResult | ActionStatus:
        if update is None:
            data = self._updates[(task_id, epoch)]
        else:
            data = update if isinstance(update, bytes) else np.asarray(update).astype(
                "<i2").tobytes()
        body = RevealUpdateBody(task_id, epoch, data, self.salt("update", task_id, epoch))
        return self.send("reveal_update", body, **kw)

    def commit_vote(self, task_id: int, epoch: int, acc_candidate_bps: int, acc_current_bps: int,
                    **kw: Any) -> SubmitResult | ActionStatus:
        self._votes[(task_id, epoch)] = (acc_candidate_bps, acc_current_bps)
        c = vote_commitment(acc_candidate_bps, acc_current_bps, self.salt("vote", task_id, epoch),
                            self.binding(task_id, epoch))
        return self.send("commit_vote", CommitVoteBody(task_id, epoch, c), **kw)

    def reveal_vote(self, task_id: int, epoch: int, acc_candidate_bps: int | None = None,
                    acc_current_bps: int | None = None, **kw: Any) -> SubmitResult | ActionStatus:
        if acc_candidate_bps is None or acc_current_bps is None:
            acc_candidate_bps, acc_current_bps = self._votes[(task_id, epoch)]
        body = RevealVoteBody(task_id, epoch, acc_candidate_bps, acc_current_bps,
                              self.salt("vote", task_id, epoch))
        return self.send("reveal_vote", body, **kw)

    def advance(self, task_id: int, epoch: int, **kw: Any) -> SubmitResult | ActionStatus:
        return self.send("advance", AdvanceBody(task_id, epoch), **kw)

    # ------------------------------------------------------------------ reads

    def blob_of(self, data: bytes | memoryview) -> Any:
        """What this chain's v2 reveals name an update by (a ``VerifiedBlob``, hashed once):
        protocol 4, the chunk root at ``CONTENT_CHUNK_SIZE`` (chunks hashed in parallel, no
        whole keccak); before it, the whole keccak and the chunk root in one pass."""
        from state_machine.chunks import DEFAULT_CHUNK_SIZE, verify_blob

        if self.protocol >= PROTOCOL_CHUNK_ROOT_ONLY:
            return verify_blob_root(data, CONTENT_CHUNK_SIZE)
        return verify_blob(data, DEFAULT_CHUNK_SIZE)

    def account(self) -> AccountView:
        return self.node.account(self.pubkey)

    def proof(self, batch: int | None = None) -> AccountProof:
        return self.node.account_proof(self.pubkey, batch)


def keypair_from_env_or_file(path: str | os.PathLike[str]) -> Keypair:
    """``FLOCKCHAIN_CLIENT_SEED`` (hex) if set, else the key file (created if missing)."""
    env = os.environ.get("FLOCKCHAIN_CLIENT_SEED")
    if env:
        return Keypair.from_seed(unhex(env, 32, "FLOCKCHAIN_CLIENT_SEED"))
    return load_or_create(path)


# ---------------------------------------------------------------------- large updates (v2)

LARGE_UPDATE_BYTES = 8 * 1024 * 1024  # above this, updates go through the blob store (v2)


def _progress(total: int, label: str, show: bool) -> Any:
    """A rich progress bar (a no-op object when ``show`` is false)."""
    from rich import progress as rp

    prog = rp.Progress("[progress.description]{task.description}", rp.BarColumn(),
                       rp.DownloadColumn(), rp.TransferSpeedColumn(), rp.TimeRemainingColumn(),
                       disable=not show, transient=True)
    return prog, prog.add_task(label, total=total)


ROOT_UPLOAD_CONCURRENCY = 4  # chunks in flight for a root-addressed upload


def upload_blob(node: NodeClient, key: Keypair, data: bytes | memoryview, *,
                chunk_size: int | None = None, complete: bool = True, progress: bool = False,
                blob: Any = None, concurrency: int | None = None) -> dict[str, Any]:
    """Upload ``data`` in chunks (resuming whatever the node already holds) and, with
    ``complete``, publish it. Returns the node's upload status (``complete: true`` once
    published). Retries each chunk on connection errors; safe to call again after a cut.

    ``concurrency``: chunks in flight. Default: ``ROOT_UPLOAD_CONCURRENCY`` for a
    root-addressed blob (protocol 4: the node hashes chunks side by side, so chunks in
    flight overlap their hashing; bench/blobs.py: 0.17 -> 0.40 of the sink at 4), 1 for
    a keccak-addressed one (its in-order whole hash gains nothing from it)."""
    from concurrent.futures import ThreadPoolExecutor

    from blobstore.uploads import declaration_message
    from state_machine.chunks import DEFAULT_CHUNK_SIZE, chunk_span, verify_blob

    vb = blob if blob is not None else verify_blob(data, chunk_size or DEFAULT_CHUNK_SIZE)
    hashes = vb.chunk_hashes  # computed in the same single pass as the whole keccak
    sig = key.sign(declaration_message(vb.key, vb.size, vb.chunk_size, vb.root))
    decl = {"hash": vb.key.hex(), "size": vb.size, "chunk_size": vb.chunk_size,
            "chunk_hashes": [h.hex() for h in hashes], "root": vb.root.hex(),
            "sender": key.pubkey.hex(), "signature": sig.hex()}
    status = node._check(node._request("POST", "/v1/blobs/uploads", json=decl)).json()
    mv = memoryview(data)
    prog, task = _progress(vb.size, f"upload {vb.key.hex()[:10]}", progress)
    spans = {i: chunk_span(vb.size, vb.chunk_size, i) for i in status.get("missing", [])}

    def put(span: tuple[int, int, int]) -> dict[str, Any]:
        i, a, b = span
        st = node._check(node._request(
            "PUT", f"/v1/blobs/{vb.key.hex()}/chunks/{i}", content=bytes(mv[a:b]),
            headers={"content-type": "application/octet-stream"})).json()
        prog.advance(task, b - a)
        return st  # type: ignore[no-any-return]

    lanes = concurrency or (ROOT_UPLOAD_CONCURRENCY if vb.key == vb.root else 1)
    with prog, ThreadPoolExecutor(max(1, lanes)) as pool:
        prog.update(task, completed=vb.size - sum(b - a for a, b in spans.values()))
        for st in pool.map(put, [(i, a, b) for i, (a, b) in spans.items()]):
            status = st
    if complete and not status.get("complete"):
        status = node._check(node._request("POST", f"/v1/blobs/{vb.key.hex()}/complete"))\
            .json()
    return status  # type: ignore[no-any-return]


def download_blob(node: NodeClient, blob_hash: bytes, *, progress: bool = False) -> bytes:
    """Fetch a stored blob chunk by chunk; every chunk is hashed once as it arrives (the
    chunk root and the whole keccak256 in the same pass) and checked at the end."""
    from blobstore.source import VerifyingSource

    meta = node.get_json(f"/v1/blobs/{blob_hash.hex()}/meta")
    prog, task = _progress(int(meta["size"]), f"download {blob_hash.hex()[:10]}", progress)

    def chunk(h: bytes, i: int) -> bytes:
        data = node.get_bytes(f"/v1/blobs/{h.hex()}/chunks/{i}")
        prog.advance(task, len(data))
        return data

    with prog:
        vb = VerifyingSource(lambda h: (int(meta["size"]), int(meta["chunk_size"])), chunk,
                             root_addressed=meta["root"] == blob_hash.hex()).get(blob_hash)
    if vb is None or (meta["root"] and vb.root.hex() != meta["root"]):
        raise NodeError(502, "blob_mismatch", "served chunks do not hash to the blob")
    return bytes(vb.data)


def commit_update_v2(fc: FlockClient, task_id: int, epoch: int, update: np.ndarray | bytes,
                     progress: bool = False, **kw: Any) -> SubmitResult | dict[str, Any]:
    """v2 commit: stage every chunk on the node (not readable until completed, so nobody can
    copy the update before the reveal phase) and commit to (hash, size, chunk root)."""
    from state_machine.commitments import update_commitment_v2

    data = update if isinstance(update, bytes) else np.asarray(update).astype("<i2").tobytes()
    vb = fc.blob_of(data)  # what the chain's protocol names an update by
    fc._updates[(task_id, epoch)] = data
    fc.__dict__.setdefault("_v2_blobs", {})[(task_id, epoch)] = vb
    upload_blob(fc.node, fc.key, data, blob=vb, complete=False, progress=progress)
    c = update_commitment_v2(vb.key, vb.size, vb.chunk_size, vb.root,
                             fc.salt("update", task_id, epoch), fc.binding(task_id, epoch))
    return fc.send("commit_update", CommitUpdateBody(task_id, epoch, c), **kw)


def reveal_update_v2(fc: FlockClient, task_id: int, epoch: int, progress: bool = False,
                     **kw: Any) -> SubmitResult | dict[str, Any]:
    """v2 reveal: finish (resume) the upload, publish the blob, then sign only its hash."""
    from state_machine.actions import RevealUpdateV2Body

    vb = fc.__dict__.get("_v2_blobs", {}).get((task_id, epoch))
    if vb is None:
        vb = fc.blob_of(fc._updates[(task_id, epoch)])
    upload_blob(fc.node, fc.key, vb.data, blob=vb, complete=True, progress=progress)
    body = RevealUpdateV2Body(task_id, epoch, vb.key, vb.size, vb.chunk_size, vb.root,
                              fc.salt("update", task_id, epoch))
    return fc.send("reveal_update_v2", body, **kw)


def genesis_root(model: np.ndarray | bytes) -> bytes:
    """The ``genesis_model_hash`` a protocol 4 task declares for a chunked genesis: the
    chunk root (``CONTENT_CHUNK_SIZE``) of the little-endian int32 model."""
    data = model if isinstance(model, bytes) else np.asarray(model).astype("<i4").tobytes()
    return content_root(data)


def publish_genesis_v2(fc: FlockClient, task_id: int, model: np.ndarray | bytes,
                       progress: bool = False, **kw: Any) -> SubmitResult | dict[str, Any]:
    """Protocol 4 chunked genesis: upload the int32 model as a root-addressed blob (each
    byte hashed once, resumable), then sign only its root, size and chunk size."""
    from state_machine.actions import PublishGenesisV2Body

    data = model if isinstance(model, bytes) else np.asarray(model).astype("<i4").tobytes()
    vb = verify_blob_root(data, CONTENT_CHUNK_SIZE)
    upload_blob(fc.node, fc.key, data, blob=vb, complete=True, progress=progress)
    return fc.send("publish_genesis_v2",
                   PublishGenesisV2Body(task_id, vb.size, vb.chunk_size, vb.root), **kw)


def commit_update_auto(fc: FlockClient, task_id: int, epoch: int, update: np.ndarray | bytes,
                       **kw: Any) -> SubmitResult | dict[str, Any]:
    """v1 for small updates, v2 (blob store) above ``LARGE_UPDATE_BYTES``."""
    n = len(update) if isinstance(update, bytes) else 2 * int(np.asarray(update).size)
    if n > LARGE_UPDATE_BYTES:
        return commit_update_v2(fc, task_id, epoch, update, **kw)
    return fc.commit_update(task_id, epoch, update, **kw)


def reveal_update_auto(fc: FlockClient, task_id: int, epoch: int,
                       **kw: Any) -> SubmitResult | dict[str, Any]:
    if len(fc._updates[(task_id, epoch)]) > LARGE_UPDATE_BYTES:
        return reveal_update_v2(fc, task_id, epoch, **kw)
    return fc.reveal_update(task_id, epoch, **kw)


def download_da(node: NodeClient, index: int, chunk_size: int | None = None) -> bytes:
    """A batch's DA payload fetched in chunks, hashed incrementally as they arrive and
    checked against the batch's ``da_hash``; raises NodeError(502) on a mismatch."""
    from state_machine.chunks import DEFAULT_CHUNK_SIZE, whole_hasher

    cs = chunk_size or DEFAULT_CHUNK_SIZE
    meta = node.get_json(f"/v1/da/{index}/meta", chunk_size=cs)
    h, buf = whole_hasher(), bytearray()
    for i in range(int(meta["chunks"])):
        part = node._check(node._request("GET", f"/v1/da/{index}/chunks/{i}",
                                         params={"chunk_size": cs})).content
        h.update(part)
        buf += part
    if bytes(h.digest()).hex() != meta["da_hash"]:
        raise NodeError(502, "da_mismatch", "DA chunks do not hash to the batch's da_hash")
    return bytes(buf)
