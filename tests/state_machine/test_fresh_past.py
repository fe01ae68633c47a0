"""Protocol 5 (issue 10): the STF passes the public past updates to the freshness gate.

A stale-copy free-rider (a 1 %-jittered copy of a victim's public past update) agrees with
the crowd as much as the victim did, so the contribution rule alone pays it; from protocol
5 the epoch passes every client's last reveal of an earlier epoch (``Task.past_updates``,
rows carried in ``Task.past_rows``) to ``verdicts.judge_epoch`` and the copy earns 0.
Protocols 1-4 keep no past (their recorded chains replay unchanged).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stf_harness import CHAIN_ID, Client, Harness, default_params

from blobstore.base import BlobMeta
from blobstore.fs import FsBlobStore
from blobstore.source import StoreSource
from state_machine import epochs, snapshot, tiles
from state_machine import verdicts as V
from state_machine.constants import PROTOCOL_CHUNK_ROOT_ONLY, PROTOCOL_FRESH_PAST
from state_machine.records import PastRef
from state_machine.transition import (
    GENESIS_PARENT,
    Block,
    apply_block,
    block_hash,
    block_header,
    genesis_state,
)

D = 1024
N = 8
ATTACKER, VICTIM = 7, 0  # indexes into the (pubkey-sorted) proposers


def _updates(rng: np.random.Generator, epochs_: int, n: int = N, d: int = D) -> list[list]:
    """Non-IID honest updates: a shared step, a persistent per-class part (two clients per
    class, so an honest update's part beyond Δ_prev has a class-mate) and, each epoch, a
    new common direction plus private noise (what is fresh)."""
    g = rng.normal(0, 300, d)
    cls = [rng.normal(0, 300, d) for _ in range(n // 2)]
    out = []
    for _ in range(epochs_):
        step = rng.normal(0, 200, d)
        out.append([np.clip(g + cls[i % (n // 2)] + step + rng.normal(0, 150, d),
                            -32768, 32767).astype(np.int16) for i in range(n)])
    return out


def _stale_copy(rng: np.random.Generator, victim: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(victim.astype(np.float64) ** 2)))
    return np.clip(victim + rng.normal(0, 0.01 * rms, victim.shape[0]),
                   -32768, 32767).astype(np.int16)


class _FsBlobs(StoreSource):
    """The node's blob reader over a directory store: reveals resolve to read-only maps."""

    def __setitem__(self, key: bytes, vb) -> None:  # type: ignore[no-untyped-def]
        if not self.store.has(key):
            self.store.put_bytes(key, vb.data, BlobMeta(vb.size, vb.chunk_size, vb.root))


def _run(protocol: int, v2: bool, epochs_: int = 2, seed: int = 5,
         record: list | None = None, blobs=None) -> Harness:  # type: ignore[no-untyped-def]
    """``epochs_`` epochs of one task whose 8 clients are all proposers; in epoch 1 the
    attacker reveals a jittered copy of the victim's epoch 0 update. ``record``: the blocks
    applied, for a replay."""
    h = Harness(state=genesis_state(CHAIN_ID, protocol))
    if blobs is not None:
        h.blobs = blobs
    if record is not None:
        real = h.block_at

        def recording(ts, *actions):  # type: ignore[no-untyped-def]
            record.append((ts, list(actions)))
            return real(ts, *actions)

        h.block_at = recording  # type: ignore[method-assign]
    clients = [Client.make(f"fp{i}") for i in range(N)]
    g = np.zeros(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients],
            h.create_task(1, default_params(D, g, proposers=N, f=1), max_epochs=epochs_ + 1))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    by = {c.pubkey: c for c in clients}
    rng = np.random.default_rng(seed)
    ups = _updates(rng, epochs_)
    commit, reveal = (h.commit_blob, h.reveal_blob) if v2 else (h.commit, h.reveal)
    for e in range(epochs_):
        ep = h.state.epochs[(1, e)]
        assert len(ep.proposers) == N
        deltas = dict(zip(ep.proposers, ups[e], strict=True))
        if e == 1:
            deltas[ep.proposers[ATTACKER]] = _stale_copy(rng, ups[0][VICTIM])
        r = h.block(*[commit(by[pk], 1, e, deltas[pk]) for pk in ep.proposers])
        assert all(x.applied for x in r)
        h.until_phase_changes(1)
        r = h.block(*[reveal(by[pk], 1, e, deltas[pk]) for pk in ep.proposers])
        assert all(x.applied for x in r), r
        h.until_phase_changes(1)
    return h


