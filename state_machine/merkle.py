"""Append-only keccak256 binary Merkle tree with O(log n) updates and proofs.

Why this shape: proofs must verify with OpenZeppelin's ``MerkleProof.verify`` on L1, so
interior nodes use OZ's commutative hash ``keccak256(min(a, b) || max(a, b))``. Leaves sit
at fixed positions (their insertion index), the tree is padded to the next power of two
with zero subtrees ``Z[0] = 0x00..00, Z[k+1] = H(Z[k], Z[k])``, and only the path of a
changed leaf is rehashed. A tree with no leaves has root ``0x00..00``; one leaf is its own
root. Leaves are 32-byte hashes of 160+ byte ABI encodings, so no leaf preimage can be
confused with a 64-byte interior node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from state_machine.crypto import ZERO32, _keccak_256

MAX_DEPTH = 64
CHUNK_BITS = 8
CHUNK = 1 << CHUNK_BITS  # nodes per copy-on-write chunk
CHUNK_MASK = CHUNK - 1


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative keccak256 of two nodes."""
    return _keccak_256(a + b).digest() if a <= b else _keccak_256(b + a).digest()


def _zero_hashes(depth: int) -> list[bytes]:
    z = [ZERO32]
    for _ in range(depth):
        z.append(hash_pair(z[-1], z[-1]))
    return z


ZERO_HASHES: list[bytes] = _zero_hashes(MAX_DEPTH)


class MerkleTree:
    """Positional Merkle tree stored as copy-on-write chunks.

    Why chunks: every block works on a copy of the state, and copying a tree of n leaves
    as flat lists costs O(n). Each level is a list of chunks of ``CHUNK`` nodes; ``copy()``
    copies only the chunk lists (O(n / CHUNK)) and both trees then share every chunk until
    one of them writes to it, which copies that one chunk first. Level 0 holds the leaves,
    the last level the root.
    """

    __slots__ = ("_levels", "_owned", "_sizes")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        """Build bottom-up in O(n) hashes (appending one by one would cost O(n log n))."""
        row = list(leaves)
        rows = [row]
        level = 0
        while (1 << (len(rows) - 1)) < len(row):
            prev = rows[-1]
            z = ZERO_HASHES[level]
            rows.append([
                hash_pair(prev[i], prev[i + 1] if i + 1 < len(prev) else z)
                for i in range(0, len(prev), 2)
            ])
            level += 1
        self._levels: list[list[list[bytes]]] = [_chunks(r) for r in rows]
        self._sizes: list[int] = [len(r) for r in rows]
        self._owned: set[int] = {id(c) for lv in self._levels for c in lv}

    def __len__(self) -> int:
        return self._sizes[0]

    def copy(self) -> MerkleTree:
        """An independent tree sharing every chunk (copied on the first write)."""
        t = MerkleTree.__new__(MerkleTree)
        t._levels = [list(lv) for lv in self._levels]
        t._sizes = list(self._sizes)
        t._owned = set()
        self._owned = set()  # shared now: neither side may write in place
        return t

    def __reduce__(self) -> tuple[object, tuple[list[list[bytes]]]]:
        """Pickled as flat levels: loading rehashes nothing."""
        return (_from_levels, (self.levels,))

    @property
    def depth(self) -> int:
        return len(self._levels) - 1

    @property
    def levels(self) -> list[list[bytes]]:
        """Flat copy of every level (tests and debugging; O(n))."""
        return [[n for c in lv for n in c][: self._sizes[k]] for k, lv in enumerate(self._levels)]

    def leaves(self) -> list[bytes]:
        return self.levels[0] if self._sizes[0] else []

    def _node(self, level: int, index: int) -> bytes:
        if index < self._sizes[level]:
            return self._levels[level][index >> CHUNK_BITS][index & CHUNK_MASK]
        return ZERO_HASHES[level]

    def _set(self, level: int, index: int, node: bytes) -> None:
        """Write one node, copying its chunk first if it is shared; grows the level."""
        lv = self._levels[level]
        size = self._sizes[level]
        while index >= size:  # pad with zero subtrees up to ``index``
            ci = size >> CHUNK_BITS
            if ci == len(lv):
                chunk: list[bytes] = []
                lv.append(chunk)
                self._owned.add(id(chunk))
            else:
                chunk = self._own(lv, ci)
            chunk.append(ZERO_HASHES[level])
            size += 1
        self._sizes[level] = size
        self._own(lv, index >> CHUNK_BITS)[index & CHUNK_MASK] = node

    def _own(self, lv: list[list[bytes]], ci: int) -> list[bytes]:
        chunk = lv[ci]
        if id(chunk) not in self._owned:
            chunk = list(chunk)
            lv[ci] = chunk
            self._owned.add(id(chunk))
        return chunk

    def root(self) -> bytes:
        if not self._sizes[0]:
            return ZERO32
        return self._levels[-1][0][0]

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self._sizes[0]:
            raise IndexError(index)
        return self._node(0, index)

    def append(self, leaf: bytes) -> int:
        """Add a leaf at the next index; returns that index."""
        index = self._sizes[0]
        self._set(0, index, leaf)
        while (1 << self.depth) < self._sizes[0]:
            self._levels.append([])
            self._sizes.append(0)
        self._rehash(index)
        return index

    def update(self, index: int, leaf: bytes) -> None:
        """Replace leaf ``index``: O(depth) hashes."""
        if not 0 <= index < self._sizes[0]:
            raise IndexError(index)
        if self._node(0, index) == leaf:
            return
        self._set(0, index, leaf)
        self._rehash(index)

    def update_many(self, leaves: Iterable[tuple[int, bytes]]) -> None:
        """Set leaves (an index equal to the current length appends), then rehash every
        changed interior node once: k leaves of one block cost far fewer than k full paths
        because their paths share the upper levels."""
        dirty: set[int] = set()
        for index, leaf in leaves:
            size = self._sizes[0]
            if index == size or (0 <= index < size and self._node(0, index) != leaf):
                self._set(0, index, leaf)
                dirty.add(index)
            elif not 0 <= index < size:
                raise IndexError(index)
        if not dirty:
            return
        while (1 << self.depth) < self._sizes[0]:
            self._levels.append([])
            self._sizes.append(0)
        for level in range(1, len(self._levels)):
            dirty = {i >> 1 for i in dirty}
            for i in sorted(dirty):
                node = hash_pair(self._node(level - 1, 2 * i), self._node(level - 1, 2 * i + 1))
                self._set(level, i, node)

    def _rehash(self, index: int) -> None:
        i = index
        for level in range(1, len(self._levels)):
            i //= 2
            node = hash_pair(self._node(level - 1, 2 * i), self._node(level - 1, 2 * i + 1))
            self._set(level, i, node)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf to root (OZ ``MerkleProof`` order)."""
        if not 0 <= index < self._sizes[0]:
            raise IndexError(index)
        out = []
        i = index
        for level in range(self.depth):
            out.append(self._node(level, i ^ 1))
            i //= 2
        return out


def _from_levels(rows: list[list[bytes]]) -> MerkleTree:
    t = MerkleTree.__new__(MerkleTree)
    t._levels = [_chunks(r) for r in rows]
    t._sizes = [len(r) for r in rows]
    t._owned = {id(c) for lv in t._levels for c in lv}
    return t


def _chunks(row: list[bytes]) -> list[list[bytes]]:
    return [row[i : i + CHUNK] for i in range(0, len(row), CHUNK)]


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by ``leaf`` and ``proof`` (OZ ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """OZ ``MerkleProof.verify``."""
    return process_proof(leaf, proof) == root
