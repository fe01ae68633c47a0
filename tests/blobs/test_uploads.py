"""Chunked, resumable uploads (blobstore.uploads) on the filesystem and on real S3 (moto)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blobstore import FsBlobStore
from blobstore.uploads import Declaration, UploadError, UploadManager, declaration_message
from rollup.keys import Keypair
from state_machine.chunks import MIN_CHUNK_SIZE, chunk_span, verify_blob, verify_blob_root
from state_machine.crypto import keccak256

CS = MIN_CHUNK_SIZE
KEY = Keypair.from_seed(b"\x05" * 32)


def declare(data: bytes, key: Keypair = KEY, cs: int = CS, blob_hash: bytes | None = None,
            ) -> Declaration:
    vb = verify_blob(data, cs)
    h = blob_hash or vb.keccak
    sig = key.sign(declaration_message(h, vb.size, cs, vb.root))
    return Declaration(h, vb.size, cs, vb.chunk_hashes, vb.root, key.pubkey, sig)


def chunk(data: bytes, i: int, cs: int = CS) -> bytes:
    a, b = chunk_span(len(data), cs, i)
    return data[a:b]


@pytest.fixture(params=["fs", "s3"])
def mgr(request: pytest.FixtureRequest, tmp_path: Path) -> UploadManager:
    store = request.getfixturevalue("fs_store" if request.param == "fs" else "s3_store")
    return UploadManager(store, tmp_path / "staging", max_size=64 * CS)


def test_chunks_in_any_order_publish_the_exact_blob(mgr: UploadManager) -> None:
    data = os.urandom(5 * CS + 123)
    created, st = mgr.declare(declare(data))
    assert created and st["missing"] == list(range(6))
    order = list(range(6))
    random.Random(3).shuffle(order)
    for i in order:
        mgr.put_chunk(keccak256(data), i, chunk(data, i))
    assert not mgr.store.has(keccak256(data))  # nothing visible before complete
    done = mgr.complete(keccak256(data))
    assert done["complete"] and mgr.store.get(keccak256(data)) == data
    m = mgr.store.meta(keccak256(data))
    assert m is not None and (m.size, m.chunk_size, m.chunk_root) == (
        len(data), CS, verify_blob(data, CS).root)
    assert mgr.store.read(keccak256(data), CS - 3, CS + 5) == data[CS - 3:CS + 5]
    assert mgr.open_uploads() == 0


def test_corrupt_chunk_is_refused_and_changes_nothing(mgr: UploadManager) -> None:
    data = os.urandom(3 * CS)
    h = keccak256(data)
    mgr.declare(declare(data))
    bad = bytearray(chunk(data, 0))
    bad[7] ^= 1
    with pytest.raises(UploadError) as e:
        mgr.put_chunk(h, 0, bytes(bad))
    assert (e.value.status, e.value.reason) == (422, "chunk_hash_mismatch")
    with pytest.raises(UploadError) as e:
        mgr.put_chunk(h, 1, chunk(data, 1)[:-1])
    assert (e.value.status, e.value.reason) == (400, "bad_chunk_length")
    assert mgr.status(h)["missing"] == [0, 1, 2]
    for i in range(3):
        mgr.put_chunk(h, i, chunk(data, i))
    assert mgr.complete(h)["complete"] and mgr.store.get(h) == data


def test_missing_chunk_blocks_completion_with_its_index(mgr: UploadManager) -> None:
    data = os.urandom(4 * CS)
    h = keccak256(data)
    mgr.declare(declare(data))
    for i in (0, 1, 3):
        mgr.put_chunk(h, i, chunk(data, i))
    with pytest.raises(UploadError) as e:
        mgr.complete(h)
    assert (e.value.status, e.value.reason, e.value.extra["missing"]) == (
        409, "missing_chunks", [2])
    assert not mgr.store.has(h)


def test_upload_stopped_halfway_resumes_after_restart(mgr: UploadManager, tmp_path: Path) -> None:
    data = os.urandom(6 * CS + 5)
    h = keccak256(data)
    mgr.declare(declare(data))
    for i in range(3):
        mgr.put_chunk(h, i, chunk(data, i))
    again = UploadManager(mgr.store, mgr.staging, max_size=mgr.max_size)  # node restarted
    created, st = again.declare(declare(data))  # the client re-declares to resume
    assert not created and st["missing"] == [3, 4, 5, 6] and st["received"] == 3
    for i in st["missing"]:
        again.put_chunk(h, i, chunk(data, i))
    assert again.complete(h)["complete"] and again.store.get(h) == data


def test_same_blob_uploaded_twice_is_stored_once(mgr: UploadManager) -> None:
    data = os.urandom(2 * CS)
    h = keccak256(data)
    other = Keypair.from_seed(b"\x06" * 32)
    mgr.declare(declare(data))
    assert mgr.declare(declare(data, other))[1]["missing"] == [0, 1]  # joins the open upload
    for i in range(2):
        mgr.put_chunk(h, i, chunk(data, i))
        mgr.put_chunk(h, i, chunk(data, i))  # a retried chunk is acked again
    mgr.complete(h)
    created, st = mgr.declare(declare(data, other))
    assert not created and st["complete"] and mgr.complete(h)["complete"]
    assert list(mgr.store.keys()) == [h] and mgr.open_uploads() == 0


def test_wrong_whole_hash_is_refused_and_dropped(mgr: UploadManager) -> None:
    data = os.urandom(2 * CS)
    lie = keccak256(b"something else")
    mgr.declare(declare(data, blob_hash=lie))
    for i in range(2):
        mgr.put_chunk(lie, i, chunk(data, i))
    with pytest.raises(UploadError) as e:
        mgr.complete(lie)
    assert e.value.reason == "hash_mismatch"
    assert not mgr.store.has(lie) and mgr.open_uploads() == 0


def test_declarations_are_checked_before_any_byte(mgr: UploadManager) -> None:
    data = os.urandom(2 * CS)
    d = declare(data)
    cases = [
        (d.__class__(d.blob_hash, d.size, d.chunk_size, d.chunk_hashes, d.root, d.sender,
                     bytes(64)), 401, "bad_signature"),
        (d.__class__(d.blob_hash, d.size, d.chunk_size, d.chunk_hashes[::-1], d.root,
                     d.sender, d.signature), 422, "root_mismatch"),
        (declare(os.urandom(65 * CS)), 413, "bad_size"),
    ]
    for decl, status, reason in cases:
        with pytest.raises(UploadError) as e:
            mgr.declare(decl)
        assert (e.value.status, e.value.reason) == (status, reason)
    assert mgr.open_uploads() == 0


def test_per_sender_quota_and_idle_uploads_collected(tmp_path: Path, fs_store) -> None:  # type: ignore[no-untyped-def]
    clock = [1000.0]
    mgr = UploadManager(fs_store, tmp_path / "st", max_size=64 * CS, sender_quota=3 * CS,
                        ttl=60.0, clock=lambda: clock[0])
    a, b = os.urandom(2 * CS), os.urandom(2 * CS)
    mgr.declare(declare(a))
    with pytest.raises(UploadError) as e:
        mgr.declare(declare(b))
    assert (e.value.status, e.value.reason) == (413, "quota_exceeded")
    mgr.declare(declare(b, Keypair.from_seed(b"\x07" * 32)))  # another signer's own quota
    mgr.put_chunk(keccak256(a), 0, chunk(a, 0))
    assert mgr.gc(now=os.path.getmtime(mgr.staging / keccak256(a).hex() / "journal") + 61) \
        .count(keccak256(a)) == 1
    assert not (mgr.staging / keccak256(a).hex()).exists()
    with pytest.raises(UploadError) as e:
        mgr.put_chunk(keccak256(a), 1, chunk(a, 1))
    assert e.value.reason == "unknown_upload"
    mgr.declare(declare(a))  # the quota was released with the collected upload


def test_unstaked_keys_cannot_crowd_out_a_staked_proposer(tmp_path: Path, fs_store) -> None:  # type: ignore[no-untyped-def]
    staked = Keypair.from_seed(b"\x08" * 32)
    mgr = UploadManager(fs_store, tmp_path / "st", max_size=64 * CS, max_uploads=2,
                        unstaked_quota=2 * CS, is_staked=lambda pk: pk == staked.pubkey)
    mgr.declare(declare(os.urandom(CS), Keypair.from_seed(b"\x20" * 32)))
    with pytest.raises(UploadError) as e:  # 2 CS per key without stake
        mgr.declare(declare(os.urandom(2 * CS), Keypair.from_seed(b"\x20" * 32)))
    assert (e.value.status, e.value.reason) == (413, "quota_exceeded")
    mgr.declare(declare(os.urandom(CS), Keypair.from_seed(b"\x21" * 32)))
    with pytest.raises(UploadError) as e:  # the shared slots of keys without stake are full
        mgr.declare(declare(os.urandom(CS), Keypair.from_seed(b"\x30" * 32)))
    assert (e.value.status, e.value.reason) == (503, "too_many_uploads")
    assert mgr.declare(declare(os.urandom(8 * CS), staked))[0]  # the proposer still gets in


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.integers(0, 4), min_size=5, max_size=12), tail=st.integers(1, CS))
def test_any_arrival_order_with_repeats_publishes_the_same_blob(
        order: list[int], tail: int, tmp_path: Path) -> None:
    data = random.Random(tail).randbytes(4 * CS + tail)  # 5 chunks, the last one short
    h = keccak256(data)
    staging = tmp_path / os.urandom(8).hex()  # a fresh node per example
    mgr = UploadManager(FsBlobStore(staging / "blobs"), staging / "up", max_size=64 * CS)
    mgr.declare(declare(data))
    for i in [*order, *range(5)]:  # arbitrary order and repeats, then every chunk once more
        mgr.put_chunk(h, i, chunk(data, i))
    assert mgr.complete(h)["complete"] and mgr.store.get(h) == data


def test_streamed_chunks_feed_the_whole_hash_once_and_forgeries_never(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Chunks are hashed slice by slice while they stream in, into their own keccak and a
    copy of the whole-blob keccak: in-order uploads need no read-back at completion, and a
    corrupt chunk that streamed in order (even side by side with the good one) leaves the
    whole hash untouched."""
    import blobstore.uploads as up

    monkeypatch.setattr(up, "HASH_SLICE", 1000)
    data = os.urandom(4 * CS - 5)
    h = keccak256(data)
    mgr = UploadManager(FsBlobStore(tmp_path / "blobs"), tmp_path / "up", max_size=64 * CS)
    mgr.declare(declare(data))
    bad = bytearray(chunk(data, 0))
    bad[-1] ^= 1
    good_w, bad_w = mgr.begin_chunk(h, 0), mgr.begin_chunk(h, 0)
    for a in range(0, CS, 777):  # both stream side by side, interleaved
        good_w.update(chunk(data, 0)[a:a + 777])
        bad_w.update(bytes(bad[a:a + 777]))
    with pytest.raises(UploadError) as e:
        bad_w.commit()
    assert e.value.reason == "chunk_hash_mismatch"
    good_w.commit()
    w1, w2 = mgr.begin_chunk(h, 1), mgr.begin_chunk(h, 2)  # 2 starts before 1 is stored
    for w in (w1, w2):
        part = chunk(data, w.index)
        for a in range(0, len(part), 4096):
            w.update(part[a:a + 4096])
    w1.commit()
    w2.commit()  # now next in order: fed from memory
    assert w1.streams and not w2.streams  # only the next in order streamed
    mgr.put_chunk(h, 3, chunk(data, 3))
    mgr._drain()
    s = mgr.session(h)
    assert (s.hashed_upto, s.submitted) == (4, 4)  # nothing left to read back
    assert mgr.complete(h)["complete"] and mgr.store.get(h) == data


