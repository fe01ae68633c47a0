"""Blob bytes for the STF: ``Block.blobs`` resolves a v2 update's hash to a VerifiedBlob.

Why no hashing here: a blob store only ever holds content that was verified when it was
streamed in (``blobstore.uploads``), and its key *is* that content's keccak256, so the
sequencer hands the STF the stored bytes with the hashes recorded at upload. A verifier
fetching bytes from someone else's node uses :class:`VerifyingSource`, which checks every
chunk as it arrives instead.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from blobstore.base import BlobStore
from state_machine import keccak_native
from state_machine.chunks import ChunkDigest, VerifiedBlob, chunk_root, whole_hasher


class StoreSource:
    """``get(hash) -> VerifiedBlob | None`` over a trusted (own) blob store."""

    def __init__(self, store: BlobStore | None) -> None:
        self.store = store

    def get(self, key: bytes) -> VerifiedBlob | None:
        if self.store is None:
            return None
        m = self.store.meta(key)
        if m is None or m.chunk_size == 0:  # only chunk-uploaded blobs carry a root
            return None
        mapper = getattr(self.store, "map", None)  # fs: a read-only mmap, not a heap copy
        data = mapper(key) if mapper is not None else self.store.get(key)
        if data is None:
            return None
        # a root-addressed blob (key == its chunk root, protocol 4) has no known keccak
        keccak = b"" if key == m.chunk_root else key
        return VerifiedBlob(data, keccak, m.chunk_root, m.size, m.chunk_size)


class VerifyingSource:
    """Blobs fetched chunk by chunk from an untrusted party (a verifier reading DA from the
    sequencer): ``fetch_meta(hash) -> (size, chunk_size) | None`` and ``fetch_chunk(hash,
    i) -> bytes``; every chunk is hashed once, the whole keccak in the same pass.

    ``spool_dir``: write the verified bytes to an (unlinked) file there and hand the STF a
    read-only memory map of it, so a verifier replaying 16 x 512 MiB updates keeps them in
    the page cache, not on its heap; without it the bytes are kept in memory.

    Root-addressed blobs (protocol 4: ``root_addressed``, or a third ``True`` in what
    ``fetch_meta`` returns, e.g. when the served meta says root == key): keys are chunk
    roots; each chunk is hashed once and the root of the chunk hashes must equal the key (no
    whole keccak is computed). Trusting that flag from the server is safe: a blob whose
    computed root is not its key is refused either way."""

    def __init__(self, fetch_meta: Callable[[bytes], tuple[int, ...] | None],
                 fetch_chunk: Callable[[bytes, int], bytes],
                 spool_dir: str | None = None, root_addressed: bool = False) -> None:
        self.fetch_meta, self.fetch_chunk = fetch_meta, fetch_chunk
        self.spool_dir = spool_dir
        self.root_addressed = root_addressed
        self._cache: dict[bytes, VerifiedBlob | None] = {}

    def get(self, key: bytes) -> VerifiedBlob | None:
        if key not in self._cache:
            self._cache[key] = self._load(key)
        return self._cache[key]

    def _load(self, key: bytes) -> VerifiedBlob | None:
        meta = self.fetch_meta(key)
        if meta is None:
            return None
        size, chunk_size = meta[0], meta[1]
        by_root = self.root_addressed or (len(meta) > 2 and bool(meta[2]))
        whole, hashes, pending = whole_hasher(), [], []
        with tempfile.TemporaryFile(dir=self.spool_dir) if self.spool_dir else \
                io.BytesIO() as out:
            for i in range(-(-size // chunk_size)):
                part = self.fetch_chunk(key, i)
                if by_root:  # chunks hashed side by side, lanes() at a time
                    pending.append(part)
                    if len(pending) >= keccak_native.lanes():
                        hashes += keccak_native.keccak256_many(pending)
                        pending = []
                else:
                    d = ChunkDigest(whole)
                    d.update(part)
                    hashes.append(d.digest())
                out.write(part)
            hashes += keccak_native.keccak256_many(pending)
            if out.tell() != size:
                return None  # served bytes are not the blob: unavailable to this verifier
            root = chunk_root(size, chunk_size, hashes)
            if (root if by_root else bytes(whole.digest())) != key:
                return None
            if isinstance(out, io.BytesIO):
                data: Any = out.getvalue()
            else:
                out.flush()
                data = np.memmap(out, dtype=np.uint8, mode="r", shape=(size,))
        return VerifiedBlob(data, b"" if by_root else key, root, size, chunk_size)
