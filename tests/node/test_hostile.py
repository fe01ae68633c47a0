"""A node under hostile load (issue 12): each attack of ``bench/hostile.py``, smaller, with
the targets asserted; plus the unit rules behind them (bounded decoding, admission, replay
guard, quotas, HTTP limits, admin surface, health, integer ranges)."""

from __future__ import annotations

import importlib.util
import itertools
import socket
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from rollup.config import NodeConfig
from rollup.node import create_node_app, start_node
from sequencer import Sequencer, SequencerConfig, Store, SubmitError
from sequencer.bounded import check_json_shape, check_msgpack_shape
from sequencer.mempool_guard import Limits
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    PublishGenesisBody,
    RevealUpdateBody,
    make_action,
)

from .helpers import CHAIN_ID, deposit_body, members, task_body, task_params

ROOT = Path(__file__).resolve().parents[2]
SEQ_SEED = b"\x05" * 32


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_hostile", ROOT / "bench" / "hostile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def open_seq(url: str, **cfg: object) -> Sequencer:
    conf = SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False, **cfg)  # type: ignore[arg-type]
    tick = itertools.count(1_700_000_000).__next__  # one second a block
    return Sequencer(Store(url), SEQ_SEED, conf, clock=tick).start()


def refused(seq: Sequencer, raw: bytes) -> str:
    with pytest.raises(SubmitError) as e:
        seq.submit(raw)
    return e.value.reason


def running_epoch(seq: Sequencer, d: int = 8, n: int = 6) -> tuple[list, list[bytes]]:
    """Stake ``n`` members, create task 1, publish genesis, open epoch 0."""
    ms = members(n)
    for i, m in enumerate(ms):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
    genesis = np.zeros(d, np.int32)
    seq.submit_l1_event("l1_task_created", task_body(1, task_params(d, genesis, window=50), 100))
    seq.produce_block()
    seq.submit(make_action(ms[0].seed, "publish_genesis", CHAIN_ID, 0,
                           PublishGenesisBody(1, genesis.tobytes()), ms[0].pubkey).encode())
    seq.produce_block()
    seq.produce_block()
    assert seq.state.tasks[1].phase == "update_commit"
    return ms, seq.state.epochs[(1, 0)].proposers


# ---------------------------------------------------------------------- bounded decoding


