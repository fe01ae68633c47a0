"""A ``state_machine.tiles.ArraySink`` of memory-mapped files: where the node and the
verifier let the STF write its d-long outputs (aggregate, candidate model).

Why: at d = 2^28 the aggregate is 512 MiB and the candidate 1 GiB; as heap arrays they
(and the global model they become) were most of the node's peak memory (2.7 GiB with the
candidate formed, issue 14). Written tile by tile into shared file maps, with each tile's
pages released after it is written (``tiles.release``), they live in the page cache and
on disk instead; the values, and so every root, are the same as on the heap
(``tests/blobs/test_mapped_arrays.py``). Files are unlinked temporaries: nothing to clean
up, and they vanish when the last array viewing them is dropped.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from state_machine import tiles

MIN_MAPPED_BYTES = 1 << 20  # smaller outputs stay on the heap (a file per tiny array costs)
WRITE_PIECE = 4 << 20


def write_releasing(f: Any, data: Any) -> None:
    """``f.write(data)`` in pieces; when ``data`` is a view of a memory-mapped array (a
    mapped candidate written out as a blob), each piece's pages are released after it is
    written (``tiles.release``), so writing a 1 GiB model does not make it resident."""
    mv = memoryview(data).cast("B")
    arr = mv.obj if isinstance(mv.obj, np.ndarray) else None
    if arr is None or mv.nbytes <= WRITE_PIECE:
        f.write(mv)
        return
    flat = arr.reshape(-1)
    for a in range(0, mv.nbytes, WRITE_PIECE):
        b = min(mv.nbytes, a + WRITE_PIECE)
        f.write(mv[a:b])
        tiles.release(flat, a // flat.itemsize, -(-b // flat.itemsize))


def arrays_for(store: Any) -> MappedArrays:
    """The sink a node uses beside its blob store: files under the store's directory (same
    disk as the blobs), or the system temp directory for other backends."""
    root = getattr(store, "root", None)
    return MappedArrays(os.path.join(str(root), ".arrays") if root is not None else None)


class MappedArrays:
    """``empty(n, dtype)``: a writable array backed by an unlinked file in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str] | None = None,
                 min_bytes: int = MIN_MAPPED_BYTES) -> None:
        self.directory = str(directory) if directory is not None else tempfile.gettempdir()
        os.makedirs(self.directory, exist_ok=True)
        self.min_bytes = min_bytes

    def empty(self, n: int, dtype: Any) -> np.ndarray:
        dt = np.dtype(dtype)
        if n * dt.itemsize < max(1, self.min_bytes):
            return np.empty(n, dtype=dt)
        with tempfile.TemporaryFile(dir=self.directory) as f:
            f.truncate(n * dt.itemsize)  # sparse until written
            return np.memmap(f, dtype=dt, mode="r+", shape=(n,))  # the map outlives the fd