def _weights(h: Harness, e: int) -> list[int]:
    ep = h.state.epochs[(1, e)]
    by = {s["pubkey"]: s["reward_weight"] for s in ep.scores}
    return [by[pk] for pk in ep.proposers]


@pytest.mark.parametrize("v2", [False, True], ids=["inline", "blob"])
def test_a_stale_copy_earns_nothing_from_protocol_5_while_the_honest_are_paid(v2: bool) -> None:
    h = _run(PROTOCOL_FRESH_PAST, v2)
    w = _weights(h, 1)
    ep = h.state.epochs[(1, 1)]
    assert ep.verdicts[ep.proposers[ATTACKER]] == V.ACCEPTED  # no slash: not evidence
    assert w[ATTACKER] == 0 and ep.proposers[ATTACKER] not in ep.rewards
    honest = [x for i, x in enumerate(w) if i != ATTACKER]
    assert all(x > 0 for x in honest)
    assert all(ep.rewards[pk] > 0 for i, pk in enumerate(ep.proposers) if i != ATTACKER)
    # the past the gate saw: every client's epoch 0 reveal, now superseded by epoch 1's
    task = h.state.tasks[1]
    assert [e[1] for e in task.past_updates] == [1] * N
    assert [e[0] for e in task.past_updates] == sorted(ep.proposers)
    assert set(task.past_rows) == set(ep.update_hashes.values())


@pytest.mark.parametrize("v2", [False, True], ids=["inline", "blob"])
def test_protocol_4_is_unchanged_and_still_pays_the_stale_copy(v2: bool) -> None:
    """The old rule, kept for chains created under it: the copy is paid like the honest."""
    h = _run(PROTOCOL_CHUNK_ROOT_ONLY, v2)
    w = _weights(h, 1)
    honest = [x for i, x in enumerate(w) if i != ATTACKER]
    assert w[ATTACKER] * 2 > sum(honest) // len(honest) > 0
    assert h.state.tasks[1].past_updates is None and h.state.tasks[1].past_rows is None
    assert "past_updates" not in h.state.tasks[1].detail()
    # the honest are judged alike under both rules (only the copy loses its pay)
    w5 = _weights(_run(PROTOCOL_FRESH_PAST, v2), 1)
    assert [x for i, x in enumerate(w5) if i != ATTACKER] == honest


def test_inline_and_blob_reveals_reach_the_same_weights(tmp_path) -> None:
    """Inline bytes, in-memory blobs and the node's memory-mapped blob files alike; the
    past rows of blob reveals stay read-only maps of the files (no heap copy)."""
    want = _weights(_run(PROTOCOL_FRESH_PAST, False), 1)
    assert _weights(_run(PROTOCOL_FRESH_PAST, True), 1) == want
    h = _run(PROTOCOL_FRESH_PAST, True, blobs=_FsBlobs(FsBlobStore(tmp_path)))
    assert _weights(h, 1) == want
    rows = h.state.tasks[1].past_rows
    assert len(rows) == N and all(not r.flags.owndata and not r.flags.writeable
                                  for r in rows.values())


