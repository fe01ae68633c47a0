"""Publishing a task's genesis model: inline (``publish_genesis``) or, from protocol 4 on,
as a blob named by its chunk root (``publish_genesis_v2``, issue 14).

Why a chunked genesis: an inline genesis is one signed action holding the whole int32 model,
so the model size was capped by the action size (``MAX_NUM_PARAMS = 2^25``: 128 MiB). A
d = 2^28 model is 1 GiB. ``publish_genesis_v2`` signs only ``(task_id, size, chunk_size,
model_root)``; the bytes travel like a v2 update (chunked, resumable upload into the blob
store, each byte hashed once) and reach the STF beside the block (``Block.blobs``). The
task's L1 ``genesis_model_hash`` is then the chunk root at ``CONTENT_CHUNK_SIZE`` of the
little-endian int32 bytes, and the global model is a read-only view of the stored blob (a
memory map on the node and the verifier), never a heap copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from state_machine.actions import PublishGenesisBody, PublishGenesisV2Body, SignedAction
from state_machine.chunks import CONTENT_CHUNK_SIZE, zeros_root
from state_machine.lifecycle import start_idle_clock
from state_machine.reasons import Reason
from state_machine.rules import (
    Rejected,
    check_awaiting_genesis,
    check_genesis_model,
    chunk_root_only,
    task_of,
)
from state_machine.state import WAITING_CLIENTS, State, Task, model_hash


def _start(state: State, task: Task, model: np.ndarray, global_hash: bytes) -> list[str]:
    """Install the genesis model and the zero Δ_prev; the task waits for clients.

    The zero Δ_prev is ``np.zeros`` (untouched pages: no resident memory at any d) and,
    from protocol 4 on, its hash is :func:`chunks.zeros_root` (two chunk hashes, not d)."""
    assert task.params is not None
    n = task.params.num_params
    model.setflags(write=False)
    prev = np.zeros(n, dtype=np.int16)
    prev.setflags(write=False)
    task.global_model, task.global_hash = model, global_hash
    task.prev_delta = prev
    task.prev_delta_hash = zeros_root(2 * n) if chunk_root_only(state) else model_hash(prev)
    task.phase = WAITING_CLIENTS
    start_idle_clock(state, task)
    state.touch_task(task.task_id)
    return ["genesis_published"]


def publish_genesis(state: State, sa: SignedAction, b: PublishGenesisBody) -> list[str]:
    """Inline genesis: the bytes in the action, keccak256 = the task's genesis hash."""
    task = task_of(state, b.task_id)
    check_awaiting_genesis(task)
    assert task.params is not None
    check_genesis_model(task.params, b.model_bytes)
    model = np.frombuffer(b.model_bytes, dtype="<i4").astype(np.int32)
    return _start(state, task, model, model_hash(model))


def check_genesis_blob(state: State, task: Task, b: PublishGenesisV2Body) -> None:
    """The signed layout is the task's: protocol 4, 4 bytes per parameter, the one chunk
    size, and the chunk root the task fixed on L1 (``genesis_model_hash``)."""
    assert task.params is not None
    if not chunk_root_only(state):
        raise Rejected(Reason.NOT_ON_PROTOCOL, f"publish_genesis_v2 needs protocol 4, the "
                                               f"chain runs {state.protocol}")
    check_awaiting_genesis(task)
    if b.size != 4 * task.params.num_params:
        raise Rejected(Reason.WRONG_LENGTH, f"expected {4 * task.params.num_params} bytes")
    if b.chunk_size != CONTENT_CHUNK_SIZE:
        raise Rejected(Reason.BAD_CHUNK_SIZE, f"chunk size must be {CONTENT_CHUNK_SIZE}")
    if b.model_root != task.params.genesis_model_hash:
        raise Rejected(Reason.HASH_MISMATCH, "model_root is not the task's genesis_model_hash")


def publish_genesis_v2(state: State, sa: SignedAction, b: PublishGenesisV2Body,
                       blobs: Any) -> list[str]:
    """Chunked genesis (protocol 4): the blob beside the block must be the one the root
    names (verified when it was streamed); the global model is a read-only view of it."""
    task = task_of(state, b.task_id)
    check_genesis_blob(state, task, b)
    blob = blobs.get(b.model_root) if blobs is not None else None
    if blob is None:
        raise Rejected(Reason.BLOB_UNAVAILABLE, "genesis model bytes are not in the blob store")
    if (blob.key, blob.root, blob.size, blob.chunk_size) != (
            b.model_root, b.model_root, b.size, b.chunk_size):
        raise Rejected(Reason.BLOB_MISMATCH, "stored blob differs from the signed root/size")
    model = np.frombuffer(blob.data, dtype="<i4").astype(np.int32, copy=False)  # a view
    return _start(state, task, model, b.model_root)
