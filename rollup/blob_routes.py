"""HTTP routes for large blobs: chunked, resumable uploads and chunked downloads.

Mounted by the app factory with one line (``app.include_router(blob_router(seq, config))``).
The protocol (see docs/protocol.md, "Protocol v2: large updates"):

* ``POST /v1/blobs/uploads`` with a signed declaration ``{hash, size, chunk_size,
  chunk_hashes, root, sender, signature}``: 201 (new) or 200 (already open: resume; or
  already stored: ``complete: true``) with the upload status;
* ``PUT /v1/blobs/{hash}/chunks/{i}`` with the raw chunk bytes: 200 with the status once
  the chunk is on disk (any order, any number of times);
* ``GET /v1/blobs/uploads/{hash}``: which chunks are still missing (resume after a cut);
* ``POST /v1/blobs/{hash}/complete``: 201 once the whole blob is verified and published;
* ``GET /v1/blobs/{hash}/meta`` and ``GET /v1/blobs/{hash}/chunks/{i}``: chunked download.

Every refusal is ``{reason, detail}`` with a 4xx status and changes nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from blobstore import BlobStore, FsBlobStore
from blobstore.uploads import ChunkWriter, Declaration, UploadError, UploadManager
from state_machine.chunks import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_UPLOAD_BYTES, chunk_span
from state_machine.state import ACTIVE, AWAITING_GENESIS

UPLOADS_DIR = ".uploads"


def _err(status: int, reason: str, detail: str = "", **extra: Any) -> JSONResponse:
    return JSONResponse({"reason": reason, "detail": detail, **extra}, status_code=status)


def _hash_arg(s: str) -> bytes:
    try:
        b = bytes.fromhex(s[2:] if s[:2] in ("0x", "0X") else s)
    except ValueError:
        raise UploadError(400, "malformed", "blob hash is not hex") from None
    if len(b) != 32:
        raise UploadError(400, "malformed", "blob hash must be 32 bytes")
    return b


def node_blobstore(seq: Any, config: Any) -> BlobStore:
    """The sequencer store's blob backend; a node configured without one gets a private
    directory (uploads then work, but do not outlive the process)."""
    store = seq.store
    if getattr(store, "blobstore", None) is None:
        store.blobstore = FsBlobStore(tempfile.mkdtemp(prefix="flockchain-blobs-"))
    return store.blobstore  # type: ignore[no-any-return]


def upload_manager(seq: Any, config: Any) -> UploadManager:
    """Staging lives beside a local blob directory (publishing is then a rename)."""
    store = node_blobstore(seq, config)
    if isinstance(store, FsBlobStore):
        staging = store.root / UPLOADS_DIR
    elif getattr(config, "blob_dir", None):
        staging = Path(config.blob_dir) / UPLOADS_DIR
    else:
        staging = Path(tempfile.mkdtemp(prefix="flockchain-uploads-"))
    kw: dict[str, Any] = {"is_staked": lambda pk: _staked(seq, pk),
                          "is_awaited": lambda root: _awaited_genesis(seq, root)}
    for name, attr in (("sender_quota", "upload_sender_quota"), ("ttl", "upload_ttl_s"),
                       ("unstaked_quota", "upload_unstaked_quota")):
        if getattr(config, attr, None) is not None:
            kw[name] = getattr(config, attr)
    return UploadManager(store, staging,
                         max_size=getattr(config, "max_blob_bytes", None) or MAX_UPLOAD_BYTES,
                         **kw)


def _awaited_genesis(seq: Any, root: bytes) -> bool:
    """A task awaiting its genesis declared this chunk root (protocol 4 chunked genesis)."""
    for t in seq.state.tasks.values():
        if t.phase == AWAITING_GENESIS and t.params is not None \
                and t.params.genesis_model_hash == root:
            return True
    return False


def _staked(seq: Any, pubkey: bytes) -> bool:
    acc = seq.state.accounts.get(pubkey)
    return acc is not None and acc.status == ACTIVE


async def _stream_chunk(request: Request, w: ChunkWriter) -> JSONResponse | None:
    """Feed the request body to ``w`` piece by piece (hashing overlaps the transfer);
    refused as soon as it exceeds the chunk's length."""
    cl = request.headers.get("content-length")
    if cl is not None and (not cl.isdigit() or int(cl) != w.expected):
        return _err(400 if cl.isdigit() and int(cl) < w.expected else 413, "bad_chunk_length",
                    f"chunk must be {w.expected} bytes")
    try:
        async for part in request.stream():
            w.update(part)
    except UploadError as exc:
        return JSONResponse(exc.to_json(), status_code=exc.status)
    return None