# ---- protocol 4 (chunk root only): root-addressed uploads


def declare_root(data: bytes, key: Keypair = KEY, cs: int = CS) -> Declaration:
    """A declaration whose hash *is* its chunk root (what the SDK sends on protocol 4)."""
    vb = verify_blob_root(data, cs)
    sig = key.sign(declaration_message(vb.root, vb.size, cs, vb.root))
    return Declaration(vb.root, vb.size, cs, vb.chunk_hashes, vb.root, key.pubkey, sig)


def test_root_addressed_upload_in_any_order_publishes_under_its_root(
        mgr: UploadManager) -> None:
    data = os.urandom(6 * CS + 77)
    d = declare_root(data)
    mgr.declare(d)
    order = list(range(7))
    random.Random(5).shuffle(order)
    for i in order:
        mgr.put_chunk(d.root, i, chunk(data, i))
    assert mgr.complete(d.root)["complete"] and mgr.store.get(d.root) == data
    m = mgr.store.meta(d.root)
    assert m is not None and m.chunk_root == d.root
    assert not mgr.store.has(keccak256(data))


def test_root_addressed_upload_never_computes_a_whole_keccak(
        monkeypatch: pytest.MonkeyPatch, mgr: UploadManager) -> None:
    """Every byte is hashed exactly once: into its chunk's keccak, never a whole-blob one."""
    import blobstore.uploads as up

    hashed: list[int] = []
    real = up.chunk_hasher

    class Counting:
        def __init__(self) -> None:
            self.h = real()

        def update(self, b: bytes) -> None:
            hashed.append(len(b))
            self.h.update(b)

        def digest(self) -> bytes:
            return bytes(self.h.digest())

        def copy(self) -> Counting:
            raise AssertionError("a root-addressed upload copied a whole hash")

    monkeypatch.setattr(up, "whole_hasher", Counting)
    monkeypatch.setattr(up, "chunk_hasher", Counting)
    data = os.urandom(4 * CS + 9)
    d = declare_root(data)
    mgr.declare(d)
    for i in (3, 0, 4, 2, 1):
        mgr.put_chunk(d.root, i, chunk(data, i))
    assert mgr.complete(d.root)["complete"]
    assert sum(hashed) == len(data)  # chunk keccaks only (ChunkWriter.digest), each byte once


