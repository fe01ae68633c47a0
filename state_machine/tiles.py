"""Column tiles of an epoch's updates: bounded-memory epoch close (issue 14).

Why tiles: the verdicts and every aggregation rule need either inner products (a sum over
coordinates) or coordinate-wise statistics, and both split exactly over column ranges:
the Gram matrix is the sum of the tiles' Gram matrices (exact integers, so the order of
the sum does not matter), and a coordinate-wise rule on a tile is that rule on those
coordinates. So epoch close reads the ``(n, d)`` updates as a :class:`Rows` source, one
``(n, hi - lo)`` tile at a time, and holds ``O(TILE_ELEMENTS + n^2)`` numbers instead of
``n * d``. An in-memory ndarray is the trivial source (:class:`ArrayRows`); the STF's
revealed updates are one 1-D array per proposer (:class:`StackedRows`), which for protocol
v2 are read-only memory maps of hash-verified blob files, resolved by the node or verifier
(the STF itself does no I/O). Results are bit-identical for any tile width.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np

from state_machine.chunks import (
    CONTENT_CHUNK_SIZE,
    ROOT_HASH_THREADS,
    chunk_root,
    hash_chunks,
    whole_hasher,
)
from state_machine.constants import MIN_TILE_COLUMNS, TILE_ELEMENTS
from state_machine.scoring import gram_int64


class Rows(Protocol):
    """An ``(n, d)`` int16 matrix read by column tiles."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def tile(self, lo: int, hi: int) -> np.ndarray:
        """Columns ``[lo, hi)`` of every row as an ``(n, hi - lo)`` int16 array."""
        ...


class ArraySink(Protocol):
    """Where the STF's d-long outputs live (aggregate, candidate): ``empty(n, dtype)``
    returns a writable 1-D array. The node and the verifier pass a sink of memory-mapped
    files (``blobstore.arrays.MappedArrays``), so a 1 GiB candidate is written tile by tile
    into the page cache, not onto the heap; the STF itself does no I/O."""

    def empty(self, n: int, dtype: Any) -> np.ndarray: ...


class HeapArrays:
    """The default sink: ordinary in-memory arrays."""

    def empty(self, n: int, dtype: Any) -> np.ndarray:
        return np.empty(n, dtype=dtype)


HEAP = HeapArrays()
_SINK: ContextVar[ArraySink] = ContextVar("array_sink", default=HEAP)


@contextmanager
def array_sink(sink: ArraySink | None) -> Iterator[None]:
    """Use ``sink`` for the STF's d-long outputs while applying one block (``apply_block``
    with ``Block.arrays``). Results are bit-identical for any sink."""
    token = _SINK.set(sink if sink is not None else HEAP)
    try:
        yield
    finally:
        _SINK.reset(token)


def empty(n: int, dtype: Any) -> np.ndarray:
    """A writable 1-D output array from the current sink (see :func:`array_sink`)."""
    return _SINK.get().empty(n, dtype)


def array_root(arr: np.ndarray) -> bytes:
    """``chunks.content_root`` of an array's little-endian bytes, read chunk by chunk with
    the pages of a mapped array released after each (:func:`release`), chunks hashed side
    by side: a 1 GiB mapped candidate is hashed without becoming resident."""
    flat = np.ascontiguousarray(arr.reshape(-1), dtype=arr.dtype.newbyteorder("<"))
    raw = memoryview(flat).cast("B") if flat.size else memoryview(b"")
    per = CONTENT_CHUNK_SIZE // flat.itemsize
    size = flat.itemsize
    views = [raw[lo * size:min(flat.size, lo + per) * size] for lo in range(0, flat.size, per)]

    def done(first: int, last: int) -> None:  # those chunks are hashed: drop their pages
        release(flat, first * per, min(flat.size, last * per))

    hashes = hash_chunks(views, ROOT_HASH_THREADS, done)
    return chunk_root(flat.nbytes, CONTENT_CHUNK_SIZE, hashes)