def test_msgpack_shape_refuses_before_building_objects() -> None:
    body = bench.nested_msgpack(60 * 2**20)
    tracemalloc.start()
    with pytest.raises(SubmitError) as e:
        check_msgpack_shape(body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert e.value.reason == "too_complex" and e.value.status == 400
    assert peak < 64 * 1024  # nothing proportional to the body was allocated
    # a wide tree of small maps, each within the per-container limit
    tree = b"\x8f" + b"".join(b"\xa1" + bytes([97 + i]) + b"\x8f" + b"".join(
        b"\xa1" + bytes([97 + j]) + b"\x80" for j in range(15)) for i in range(15))
    with pytest.raises(SubmitError) as e:
        check_msgpack_shape(tree)
    assert e.value.reason == "too_complex"
    deep = b"\x81\xa1a" * 10 + b"\xc0"
    with pytest.raises(SubmitError) as e:
        check_msgpack_shape(deep)
    assert e.value.reason == "too_complex"
    for bad in (b"\xca\x00\x00\x00\x00", b"\xd4\x01\x00", b"\xc4\x05ab", b"\x90\x90", b""):
        with pytest.raises(SubmitError) as e:
            check_msgpack_shape(bad)
        assert e.value.reason == "malformed", bad
    m = members(1)[0]
    reveal = make_action(m.seed, "reveal_update", CHAIN_ID, 3,
                         RevealUpdateBody(1, 0, b"\x01" * 2**20, b"\x02" * 32), m.pubkey)
    check_msgpack_shape(reveal.encode())  # a real action passes, payload skipped by length


def test_json_shape_bounds_containers_and_nesting() -> None:
    with pytest.raises(SubmitError) as e:
        check_json_shape(b"[" * 100_000 + b"]" * 100_000)
    assert e.value.reason == "too_complex"
    check_json_shape(b'{"envelope": {"body": {}}, "signature": "0x"}')


@pytest.fixture
def live(sqlite_url: str, tmp_path: Path) -> Iterator[object]:
    cfg = NodeConfig(db_url=sqlite_url, chain_id=CHAIN_ID, port=0, block_time=0.05,
                     sequencer_key_file=tmp_path / "seq.key", admin_token="t" * 32,
                     idle_timeout=1.0, header_timeout=1.0, body_grace=1.0, max_connections=64)
    with start_node(cfg) as node:
        yield node


def test_nested_bodies_are_400_and_health_stays_fast(live: object) -> None:
    url = live.url  # type: ignore[attr-defined]
    with bench.HealthProbe(url, period=0.05) as probe:
        for body, ctype in ((bench.nested_msgpack(8 * 2**20), "application/msgpack"),
                            (bench.nested_json(8 * 2**20), "application/json"),
                            (b"[" * 50_000 + b"]" * 50_000, "application/json")):
            status, reason, _ = bench.send_body(url, body, ctype)
            assert (status, reason) == (400, "too_complex")
    assert probe.failures == 0 and probe.latencies
    assert max(probe.latencies) < 1.0


@pytest.mark.slow
def test_nested_60mib_body_memory_bound(tmp_path: Path) -> None:
    """The issue's figure, on a node subprocess: peak RSS growth <= 2x the body."""
    (r_msgpack, r_json) = bench.attack_nested(tmp_path, mib=60)
    for r in (r_msgpack, r_json):
        assert r["status"] == 400 and r["reason"] == "too_complex", r
        assert r["growth_over_body"] <= 2.0, r
        assert r["healthz_max_s"] < 1.0, r


# ---------------------------------------------------------------------- admission


def test_unstaked_keys_cannot_make_the_node_store_junk(db_url: str) -> None:
    """On SQLite and PostgreSQL."""
    seq = open_seq(db_url)
    try:
        running_epoch(seq)
        import random

        payloads = bench.junk_actions(200, 10, 8, random.Random(3))
        statuses: dict[str, int] = {}
        for p in payloads:
            try:
                seq.submit(p)
                statuses["ack"] = statuses.get("ack", 0) + 1
            except SubmitError as exc:
                statuses[exc.reason] = statuses.get(exc.reason, 0) + 1
        junk = {make_action(bench.seed_of("junk", k), "advance", CHAIN_ID, 0, AdvanceBody(1, 0),
                            bench.public_key(bench.seed_of("junk", k))).action.sender
                for k in range(200)}
        with seq.store.engine.connect() as conn:
            from sqlalchemy import select

            from sequencer.store import actions

            q = select(actions.c.sender, actions.c.size, actions.c.type)
            rows = [r for r in conn.execute(q) if bytes(r[0]) in junk]
        # what got through: only advances (bounded per task and by the unstaked budget)
        assert {r[2] for r in rows} <= {"advance"}, statuses
        assert len(rows) <= Limits().unstaked_burst, statuses
        assert sum(r[1] for r in rows) <= 10**6 // 50  # 2,000 actions here: <= 20 kB
        assert statuses.get("rate_limited", 0) + statuses.get("mempool_full", 0) > 0
    finally:
        seq.close()


def test_admission_rules_are_the_stf_rules(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url)
    try:
        ms, proposers = running_epoch(seq)
        outsider = members(1, prefix="outsider")[0]
        non_proposer = next(m for m in ms if m.pubkey not in proposers)
        p = next(m for m in ms if m.pubkey in proposers)

        def act(m: object, typ: str, body: object, ahead: int = 0) -> bytes:
            """Signed with the sender's next nonce (+ ``ahead``)."""
            nonce = seq.pending_nonce(m.pubkey) + ahead  # type: ignore[attr-defined]
            return make_action(m.seed, typ, CHAIN_ID, nonce, body, m.pubkey).encode()  # type: ignore[attr-defined]

        assert refused(seq, act(outsider, "commit_update", CommitUpdateBody(1, 0, b"\x01" * 32))) \
            == "not_selected"
        assert refused(seq, act(non_proposer, "commit_update",
                                CommitUpdateBody(1, 0, b"\x01" * 32))) == "not_selected"
        # an epoch no block can reach before inclusion
        assert refused(seq, act(p, "advance", AdvanceBody(1, 2**64 - 1))) == "wrong_epoch"
        assert refused(seq, act(p, "commit_update", CommitUpdateBody(1, 5, b"\x01" * 32))) \
            == "wrong_epoch"
        # a reveal (the big upload) needs the sender's commitment, applied or queued
        reveal = RevealUpdateBody(1, 0, b"\x00" * 16, b"\x02" * 32)
        assert refused(seq, act(p, "reveal_update", reveal)) == "wrong_window"
        seq.submit(act(non_proposer, "advance", AdvanceBody(1, 0)))  # the phase may close
        assert refused(seq, act(p, "reveal_update", reveal)) == "not_committed"
        seq.submit(act(p, "commit_update", CommitUpdateBody(1, 0, b"\x01" * 32)))
        seq.submit(act(p, "reveal_update", reveal))  # its commitment is queued ahead of it
        assert refused(seq, act(p, "commit_update", CommitUpdateBody(1, 0, b"\x03" * 32))) \
            == "already_committed"
        assert refused(seq, act(p, "reveal_update", reveal)) == "already_revealed"
        # a genesis only with the declared hash, and never a second one queued
        assert refused(seq, act(outsider, "publish_genesis", PublishGenesisBody(1, b"\x00" * 32))) \
            == "wrong_window"
        # vote range: the STF's reason (was invalid_value in the mempool, invalid_body in STF)
        from state_machine.actions import RevealVoteBody

        with pytest.raises(SubmitError) as e:
            seq.submit(act(p, "reveal_vote", RevealVoteBody(1, 0, 10001, 0, b"\x00" * 32)))
        assert (e.value.reason, e.value.status) == ("invalid_body", 400)
    finally:
        seq.close()


def test_genesis_checked_against_a_queued_task(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url)
    try:
        m = members(1)[0]
        genesis = np.arange(8, dtype=np.int32)
        seq.submit_l1_event("l1_task_created", task_body(1, task_params(8, genesis), 5))
        wrong = make_action(m.seed, "publish_genesis", CHAIN_ID, 0,
                            PublishGenesisBody(1, np.zeros(8, np.int32).tobytes()), m.pubkey)
        assert refused(seq, wrong.encode()) == "hash_mismatch"  # task not even included yet
        right = make_action(m.seed, "publish_genesis", CHAIN_ID, 0,
                            PublishGenesisBody(1, genesis.tobytes()), m.pubkey)
        seq.submit(right.encode())
        other = members(2)[1]
        again = make_action(other.seed, "publish_genesis", CHAIN_ID, 0,
                            PublishGenesisBody(1, genesis.tobytes()), other.pubkey)
        assert refused(seq, again.encode()) == "wrong_window"  # one queued genesis per task
        seq.produce_block()
        seq.produce_block()
        assert seq.state.tasks[1].phase == "waiting_clients"  # nobody staked yet
        # an unstaked key cannot commit to the coming epoch: it can never be selected
        c = make_action(other.seed, "commit_update", CHAIN_ID, 0,
                        CommitUpdateBody(1, 0, b"\x01" * 32), other.pubkey)
        assert refused(seq, c.encode()) == "not_staked"
        # ... and an advance cannot open an epoch nobody can be selected for
        a = make_action(other.seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0), other.pubkey)
        assert refused(seq, a.encode()) == "nothing_to_advance"
        seq.submit_l1_event("l1_deposit", deposit_body(other, 50))  # a deposit is queued
        seq.submit(c.encode())  # now it could be selected
    finally:
        seq.close()