def test_root_addressed_upload_refuses_a_forged_chunk_and_a_missing_one(
        mgr: UploadManager) -> None:
    data = os.urandom(3 * CS)
    d = declare_root(data)
    mgr.declare(d)
    bad = bytearray(chunk(data, 1))
    bad[0] ^= 1
    with pytest.raises(UploadError) as e:
        mgr.put_chunk(d.root, 1, bytes(bad))
    assert (e.value.status, e.value.reason) == (422, "chunk_hash_mismatch")
    mgr.put_chunk(d.root, 0, chunk(data, 0))
    mgr.put_chunk(d.root, 2, chunk(data, 2))
    with pytest.raises(UploadError) as e:
        mgr.complete(d.root)
    assert (e.value.reason, e.value.extra["missing"]) == ("missing_chunks", [1])
    mgr.put_chunk(d.root, 1, chunk(data, 1))
    assert mgr.complete(d.root)["complete"] and mgr.store.get(d.root) == data


def test_root_addressed_upload_resumes_after_restart(mgr: UploadManager) -> None:
    data = os.urandom(5 * CS + 1)
    d = declare_root(data)
    mgr.declare(d)
    for i in (4, 1):
        mgr.put_chunk(d.root, i, chunk(data, i))
    again = UploadManager(mgr.store, mgr.staging, max_size=mgr.max_size)
    created, st = again.declare(declare_root(data))
    assert not created and st["missing"] == [0, 2, 3, 5]
    for i in st["missing"]:
        again.put_chunk(d.root, i, chunk(data, i))
    assert again.complete(d.root)["complete"] and again.store.get(d.root) == data