def array_keccak(arr: np.ndarray) -> bytes:
    """keccak256 of an array's little-endian bytes, streamed in ``CONTENT_CHUNK_SIZE``
    pieces from views (no ``tobytes`` copy) with a mapped array's pages released after
    each: the same digest as ``keccak256(arr.astype(le).tobytes())``."""
    flat = np.ascontiguousarray(arr.reshape(-1), dtype=arr.dtype.newbyteorder("<"))
    h = whole_hasher()
    if flat.size:
        raw = memoryview(flat).cast("B")
        per = CONTENT_CHUNK_SIZE // flat.itemsize
        for lo in range(0, flat.size, per):
            hi = min(flat.size, lo + per)
            h.update(raw[lo * flat.itemsize:hi * flat.itemsize])
            release(flat, lo, hi)
    return bytes(h.digest())


class ArrayRows:
    """The trivial source: an in-memory ``(n, d)`` array (tiles are views)."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 2:
            raise ValueError("rows must be a 2-D array")
        self.array = array

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape  # type: ignore[return-value]

    def tile(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.array[:, lo:hi], dtype=np.int16)


def _mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The read-only ``mmap`` an array views (a v2 blob file), if any."""
    b: object = arr
    while b is not None:
        mm = getattr(b, "_mmap", None)  # np.memmap keeps its mapping here
        if isinstance(mm, mmap.mmap):
            return mm
        b = getattr(b, "base", None)
    return None


def is_mapped(arr: np.ndarray) -> bool:
    """Whether ``arr`` views a file map (a blob read through the node's blob store)."""
    return _mapping(arr) is not None


# a fault on a file map may map a whole large page-cache folio (up to 2 MiB on recent
# kernels), beyond the tile that faulted; releasing this much around each tile drops them
RELEASE_PAD = 2 << 20


def release(arr: np.ndarray, lo: int, hi: int) -> None:
    """Drop the resident pages behind ``arr[lo:hi]`` if ``arr`` views a file map (a
    read-only blob, or a shared writable output of a mapped sink, whose written pages stay
    in the page cache and reach the file).

    A memory hint, not I/O: the blob file is immutable, so a later read faults the same
    bytes back from the page cache. Without it every byte of a 16 x 512 MiB epoch read
    through the maps would stay in the process's resident set (``RssFile``) until the maps
    are dropped, although each tile is needed once per pass."""
    mm = _mapping(arr)
    if mm is None or hi <= lo:
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    start = max(0, arr[lo:hi].ctypes.data - base - RELEASE_PAD)
    end = arr[lo:hi].ctypes.data - base + (hi - lo) * arr.itemsize + RELEASE_PAD
    start -= start % mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, start, min(len(mm), end) - start)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - hint only
        pass


class StackedRows:
    """One 1-D array per row (e.g. memory-mapped blobs); a tile copies ``n * (hi - lo)``
    and then releases the mapped pages it read (:func:`release`)."""

    def __init__(self, rows: Sequence[np.ndarray], d: int | None = None) -> None:
        self.rows = list(rows)
        if d is None:
            d = self.rows[0].shape[0] if self.rows else 0
        if any(r.ndim != 1 or r.shape[0] != d for r in self.rows):
            raise ValueError("every row must be 1-D of the same length")
        self.d = d

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), self.d)

    def tile(self, lo: int, hi: int) -> np.ndarray:
        out = np.empty((len(self.rows), max(0, min(hi, self.d) - lo)), dtype=np.int16)
        for i, r in enumerate(self.rows):
            out[i] = r[lo:hi]
            release(r, lo, hi)
        return out


class PickedRows:
    """Some rows of a source, in a given order (``src[idx]`` without materialising it)."""

    def __init__(self, src: Rows, idx: Sequence[int]) -> None:
        self.src, self.idx = src, list(idx)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.idx), self.src.shape[1])

    def tile(self, lo: int, hi: int) -> np.ndarray:
        if isinstance(self.src, StackedRows):  # copy only the picked rows
            return StackedRows([self.src.rows[i] for i in self.idx], self.src.d).tile(lo, hi)
        return self.src.tile(lo, hi)[self.idx]


