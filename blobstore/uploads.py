"""Chunked, resumable uploads into a blob store.

Why this shape: a 512 MiB update must never sit in one HTTP request, one SQL row or one
Python object, a client on a bad link must resume where it stopped, and an ack (of a chunk
or of the finished blob) must mean the bytes are on disk. So:

* ``declare``: the uploader signs ``(hash, size, chunk_size, chunk_root)`` and lists every
  chunk hash; the node checks the list against the root (``state_machine.chunks``) before
  accepting a single byte, and charges the declared size to the signer's quota.
* ``put_chunk``: the chunk's bytes are copied as they arrive into one page-aligned buffer
  (``blobstore.direct``; one copy, pages mapped as bytes arrive, so memory follows what
  arrived; buffers are reused) and cut into views of about ``HASH_SLICE``, each hashed in
  the background (keccak releases the GIL): into the chunk's keccak, by the batch hasher
  that feeds the slices of several chunks in flight to one multi-buffer keccak call
  (``blobstore.batch_hash``), and, when the chunk continues the in-order prefix, into a
  copy of the running keccak of the whole blob. One pass over the bytes, off the event
  loop. At the end the chunk is checked against its declared hash, written at its offset
  into one preallocated staging file (O_DIRECT where the file system takes it: no page
  cache copy) and fdatasynced, outside the session lock (verified bytes: two writers of
  one index write the same bytes), and only then recorded in an append-only journal; the
  200 follows the journal's sync. A chunk that does not match changes nothing (its copy
  of the whole hash is dropped). A chunk that completes the prefix later (it arrived
  before its predecessor) is fed to the whole hash from memory at its commit, still off
  the request path.
* ``complete``: every chunk present, the whole keccak equal to the declared hash (read back
  only for chunks that arrived out of order or before a restart), then the staging file
  is published atomically by the backend. Nobody can read a blob before that.
* root-addressed uploads (protocol 4, "chunk root only"): a declaration whose ``hash`` *is*
  its chunk root has no whole keccak at all. Each chunk is then hashed exactly once, side
  by side with the other chunks in flight (SIMD lanes of the native keccak), and
  ``complete`` only checks that every chunk is present: the chunk hashes were checked
  against the signed root at declaration and each chunk against its hash at its ack.
* unfinished uploads idle for ``ttl`` seconds are deleted by :meth:`UploadManager.gc`.

Crash (kill -9) at any point: a chunk is either journalled (and its bytes fsynced before)
or it is reported missing and re-sent; the staging file is never visible as a blob.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blobstore.base import BlobMeta, BlobStore
from blobstore.batch_hash import BatchHasher
from blobstore.direct import BufferPool, write_durable
from blobstore.fs import atomic_write, fsync_dir
from state_machine.chunks import (
    ChunkError,
    check_layout,
    chunk_hasher,
    chunk_root,
    chunk_span,
    whole_hasher,
)
from state_machine.crypto import verify

UPLOAD_DOMAIN = b"flockchain/upload/v1"
DEFAULT_TTL_S = 3600.0
DEFAULT_SENDER_QUOTA = 2 * 1024 * 1024 * 1024  # bytes of unfinished uploads per signer
DEFAULT_MAX_UPLOADS = 8  # unfinished uploads of unstaked signers, all together
DEFAULT_UNSTAKED_QUOTA = 64 * 1024 * 1024  # bytes per unstaked signer (so <= 512 MiB total)
READ_BACK = 8 * 1024 * 1024
WHOLE_HASH_QUEUE = 4  # chunks waiting for the whole-blob hash thread (memory bound)
HASH_SLICE = 1024 * 1024  # bytes hashed per background job while a chunk streams in
CHUNK_HASH_THREADS = 2  # threads feeding chunk keccaks, several chunks per call


class UploadError(Exception):
    """A refused upload step: HTTP ``status`` and a machine-readable ``reason``."""

    def __init__(self, status: int, reason: str, detail: str = "",
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.status, self.reason, self.detail = status, reason, detail
        self.extra = extra or {}

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, **self.extra}


def declaration_message(blob_hash: bytes, size: int, chunk_size: int, root: bytes) -> bytes:
    """What an uploader signs: domain, hash, u64 size, u64 chunk size, chunk root."""
    return (UPLOAD_DOMAIN + blob_hash + size.to_bytes(8, "big") + chunk_size.to_bytes(8, "big")
            + root)


@dataclass(frozen=True)
class Declaration:
    """A signed upload declaration (see :func:`declaration_message`)."""

    blob_hash: bytes
    size: int
    chunk_size: int
    chunk_hashes: tuple[bytes, ...]
    root: bytes
    sender: bytes
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.blob_hash.hex(), "size": self.size, "chunk_size": self.chunk_size,
                "chunk_hashes": [h.hex() for h in self.chunk_hashes], "root": self.root.hex(),
                "sender": self.sender.hex(), "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Declaration:
        def hx(v: Any, n: int | None, what: str) -> bytes:
            if not isinstance(v, str):
                raise UploadError(400, "malformed", f"{what} must be hex")
            try:
                b = bytes.fromhex(v[2:] if v[:2] in ("0x", "0X") else v)
            except ValueError:
                raise UploadError(400, "malformed", f"{what} is not hex") from None
            if n is not None and len(b) != n:
                raise UploadError(400, "malformed", f"{what} must be {n} bytes")
            return b

        try:
            size, cs, hashes = int(d["size"]), int(d["chunk_size"]), d["chunk_hashes"]
            if not isinstance(hashes, list):
                raise UploadError(400, "malformed", "chunk_hashes must be a list")
            return cls(hx(d["hash"], 32, "hash"), size, cs,
                       tuple(hx(h, 32, "chunk hash") for h in hashes), hx(d["root"], 32, "root"),
                       hx(d["sender"], 32, "sender"), hx(d["signature"], 64, "signature"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UploadError(400, "malformed", f"bad declaration: {exc}") from None

    def check(self, max_size: int) -> None:
        """Layout, chunk list against the root, signature; raises UploadError."""
        try:
            n = check_layout(self.size, self.chunk_size, max_size)
            if len(self.chunk_hashes) != n:
                raise ChunkError("bad_chunk_count", f"expected {n} chunk hashes")
            if chunk_root(self.size, self.chunk_size, self.chunk_hashes) != self.root:
                raise ChunkError("root_mismatch", "chunk hashes do not give the declared root")
        except ChunkError as exc:
            status = 413 if exc.reason == "bad_size" and self.size > max_size else 422
            raise UploadError(status, exc.reason, exc.detail) from None
        msg = declaration_message(self.blob_hash, self.size, self.chunk_size, self.root)
        if not verify(self.sender, msg, self.signature):
            raise UploadError(401, "bad_signature", "declaration signature does not verify")


@dataclass
class _Session:
    """In-memory companion of one staging directory (rebuilt from disk after a restart)."""

    decl: Declaration
    dir: Path
    received: set[int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    whole: Any = field(default_factory=whole_hasher)  # owned by the manager's hash thread
    hashed_upto: int = 0  # chunks [0, hashed_upto) are in ``whole``
    submitted: int = 0  # chunks [0, submitted) were handed to the hash thread (``order``)
    # brief lock (no I/O under it: the event loop takes it) for ``submitted`` and the order
    # of jobs on the hash thread
    order: threading.Lock = field(default_factory=threading.Lock)

    @property
    def n(self) -> int:
        return len(self.decl.chunk_hashes)

    @property
    def root_addressed(self) -> bool:
        """Keyed by its chunk root (protocol 4): no whole-blob keccak is ever computed."""
        return self.decl.blob_hash == self.decl.root

    def missing(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.received]


class UploadManager:
    """Upload sessions staged under ``staging`` and published into ``store``."""

    def __init__(self, store: BlobStore, staging: str | os.PathLike[str], *,
                 max_size: int, ttl: float = DEFAULT_TTL_S,
                 sender_quota: int = DEFAULT_SENDER_QUOTA,
                 max_uploads: int = DEFAULT_MAX_UPLOADS,
                 unstaked_quota: int = DEFAULT_UNSTAKED_QUOTA,
                 is_staked: Callable[[bytes], bool] = lambda _pk: False,
                 is_awaited: Callable[[bytes], bool] = lambda _root: False,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.staging = Path(staging)
        self.staging.mkdir(parents=True, exist_ok=True)
        self.max_size, self.ttl = max_size, ttl
        self.sender_quota, self.max_uploads = sender_quota, max_uploads
        self.unstaked_quota, self.is_staked = unstaked_quota, is_staked
        self.is_awaited = is_awaited
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[bytes, _Session] = {}
        # the whole-blob hash (one FIFO thread: its jobs run in byte order) and, beside
        # it, the chunks' own hashes
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-hash")
        # chunk keccaks: a chunk's slices in order, several chunks' slices per call
        self._chunk_hash = BatchHasher(CHUNK_HASH_THREADS)
        self._buffers = BufferPool()  # chunk buffers with their pages already mapped
        self._inflight = threading.BoundedSemaphore(WHOLE_HASH_QUEUE)
        self._load()

    # ------------------------------------------------------------------ recovery

    def _load(self) -> None:
        """Rebuild sessions from disk: the journal lists the chunks that were acked."""
        for d in sorted(self.staging.iterdir()):
            decl_path = d / "decl.json"
            if not decl_path.is_file():  # crashed before the declaration was durable
                _remove(d)
                continue
            decl = Declaration.from_json(json.loads(decl_path.read_text()))
            self._sessions[decl.blob_hash] = _Session(decl, d, _read_journal(d, len(
                decl.chunk_hashes)))

    # ------------------------------------------------------------------ declare

    def declare(self, decl: Declaration) -> tuple[bool, dict[str, Any]]:
        """Start (or find, for resume) the upload of ``decl``; returns (created, status)."""
        decl.check(self.max_size)
        if self.store.has(decl.blob_hash):
            return False, self._done_status(decl.blob_hash)
        self.gc()
        with self._lock:
            s = self._sessions.get(decl.blob_hash)
            if s is not None:
                if (s.decl.root, s.decl.size) != (decl.root, decl.size):
                    raise UploadError(409, "conflicting_upload",
                                      "an upload of this hash with another layout is open")
                return False, self.status_of(s)
            self._admit(decl)
            d = self.staging / decl.blob_hash.hex()
            d.mkdir(parents=True, exist_ok=True)
            with open(d / "data", "wb") as f:
                f.truncate(decl.size)  # sparse: no bytes are written until chunks arrive
            atomic_write(d / "decl.json", json.dumps(decl.to_json()).encode())
            s = _Session(decl, d, set())
            self._sessions[decl.blob_hash] = s
            return True, self.status_of(s)

    def _admit(self, decl: Declaration) -> None:
        """Bounds on unfinished uploads (caller holds the lock). A staked signer has its own
        quota and never competes with anyone else; unstaked signers share ``max_uploads``
        slots of ``unstaked_quota`` bytes each, so keys without stake can make the node
        stage at most ``max_uploads * unstaked_quota`` bytes and cannot crowd out a
        proposer's upload."""
        staked = self._privileged(decl)
        if not staked:
            n = sum(1 for s in self._sessions.values() if not self._privileged(s.decl))
            if n >= self.max_uploads:
                raise UploadError(503, "too_many_uploads",
                                  f"{self.max_uploads} uploads of unstaked keys are open")
        quota = self.sender_quota if staked else min(self.sender_quota, self.unstaked_quota)
        open_bytes = sum(s.decl.size for s in self._sessions.values()
                         if s.decl.sender == decl.sender)
        if open_bytes + decl.size > quota:
            raise UploadError(413, "quota_exceeded",
                              f"sender has {open_bytes} bytes of unfinished uploads; "
                              f"quota {quota}")

    def _privileged(self, decl: Declaration) -> bool:
        """Staked signers, and the blob the chain awaits (``is_awaited(root)``: a task's
        chunked genesis, protocol 4), whoever uploads it: its root fixes its content, so the
        one thing such an upload can stage is the model the task declared on L1 (its
        owner need not stake to publish a 1 GiB genesis)."""
        return self.is_staked(decl.sender) or (decl.blob_hash == decl.root
                                                and self.is_awaited(decl.root))

    # ------------------------------------------------------------------ chunks

    def session(self, blob_hash: bytes) -> _Session:
        with self._lock:
            s = self._sessions.get(blob_hash)
        if s is None:
            raise UploadError(404, "unknown_upload", "no open upload for this hash")
        return s

    def expected_length(self, blob_hash: bytes, index: int) -> int:
        s = self.session(blob_hash)
        if not 0 <= index < s.n:
            raise UploadError(404, "bad_chunk_index", f"chunk index must be < {s.n}")
        start, end = chunk_span(s.decl.size, s.decl.chunk_size, index)
        return end - start

    def put_chunk(self, blob_hash: bytes, index: int, data: bytes | memoryview) -> dict[str, Any]:
        """Verify, write and durably record one chunk held in memory (see ChunkWriter)."""
        w = self.begin_chunk(blob_hash, index)
        w.update(data)
        return w.commit()

    def begin_chunk(self, blob_hash: bytes, index: int) -> ChunkWriter:
        """A writer that hashes the chunk's bytes as they arrive (the HTTP route feeds it
        each received piece, so hashing overlaps the transfer) and commits at the end."""
        s = self.session(blob_hash)
        return ChunkWriter(self, s, index, self.expected_length(blob_hash, index))

    def _commit_chunk(self, w: ChunkWriter) -> dict[str, Any]:
        s, index = w.session, w.index
        w.finish_hashing()
        if w.received != w.expected:
            raise UploadError(400, "bad_chunk_length", f"chunk {index} must be {w.expected} bytes")
        if w.digest.digest() != s.decl.chunk_hashes[index]:
            raise UploadError(422, "chunk_hash_mismatch",
                              f"chunk {index} does not match its declared hash")
        with s.lock:
            fresh = index not in s.received  # (else a retried chunk: acked again, idempotent)
        if fresh:
            # outside the session lock, so the chunks in flight write and sync side by side:
            # the bytes matched their declared hash, so two writers of one index (a retry
            # racing the first try) write the same bytes; only the journal is serialized
            start, _ = chunk_span(s.decl.size, s.decl.chunk_size, index)
            try:
                write_durable(s.dir / "data", start, w.buf.data())
            except FileNotFoundError:  # published (or dropped) by a racing call meanwhile
                return self.status(s.decl.blob_hash)
            with s.lock:
                if index not in s.received:
                    _journal(s.dir, index)
                    s.received.add(index)
        if not s.root_addressed:
            self._extend_prefix(s, w)  # (reads the slices later: the buffer is not reused)
        elif fresh:
            self._buffers.put(w.buf)  # hashed and written: nothing reads it any more
        return self.status_of(s)

    def _extend_prefix(self, s: _Session, w: ChunkWriter) -> None:
        """A stored chunk that continues the in-order prefix extends the whole hash, off
        the request path: by adopting the copy it extended while streaming, or by queueing
        its bytes from memory (at most WHOLE_HASH_QUEUE chunks wait)."""
        self._inflight.acquire()  # before the order lock, which the event loop takes
        with s.order:
            fed = w.index == s.submitted
            if fed:
                if w.streams:  # queued behind its slices on the same FIFO thread
                    self._hasher.submit(self._adopt_whole, s, w)
                else:
                    self._hasher.submit(self._extend_whole, s, w.slices)
                s.submitted = w.index + 1  # after the job is queued (ChunkWriter reads it)
        if not fed:
            self._inflight.release()

    def _adopt_whole(self, s: _Session, w: ChunkWriter) -> None:
        try:
            s.whole = w.whole
            s.hashed_upto += 1
        finally:
            self._inflight.release()

    def _extend_whole(self, s: _Session, slices: list[bytes]) -> None:
        try:
            for piece in slices:
                s.whole.update(piece)
            s.hashed_upto += 1
        finally:
            self._inflight.release()

    def _drain(self) -> None:
        """Wait until every queued whole-hash extension ran (one FIFO worker)."""
        self._hasher.submit(lambda: None).result()

    # ------------------------------------------------------------------ complete

    def complete(self, blob_hash: bytes) -> dict[str, Any]:
        """Check the whole blob and publish it; 409 with the missing chunks otherwise."""
        if self.store.has(blob_hash):
            return self._done_status(blob_hash)
        s = self.session(blob_hash)
        with s.lock:
            missing = s.missing()
            if missing:
                raise UploadError(409, "missing_chunks", f"{len(missing)} chunks missing",
                                  {"missing": missing[:1024]})
            if not s.root_addressed:  # root-addressed: the acked chunks are the proof
                self._drain()
            if not s.root_addressed and _finish_hash(s) != s.decl.blob_hash:
                self._drop(s)
                raise UploadError(422, "hash_mismatch",
                                  "chunks match the root but not the declared keccak256")
            meta = BlobMeta(s.decl.size, s.decl.chunk_size, s.decl.root)
            self.store.put_file(blob_hash, s.dir / "data", meta)
            self._drop(s)
        return self._done_status(blob_hash)

    def _drop(self, s: _Session) -> None:
        with self._lock:
            self._sessions.pop(s.decl.blob_hash, None)
        shutil.rmtree(s.dir, ignore_errors=True)

    # ------------------------------------------------------------------ status and gc

    def status(self, blob_hash: bytes) -> dict[str, Any]:
        if self.store.has(blob_hash):
            return self._done_status(blob_hash)
        return self.status_of(self.session(blob_hash))

    def status_of(self, s: _Session) -> dict[str, Any]:
        missing = s.missing()
        return {"hash": s.decl.blob_hash.hex(), "complete": False, "size": s.decl.size,
                "chunk_size": s.decl.chunk_size, "chunks": s.n,
                "received": s.n - len(missing), "missing": missing,
                "root": s.decl.root.hex()}

    def _done_status(self, blob_hash: bytes) -> dict[str, Any]:
        m = self.store.meta(blob_hash)
        assert m is not None
        return {"hash": blob_hash.hex(), "complete": True, "size": m.size,
                "chunk_size": m.chunk_size, "root": m.chunk_root.hex(), "missing": []}

    def gc(self, now: float | None = None) -> list[bytes]:
        """Delete unfinished uploads idle for ``ttl`` seconds; returns their hashes."""
        now = self.clock() if now is None else now
        with self._lock:
            stale = [s for s in self._sessions.values() if now - _last_activity(s.dir) > self.ttl]
        for s in stale:
            with s.lock:
                self._drop(s)
        return [s.decl.blob_hash for s in stale]

    def open_uploads(self) -> int:
        with self._lock:
            return len(self._sessions)