def test_rejected_bytes_are_never_acked_again_even_after_restart(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url)
    ms, proposers = running_epoch(seq)
    p = next(m for m in ms if m.pubkey in proposers)
    nonce = seq.pending_nonce(p.pubkey)
    bad = make_action(p.seed, "advance", CHAIN_ID, nonce, AdvanceBody(1, 0), p.pubkey).encode()
    seq.submit(bad)
    seq.produce_block()
    st = seq.action_status(make_action(p.seed, "advance", CHAIN_ID, nonce, AdvanceBody(1, 0),
                                       p.pubkey).hash)
    assert st is not None and st["reason"] == "phase_incomplete"
    for _ in range(12):
        assert refused(seq, bad) == "already_rejected"
    seq.close()
    seq = open_seq(sqlite_url)  # the guard is rebuilt from the store
    try:
        assert refused(seq, bad) == "already_rejected"
        # the nonce is still free for a new action
        good = make_action(p.seed, "commit_update", CHAIN_ID, nonce,
                           CommitUpdateBody(1, 0, b"\x09" * 32), p.pubkey).encode()
        a1 = seq.submit(good)
        a2 = seq.submit(good)
        assert a2.duplicate and a2.signature == a1.signature
        seq.produce_block()
        assert seq.submit(good).signature == a1.signature  # still the first ack
    finally:
        seq.close()


