"""Local-filesystem blob backend (the default, embedded in the node).

Layout ``root/ab/abcd...`` (the first byte of the hash as a fan-out directory), the same as
the node's historical ``blob_dir``, so existing data stays readable. Metadata sits beside
the data as ``<hash>.meta`` (JSON) and is written *before* the data is renamed into place,
so a visible blob always has its metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blobstore.arrays import write_releasing
from blobstore.base import BlobMeta


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (POSIX needs the directory synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """temp file + fsync + rename + fsync(dir): readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        write_releasing(f, data)  # (a mapped model's pages released as they are written)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class FsBlobStore:
    """Blobs as files under ``root``; see :class:`blobstore.base.BlobStore`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FsBlobStore({str(self.root)!r})"

    def path(self, key: bytes) -> Path:
        hx = key.hex()
        return self.root / hx[:2] / hx

    def _meta_path(self, key: bytes) -> Path:
        p = self.path(key)
        return p.with_name(p.name + ".meta")

    def has(self, key: bytes) -> bool:
        return self.path(key).is_file()

    def meta(self, key: bytes) -> BlobMeta | None:
        p = self.path(key)
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            return None
        try:
            d = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:  # written by the v1 store (no sidecar): whole blob
            return BlobMeta(size, 0, b"")
        return BlobMeta.from_strings(d)

    def get(self, key: bytes) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def map(self, key: bytes) -> np.ndarray | None:
        """A read-only memory map of a stored blob (None if absent or empty).

        Why: epoch close reads a 512 MiB update tile by tile; the page cache holds the
        bytes, not the node's heap. Safe to share: a stored blob is immutable and was
        hash-verified when it was written (and a later delete leaves the map valid)."""
        path = self.path(key)
        try:
            if path.stat().st_size == 0:
                return None
            return np.memmap(path, dtype=np.uint8, mode="r")
        except FileNotFoundError:
            return None

    def read(self, key: bytes, start: int, end: int) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return os.pread(f.fileno(), max(0, end - start), start)
        except FileNotFoundError:
            raise KeyError(key.hex()) from None

    def put_bytes(self, key: bytes, data: bytes, meta: BlobMeta | None = None) -> None:
        path = self.path(key)
        if path.exists():
            return
        if meta is not None:
            atomic_write(self._meta_path(key), json.dumps(meta.to_strings()).encode())
        atomic_write(path, data)

    def put_file(self, key: bytes, path: Path, meta: BlobMeta) -> None:
        dest = self.path(key)
        if dest.exists():
            path.unlink(missing_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._meta_path(key), json.dumps(meta.to_strings()).encode())
        with open(path, "rb+") as f:  # the caller wrote it; make sure it is on disk
            os.fsync(f.fileno())
        try:
            os.replace(path, dest)
        except OSError:  # another filesystem: copy to a temp name beside dest, then rename
            tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
            shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
            path.unlink(missing_ok=True)
        fsync_dir(dest.parent)

    def delete(self, key: bytes) -> None:
        self.path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[bytes]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for f in sorted(sub.iterdir()):
                    if len(f.name) == 64 and not f.name.startswith("."):
                        yield bytes.fromhex(f.name)
