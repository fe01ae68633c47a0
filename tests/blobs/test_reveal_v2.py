"""STF: the v2 reveal (hash + size + chunk root signed, bytes beside the block)."""

from __future__ import annotations

import dataclasses

import numpy as np
from stf_harness import Client, Harness, default_params

from blobstore.base import BlobMeta
from blobstore.fs import FsBlobStore
from blobstore.source import StoreSource, VerifyingSource
from state_machine.actions import CommitUpdateBody, RevealUpdateV2Body
from state_machine.chunks import MIN_CHUNK_SIZE, VerifiedBlob, verify_blob
from state_machine.commitments import update_commitment_v2
from state_machine.crypto import keccak256
from state_machine.transition import Block, apply_block, block_hash, block_header

D = 256
CS = MIN_CHUNK_SIZE


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
        com = update_commitment_v2(vb.keccak, vb.size, vb.chunk_size, vb.root, self.salt(c),
                                   self.binding(c, 1, 0))
        return self.signed(c, "commit_update", CommitUpdateBody(1, 0, com))

    def reveal_v2(self, c: Client, vb: VerifiedBlob, **over):  # type: ignore[no-untyped-def]
        f = {"update_hash": vb.keccak, "size": vb.size, "chunk_size": vb.chunk_size,
             "chunk_root": vb.root, **over}
        return self.signed(c, "reveal_update_v2", RevealUpdateV2Body(
            1, 0, f["update_hash"], f["size"], f["chunk_size"], f["chunk_root"], self.salt(c)))


def _epoch(h: Harness, v2: bool, store: FsBlobStore | None = None) -> tuple[dict, bytes]:
    clients = [Client.make(f"v{i}") for i in range(8)]
    g = np.arange(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, default_params(D, g, 5, 1), 1))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    by = {c.pubkey: c for c in clients}
    ep = h.state.epochs[(1, 0)]
    rng = np.random.default_rng(7)
    deltas = {pk: rng.normal(0, 300, D).astype(np.int16) for pk in ep.proposers}
    deltas[ep.proposers[0]] = np.zeros(D, dtype=np.int16)  # v2 verdicts: zero_update evidence
    vbs = {pk: verify_blob(d.astype("<i2").tobytes(), CS) for pk, d in deltas.items()}
    if v2:
        h.blobs = {vb.keccak: vb for vb in vbs.values()}  # type: ignore[attr-defined]
        if store is not None:  # the node's path: read-only memory maps of verified files
            for vb in vbs.values():
                store.put_bytes(vb.keccak, vb.data, BlobMeta(vb.size, vb.chunk_size, vb.root))
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


def test_v2_reveals_score_and_aggregate_exactly_like_v1() -> None:
    v1 = _epoch(Harness(), v2=False)
    v2 = _epoch(V2Harness(), v2=True)
    assert v1 == v2 and "FREE_RIDER" in v1[0].values()


def test_v2_reveals_from_memory_mapped_blob_files_score_alike(tmp_path) -> None:
    v1 = _epoch(Harness(), v2=False)
    assert _epoch(V2Harness(), v2=True, store=FsBlobStore(tmp_path)) == v1


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


def test_v2_reveal_rejections_change_nothing() -> None:
    h = V2Harness()
    clients = [Client.make(f"v{i}") for i in range(8)]
    g = np.arange(D, dtype=np.int32)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, default_params(D, g, 5, 1), 1))
    h.block(h.genesis(clients[0], 1, g))
    h.block()
    c = next(x for x in clients if x.pubkey in h.state.epochs[(1, 0)].proposers)
    data = np.ones(D, dtype="<i2").tobytes()
    vb = verify_blob(data, CS)
    h.block(h.commit_v2(c, vb))
    h.until_phase_changes(1)
    forged = dataclasses.replace(vb, root=b"\x07" * 32)
    cases = [
        ({}, {}, "blob_unavailable"),
        ({vb.keccak: forged}, {}, "blob_mismatch"),
        ({vb.keccak: vb}, {"chunk_root": b"\x01" * 32}, "commitment_mismatch"),
        ({vb.keccak: vb}, {"size": 2 * D + 2}, "wrong_length"),
    ]
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
    h.blobs = {vb.keccak: vb}
    assert h.block(h.reveal_v2(c, vb))[0].applied
    assert h.state.epochs[(1, 0)].update_hashes[c.pubkey] == keccak256(data)