def test_replay_over_http(tmp_path: Path) -> None:
    r = bench.attack_replay(tmp_path, others=20)
    assert r["ok"], r


def test_quotas_per_sender_and_mempool(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url, limits=Limits(sender_pending_max=2, mempool_max=3))
    try:
        seq.submit_l1_event("l1_task_created", task_body(1, task_params(
            4, np.zeros(4, np.int32)), 5))
        ms = members(3)
        seq.submit(make_action(ms[0].seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0),
                               ms[0].pubkey).encode())
        seq.submit(make_action(ms[0].seed, "advance", CHAIN_ID, 1, AdvanceBody(1, 0),
                               ms[0].pubkey).encode())
        with pytest.raises(SubmitError) as e:
            seq.submit(make_action(ms[0].seed, "advance", CHAIN_ID, 2, AdvanceBody(1, 0),
                                   ms[0].pubkey).encode())
        assert (e.value.reason, e.value.status) == ("mempool_full", 429)
        with pytest.raises(SubmitError) as e:
            seq.submit(make_action(ms[1].seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0),
                                   ms[1].pubkey).encode())
        assert e.value.reason == "mempool_full"  # 3 queued (task + 2 advances)
    finally:
        seq.close()


# ---------------------------------------------------------------------- HTTP limits


def test_big_headers_get_431(live: object) -> None:
    port = int(live.url.rsplit(":", 1)[1])  # type: ignore[attr-defined]
    assert bench.raw_request(port, bench.big_header(2**20)) == 431
    many = b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
    assert bench.raw_request(port, many) == 431
    ok = b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 8000 + b"\r\n\r\n"
    assert bench.raw_request(port, ok) == 200


def test_idle_and_slow_connections_are_closed_while_new_clients_are_served(
        live: object) -> None:
    url = live.url  # type: ignore[attr-defined]
    port = int(url.rsplit(":", 1)[1])
    t0 = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]  # > cap 64
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /v1/healthz HTTP/1.1\r\nX-Slow: ")  # headers never finish
    for _ in range(5):
        assert httpx.get(url + "/v1/healthz", timeout=5).status_code == 200
    for s in [*idle, slow]:
        s.settimeout(5)
        try:
            data = s.recv(200)
            while data and not data.endswith(b"\r\n\r\n") and b"timeout" not in data.lower():
                more = s.recv(200)
                if not more:
                    break
                data += more
        except ConnectionResetError:
            data = b""
        s.close()
    assert time.monotonic() - t0 < 1.0 + 3.0  # idle timeout 1 s, plus slack
    assert httpx.get(url + "/v1/healthz", timeout=5).status_code == 200


# ---------------------------------------------------------------------- admin, ints, health