class ChunkWriter:
    """One chunk in flight: its bytes in one aligned buffer, hashed in views of about
    HASH_SLICE as they arrive, in the background (keccak releases the GIL): the chunk's
    keccak (batch hasher), and, if the chunk continues the in-order prefix, a private copy
    of the whole-blob keccak. Nothing touches the staging file or the session's hash
    until :meth:`commit` has checked the chunk."""

    def __init__(self, mgr: UploadManager, session: _Session, index: int, expected: int) -> None:
        self.mgr, self.session, self.index, self.expected = mgr, session, index, expected
        self.digest = chunk_hasher()  # this chunk's keccak, fed as the bytes arrive
        mgr._chunk_hash.start_stream()  # ended at the commit, or when a failed writer dies
        self._end_stream = weakref.finalize(self, mgr._chunk_hash.end_stream)
        # the bytes received so far in one aligned buffer (O_DIRECT at the commit; pages
        # allocated as bytes arrive), cut into views of about HASH_SLICE for hashing
        self.buf = mgr._buffers.get(expected)
        self.slices: list[memoryview] = []
        self._cut = 0  # bytes [0, _cut) are in slices
        self.received = 0
        self._last: Future[Any] | None = None  # this chunk's latest job on the chunk thread
        self.whole: Any = None  # copy of the whole hash, extended by this chunk's bytes
        self.streams = False
        with session.order:
            if (not session.root_addressed and index == session.submitted
                    and index not in session.received):
                # the session's hash holds chunks [0, index) once the jobs queued before
                # this one ran (one FIFO thread), so a copy taken by a job is that prefix
                self.streams = True
                mgr._hasher.submit(self._copy_whole)

    def _copy_whole(self) -> None:
        self.whole = self.session.whole.copy()

    def _extend_own_whole(self, piece: bytes) -> None:
        self.whole.update(piece)

    def update(self, part: bytes | memoryview) -> None:
        n = len(part)
        if self.received + n > self.expected:
            raise UploadError(413, "bad_chunk_length", f"chunk must be {self.expected} bytes")
        self.buf.append(part)
        self.received += n
        if self.received - self._cut >= HASH_SLICE:
            self._cut_slice()

    def _cut_slice(self) -> None:
        piece = self.buf.view[self._cut:self.received]
        self._cut = self.received
        self.slices.append(piece)
        self._last = self.mgr._chunk_hash.submit(self.digest, piece)
        if self.streams:
            self.mgr._hasher.submit(self._extend_own_whole, piece)

    def finish_hashing(self) -> None:
        """Hash what is left and wait for the chunk's own keccak (its thread is FIFO, so the
        latest job runs last). The whole-hash slices need no wait: the job that adopts
        them is queued behind them on their thread, after the chunk is stored."""
        if self.received > self._cut:
            self._cut_slice()
        if self._last is not None:  # the commit waits: the slices left hash now
            self.mgr._chunk_hash.submit(self.digest, b"", urgent=True).result()
            self._last.result()  # done by now (a hasher's jobs run in order): its error
        self._end_stream()

    def commit(self) -> dict[str, Any]:
        return self.mgr._commit_chunk(self)