def test_a_replay_of_a_protocol_5_chain_reaches_the_same_roots() -> None:
    """A verifier re-executing the blocks (fresh Block objects, its own state) agrees."""
    rec: list = []
    h = _run(PROTOCOL_FRESH_PAST, True, record=rec)
    state, parent = genesis_state(CHAIN_ID, PROTOCOL_FRESH_PAST), GENESIS_PARENT
    blobs = dict(h.blobs)
    for ts, actions in rec:
        block = Block(state.height + 1, parent, ts, actions, blobs=blobs)
        state, receipts = apply_block(state, block)
        parent = block_hash(block_header(block, state.state_root(), receipts))
    assert state.state_root() == h.state.state_root() and parent == h.parent


def test_a_snapshot_keeps_the_past_rows_by_hash_and_restores_them() -> None:
    """A node restarting from a snapshot taken between two epochs closes the next one to
    the same root: the rows travel as blob references, fetched back on restore."""
    rec: list = []
    h = _run(PROTOCOL_FRESH_PAST, False, record=rec)
    state, parent, restored_at = genesis_state(CHAIN_ID, PROTOCOL_FRESH_PAST), GENESIS_PARENT, 0
    for ts, actions in rec:
        block = Block(state.height + 1, parent, ts, actions)
        state, receipts = apply_block(state, block)
        parent = block_hash(block_header(block, state.state_root(), receipts))
        task = state.tasks.peek(1)
        if not restored_at and task is not None and task.past_rows:
            raw = snapshot.encode(state, None, None, 0)
            assert all(isinstance(r, snapshot.BlobRef)
                       for r in snapshot.decode(raw)["maps"]["tasks"][1].past_rows.values())
            store = {k: np.asarray(v).astype("<i2").tobytes() for k, v in task.past_rows.items()}
            store[task.global_hash] = task.global_model.astype("<i4").tobytes()
            store[task.prev_delta_hash] = task.prev_delta.astype("<i2").tobytes()
            restored = snapshot.restore([snapshot.decode(raw)], store.get)
            assert restored.state_root() == state.state_root()
            assert restored.tasks[1].past_updates == task.past_updates
            state, restored_at = restored, state.height
    assert restored_at and state.state_root() == h.state.state_root()
    assert _weights(h, 1)[ATTACKER] == 0


def test_mapped_past_rows_restore_by_reference_and_are_read_at_close(tmp_path) -> None:
    """Blob-file rows are not copied onto the heap by a snapshot restore: they stay
    ``PastRef`` and the next close maps them again through the block's blob reader; without
    the blob the block cannot be applied at all (a node error, never another root)."""
    rec: list = []
    blobs = _FsBlobs(FsBlobStore(tmp_path))
    h = _run(PROTOCOL_FRESH_PAST, True, record=rec, blobs=blobs)
    state, parent, snap = genesis_state(CHAIN_ID, PROTOCOL_FRESH_PAST), GENESIS_PARENT, None
    for i, (ts, actions) in enumerate(rec):
        block = Block(state.height + 1, parent, ts, actions, blobs=blobs)
        state, receipts = apply_block(state, block)
        parent = block_hash(block_header(block, state.state_root(), receipts))
        task = state.tasks.peek(1)
        if snap is None and task is not None and task.past_rows:
            arrays = {task.global_hash: task.global_model.astype("<i4").tobytes(),
                      task.prev_delta_hash: task.prev_delta.astype("<i2").tobytes()}
            snap = (i, parent, snapshot.encode(state, None, None, 0), state.state_root())
    assert snap is not None
    i, parent0, raw, root = snap
    fresh = {k: blobs.get(k) for k in h.state.epochs[(1, 1)].update_hashes.values()}
    for reader, ok in ((blobs, True), (fresh, False)):  # fresh: epoch 1's blobs, no past
        st0 = snapshot.restore([snapshot.decode(raw)], arrays.get)
        assert st0.state_root() == root
        assert all(isinstance(r, PastRef) for r in st0.tasks.peek(1).past_rows.values())
        assert epochs.unresolved_past_hashes(st0) == sorted(st0.tasks.peek(1).past_rows)
        state, parent = st0, parent0
        try:
            for ts, actions in rec[i + 1:]:
                block = Block(state.height + 1, parent, ts, actions, blobs=reader)
                state, receipts = apply_block(state, block)
                parent = block_hash(block_header(block, state.state_root(), receipts))
        except epochs.MissingPastUpdate:
            assert not ok
        else:
            assert ok and state.state_root() == h.state.state_root()


