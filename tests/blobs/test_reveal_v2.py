"""STF: the v2 reveal (hash + size + chunk root signed, bytes beside the block), under
protocol 3 (keccak-addressed: whole keccak + chunk root), protocol 4 (chunk root only) and
protocol 5 (4 plus the fresh past)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from stf_harness import CHAIN_ID, Client, Harness, default_params, first_epoch_deltas

from blobstore.base import BlobMeta
from blobstore.fs import FsBlobStore
from blobstore.source import StoreSource, VerifyingSource
from state_machine.actions import CommitUpdateBody, RevealUpdateV2Body
from state_machine.chunks import (
    CONTENT_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    VerifiedBlob,
    content_root,
    verify_blob,
    verify_blob_root,
)
from state_machine.commitments import update_commitment_v2
from state_machine.constants import (
    PROTOCOL_CHUNK_ROOT_ONLY,
    PROTOCOL_FRESH_PAST,
    PROTOCOL_PACED_WINDOWS,
)
from state_machine.crypto import keccak256
from state_machine.transition import (
    Block,
    apply_block,
    block_hash,
    block_header,
    genesis_state,
)

D = 256
CS = MIN_CHUNK_SIZE
PROTOCOLS = [PROTOCOL_PACED_WINDOWS, PROTOCOL_CHUNK_ROOT_ONLY, PROTOCOL_FRESH_PAST]


def blob_on(protocol: int, data: bytes) -> VerifiedBlob:
    """What a proposer on a ``protocol`` chain names its update by (as the SDK does)."""
    if protocol >= PROTOCOL_CHUNK_ROOT_ONLY:
        return verify_blob_root(data, CONTENT_CHUNK_SIZE)
    return verify_blob(data, CS)


def v2_harness(protocol: int) -> V2Harness:
    return V2Harness(state=genesis_state(CHAIN_ID, protocol))


def v1_harness(protocol: int) -> Harness:
    return Harness(state=genesis_state(CHAIN_ID, protocol))


class V2Harness(Harness):
    """The STF harness, with a blob source handed to every block."""

    blobs: dict[bytes, VerifiedBlob]

    def block(self, *actions):  # type: ignore[no-untyped-def, override]
        b = Block(self.state.height + 1, self.parent, 1_700_000_000 + self.state.height,
                  list(actions), blobs=getattr(self, "blobs", {}))
        self.state, receipts = apply_block(self.state, b)
        self.parent = block_hash(block_header(b, self.state.state_root(), receipts))
        self.receipts.extend(receipts)
        for c in self.signers.values():
            c.nonce = self.state.nonces.get(c.pubkey, 0)
        return receipts

    def salt(self, c: Client) -> bytes:
        return keccak256(c.pubkey, b"salt2")

    def commit_v2(self, c: Client, vb: VerifiedBlob):  # type: ignore[no-untyped-def]
        com = update_commitment_v2(vb.key, vb.size, vb.chunk_size, vb.root, self.salt(c),
                                   self.binding(c, 1, 0))
        return self.signed(c, "commit_update", CommitUpdateBody(1, 0, com))

    def reveal_v2(self, c: Client, vb: VerifiedBlob, **over):  # type: ignore[no-untyped-def]
        f = {"update_hash": vb.key, "size": vb.size, "chunk_size": vb.chunk_size,
             "chunk_root": vb.root, **over}
        return self.signed(c, "reveal_update_v2", RevealUpdateV2Body(
            1, 0, f["update_hash"], f["size"], f["chunk_size"], f["chunk_root"], self.salt(c)))


def _epoch(h: Harness, v2: bool, store: FsBlobStore | None = None) -> tuple[dict, bytes]:
    clients = [Client.make(f"v{i}") for i in range(8)]
    g = np.arange(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, default_params(D, g, 5, 1), 1))
    h.block(h.genesis(clients[0], 1, g))
    by, deltas = first_epoch_deltas(h, clients, D, 7)
    ep = h.state.epochs[(1, 0)]
    deltas[ep.proposers[0]] = np.zeros(D, dtype=np.int16)  # v2 verdicts: zero_update evidence
    vbs = {pk: blob_on(h.state.protocol, d.astype("<i2").tobytes()) for pk, d in deltas.items()}
    if v2:
        h.blobs = {vb.key: vb for vb in vbs.values()}  # type: ignore[attr-defined]
        if store is not None:  # the node's path: read-only memory maps of verified files
            for vb in vbs.values():
                store.put_bytes(vb.key, vb.data, BlobMeta(vb.size, vb.chunk_size, vb.root))
            h.blobs = StoreSource(store)  # type: ignore[attr-defined]
        h.block(*[h.commit_v2(by[pk], vbs[pk]) for pk in ep.proposers])  # type: ignore[attr-defined]
    else:
        h.block(*[h.commit(by[pk], 1, 0, deltas[pk]) for pk in ep.proposers])
    h.until_phase_changes(1)
    if v2:
        r = h.block(*[h.reveal_v2(by[pk], vbs[pk]) for pk in ep.proposers])  # type: ignore[attr-defined]
    else:
        r = h.block(*[h.reveal(by[pk], 1, 0, deltas[pk]) for pk in ep.proposers])
    assert all(x.applied for x in r), r
    if store is not None:  # views of the maps, not heap copies (bounded-memory epoch close)
        assert all(not u.flags.owndata and not u.flags.writeable
                   for u in h.state.epochs[(1, 0)].updates.values())
    h.until_phase_changes(1)
    e = h.state.epochs[(1, 0)]
    return dict(e.verdicts), h.state.tasks[1].global_hash


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_v2_reveals_score_and_aggregate_exactly_like_v1(protocol: int) -> None:
    v1 = _epoch(v1_harness(protocol), v2=False)
    v2 = _epoch(v2_harness(protocol), v2=True)
    assert v1 == v2 and "FREE_RIDER" in v1[0].values()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_v2_reveals_from_memory_mapped_blob_files_score_alike(tmp_path, protocol: int) -> None:
    v1 = _epoch(v1_harness(protocol), v2=False)
    assert _epoch(v2_harness(protocol), v2=True, store=FsBlobStore(tmp_path)) == v1


def test_verifying_source_spools_to_a_read_only_map(tmp_path) -> None:
    data = np.arange(3 * CS // 2 + 10, dtype="<i2").tobytes()
    vb = verify_blob(data, CS)
    chunks = [data[i:i + CS] for i in range(0, len(data), CS)]
    for spool in (None, str(tmp_path)):
        src = VerifyingSource(lambda h: (len(data), CS), lambda h, i: chunks[i], spool)
        got = src.get(vb.keccak)
        assert got is not None and (got.root, got.size) == (vb.root, vb.size)
        assert bytes(memoryview(got.data)) == data
    bad = VerifyingSource(lambda h: (len(data), CS), lambda h, i: b"x" * len(chunks[i]),
                          str(tmp_path))
    assert bad.get(vb.keccak) is None
    assert list(tmp_path.iterdir()) == []  # spool files are unlinked temporaries


def test_verifying_source_checks_a_root_addressed_blob_by_its_chunks_alone(tmp_path) -> None:
    """Protocol 4: the key is the chunk root; each chunk is hashed once, no whole keccak, and
    a server claiming root-addressing for bytes that do not give the key is refused."""
    data = np.arange(3 * CS // 2 + 10, dtype="<i2").tobytes()
    vb = verify_blob_root(data, CS)
    chunks = [data[i:i + CS] for i in range(0, len(data), CS)]
    for meta in ((len(data), CS, True), (len(data), CS)):
        src = VerifyingSource(lambda h, m=meta: m, lambda h, i: chunks[i], str(tmp_path),
                              root_addressed=len(meta) == 2)
        got = src.get(vb.root)
        assert got is not None and (got.key, got.keccak, got.root) == (vb.root, b"", vb.root)
        assert bytes(memoryview(got.data)) == data
    lying = VerifyingSource(lambda h: (len(data), CS, True), lambda h, i: chunks[i])
    assert lying.get(keccak256(data)) is None  # claims root-addressing for a keccak key
    flipped = VerifyingSource(lambda h: (len(data), CS, True),
                              lambda h, i: chunks[i][:-1] + b"\x00")
    assert flipped.get(vb.root) is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_v2_reveal_rejections_change_nothing(protocol: int) -> None:
    h = v2_harness(protocol)
    clients = [Client.make(f"v{i}") for i in range(8)]
    g = np.arange(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, default_params(D, g, 5, 1), 1))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    c = next(x for x in clients if x.pubkey in h.state.epochs[(1, 0)].proposers)
    data = np.ones(D, dtype="<i2").tobytes()
    vb = blob_on(protocol, data)
    h.block(h.commit_v2(c, vb))
    h.until_phase_changes(1)
    forged = dataclasses.replace(vb, root=b"\x07" * 32)
    cases = [
        ({}, {}, "blob_unavailable"),
        ({vb.key: forged}, {}, "blob_mismatch"),
        ({vb.key: vb}, {"size": 2 * D + 2}, "wrong_length"),
    ]
    other_root = {"chunk_root": b"\x01" * 32}
    if protocol >= PROTOCOL_CHUNK_ROOT_ONLY:  # the signed hash is the root: both change
        other_root["update_hash"] = other_root["chunk_root"]
    cases.append(({vb.key: vb}, other_root, "commitment_mismatch"))
    if protocol >= PROTOCOL_CHUNK_ROOT_ONLY:  # the chunk root is the one content hash
        cases += [
            ({vb.key: vb}, {"chunk_size": CS}, "bad_chunk_size"),
            ({vb.key: vb}, {"update_hash": keccak256(data)}, "not_chunk_root"),
            # a keccak-addressed blob (protocol 3 upload) filed under the root: not this one
            ({vb.key: verify_blob(data, CONTENT_CHUNK_SIZE)}, {}, "blob_mismatch"),
        ]
    else:  # a root-addressed blob (no whole keccak known) cannot serve a keccak reveal
        cases.append(({vb.key: dataclasses.replace(vb, keccak=b"")}, {}, "blob_mismatch"))
    for blobs, over, reason in cases:
        h.blobs = blobs
        root = h.state.state_root()
        empty, _ = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp,
                                              [], blobs=blobs))
        sa = h.reveal_v2(c, vb, **over)
        c.nonce -= 1
        new, rec = apply_block(h.state, Block(h.state.height + 1, h.parent, h.state.timestamp, [sa],
                                              blobs=blobs))
        assert (rec[0].applied, rec[0].reason) == (False, reason)
        assert new.state_root() == empty.state_root() and h.state.state_root() == root
    h.blobs = {vb.key: vb}
    assert h.block(h.reveal_v2(c, vb))[0].applied
    want = content_root(data) if protocol >= PROTOCOL_CHUNK_ROOT_ONLY else keccak256(data)
    assert h.state.epochs[(1, 0)].update_hashes[c.pubkey] == want