# ---------------------------------------------------------------------- file helpers


def _journal(d: Path, index: int) -> None:
    """Append ``index`` to the journal and fsync it (the chunk's ack point)."""
    path = d / "journal"
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{index}\n".encode())
        os.fdatasync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(d)


def _read_journal(d: Path, n: int) -> set[int]:
    """Indices of acked chunks; a torn last line (crash mid-append) is ignored."""
    try:
        text = (d / "journal").read_text()
    except FileNotFoundError:
        return set()
    out = set()
    for line in text.split("\n")[:-1]:  # only newline-terminated entries count
        if line.isdigit() and int(line) < n:
            out.add(int(line))
    return out


def _last_activity(d: Path) -> float:
    times = []
    for name in ("journal", "decl.json"):
        try:
            times.append((d / name).stat().st_mtime)
        except FileNotFoundError:
            pass
    return max(times, default=0.0)


def _finish_hash(s: _Session) -> bytes:
    """The whole keccak: chunks hashed on arrival are not read again; the rest (arrived out
    of order, or before a restart) are read back once, in order."""
    whole = s.whole.copy()
    start, _ = chunk_span(s.decl.size, s.decl.chunk_size, s.hashed_upto)
    with open(s.dir / "data", "rb") as f:
        f.seek(start)
        while True:
            buf = f.read(READ_BACK)
            if not buf:
                break
            whole.update(buf)
    return bytes(whole.digest())


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
