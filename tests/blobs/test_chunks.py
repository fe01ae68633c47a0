"""state_machine.chunks: one definition of chunk hashes and the chunk root."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state_machine.chunks import (
    MIN_CHUNK_SIZE,
    ChunkError,
    check_layout,
    chunk_hashes_of,
    chunk_root,
    num_chunks,
    root_of,
    verify_blob,
)
from state_machine.crypto import keccak256

CS = MIN_CHUNK_SIZE


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5 * CS + 17))
def test_one_pass_digest_equals_separate_hashes(size: int) -> None:
    data = os.urandom(size)
    vb = verify_blob(data, CS)
    assert vb.keccak == keccak256(data)
    assert list(vb.chunk_hashes) == chunk_hashes_of(data, CS)
    assert vb.root == root_of(data, CS) == chunk_root(size, CS, chunk_hashes_of(data, CS))
    assert len(vb.chunk_hashes) == num_chunks(size, CS)


def test_root_binds_order_size_and_chunk_size() -> None:
    data = os.urandom(3 * CS)
    hashes = chunk_hashes_of(data, CS)
    root = chunk_root(len(data), CS, hashes)
    assert chunk_root(len(data), CS, [hashes[1], hashes[0], hashes[2]]) != root  # reordered
    assert root_of(data, 2 * CS) != root  # other chunking of the same bytes
    assert root_of(data[:-1], CS) != root
    with pytest.raises(ChunkError) as e:
        chunk_root(len(data), CS, hashes[:2])
    assert e.value.reason == "bad_chunk_count"


def test_layout_bounds_have_reasons() -> None:
    assert check_layout(CS + 1, CS) == 2
    for size, cs, reason in ((10, CS // 2, "bad_chunk_size"), (0, CS, "bad_size"),
                             (1 << 40, CS, "bad_size")):
        with pytest.raises(ChunkError) as e:
            check_layout(size, cs)
        assert e.value.reason == reason
