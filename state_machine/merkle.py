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

from state_machine.crypto import ZERO32, keccak256

MAX_DEPTH = 64


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative keccak256 of two nodes."""
    return keccak256(a, b) if a <= b else keccak256(b, a)


def _zero_hashes(depth: int) -> list[bytes]:
    z = [ZERO32]
    for _ in range(depth):
        z.append(hash_pair(z[-1], z[-1]))
    return z


ZERO_HASHES: list[bytes] = _zero_hashes(MAX_DEPTH)


class MerkleTree:
    """Positional Merkle tree; ``levels[0]`` are the leaves, ``levels[depth][0]`` the root."""

    __slots__ = ("levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        """Build bottom-up in O(n) hashes (appending one by one would cost O(n log n))."""
        row = list(leaves)
        self.levels: list[list[bytes]] = [row]
        level = 0
        while (1 << (len(self.levels) - 1)) < len(row):
            prev = self.levels[-1]
            z = ZERO_HASHES[level]
            nxt = [
                hash_pair(prev[i], prev[i + 1] if i + 1 < len(prev) else z)
                for i in range(0, len(prev), 2)
            ]
            self.levels.append(nxt)
            level += 1

    def __len__(self) -> int:
        return len(self.levels[0])

    def copy(self) -> MerkleTree:
        """A structurally independent copy (levels are lists of immutable bytes)."""
        t = MerkleTree()
        t.levels = [list(level) for level in self.levels]
        return t

    @property
    def depth(self) -> int:
        return len(self.levels) - 1

    def _node(self, level: int, index: int) -> bytes:
        row = self.levels[level]
        return row[index] if index < len(row) else ZERO_HASHES[level]

    def root(self) -> bytes:
        if not self.levels[0]:
            return ZERO32
        return self.levels[-1][0]

    def leaf(self, index: int) -> bytes:
        return self.levels[0][index]

    def append(self, leaf: bytes) -> int:
        """Add a leaf at the next index; returns that index."""
        index = len(self.levels[0])
        self.levels[0].append(leaf)
        while (1 << self.depth) < len(self.levels[0]):
            self.levels.append([])
        self._rehash(index)
        return index

    def update(self, index: int, leaf: bytes) -> None:
        """Replace leaf ``index``: O(depth) hashes."""
        if not 0 <= index < len(self.levels[0]):
            raise IndexError(index)
        if self.levels[0][index] == leaf:
            return
        self.levels[0][index] = leaf
        self._rehash(index)

    def _rehash(self, index: int) -> None:
        i = index
        for level in range(1, len(self.levels)):
            i //= 2
            node = hash_pair(self._node(level - 1, 2 * i), self._node(level - 1, 2 * i + 1))
            row = self.levels[level]
            if i < len(row):
                row[i] = node
            else:
                row.extend(ZERO_HASHES[level] for _ in range(i - len(row)))
                row.append(node)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf to root (OZ ``MerkleProof`` order)."""
        if not 0 <= index < len(self.levels[0]):
            raise IndexError(index)
        out = []
        i = index
        for level in range(self.depth):
            out.append(self._node(level, i ^ 1))
            i //= 2
        return out


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by ``leaf`` and ``proof`` (OZ ``MerkleProof.processProof``)."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """OZ ``MerkleProof.verify``."""
    return process_proof(leaf, proof) == root