class ConcatRows:
    """The rows of several sources one after another, read tile by tile (an epoch's
    updates, then the public past updates, then Δ_prev: one Gram pass over all of them)."""

    def __init__(self, parts: Sequence[Rows]) -> None:
        self.parts = list(parts)
        if len({p.shape[1] for p in self.parts}) > 1:
            raise ValueError("every part must have the same number of columns")

    @property
    def shape(self) -> tuple[int, int]:
        return sum(p.shape[0] for p in self.parts), self.parts[0].shape[1]

    def tile(self, lo: int, hi: int) -> np.ndarray:
        return np.vstack(self.tile_parts(lo, hi))

    def tile_parts(self, lo: int, hi: int) -> list[np.ndarray]:
        """:meth:`tile` part by part, not stacked (the Gram pass converts each straight into
        its float64 buffer)."""
        return [p.tile(lo, hi) for p in self.parts]


def as_rows(x: np.ndarray | Rows) -> Rows:
    """A Rows source for an ndarray (wrapped) or a source (itself)."""
    if isinstance(x, np.ndarray):
        return ArrayRows(x)
    return x


def pick(src: np.ndarray | Rows, idx: Sequence[int]) -> Rows:
    """Rows ``idx`` of ``src``, in that order, without copying them: ``src`` itself when
    ``idx`` is every row in order, else a :class:`PickedRows` view (a pick of a pick
    composes the indices) whose tiles gather only the picked rows. Why: epoch close picks
    the rows in pubkey order, then the candidates, then the admitted rows; copying the
    ``(n, d)`` updates each time cost as much as a third of the Gram pass (issue 14)."""
    s = as_rows(src)
    idx = list(idx)
    if idx == list(range(s.shape[0])):
        return s
    if isinstance(s, PickedRows):
        return PickedRows(s.src, [s.idx[i] for i in idx])
    return PickedRows(s, idx)


def columns(n: int) -> int:
    """Default tile width for ``n`` rows: about ``TILE_ELEMENTS`` numbers per tile."""
    return max(MIN_TILE_COLUMNS, TILE_ELEMENTS // max(n, 1))


def spans(d: int, cols: int | None = None, n: int = 1) -> Iterator[tuple[int, int]]:
    """Consecutive ``[lo, hi)`` column ranges of width ``cols`` (default: :func:`columns`
    of ``n`` rows) covering ``[0, d)``. Results never depend on the width, only memory."""
    width = columns(n) if cols is None else cols
    if width <= 0:
        raise ValueError("tile width must be positive")
    for lo in range(0, d, width):
        yield lo, min(d, lo + width)


def gram_and_hashes(
    src: Rows, extra: np.ndarray | None = None, cols: int | None = None, hash_rows: bool = True,
    hashed: int | None = None,
) -> tuple[list[list[int]], list[bytes]]:
    """Exact Gram matrix of ``src``'s rows (plus ``extra``, a 1-D int16 row, appended) and
    the keccak256 of every source row's little-endian int16 bytes (of the first ``hashed``
    rows when given), in one pass over tiles.

    The Gram matrix is the sum of the tiles' exact Gram matrices (``scoring.gram_int64``),
    accumulated in int64: every entry is at most ``d * 2^30 <= 2^55`` for ``d <= 2^25``."""
    n, d = src.shape
    m = n + (extra is not None)
    acc = np.zeros((m, m), dtype=np.int64)
    hashers = [whole_hasher() for _ in range(n if hashed is None else hashed)] if hash_rows else []
    for lo, hi in spans(d, cols, m):
        parts = src.tile_parts(lo, hi) if isinstance(src, ConcatRows) else [src.tile(lo, hi)]
        parts = [np.asarray(p, dtype=np.int16) for p in parts]
        if len(hashers) > parts[0].shape[0]:  # hashed rows span parts: stack them
            parts = [np.vstack(parts)]
        if extra is not None:
            parts.append(np.asarray(extra[lo:hi], dtype=np.int16)[None, :])
        acc += gram_int64(parts)  # the parts as one matrix, stacked only in float64
        for i, h in enumerate(hashers):  # the first rows: the first part's
            h.update(np.ascontiguousarray(parts[0][i], dtype="<i2").tobytes())
    return acc.tolist(), [bytes(h.digest()) for h in hashers]


def gram(src: np.ndarray | Rows, cols: int | None = None) -> list[list[int]]:
    """Exact Gram matrix of a source, tile by tile."""
    return gram_and_hashes(as_rows(src), cols=cols, hash_rows=False)[0]
