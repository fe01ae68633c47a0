"""HTTP API: a full epoch driven by the SDK, every bad-input class, reads and proofs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from rollup.client import FlockClient, NodeClient, NodeError
from rollup.config import NodeConfig
from rollup.node import create_node_app, start_node
from rollup.wire import action_to_json, unhex
from sequencer import Sequencer, verify_ack
from state_machine import codec
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    PublishGenesisBody,
    RevealUpdateBody,
    make_action,
    system_action,
)
from state_machine.constants import CURRENT_PROTOCOL
from state_machine.crypto import keccak256
from state_machine.leaves import SUBROOT_ACCOUNTS, SUBROOT_TASKS, verify_state_proof

from .helpers import CHAIN_ID, deposit_body, honest_deltas, members, task_body, task_params

D = 32


def config(db_url: str, tmp_path: Path, **kw: object) -> NodeConfig:
    return NodeConfig(db_url=db_url, chain_id=CHAIN_ID, sequencer_key_file=tmp_path / "seq.key",
                      port=0, **kw)  # type: ignore[arg-type]


@pytest.fixture
def manual_node(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Sequencer]]:
    """A node whose blocks are produced only by the test (deterministic)."""
    app = create_node_app(config(sqlite_url, tmp_path, max_body_bytes=64 * 1024),
                          produce_blocks=False)
    with TestClient(app) as http:
        yield http, app.state.sequencer


# ---------------------------------------------------------------------- full epoch


def test_full_epoch_over_http(db_url: str, tmp_path: Path) -> None:
    app = create_node_app(config(db_url, tmp_path, block_time=0.03))
    seq: Sequencer = app.state.sequencer
    ms = members(8)
    genesis = np.arange(D, dtype=np.int32) * 3
    with TestClient(app) as http:
        node = NodeClient(http=http)
        for i, m in enumerate(ms):  # L1 deposits: the bridge's in-process system path
            seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
        params = task_params(D, genesis, proposers=5, f=1, voters=3, window=200)
        params = replace(params, norm_bound=1400)  # honest norms here are ~920
        seq.submit_l1_event("l1_task_created", task_body(1, params, 100, max_epochs=2))
        clients = {m.pubkey: FlockClient(node, m.key) for m in ms}
        c0 = clients[ms[0].pubkey]
        node.wait_for(lambda: 1 in seq.state.tasks, what="task")
        r = c0.publish_genesis(1, genesis, wait=True)
        assert r["status"] == "included", r
        assert np.array_equal(node.global_model(1), genesis)
        node.wait_phase(1, "update_commit", epoch=0)

        ep = node.epoch(1, 0)
        proposers = [unhex(p) for p in ep["proposers"]]
        voters = [unhex(v) for v in ep["voters"]]
        assert len(proposers) == 5 and len(voters) == 3
        deltas = honest_deltas(5, D, seed=3)
        attacker = proposers[0]
        deltas[0] = (-deltas[1] * 2).astype(np.int16)  # boosted sign flip: above the bound
        acks = [clients[p].commit_update(1, 0, deltas[i]) for i, p in enumerate(proposers)]
        for a in acks:
            assert a.verify(seq.pubkey)
        acks.append(c0.advance(1, 0))
        assert all(node.wait_included(a.action_hash)["status"] == "included" for a in acks)
        node.wait_phase(1, "update_reveal", epoch=0)

        acks = [clients[p].reveal_update(1, 0) for p in proposers]
        acks.append(c0.advance(1, 0))
        for a in acks:
            node.wait_included(a.action_hash)
        t = node.wait_phase(1, "vote_commit", epoch=0)
        ep = node.epoch(1, 0)
        verdicts = {unhex(k): v for k, v in ep["verdicts"]}
        assert verdicts[attacker] == "NORM_VIOLATION"
        assert sorted(v for p, v in verdicts.items() if p != attacker) == ["ACCEPTED"] * 4
        for pk, h in ep["update_hashes"]:  # revealed updates are served as blobs
            assert node.blob(unhex(h)) == clients[unhex(pk)]._updates[(1, 0)]
        candidate = node.blob(unhex(ep["candidate_hash"]))  # voters evaluate this model
        assert len(candidate) == 4 * D

        acks = [clients[v].commit_vote(1, 0, 8000, 7000) for v in voters]
        acks.append(c0.advance(1, 0))
        for a in acks:
            node.wait_included(a.action_hash)
        node.wait_phase(1, "vote_reveal", epoch=0)
        acks = [clients[v].reveal_vote(1, 0) for v in voters]
        acks.append(c0.advance(1, 0))
        for a in acks:
            assert node.wait_included(a.action_hash)["status"] == "included"
        node.wait_for(lambda: node.epoch(1, 0)["outcome"] != "pending", what="finalize")

        ep = node.epoch(1, 0)
        assert ep["outcome"] == "accepted"
        assert sorted(v for _, v in ep["voter_verdicts"]) == ["AGREE"] * 3
        assert any(pk == "0x" + attacker.hex() for pk, _, _ in ep["slashes"])
        t = node.task(1)
        assert t["epoch"] == 1 and t["accepted_epochs"] == 1
        assert ep["global_after"] == t["global_hash"]
        assert not np.array_equal(node.global_model(1), genesis)
        acct = clients[attacker].account()
        assert int(acct["account"]["cumulative_slashed"]) > 0

        # proofs verify against the state root, and name the batch they are valid for
        b = seq.make_batch()
        assert b is not None
        proof = node.account_proof(attacker)
        leaf, root = unhex(proof["leaf"]), unhex(proof["state_root"])
        assert verify_state_proof(leaf, [unhex(x) for x in proof["proof"]], SUBROOT_ACCOUNTS,
                                  root)
        if root == b.state_root:
            assert proof["batch_index"] == b.idx
        p0 = node.account_proof(attacker, batch=b.idx)
        assert p0["batch_index"] == b.idx and unhex(p0["state_root"]) == b.state_root
        tp = node.task_proof(1)
        assert verify_state_proof(unhex(tp["leaf"]), [unhex(x) for x in tp["proof"]],
                                  SUBROOT_TASKS, unhex(tp["state_root"]))
        batch = node.batch(b.idx)
        assert keccak256(node.da(b.idx)) == unhex(batch["da_hash"])
        blk = node.latest_block()
        assert blk["height"] >= b.last_height and "receipts" in blk
        assert node.tasks()[0]["task_id"] == 1


# ---------------------------------------------------------------------- bad inputs


def _setup_task(seq: Sequencer) -> tuple[list, list[bytes]]:
    ms = members(6)
    for i, m in enumerate(ms):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
    genesis = np.zeros(D, dtype=np.int32)
    seq.submit_l1_event("l1_task_created",
                        task_body(1, task_params(D, genesis, window=1000), 100))
    seq.produce_block()
    sa = make_action(ms[0].seed, "publish_genesis", CHAIN_ID, 0,
                     PublishGenesisBody(1, genesis.astype("<i4").tobytes()), ms[0].pubkey)
    seq.submit(sa.encode())
    seq.produce_block()
    seq.produce_block()
    assert seq.state.tasks[1].phase == "update_commit"
    return ms, seq.state.epochs[(1, 0)].proposers


def _post(http: TestClient, body: bytes, ctype: str = "application/msgpack") -> httpx.Response:
    return http.post("/v1/actions", content=body, headers={"content-type": ctype})


def test_bad_inputs_refused_nothing_stored(manual_node: tuple[TestClient, Sequencer]) -> None:
    http, seq = manual_node
    ms, proposers = _setup_task(seq)
    by_pk = {m.pubkey: m for m in ms}
    p = by_pk[proposers[0]]
    nonce = seq.pending_nonce(p.pubkey)

    def act(typ: str, body: object, m=p, n: int | None = None, chain: int = CHAIN_ID) -> bytes:
        return make_action(m.seed, typ, chain, nonce if n is None else n, body,  # type: ignore[arg-type]
                           m.pubkey).encode()

    good = act("commit_update", CommitUpdateBody(1, 0, b"\x01" * 32))
    bad_sig = bytearray(good)
    bad_sig[-1] ^= 1
    env = codec.decode(good)
    env["envelope"]["type"] = "frobnicate"
    unknown_type = codec.encode(env)
    cases: list[tuple[str, bytes, str, int, str]] = [
        ("garbage msgpack", b"\xc1\x00garbage", "application/msgpack", 400, "malformed"),
        ("non-canonical msgpack", b"\x82" + good[1:-2] + b"\xc5\x00\x00",
         "application/msgpack", 400, "malformed"),
        ("malformed json", b"{not json", "application/json", 400, "malformed"),
        ("bad hex in json", json.dumps({"envelope": {"type": "advance"}, "signature": "0xzz"})
         .encode(), "application/json", 400, "malformed"),
        ("unknown type", unknown_type, "application/msgpack", 400, "unknown_type"),
        ("content type", good, "text/plain", 400, "unsupported_content_type"),
        ("bad signature", bytes(bad_sig), "application/msgpack", 401, "bad_signature"),
        ("system action", system_action("l1_deposit", CHAIN_ID, 6, deposit_body(
            members(9)[8], 500)).encode(), "application/msgpack", 401, "system_action"),
        ("wrong chain", act("advance", AdvanceBody(1, 0), chain=99), "application/msgpack",
         422, "bad_chain_id"),
        ("future nonce", act("advance", AdvanceBody(1, 0), n=nonce + 5), "application/msgpack",
         409, "bad_nonce"),
        ("wrong epoch", act("commit_update", CommitUpdateBody(1, 3, b"\x01" * 32)),
         "application/msgpack", 409, "wrong_epoch"),
        ("wrong window", act("reveal_update", RevealUpdateBody(1, 0, b"\x00" * 2 * D,
                                                               b"\x02" * 32)),
         "application/msgpack", 409, "wrong_window"),
        ("wrong update length", act("reveal_update", RevealUpdateBody(1, 0, b"\x00" * 10,
                                                                      b"\x02" * 32)),
         "application/msgpack", 422, "wrong_length"),
        ("unknown task", act("commit_update", CommitUpdateBody(42, 0, b"\x01" * 32)),
         "application/msgpack", 422, "unknown_task"),
        ("too large", act("reveal_update", RevealUpdateBody(1, 0, b"\x00" * 100_000,
                                                            b"\x02" * 32)),
         "application/msgpack", 413, "too_large"),
    ]
    outsider = next(m for m in ms if m.pubkey not in proposers)
    cases.append(("not selected", make_action(
        outsider.seed, "commit_update", CHAIN_ID, seq.pending_nonce(outsider.pubkey),
        CommitUpdateBody(1, 0, b"\x03" * 32), outsider.pubkey).encode(), "application/msgpack",
        422, "not_selected"))
    before = seq.store.count_actions()
    for name, body, ctype, status, reason in cases:
        r = _post(http, body, ctype)
        assert (r.status_code, r.json().get("reason")) == (status, reason), (name, r.text)
        assert "detail" in r.json()
        assert http.get("/v1/healthz").status_code == 200, name
    assert seq.store.count_actions() == before
    assert seq.mempool_size == 0

    # replayed nonce: the genesis publisher's nonce 0 is spent
    g = ms[0]
    r = _post(http, make_action(g.seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0),
                                g.pubkey).encode())
    assert (r.status_code, r.json()["reason"]) == (409, "bad_nonce")

    # the good action goes through, then a different action with its nonce conflicts
    r = _post(http, good)
    assert r.status_code == 202, r.text
    j = r.json()
    assert verify_ack(seq.pubkey, unhex(j["action_hash"]), j["received_height"], unhex(j["ack"]))
    assert _post(http, good).json()["duplicate"] is True
    r = _post(http, act("commit_update", CommitUpdateBody(1, 0, b"\x09" * 32)))
    assert (r.status_code, r.json()["reason"]) == (409, "bad_nonce")
    assert seq.store.count_actions() == {**before, "queued": before.get("queued", 0) + 1}

    # unknown endpoints and objects
    for path, reason in [("/v1/nope", "not_found"), ("/v2/actions", "not_found"),
                         ("/v1/blocks/999", "unknown_block"), ("/v1/tasks/9", "unknown_task"),
                         ("/v1/tasks/1/epochs/7", "unknown_epoch"),
                         ("/v1/batches/3", "unknown_batch"), ("/v1/da/3", "unknown_batch"),
                         ("/v1/blobs/0x" + "00" * 32, "unknown_blob"),
                         ("/v1/actions/0x" + "00" * 32, "unknown_action"),
                         ("/v1/accounts/0x" + "00" * 32 + "/proof", "unknown_account")]:
        r = http.get(path)
        assert (r.status_code, r.json()["reason"]) == (404, reason), path
    r = http.get("/v1/blocks/abc")
    assert (r.status_code, r.json()["reason"]) == (400, "malformed")
    r = http.get("/v1/actions/0x1234")
    assert (r.status_code, r.json()["reason"]) == (400, "malformed")
    r = http.get("/v1/admin/system")
    assert r.status_code in (404, 405)
    r = http.post("/v1/admin/system", json={})
    assert (r.status_code, r.json()["reason"]) == (404, "not_found")  # admin disabled


def test_json_form_and_reads(manual_node: tuple[TestClient, Sequencer]) -> None:
    http, seq = manual_node
    assert http.get("/v1/healthz").json()["protocol"] == seq.protocol == CURRENT_PROTOCOL
    ms, _ = _setup_task(seq)
    m = ms[0]
    sa = make_action(m.seed, "advance", CHAIN_ID, seq.pending_nonce(m.pubkey),
                     AdvanceBody(1, 0), m.pubkey)
    r = http.post("/v1/actions", json=action_to_json(sa))
    assert r.status_code == 202, r.text
    assert unhex(r.json()["action_hash"]) == sa.hash
    st = http.get(f"/v1/actions/0x{sa.hash.hex()}").json()
    assert st["status"] == "queued" and st["received_height"] == seq.height
    seq.produce_block()
    st = http.get(f"/v1/actions/0x{sa.hash.hex()}").json()
    assert st["status"] == "rejected" and st["reason"] == "phase_incomplete"
    acct = http.get(f"/v1/accounts/0x{m.pubkey.hex()}").json()
    assert acct["staked"] and acct["account"]["stake"] == str(10**17)
    fresh = http.get("/v1/accounts/0x" + "ab" * 32).json()
    assert fresh == {"pubkey": "0x" + "ab" * 32, "nonce": 0, "next_nonce": 0, "staked": False,
                     "account": None}
    root = http.get("/v1/state/root").json()
    assert root["height"] == seq.height and root["chain_id"] == CHAIN_ID
    assert unhex(root["state_root"]) == seq.state.state_root()
    blk = http.get(f"/v1/blocks/{seq.height}").json()
    assert blk["receipts"][0]["reason"] == "phase_incomplete"
    metrics = http.get("/v1/metrics").text
    assert "flockchain_block_height" in metrics and "flockchain_actions_accepted_total" in metrics
    assert 'flockchain_receipts_total{reason="phase_incomplete"} 1' in metrics
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert "/v1/actions" in spec["paths"] and "/v1/da/{index}" in spec["paths"]


def test_admin_system_endpoint(sqlite_url: str, tmp_path: Path) -> None:
    app = create_node_app(config(sqlite_url, tmp_path, admin_token="s3cret"),
                          produce_blocks=False)
    with TestClient(app) as http:
        node = NodeClient(http=http)
        m = members(1)[0]
        body = {"l1_address": "0x" + m.address.hex(), "pubkey": "0x" + m.pubkey.hex(),
                "amount": str(10**17), "l1_block": 5, "log_index": 0, "tx_hash": "0x" + "11" * 32}
        with pytest.raises(NodeError) as e:
            node.submit_system("l1_deposit", body, "wrong")
        assert e.value.status == 401
        res = node.submit_system("l1_deposit", body, "s3cret")
        with pytest.raises(NodeError) as e:
            node.submit_system("l1_deposit", body, "s3cret")
        assert (e.value.status, e.value.reason) == (409, "l1_out_of_order")
        app.state.sequencer.produce_block()
        assert node.action(res.action_hash)["status"] == "included"
        hdr = {"authorization": "Bearer s3cret"}
        r = http.post("/v1/admin/batches", headers=hdr)
        assert r.status_code == 201 and r.json()["index"] == 0
        r = http.post("/v1/admin/batches/0/posted", headers=hdr,
                      json={"l1_tx_hash": "0x" + "cd" * 32})
        assert r.json()["l1_status"] == "posted"
        assert http.post("/v1/admin/batches", headers=hdr).status_code == 409


def test_body_limit_over_real_socket(sqlite_url: str, tmp_path: Path) -> None:
    """413 while streaming (no Content-Length) and up front (Content-Length too big)."""
    with start_node(config(sqlite_url, tmp_path, max_body_bytes=256 * 1024)) as node:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            big = b"\x00" * (1024 * 1024)
            r = http.post("/v1/actions", content=big,
                          headers={"content-type": "application/msgpack"})
            assert (r.status_code, r.json()["reason"]) == (413, "too_large")

            def chunks() -> Iterator[bytes]:
                for _ in range(16):
                    yield b"\x00" * 65536

            r = http.post("/v1/actions", content=chunks(),
                          headers={"content-type": "application/msgpack"})
            assert (r.status_code, r.json()["reason"]) == (413, "too_large")
            assert http.get("/v1/healthz").json()["ok"] is True


def test_fast_path_answers_like_the_routed_fallback(
        manual_node: tuple[TestClient, Sequencer]) -> None:
    """``POST /v1/actions`` skips FastAPI's stack (``NodeApp.__call__``); the documented
    route behind that stack must answer every input byte for byte the same, errors and
    unexpected exceptions included."""
    http, seq = manual_node
    app = http.app
    ms, proposers = _setup_task(seq)
    p = next(m for m in ms if m.pubkey == proposers[0])
    q = next(m for m in ms if m is not p)
    nonce = seq.pending_nonce(p.pubkey)
    good = make_action(p.seed, "commit_update", CHAIN_ID, nonce,
                       CommitUpdateBody(1, 0, b"\x01" * 32), p.pubkey).encode()
    bad_sig = bytearray(good)
    bad_sig[-1] ^= 1
    inputs = [(b"\xc1\x00", "application/msgpack"), (b"{", "application/json"),
              (good, "text/plain"), (bytes(bad_sig), "application/msgpack"),
              (b"\x00" * 70_000, "application/msgpack"),
              (make_action(q.seed, "advance", CHAIN_ID, seq.pending_nonce(q.pubkey) + 3,
                           AdvanceBody(1, 0), q.pubkey).encode(), "application/msgpack"),
              (good, "application/msgpack"), (good, "application/msgpack")]  # then duplicate

    def answers() -> list[tuple[int, str, bytes]]:
        out = []
        for body, ctype in inputs:
            r = _post(http, body, ctype)
            out.append((r.status_code, r.headers["content-type"], r.content))
        return out

    fast = answers()
    assert [s for s, _, _ in fast] == [400, 400, 400, 401, 413, 409, 202, 202]
    ingress = app.ingress
    app.ingress = None  # the routed fallback (same Ingress, behind FastAPI's middleware)
    try:
        routed = answers()
    finally:
        app.ingress = ingress
    assert routed == [fast[-1] if i == len(fast) - 2 else a for i, a in enumerate(fast)]

    def boom(*_a: object) -> None:
        raise RuntimeError("boom")

    ingress.submit = boom  # an unexpected exception: the same 500 body on both paths
    h2 = TestClient(app, raise_server_exceptions=False)  # no lifespan: the node runs already
    fast_500 = h2.post("/v1/actions", content=good, headers={"content-type":
                                                             "application/msgpack"})
    app.ingress = None
    routed_500 = h2.post("/v1/actions", content=good, headers={"content-type":
                                                               "application/msgpack"})
    app.ingress = ingress
    del ingress.submit
    assert (fast_500.status_code, fast_500.json()) == (500, {"reason": "internal_error",
                                                            "detail": "RuntimeError"})
    assert (routed_500.status_code, routed_500.content) == (500, fast_500.content)