def test_admin_surface(sqlite_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "secrets" / "admin.token"
    cfg = NodeConfig(db_url=sqlite_url, chain_id=CHAIN_ID, sequencer_key_file=tmp_path / "k",
                     admin_token_file=token_file, admin_failures_per_minute=3)
    app = create_node_app(cfg)
    token = token_file.read_text().strip()
    assert len(token) == 64 and token_file.stat().st_mode & 0o077 == 0  # created, 0600
    with TestClient(app) as http:
        ok = {"authorization": f"Bearer {token}"}
        assert http.post("/v1/admin/batches", headers=ok).status_code in (201, 409)
        bad = {"authorization": "Bearer nope"}
        codes = [http.post("/v1/admin/batches", headers=bad).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        # once the failure budget is spent even the right token waits (no guessing through)
        r = http.post("/v1/admin/batches", headers=ok)
        assert (r.status_code, r.json()["reason"]) == (429, "rate_limited")
    # not loopback: refused unless admin_remote
    remote = create_node_app(NodeConfig(db_url=sqlite_url, chain_id=CHAIN_ID,
                                        sequencer_key_file=tmp_path / "k", admin_token="x" * 32))
    with TestClient(remote, client=("10.1.2.3", 5555)) as http:
        r = http.post("/v1/admin/batches", headers={"authorization": "Bearer " + "x" * 32})
        assert r.status_code == 403
        assert http.get("/v1/healthz").status_code == 200


def test_node_cli_takes_no_token_on_argv() -> None:
    from rollup.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["node", "--admin-token", "secret"])


def test_integers_beyond_bigint_are_400_on_every_database(db_url: str, tmp_path: Path) -> None:
    app = create_node_app(NodeConfig(db_url=db_url, chain_id=CHAIN_ID,
                                     sequencer_key_file=tmp_path / "k", admin_token="y" * 32))
    big = 2**63
    with TestClient(app) as http:
        for path in (f"/v1/blocks/{big}", f"/v1/batches/{big}", f"/v1/da/{big}",
                     f"/v1/tasks/{big}", f"/v1/tasks/1/epochs/{big}", f"/v1/tasks/{big}/proof",
                     f"/v1/accounts?batch={big}", f"/v1/blocks/{2**64 + 5}", "/v1/blocks/-1"):
            r = http.get(path)
            assert (r.status_code, r.json()["reason"]) == (400, "malformed"), path
        assert http.get(f"/v1/blocks/{big - 1}").status_code == 404
        hdr = {"authorization": "Bearer " + "y" * 32}
        r = http.post(f"/v1/admin/batches/{big}/posted", headers=hdr, json={})
        assert r.status_code == 400
        # l1_status: VARCHAR(16) on both databases, checked before the query
        http.app.state.sequencer.produce_block()  # type: ignore[attr-defined]
        assert http.post("/v1/admin/batches", headers=hdr).status_code == 201
        r = http.post("/v1/admin/batches/0/posted", headers=hdr, json={"status": "x" * 40})
        assert (r.status_code, r.json()["reason"]) == (400, "malformed")
        r = http.post("/v1/admin/batches/0/posted", headers=hdr, json={"status": "x" * 16})
        assert r.status_code == 200 and r.json()["l1_status"] == "x" * 16
        deep = b"[" * 100_000 + b"]" * 100_000
        r = http.post("/v1/admin/batches/0/posted", headers=hdr, content=deep)
        assert r.status_code in (400, 413)


def test_health_degrades_when_writes_fail_and_recovers(sqlite_url: str, tmp_path: Path) -> None:
    app = create_node_app(NodeConfig(db_url=sqlite_url, chain_id=CHAIN_ID,
                                     sequencer_key_file=tmp_path / "k"), produce_blocks=False)
    seq: Sequencer = app.state.sequencer
    with TestClient(app) as http:
        assert http.get("/v1/healthz").json()["status"] == "ok"
        from sqlalchemy.exc import OperationalError

        def broken(rows: object) -> None:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))

        seq._writer._w.insert_actions = broken  # type: ignore[method-assign, union-attr]
        m = members(1)[0]
        with pytest.raises(SubmitError) as e:
            seq.submit_l1_event("l1_deposit", deposit_body(m, 5))
        assert e.value.reason == "storage_error"
        h = http.get("/v1/healthz")
        assert h.status_code == 503 and h.json()["status"] == "degraded"
        assert "disk is full" in h.json()["last_write_error"]
        del seq._writer._w.insert_actions  # type: ignore[union-attr]  # the disk has room again
        seq.submit_l1_event("l1_deposit", deposit_body(m, 6))
        assert http.get("/v1/healthz").status_code == 200


def test_starts_read_only_when_the_database_is_not_writable(tmp_path: Path) -> None:
    db = tmp_path / "chain.db"
    seq = open_seq(f"sqlite:///{db}")
    seq.submit_l1_event("l1_task_created", task_body(1, task_params(4, np.zeros(4, np.int32)), 5))
    seq.produce_block()
    seq.close()
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    app = create_node_app(NodeConfig(db_url=ro, chain_id=CHAIN_ID,
                                     sequencer_key_file=tmp_path / "k"))
    with TestClient(app) as http:
        h = http.get("/v1/healthz")
        assert h.status_code == 503 and h.json()["status"] == "read_only"
        assert http.get("/v1/tasks/1").status_code == 200  # reads work
        m = members(1)[0]
        raw = make_action(m.seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0), m.pubkey).encode()
        r = http.post("/v1/actions", content=raw, headers={"content-type": "application/msgpack"})
        assert (r.status_code, r.json()["reason"]) == (503, "read_only")


def test_repeated_write_failures_log_one_traceback_per_period(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from sequencer.ratelog import RateLimitedLog

    rl = RateLimitedLog(logging.getLogger("flockchain.test"), every_s=60.0)
    with caplog.at_level(logging.ERROR, logger="flockchain.test"):
        for _ in range(1000):
            try:
                raise OSError("No space left on device")
            except OSError:
                rl.exception("write failed")
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
    rl._last -= 61  # a period later: one line that says how many it stood for
    with caplog.at_level(logging.ERROR, logger="flockchain.test"):
        rl.error("write failed")
    assert "999 more" in caplog.records[-1].getMessage()


def test_unstaked_keeper_advances_are_not_throttled_when_useful(sqlite_url: str) -> None:
    seq = open_seq(sqlite_url, limits=Limits(unstaked_sender_burst=0, unstaked_burst=0))
    try:
        ms, proposers = running_epoch(seq)
        keeper = members(1, prefix="keeper")[0]  # no stake, like an aggregator's key
        adv = make_action(keeper.seed, "advance", CHAIN_ID, 0, AdvanceBody(1, 0),
                          keeper.pubkey).encode()
        assert refused(seq, adv) == "rate_limited"  # the phase cannot close yet
        for m in ms:
            if m.pubkey in proposers:
                seq.submit(make_action(m.seed, "commit_update", CHAIN_ID,
                                       seq.pending_nonce(m.pubkey),
                                       CommitUpdateBody(1, 0, m.pubkey), m.pubkey).encode())
        seq.produce_block()
        seq.submit(adv)  # every proposer committed: this advance closes the phase
        other = make_action(members(1, prefix="spam")[0].seed, "advance", CHAIN_ID, 0,
                            AdvanceBody(1, 0), members(1, prefix="spam")[0].pubkey).encode()
        assert refused(seq, other) == "rate_limited"  # only one free advance per task
        seq.produce_block()
        assert seq.state.tasks[1].phase == "update_reveal"
    finally:
        seq.close()


def test_slow_body_is_cut(live: object) -> None:
    port = int(live.url.rsplit(":", 1)[1])  # type: ignore[attr-defined]
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/actions HTTP/1.1\r\nHost: x\r\ncontent-type: application/msgpack"
                  b"\r\ncontent-length: 1048576\r\n\r\n" + b"\x00" * 10)
        s.settimeout(10)
        answer = s.recv(100)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - t0 < 5  # body_grace 1 s at 64 KiB/s


def test_admin_failures_elsewhere_do_not_lock_out_a_known_client() -> None:
    from types import SimpleNamespace

    from rollup.api.deps import AdminGate
    from rollup.api.errors import ApiError

    gate = AdminGate("k" * 32, allow_remote=True, per_minute=2)

    def req(host: str, token: str) -> object:
        return SimpleNamespace(client=SimpleNamespace(host=host),
                               headers={"authorization": f"Bearer {token}"})

    gate.check(req("10.0.0.1", "k" * 32))  # the bridge authenticates once
    codes = []
    for i in range(20):  # wrong tokens from many addresses drain the shared budget
        try:
            gate.check(req(f"10.9.0.{i}", "wrong"))
        except ApiError as exc:
            codes.append(exc.status)
    assert codes.count(401) == 8 and codes.count(429) == 12
    gate.check(req("10.0.0.1", "k" * 32))  # still served
    with pytest.raises(ApiError) as e:
        gate.check(req("10.0.0.2", "k" * 32))  # a new address waits for the budget
    assert e.value.status == 429