def test_the_awaited_genesis_is_staged_for_any_signer_and_nothing_else(
        tmp_path: Path, fs_store) -> None:  # type: ignore[no-untyped-def]
    """Protocol 4 chunked genesis: an upload whose root a waiting task declared is admitted
    under the staked quota whoever signs it (the root fixes the bytes); any other upload
    of an unstaked key keeps its small quota."""
    genesis, other = os.urandom(3 * CS), os.urandom(3 * CS)
    want = verify_blob_root(genesis, CS).root
    owner = Keypair.from_seed(b"\x31" * 32)  # a task owner without stake
    mgr = UploadManager(fs_store, tmp_path / "st", max_size=64 * CS, unstaked_quota=CS,
                        is_awaited=lambda root: root == want)
    with pytest.raises(UploadError) as e:
        mgr.declare(declare_root(other, owner))
    assert (e.value.status, e.value.reason) == (413, "quota_exceeded")
    with pytest.raises(UploadError) as e:  # the same bytes keccak-addressed: not the awaited
        mgr.declare(declare(genesis, owner))
    assert e.value.reason == "quota_exceeded"
    created, _ = mgr.declare(declare_root(genesis, owner))
    assert created
    for i in range(3):
        mgr.put_chunk(want, i, chunk(genesis, i))
    assert mgr.complete(want)["complete"] and mgr.store.get(want) == genesis