def blob_router(seq: Any, config: Any) -> APIRouter:
    """Routes over the node's blob store (see the module docstring)."""
    mgr = upload_manager(seq, config)
    store = mgr.store
    router = APIRouter(tags=["blobs"])
    seq.uploads = mgr  # reachable by tests, the bench and the sequencer's availability check

    async def guarded(fn: Any, *args: Any, status: int = 200) -> Response:
        try:
            out = await run_in_threadpool(fn, *args)
        except UploadError as exc:
            return JSONResponse(exc.to_json(), status_code=exc.status)
        if isinstance(out, tuple):
            created, body = out
            return JSONResponse(body, status_code=201 if created else 200)
        return JSONResponse(out, status_code=status)

    @router.post("/v1/blobs/uploads", summary="Declare (or resume) a chunked upload")
    async def declare(request: Request) -> Response:
        try:
            decl = Declaration.from_json(json.loads(await request.body()))
        except (ValueError, AttributeError) as exc:
            return _err(400, "malformed", f"invalid JSON: {exc}")
        except UploadError as exc:
            return JSONResponse(exc.to_json(), status_code=exc.status)
        return await guarded(mgr.declare, decl)

    @router.get("/v1/blobs/uploads/{blob_hash}", summary="Upload status (missing chunks)")
    async def upload_status(blob_hash: str) -> Response:
        try:
            h = _hash_arg(blob_hash)
        except UploadError as exc:
            return JSONResponse(exc.to_json(), status_code=exc.status)
        return await guarded(mgr.status, h)

    @router.put("/v1/blobs/{blob_hash}/chunks/{index}", summary="Upload one chunk")
    async def put_chunk(blob_hash: str, index: int, request: Request) -> Response:
        try:
            w = mgr.begin_chunk(_hash_arg(blob_hash), index)
        except UploadError as exc:
            return JSONResponse(exc.to_json(), status_code=exc.status)
        refused = await _stream_chunk(request, w)
        if refused is not None:
            return refused
        return await guarded(w.commit)

    @router.post("/v1/blobs/{blob_hash}/complete", summary="Verify and publish an upload")
    async def complete(blob_hash: str) -> Response:
        try:
            h = _hash_arg(blob_hash)
        except UploadError as exc:
            return JSONResponse(exc.to_json(), status_code=exc.status)
        return await guarded(mgr.complete, h, status=201)

    _download_routes(router, store)
    _da_routes(router, seq)
    return router


async def _stored(store: BlobStore, blob_hash: str) -> tuple[bytes, Any] | Response:
    """``(hash, meta)`` of a stored blob, or the 400/404 answer: one home for the checks
    every chunked read starts with."""
    try:
        h = _hash_arg(blob_hash)
    except UploadError as exc:
        return JSONResponse(exc.to_json(), status_code=exc.status)
    m = await run_in_threadpool(store.meta, h)
    if m is None:
        return _err(404, "unknown_blob", "no stored blob with this keccak256")
    return h, m


def _download_routes(router: APIRouter, store: BlobStore) -> None:
    """Chunked reads of stored (published) blobs."""

    @router.get("/v1/blobs/{blob_hash}/meta", summary="Size and chunk root of a stored blob")
    async def blob_meta(blob_hash: str) -> Response:
        found = await _stored(store, blob_hash)
        if isinstance(found, Response):
            return found
        h, m = found
        cs = m.chunk_size or DEFAULT_CHUNK_SIZE
        return JSONResponse({"hash": h.hex(), "size": m.size, "chunk_size": cs,
                             "root": m.chunk_root.hex(), "chunks": -(-m.size // cs)})

    @router.get("/v1/blobs/{blob_hash}/chunks/{index}", response_class=Response,
                summary="One chunk of a stored blob (application/octet-stream)")
    async def get_chunk(blob_hash: str, index: int,
                        chunk_size: int | None = Query(None, ge=1, le=MAX_CHUNK_SIZE)) -> Response:
        found = await _stored(store, blob_hash)
        if isinstance(found, Response):
            return found
        h, m = found
        cs = chunk_size or m.chunk_size or DEFAULT_CHUNK_SIZE
        start, end = chunk_span(m.size, cs, index)
        if index < 0 or start >= m.size:
            return _err(404, "bad_chunk_index", f"blob has {-(-m.size // cs)} chunks")
        data = await run_in_threadpool(store.read, h, start, end)
        return Response(data, media_type="application/octet-stream")


def _da_routes(router: APIRouter, seq: Any) -> None:
    """DA in chunks: a verifier hashes the pieces as they arrive and compares the running
    keccak256 with the batch's ``da_hash``. With v2 updates the payload carries update hashes,
    not update bytes (those come chunk-verified from the blob routes), so it stays small; the
    last built payload is kept so a chunked fetch does not rebuild it per chunk."""
    cache: dict[int, bytes] = {}

    def payload(index: int) -> bytes | None:
        data = cache.get(index)
        if data is None:
            data = seq.da(index)
            if data is not None:
                cache.clear()
                cache[index] = data
        return data  # type: ignore[no-any-return]

    @router.get("/v1/da/{index}/meta", tags=["batches"], summary="DA size and da_hash")
    async def da_meta(index: int,
                      chunk_size: int = Query(DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE)
                      ) -> Response:
        data = await run_in_threadpool(payload, index)
        b = seq.batch(index)
        if data is None or b is None:
            return _err(404, "unknown_batch", f"no batch {index}")
        return JSONResponse({"batch": index, "size": len(data), "da_hash": b.da_hash.hex(),
                             "chunk_size": chunk_size, "chunks": -(-len(data) // chunk_size)})

    @router.get("/v1/da/{index}/chunks/{i}", tags=["batches"], response_class=Response,
                summary="One chunk of a batch's DA payload")
    async def da_chunk(index: int, i: int,
                       chunk_size: int = Query(DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE)
                       ) -> Response:
        data = await run_in_threadpool(payload, index)
        if data is None:
            return _err(404, "unknown_batch", f"no batch {index}")
        start, end = chunk_span(len(data), chunk_size, i)
        if i < 0 or (start >= len(data) and len(data) > 0):
            return _err(404, "bad_chunk_index", "past the end of the payload")
        return Response(data[start:end], media_type="application/octet-stream")
