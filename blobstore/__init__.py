"""Content-addressed blob storage (large updates, global models) behind one interface.

``open_blobstore("s3://bucket?endpoint=...")`` or ``open_blobstore("/var/lib/flock/blobs")``;
see :mod:`blobstore.base` for the contract and :mod:`blobstore.uploads` for chunked,
resumable uploads into any backend. Importable by the node, the verifier and the bridge
(it depends on nothing in this repository but ``state_machine.chunks``).
"""

from __future__ import annotations

import os

from blobstore.base import BlobMeta, BlobStore, iter_ranges
from blobstore.fs import FsBlobStore

__all__ = ["BlobMeta", "BlobStore", "FsBlobStore", "iter_ranges", "open_blobstore"]


def open_blobstore(url: str | os.PathLike[str]) -> BlobStore:
    """A backend from a URL: ``s3://...`` for S3-compatible stores, else a local path."""
    s = str(url)
    if s.startswith("s3://"):
        from blobstore.s3 import from_url

        return from_url(s)
    return FsBlobStore(s[len("file://"):] if s.startswith("file://") else s)