def test_a_missing_past_row_is_a_node_error_not_another_root() -> None:
    h = _run(PROTOCOL_FRESH_PAST, False, epochs_=1)
    task = h.state.tasks[1]
    broken = type(task).__new__(type(task))
    broken.__dict__ = dict(task.__dict__, past_rows={})
    with pytest.raises(epochs.MissingPastUpdate):
        epochs.past_update_rows(broken)


def test_the_past_is_bounded_to_the_most_recent_distinct_hashes(monkeypatch) -> None:
    """At most PAST_UPDATES_MAX distinct hashes: the latest epoch first, ties by pubkey."""
    monkeypatch.setattr(epochs, "PAST_UPDATES_MAX", 3)
    h = _run(PROTOCOL_FRESH_PAST, False)
    task = h.state.tasks[1]
    ep = h.state.epochs[(1, 1)]
    first3 = sorted(ep.proposers)[:3]
    assert [e[0] for e in task.past_updates] == first3
    assert set(task.past_rows) == {ep.update_hashes[pk] for pk in first3}


# ---------------------------------------------------------------- judge_epoch properties


def _case(seed: int, d: int = 256) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u0, u1 = _updates(rng, 2, d=d)
    u1[ATTACKER] = _stale_copy(rng, u0[VICTIM])
    prev = np.mean(np.stack(u0).astype(np.int64), axis=0).astype(np.int16)
    return u1, np.stack(u0), prev


KEYS = [(i + 1).to_bytes(32, "big") for i in range(N)]


def _judge(rows: list[np.ndarray], keys: list[bytes], past, prev: np.ndarray,
           cols: int | None = None) -> dict[bytes, tuple[str, int]]:
    hist = V.History(prev, frozenset(), frozenset(), b"\x01" * 32, past)
    j = V.judge_epoch(V.SimParams(f=1, aggregator="mean"), hist, keys, np.stack(rows), cols)
    return {v.pubkey: (v.verdict, v.reward_weight) for v in j.verdicts}


def test_past_rows_as_a_tiled_source_judge_like_an_array() -> None:
    rows, past, prev = _case(1)
    want = _judge(rows, KEYS, past, prev)
    assert want[KEYS[ATTACKER]][1] == 0 and all(w > 0 for k, (_, w) in want.items()
                                                 if k != KEYS[ATTACKER])
    src = tiles.StackedRows(list(past))
    for cols in (None, 7, 64):
        assert _judge(rows, KEYS, src, prev, cols) == want


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), perm=st.permutations(range(N)),
       past_perm=st.permutations(range(N)))
def test_weights_do_not_depend_on_the_order_of_updates_or_past_rows(seed, perm, past_perm):
    rows, past, prev = _case(seed % 7)
    want = _judge(rows, KEYS, past, prev)
    got = _judge([rows[i] for i in perm], [KEYS[i] for i in perm],
                 tiles.StackedRows([past[i] for i in past_perm]), prev)
    assert got == want


def test_duplicate_past_hashes_enter_once() -> None:
    """Two clients whose last reveals are the same bytes: one past row (by hash)."""
    task = type("T", (), {})()
    task.task_id, task.past_updates = 1, [[b"a", 0, b"h1"], [b"b", 0, b"h1"], [b"c", 0, b"h2"]]
    task.past_rows = {b"h1": np.zeros(4, np.int16), b"h2": np.ones(4, np.int16)}
    assert epochs.past_update_hashes(task) == [b"h1", b"h2"]
    assert epochs.past_update_rows(task).shape == (2, 4)


def test_no_past_before_protocol_5() -> None:
    task = type("T", (), {"past_updates": None, "past_rows": None, "task_id": 1})()
    assert epochs.past_update_rows(task) is None
