"""The STF's d-long outputs in memory-mapped files (``blobstore.arrays.MappedArrays``,
``Block.arrays``) are bit-identical to the heap path: aggregates, candidates, scores and
every state root (issue 14, bounded-memory models)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stf_harness import CHAIN_ID, Client, Harness, default_params

from blobstore.arrays import MappedArrays
from state_machine import tiles
from state_machine.aggregation import aggregate, apply_delta
from state_machine.chunks import content_root
from state_machine.constants import (
    AGGREGATORS,
    PROTOCOL_CHUNK_ROOT_ONLY,
    PROTOCOL_PACED_WINDOWS,
)
from state_machine.transition import genesis_state

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(n=st.integers(3, 9), d=st.integers(1, 3000), cols=st.integers(1, 700),
       rule=st.sampled_from(AGGREGATORS), seed=st.integers(0, 2**32 - 1))
def test_aggregate_and_candidate_in_mapped_files_equal_the_heap(
        tmp_path, n: int, d: int, cols: int, rule: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(-3000, 3000, (n, d)).astype(np.int16)
    keys = [bytes([i]) * 32 for i in range(n)]
    g = rng.integers(-2**20, 2**20, d).astype(np.int32)
    heap = aggregate(rule, rows, 1, keys, b"s" * 32, None, cols)
    cand = apply_delta(g, heap, cols)
    with tiles.array_sink(MappedArrays(tmp_path, min_bytes=0)):
        mapped = aggregate(rule, tiles.StackedRows(list(rows)), 1, keys, b"s" * 32, None, cols)
        mcand = apply_delta(g, mapped, cols)
    assert isinstance(mapped, np.memmap) and isinstance(mcand, np.memmap)
    assert np.array_equal(heap, mapped) and np.array_equal(cand, mcand)
    assert tiles.array_root(mcand) == content_root(cand.astype("<i4").tobytes())
    assert np.array_equal(cand, mcand)  # hashing released its pages; the values remain


def _epoch_roots(protocol: int, arrays: MappedArrays | None, seed: int) -> tuple:
    """Two epochs of one task (commit, reveal, close, next); every block's state root."""
    h = Harness(state=genesis_state(CHAIN_ID, protocol), arrays=arrays)
    clients = [Client.make(f"m{i}") for i in range(9)]
    d = 3000
    g = np.arange(d, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients],
            h.create_task(1, default_params(d, g, 7, 1), 2))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    by = {c.pubkey: c for c in clients}
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 300, d)
    roots = []
    for e in range(2):
        ep = h.state.epochs[(1, e)]
        deltas = {pk: (base + rng.normal(0, 80, d)).astype(np.int16) for pk in ep.proposers}
        deltas[ep.proposers[0]] = np.zeros(d, dtype=np.int16)  # evidence: zero update
        h.block(*[h.commit(by[pk], 1, e, x) for pk, x in deltas.items()])
        h.until_phase_changes(1)
        h.block(*[h.reveal(by[pk], 1, e, x) for pk, x in deltas.items()])
        h.until_phase_changes(1)
        roots.append(h.state.state_root())
    t = h.state.tasks[1]
    return (tuple(roots), h.parent, t.global_hash, t.prev_delta_hash,
            [e.scores for e in h.state.epochs.values()], isinstance(t.global_model, np.memmap))


@pytest.mark.parametrize("protocol", [PROTOCOL_PACED_WINDOWS, PROTOCOL_CHUNK_ROOT_ONLY])
@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16))
def test_epochs_with_mapped_models_reach_the_same_roots(tmp_path, protocol: int,
                                                       seed: int) -> None:
    heap = _epoch_roots(protocol, None, seed)
    mapped = _epoch_roots(protocol, MappedArrays(tmp_path, min_bytes=0), seed)
    assert heap[:-1] == mapped[:-1]
    assert not heap[-1] and mapped[-1]  # the global model became a mapped candidate
    assert list(tmp_path.iterdir()) == []  # unlinked temporaries only


def test_mapped_model_written_as_a_blob_and_hashed_without_copies(tmp_path) -> None:
    """A mapped candidate goes to the blob store piece by piece (pages released) and its
    keccak is streamed from views: same bytes, same digests as the copying path."""
    from blobstore.fs import FsBlobStore
    from state_machine.crypto import keccak256
    from state_machine.records import model_hash

    sink = MappedArrays(tmp_path / "arrays", min_bytes=0)
    arr = sink.empty(3 * (1 << 20) + 5, np.int32)
    arr[:] = np.arange(arr.size, dtype=np.int32) * 7 - 3
    store = FsBlobStore(tmp_path / "blobs")
    view = memoryview(np.ascontiguousarray(arr, dtype="<i4")).cast("B")
    store.put_bytes(b"\x01" * 32, view)
    raw = arr.astype("<i4").tobytes()
    assert store.get(b"\x01" * 32) == raw and np.array_equal(arr[-3:], np.frombuffer(
        raw[-12:], dtype="<i4"))
    assert model_hash(arr) == keccak256(raw)
