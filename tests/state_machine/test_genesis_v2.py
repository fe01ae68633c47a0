"""Chunked genesis (protocol 4, ``publish_genesis_v2``; state_machine/genesis.py) and the
model-size bound per protocol (``tasks.max_num_params``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stf_harness import CHAIN_ID, Client, Harness, default_params, first_epoch_deltas

from state_machine.actions import PublishGenesisV2Body
from state_machine.chunks import (
    CONTENT_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    content_root,
    verify_blob,
    verify_blob_root,
    zeros_root,
)
from state_machine.constants import (
    MAX_NUM_PARAMS,
    MAX_NUM_PARAMS_CHUNKED,
    PROTOCOL_CHUNK_ROOT_ONLY,
    PROTOCOL_PACED_WINDOWS,
)
from state_machine.tasks import TaskParamsError, decode_task_params, max_num_params
from state_machine.transition import Block, apply_block, genesis_state

D = 256


def _task(protocol: int, g: np.ndarray, root: bytes | None = None
          ) -> tuple[Harness, list[Client]]:
    """A harness with 8 staked clients and task 1 awaiting a genesis whose declared hash is
    ``root`` (default: the chunk root of ``g``)."""
    h = Harness(state=genesis_state(CHAIN_ID, protocol))
    clients = [Client.make(f"g{i}") for i in range(8)]
    params = dataclasses.replace(default_params(D, g, 5, 1),
                                 genesis_model_hash=root or content_root(_bytes(g)))
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, params, 1))
    assert h.state.tasks[1].phase == "awaiting_genesis"
    return h, clients


def _bytes(g: np.ndarray) -> bytes:
    return g.astype("<i4").tobytes()


def _publish(h: Harness, c: Client, vb, **over) -> PublishGenesisV2Body:  # type: ignore[no-untyped-def]
    f = {"size": vb.size, "chunk_size": vb.chunk_size, "model_root": vb.root, **over}
    return h.signed(c, "publish_genesis_v2",
                    PublishGenesisV2Body(1, f["size"], f["chunk_size"], f["model_root"]))


def test_chunked_genesis_installs_a_view_of_the_blob_named_by_its_root() -> None:
    g = np.arange(D, dtype=np.int32) - 7
    h, clients = _task(PROTOCOL_CHUNK_ROOT_ONLY, g)
    vb = verify_blob_root(_bytes(g))
    h.blobs = {vb.key: vb}
    (r,) = h.block(_publish(h, clients[0], vb))
    assert r.applied, r
    t = h.state.tasks[1]
    assert t.phase == "waiting_clients" and t.global_hash == vb.root
    assert np.array_equal(t.global_model, g) and not t.global_model.flags.owndata  # a view
    assert t.prev_delta_hash == content_root(bytes(2 * D)) == zeros_root(2 * D)
    h.block()
    assert h.state.tasks[1].phase == "update_commit"  # the epoch opens as after v1


def test_chunked_genesis_epoch_scores_like_an_inline_genesis() -> None:
    """Same updates: the chunked and the inline genesis give the same verdicts and the same
    next global model (the genesis hash differs, root vs keccak, and so may the selection:
    verdicts compare as a multiset)."""
    g = np.arange(D, dtype=np.int32) * 3
    out = []
    for chunked in (False, True):
        h, clients = _task(PROTOCOL_CHUNK_ROOT_ONLY, g,
                           None if chunked else default_params(D, g).genesis_model_hash)
        if chunked:
            vb = verify_blob_root(_bytes(g))
            h.blobs = {vb.key: vb}
            h.block(_publish(h, clients[0], vb))
        else:
            h.block(h.genesis(clients[0], 1, g))
        by, deltas = first_epoch_deltas(h, clients, D, 3)
        h.block(*[h.commit(by[pk], 1, 0, d) for pk, d in deltas.items()])
        h.until_phase_changes(1)
        h.block(*[h.reveal(by[pk], 1, 0, d) for pk, d in deltas.items()])
        h.until_phase_changes(1)
        t = h.state.tasks[1]
        out.append((sorted(h.state.epochs[(1, 0)].verdicts.values()), t.global_model.tolist(),
                    t.prev_delta_hash))
    assert out[0] == out[1] and "ACCEPTED" in out[0][0]


@pytest.mark.parametrize(("protocol", "blob", "over", "reason"), [
    (PROTOCOL_PACED_WINDOWS, "root", {}, "not_on_protocol"),
    (PROTOCOL_CHUNK_ROOT_ONLY, "none", {}, "blob_unavailable"),
    (PROTOCOL_CHUNK_ROOT_ONLY, "root", {"size": 4 * D + 4}, "wrong_length"),
    (PROTOCOL_CHUNK_ROOT_ONLY, "root", {"chunk_size": MIN_CHUNK_SIZE}, "bad_chunk_size"),
    (PROTOCOL_CHUNK_ROOT_ONLY, "root", {"model_root": b"\x05" * 32}, "hash_mismatch"),
    (PROTOCOL_CHUNK_ROOT_ONLY, "keccak", {}, "blob_mismatch"),
    (PROTOCOL_CHUNK_ROOT_ONLY, "forged", {}, "blob_mismatch"),
])
def test_chunked_genesis_rejections_change_nothing(protocol: int, blob: str, over: dict,
                                                   reason: str) -> None:
    g = np.arange(D, dtype=np.int32)
    h, clients = _task(protocol, g)
    vb = verify_blob_root(_bytes(g))
    served = {"root": vb, "none": None, "keccak": verify_blob(_bytes(g), CONTENT_CHUNK_SIZE),
              "forged": dataclasses.replace(vb, data=bytes(4 * D))}[blob]
    blobs = {} if served is None else {vb.root: served}
    if blob == "forged":  # a source claiming the root for other bytes: its size/root agree,
        served = dataclasses.replace(vb, root=b"\x09" * 32)  # so the root must be checked
        blobs = {vb.root: served}
    root = h.state.state_root()
    empty, _ = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp + 1,
                                          [], blobs=blobs))
    sa = _publish(h, clients[0], vb, **over)
    new, (rc,) = apply_block(h.state, Block(h.state.height + 1, h.parent,
                                            h.state.timestamp + 1, [sa], blobs=blobs))
    assert (rc.applied, rc.reason) == (False, reason)
    assert new.state_root() == empty.state_root() and h.state.state_root() == root


def test_a_second_genesis_is_refused_whichever_path() -> None:
    g = np.arange(D, dtype=np.int32)
    h, clients = _task(PROTOCOL_CHUNK_ROOT_ONLY, g)
    vb = verify_blob_root(_bytes(g))
    h.blobs = {vb.key: vb}
    assert h.block(_publish(h, clients[0], vb))[0].applied
    (r,) = h.block(_publish(h, clients[1], vb))
    assert (r.applied, r.reason) == (False, "wrong_window")


def test_model_size_bound_follows_the_protocol() -> None:
    g = np.zeros(1, dtype=np.int32)
    assert max_num_params(PROTOCOL_PACED_WINDOWS) == MAX_NUM_PARAMS == 2**25
    assert max_num_params(PROTOCOL_CHUNK_ROOT_ONLY) == MAX_NUM_PARAMS_CHUNKED == 2**28
    big = dataclasses.replace(default_params(1, g), num_params=2**28).encode()
    with pytest.raises(TaskParamsError):
        decode_task_params(big)  # the protocol 1-3 bound
    assert decode_task_params(big, 2**28).num_params == 2**28
    too_big = dataclasses.replace(default_params(1, g), num_params=2**28 + 1).encode()
    with pytest.raises(TaskParamsError):
        decode_task_params(too_big, 2**28)
    for protocol, ok in ((PROTOCOL_PACED_WINDOWS, False), (PROTOCOL_CHUNK_ROOT_ONLY, True)):
        h = Harness(state=genesis_state(CHAIN_ID, protocol))
        params = dataclasses.replace(default_params(1, g), num_params=2**28)
        h.block(h.create_task(1, params, 1))
        assert (h.state.tasks[1].phase == "awaiting_genesis") == ok


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3 * CONTENT_CHUNK_SIZE + 5))
def test_zeros_root_is_the_content_root_of_zeros(size: int) -> None:
    assert zeros_root(size) == content_root(bytes(size))
