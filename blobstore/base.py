"""The one small interface every blob backend implements (content-addressed by keccak256).

Why an interface and not the SQL row store: a 512 MiB update must never sit in one SQL row
(SQLite refuses rows over 1 GB and pickled snapshots used to carry every update), and a
deployment that outgrows one disk swaps the local directory for any S3-compatible store
without touching the node, the verifier or the bridge (which must not import ``sequencer``).

Contract shared by all backends:

* keys are 32-byte keccak256 digests of the content; the caller verified the hash (the
  upload manager streams and checks every byte once) before calling ``put_*``;
* a blob becomes visible atomically and only once it is durable: a reader sees either
  nothing or the whole blob, never a prefix (filesystem: temp file + fsync + rename + fsync
  of the directory; S3: an object appears only when its PUT / multipart upload completes);
* writing the same key twice is a no-op (same content by construction).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BlobMeta:
    """What is known about a stored blob without reading it."""

    size: int
    chunk_size: int  # 0: stored whole, no chunk root recorded
    chunk_root: bytes  # b"" when chunk_size == 0

    def to_strings(self) -> dict[str, str]:
        return {"size": str(self.size), "chunk-size": str(self.chunk_size),
                "chunk-root": self.chunk_root.hex()}

    @classmethod
    def from_strings(cls, d: dict[str, str]) -> BlobMeta:
        return cls(int(d["size"]), int(d.get("chunk-size", "0")),
                   bytes.fromhex(d.get("chunk-root", "")))


class BlobStore(Protocol):
    """Content-addressed, immutable blobs (see the module docstring for the contract)."""

    def has(self, key: bytes) -> bool: ...

    def meta(self, key: bytes) -> BlobMeta | None: ...

    def get(self, key: bytes) -> bytes | None:
        """The whole blob (small blobs, tests); large readers use :meth:`read`."""
        ...

    def read(self, key: bytes, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a stored blob (KeyError if absent)."""
        ...

    def put_bytes(self, key: bytes, data: bytes, meta: BlobMeta | None = None) -> None: ...

    def put_file(self, key: bytes, path: Path, meta: BlobMeta) -> None:
        """Publish a fully written, verified local file as blob ``key`` (the file is
        consumed: moved or uploaded, then removed)."""
        ...

    def delete(self, key: bytes) -> None: ...

    def keys(self) -> Iterator[bytes]: ...


def iter_ranges(store: BlobStore, key: bytes, size: int, step: int) -> Iterator[bytes]:
    """Stream a blob in ``step``-byte pieces (bounded memory for any size)."""
    for start in range(0, size, step):
        yield store.read(key, start, min(size, start + step))
