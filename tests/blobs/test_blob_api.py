"""Blob routes and protocol v2 reveals over HTTP (in-process node, real SQLite, SDK)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rollup import client as sdk
from rollup.client import FlockClient, NodeClient, NodeError
from rollup.config import NodeConfig
from rollup.keys import Keypair
from rollup.node import create_node_app
from rollup.wire import unhex
from sequencer import Sequencer
from sequencer.da import decode_da, replay_da
from sequencer.errors import ChainMismatch
from state_machine.chunks import MIN_CHUNK_SIZE, chunk_span, verify_blob
from tests.node.helpers import (
    CHAIN_ID,
    deposit_body,
    honest_deltas,
    members,
    task_body,
    task_params,
)

CS = MIN_CHUNK_SIZE
D = 32


def node_app(tmp_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    cfg = NodeConfig(db_url=f"sqlite:///{tmp_path}/chain.db", chain_id=CHAIN_ID,
                     sequencer_key_file=tmp_path / "seq.key", port=0,
                     blob_dir=tmp_path / "blobs", **kw)  # type: ignore[arg-type]
    return create_node_app(cfg)


def test_http_upload_stops_halfway_resumes_and_downloads(tmp_path: Path) -> None:
    data = os.urandom(8 * CS + 999)
    vb = verify_blob(data, CS)
    key = Keypair.from_seed(b"\x09" * 32)
    puts: list[str] = []
    with TestClient(node_app(tmp_path, block_time=0.05)) as http:
        http.event_hooks["request"].append(
            lambda r: puts.append(r.url.path) if r.method == "PUT" else None)
        node = NodeClient(http=http)
        st = sdk.upload_blob(node, key, data, blob=vb, complete=False)
        assert st["missing"] == [] and not st["complete"]
        assert http.get(f"/v1/blobs/{vb.keccak.hex()}/meta").status_code == 404  # unpublished
        # a second uploader's cut connection: declare, send chunks 0..3, then stop
        other = os.urandom(8 * CS)
        ovb = verify_blob(other, CS)
        r = http.post("/v1/blobs/uploads", json=_decl_json(ovb, key))
        assert r.status_code == 201 and r.json()["missing"] == list(range(8))
        for i in range(4):
            a, b = chunk_span(ovb.size, CS, i)
            assert http.put(f"/v1/blobs/{ovb.keccak.hex()}/chunks/{i}",
                            content=other[a:b]).status_code == 200
        bad = bytearray(other[4 * CS:5 * CS])
        bad[0] ^= 0xFF
        r = http.put(f"/v1/blobs/{ovb.keccak.hex()}/chunks/4", content=bytes(bad))
        assert (r.status_code, r.json()["reason"]) == (422, "chunk_hash_mismatch")
        r = http.post(f"/v1/blobs/{ovb.keccak.hex()}/complete")
        assert (r.status_code, r.json()["reason"], r.json()["missing"]) == (
            409, "missing_chunks", [4, 5, 6, 7])
        assert http.get(f"/v1/blobs/uploads/{ovb.keccak.hex()}").json()["received"] == 4
        puts.clear()
        done = sdk.upload_blob(node, key, other, blob=ovb)  # resume: only what is missing
        assert done["complete"] and len(puts) == 4
        assert sdk.download_blob(node, ovb.keccak) == other
        assert node.blob(ovb.keccak) == other  # the v1 whole-blob route reads the store too
        again = sdk.upload_blob(node, key, other, blob=ovb)  # the same blob a second time
        assert again["complete"] and len(puts) == 4
        r = http.put(f"/v1/blobs/{ovb.keccak.hex()}/chunks/0", content=b"x")
        assert (r.status_code, r.json()["reason"]) == (404, "unknown_upload")
        r = http.put(f"/v1/blobs/{vb.keccak.hex()}/chunks/0", content=data[:CS + 1])
        assert r.status_code == 413


def _decl_json(vb, key: Keypair) -> dict:  # type: ignore[no-untyped-def]
    from blobstore.uploads import declaration_message

    sig = key.sign(declaration_message(vb.keccak, vb.size, vb.chunk_size, vb.root))
    return {"hash": vb.keccak.hex(), "size": vb.size, "chunk_size": vb.chunk_size,
            "chunk_hashes": [h.hex() for h in vb.chunk_hashes], "root": vb.root.hex(),
            "sender": key.pubkey.hex(), "signature": sig.hex()}


def _epoch_with_v2_reveals(http: TestClient, seq: Sequencer) -> tuple[NodeClient, dict, list]:
    ms = members(7)
    genesis = np.arange(D, dtype=np.int32) * 3
    node = NodeClient(http=http)
    for i, m in enumerate(ms):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
    params = task_params(D, genesis, proposers=5, f=1, voters=0, window=200)
    seq.submit_l1_event("l1_task_created", task_body(1, params, 100, max_epochs=1))
    clients = {m.pubkey: FlockClient(node, m.key) for m in ms}
    c0 = clients[ms[0].pubkey]
    node.wait_for(lambda: 1 in seq.state.tasks, what="task")
    c0.publish_genesis(1, genesis, wait=True)
    node.wait_phase(1, "update_commit", epoch=0)
    proposers = [unhex(p) for p in node.epoch(1, 0)["proposers"]]
    deltas = honest_deltas(5, D, seed=3)
    deltas[0] = np.zeros(D, dtype=np.int16)  # v2 verdicts: slashed on zero_update evidence
    acks = [sdk.commit_update_v2(clients[p], 1, 0, deltas[i]) for i, p in enumerate(proposers)]
    acks.append(c0.advance(1, 0))
    assert all(node.wait_included(a.action_hash)["status"] == "included" for a in acks)
    node.wait_phase(1, "update_reveal", epoch=0)
    return node, clients, proposers


def test_v2_reveals_drive_an_epoch_and_replay_from_da(tmp_path: Path) -> None:
    app = node_app(tmp_path, block_time=0.03)
    seq: Sequencer = app.state.sequencer
    with TestClient(app) as http:
        node, clients, proposers = _epoch_with_v2_reveals(http, seq)
        first = clients[proposers[0]]
        with pytest.raises(NodeError) as e:  # revealing a hash the node does not hold
            vb = verify_blob(os.urandom(2 * D), CS)
            from state_machine.actions import RevealUpdateV2Body

            first.send("reveal_update_v2", RevealUpdateV2Body(
                1, 0, vb.keccak, vb.size, CS, vb.root, first.salt("update", 1, 0)))
        assert (e.value.status, e.value.reason) == (409, "blob_unavailable")
        stranger = FlockClient(node, Keypair.from_seed(b"\x0a" * 32))  # no stake, no commit
        data = os.urandom(CS)
        svb = verify_blob(data, CS)
        assert sdk.upload_blob(node, stranger.key, data, blob=svb)["complete"]
        with pytest.raises(NodeError) as e:  # same role checks as a v1 reveal
            stranger.send("reveal_update_v2", RevealUpdateV2Body(
                1, 0, svb.keccak, svb.size, CS, svb.root, b"\x00" * 32))
        assert e.value.reason in ("not_selected", "not_staked"), e.value
        acks = [sdk.reveal_update_v2(clients[p], 1, 0) for p in proposers]
        acks.append(clients[proposers[1]].advance(1, 0))
        recs = [node.wait_included(a.action_hash) for a in acks]
        assert all(r["status"] == "included" for r in recs), recs
        node.wait_for(lambda: node.epoch(1, 0)["verdicts"], what="scores")
        ep = node.epoch(1, 0)
        verdicts = {unhex(k): v for k, v in ep["verdicts"]}
        assert verdicts[proposers[0]] == "FREE_RIDER"
        for pk, h in ep["update_hashes"]:
            assert sdk.download_blob(node, unhex(h)) == clients[unhex(pk)]._updates[(1, 0)]
        b = seq.make_batch()
        assert b is not None
        da_bytes = sdk.download_da(node, b.idx, chunk_size=1000)  # chunked, checked
        assert da_bytes == node.da(b.idx) and len(da_bytes) > 1000
        da = decode_da(da_bytes)
        v2 = {bytes(h) for _, _, h in da["updates"]}
        assert v2 == {unhex(h) for _, h in ep["update_hashes"]}
        from types import SimpleNamespace

        from bridge.verifier import Verifier
        from state_machine.transition import genesis_state

        verifier = SimpleNamespace(node_urls=[str(http.base_url)], http=http)
        assert Verifier.blob_source(verifier, [*v2, b"\x01" * 32]) is None  # one unavailable
        src = Verifier.blob_source(verifier, sorted(v2))  # the independent verifier's source
        assert src is not None
        out = replay_da(genesis_state(CHAIN_ID), da, blobs=src)  # chunks checked on arrival
        assert out.state_root == b.state_root
        with pytest.raises(ChainMismatch):  # without the bytes the batch does not replay
            replay_da(genesis_state(CHAIN_ID), da)
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path}/chain.db"  # the CLI audit replays v2 reveals from the blob dir
    ok = subprocess.run([sys.executable, "-m", "rollup.cli", "replay", "--db", db,
                         "--blob-dir", str(tmp_path / "blobs")], capture_output=True, text=True)
    assert ok.returncode == 0 and '"ok": true' in ok.stdout, ok.stdout + ok.stderr
    bad = subprocess.run([sys.executable, "-m", "rollup.cli", "replay", "--db", db],
                         capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout

