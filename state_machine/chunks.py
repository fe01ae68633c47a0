"""Chunk hashes and the chunk root of a large blob (protocol v2 updates, SPEC §13 §2).

Why here (the pure STF package): the SDK computes the chunk root before uploading, the node
checks every chunk and the root while the bytes stream in, and the STF compares the root a
v2 reveal signed with the one the blob was verified against. All three must agree bit for
bit, so there is one definition, free of I/O.

Layout: the blob is cut into ``ceil(size / chunk_size)`` chunks (the last one may be
shorter; an empty blob has no chunk). ``chunk_hash = keccak256(chunk)``. The chunk root is::

    keccak256(CHUNK_ROOT_DOMAIN || u64(size) || u64(chunk_size) || merkle_root(chunk_hashes))

with ``merkle_root`` an *ordered* binary tree: ``node = keccak256(left || right)``, an odd
node out paired with 32 zero bytes, up to one root (not OpenZeppelin's commutative pairs of
``state_machine.merkle``, which would let two sibling chunks swap places unnoticed). Binding
the size and chunk size fixes the number of leaves, so a leaf can never pose as an interior
node (no domain byte inside the chunk hashes, which stay plain keccak256 of the bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from state_machine import keccak_native
from state_machine.crypto import ZERO32, keccak256

try:  # C keccak (safe-pysha3): a running hash with copy() for the whole-blob keccak
    from sha3 import keccak_256 as _keccak_256
except ImportError:  # pragma: no cover - same digest, slower
    from Crypto.Hash import keccak as _keccak

    def _keccak_256(data: bytes = b"") -> Any:  # type: ignore[misc]
        return _keccak.new(digest_bits=256, data=data)


CHUNK_ROOT_DOMAIN = b"flockchain/chunks/v1"
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024  # 128 chunks for a 512 MiB update
MIN_CHUNK_SIZE = 64 * 1024  # keeps the chunk list of a 512 MiB blob <= 8,192 hashes
MAX_CHUNK_SIZE = 32 * 1024 * 1024  # one chunk is one HTTP body: bounded memory per request
MAX_BLOB_BYTES = 512 * 1024 * 1024  # largest update the protocol carries (d = 2^28 int16)
MAX_UPLOAD_BYTES = 2 * MAX_BLOB_BYTES  # largest blob: a chunked genesis (d = 2^28 int32)
# protocol 4 (chunk root only): the one chunk size of a content hash, so the chunk root is a
# function of the bytes alone (replay detection by hash needs one hash per content)
CONTENT_CHUNK_SIZE = DEFAULT_CHUNK_SIZE
ROOT_HASH_THREADS = 4  # threads hashing chunks side by side (keccak releases the GIL)


class ChunkError(ValueError):
    """A chunk layout or chunk content that does not match; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def num_chunks(size: int, chunk_size: int) -> int:
    """How many chunks a blob of ``size`` bytes has (0 for an empty blob)."""
    return -(-size // chunk_size)


def chunk_span(size: int, chunk_size: int, index: int) -> tuple[int, int]:
    """Byte range ``[start, end)`` of chunk ``index``."""
    start = index * chunk_size
    return start, min(size, start + chunk_size)


def check_layout(size: int, chunk_size: int, max_size: int = MAX_BLOB_BYTES) -> int:
    """Validate a declared layout; returns the number of chunks or raises ChunkError."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ChunkError("bad_chunk_size", f"chunk size must be in [{MIN_CHUNK_SIZE}, "
                                           f"{MAX_CHUNK_SIZE}]")
    if not 0 < size <= max_size:
        raise ChunkError("bad_size", f"size must be in [1, {max_size}]")
    return num_chunks(size, chunk_size)


def ordered_merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root of an ordered keccak256 tree (see the module docstring); ZERO32 if empty."""
    level = list(leaves)
    if not level:
        return ZERO32
    while len(level) > 1:
        if len(level) % 2:
            level.append(ZERO32)
        level = [keccak256(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def chunk_root(size: int, chunk_size: int, chunk_hashes: Sequence[bytes]) -> bytes:
    """The root a v2 reveal signs: binds size, chunk size and every chunk hash in order."""
    if len(chunk_hashes) != num_chunks(size, chunk_size):
        raise ChunkError("bad_chunk_count", f"expected {num_chunks(size, chunk_size)} hashes")
    tree = ordered_merkle_root(chunk_hashes)
    return keccak256(CHUNK_ROOT_DOMAIN, size.to_bytes(8, "big"), chunk_size.to_bytes(8, "big"),
                     tree)


def chunk_hashes_of(data: bytes | memoryview, chunk_size: int) -> list[bytes]:
    """Chunk hashes of an in-memory blob (SDK side and tests), on the calling thread."""
    mv = memoryview(data)
    return hash_chunks([mv[i:i + chunk_size] for i in range(0, len(mv), chunk_size)], 1)


def hash_chunks(views: Sequence[Any], threads: int = ROOT_HASH_THREADS,
                after: Any = None) -> list[bytes]:
    """keccak256 of each buffer, in order. With the native library, ``keccak_native.lanes()``
    buffers at a time share one multi-buffer call (SIMD lanes), and ``threads`` such calls
    run side by side; else one buffer per job (pysha3). ``after(first, last)``, if given,
    runs once buffers [first, last) are hashed (``tiles.array_root`` releases their pages).
    Why threads are allowed: the hashes are independent and the C code releases the GIL, so
    the result is the sequential one."""
    per = max(1, keccak_native.lanes())
    groups = [(i, min(len(views), i + per)) for i in range(0, len(views), per)]

    def one(g: tuple[int, int]) -> list[bytes]:
        out = keccak_native.keccak256_many(views[g[0]:g[1]])
        if after is not None:
            after(*g)
        return out

    if threads <= 1 or len(groups) <= 1:
        parts = [one(g) for g in groups]
    else:
        from concurrent.futures import ThreadPoolExecutor  # no I/O: CPU threads only

        with ThreadPoolExecutor(min(threads, len(groups))) as pool:
            parts = list(pool.map(one, groups))
    return [h for part in parts for h in part]


def root_of(data: bytes | memoryview, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """Chunk root of an in-memory blob."""
    return chunk_root(len(data), chunk_size, chunk_hashes_of(data, chunk_size))


def parallel_chunk_hashes(data: bytes | memoryview, chunk_size: int,
                          threads: int = ROOT_HASH_THREADS) -> list[bytes]:
    """Chunk hashes of an in-memory blob, side by side (see :func:`hash_chunks`)."""
    mv = memoryview(data)
    return hash_chunks([mv[i:i + chunk_size] for i in range(0, len(mv), chunk_size)], threads)


def zeros_root(size: int) -> bytes:
    """``content_root(bytes(size))`` from two chunk hashes instead of ``size`` bytes: the
    zero Δ_prev of a genesis is 512 MiB at d = 2^28."""
    full, tail = divmod(size, CONTENT_CHUNK_SIZE)
    zero = keccak_native.keccak256(bytes(CONTENT_CHUNK_SIZE))
    hashes = [zero] * full + ([keccak_native.keccak256(bytes(tail))] if tail else [])
    return chunk_root(size, CONTENT_CHUNK_SIZE, hashes)


def content_root(data: bytes | memoryview) -> bytes:
    """Protocol 4's content hash: the chunk root at ``CONTENT_CHUNK_SIZE`` (an empty
    payload has the root of size 0, so every byte string has exactly one)."""
    hashes = parallel_chunk_hashes(data, CONTENT_CHUNK_SIZE)
    return chunk_root(len(data), CONTENT_CHUNK_SIZE, hashes)


@dataclass
class ChunkDigest:
    """Hashes one chunk and feeds the whole-blob keccak in the same pass over the bytes.

    Why one pass: a 512 MiB update must not be read twice (once per hash); every buffer
    that arrives updates both running hashes and is then written out and dropped."""

    whole: Any
    _chunk: Any = field(default_factory=lambda: chunk_hasher())
    length: int = 0

    def update(self, buf: bytes | memoryview) -> None:
        self._chunk.update(buf)
        self.whole.update(buf)
        self.length += len(buf)

    def digest(self) -> bytes:
        return bytes(self._chunk.digest())


def whole_hasher() -> Any:
    """A running keccak256 (``update``/``digest``/``copy``) for a streamed blob: the native
    library's when built, else pysha3's."""
    return keccak_native.Hasher() if keccak_native.available() else _keccak_256()


def chunk_hasher() -> Any:
    """A running keccak256 (``update``/``digest``) for one chunk: the native library's
    (several fed side by side by ``keccak_native.update_many``), else pysha3's."""
    return keccak_native.new_hasher()


@dataclass(frozen=True)
class VerifiedBlob:
    """Blob bytes together with the hashes computed the one time they were streamed.

    The STF never hashes a large update again: the party that streamed the bytes (the node's
    blob store at upload, a verifier reading DA) builds this with :func:`verify_blob` or
    from its own streaming digests, and the STF compares the signed fields to it."""

    data: Any  # bytes, memoryview or a read-only numpy memmap; len() == size
    keccak: bytes  # b"" for a root-addressed blob (protocol 4): its whole keccak was never
    root: bytes  # computed, so it can never serve a protocol 1-3 reveal
    size: int
    chunk_size: int
    chunk_hashes: tuple[bytes, ...] = ()  # kept when known (the uploader declares them)

    @property
    def key(self) -> bytes:
        """Its blob store key: the whole keccak (protocols 1-3) or the chunk root (4)."""
        return self.keccak or self.root


def verify_blob(data: bytes | memoryview, chunk_size: int) -> VerifiedBlob:
    """Hash an in-memory blob once (whole keccak and chunk hashes in one pass)."""
    whole = whole_hasher()
    mv = memoryview(data)
    hashes = []
    for i in range(0, len(mv), chunk_size):
        d = ChunkDigest(whole)
        d.update(mv[i:i + chunk_size])
        hashes.append(d.digest())
    return VerifiedBlob(data, bytes(whole.digest()), chunk_root(len(mv), chunk_size, hashes),
                        len(mv), chunk_size, tuple(hashes))


def verify_blob_root(data: bytes | memoryview,
                     chunk_size: int = CONTENT_CHUNK_SIZE) -> VerifiedBlob:
    """Protocol 4: hash an in-memory blob once, chunks in parallel, no whole keccak; the
    result is root-addressed (``keccak`` empty, ``key`` the chunk root)."""
    mv = memoryview(data)
    hashes = parallel_chunk_hashes(mv, chunk_size)
    return VerifiedBlob(data, b"", chunk_root(len(mv), chunk_size, hashes), len(mv),
                        chunk_size, tuple(hashes))


def iter_chunks(data: bytes | memoryview, chunk_size: int) -> Iterable[memoryview]:
    """Zero-copy views of consecutive chunks."""
    mv = memoryview(data)
    for i in range(0, len(mv), chunk_size):
        yield mv[i:i + chunk_size]
