"""CLI (keys, replay, subcommand registry), configuration precedence, SDK helpers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from rollup import cli
from rollup.client import FlockClient, NodeClient, SubmitResult
from rollup.config import NodeConfig
from rollup.keys import Keypair, load_or_create
from rollup.schemas import AccountView, Health, dump
from rollup.wire import action_from_json, action_to_json, jsonable, wire_from_json
from sequencer import Sequencer, SequencerConfig, Store
from sequencer.store import blocks
from state_machine.actions import (
    ActionError,
    AdvanceBody,
    DepositBody,
    make_action,
    system_action,
)

from .helpers import CHAIN_ID, deposit_body, members


def test_keys_new_is_private(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k" / "client.key"
    assert cli.main(["keys", "new", "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    kp = Keypair.load(out)
    assert info["pubkey"] == "0x" + kp.pubkey.hex()
    assert cli.main(["keys", "new", "--out", str(out)]) == 1  # never overwrites silently
    assert cli.main(["keys", "show", str(out)]) == 0
    assert load_or_create(out) == kp
    fresh = load_or_create(tmp_path / "other.key")
    assert stat.S_IMODE((tmp_path / "other.key").stat().st_mode) == 0o600
    assert fresh != kp


def test_replay_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    seq = Sequencer(Store(url), b"\x01" * 32,
                    SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False)).start()
    for i, m in enumerate(members(3)):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
        seq.produce_block()
    seq.close()
    assert cli.main(["replay", "--db", url]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["blocks"] == 3
    store = Store(url)
    with store.begin() as conn:
        conn.execute(update(blocks).where(blocks.c.height == 2).values(state_root=b"\x09" * 32))
    store.close()
    assert cli.main(["replay", "--db", url]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert not rep["ok"] and rep["first_mismatch_height"] == 2
    assert rep["expected_root"] == "0x" + "09" * 32


def test_cli_registry_lists_commands() -> None:
    names = cli.command_modules()
    assert {"rollup.commands.node", "rollup.commands.keys", "rollup.commands.replay"} <= set(names)
    parser = cli.build_parser()
    args = parser.parse_args(["node", "--db", "sqlite:///x.db", "--port", "0"])
    assert args.db_url == "sqlite:///x.db" and args.port == 0 and callable(args.func)


def test_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "node.toml"
    f.write_text('chain_id = 11\nblock_time = 2.5\nport = 9000\nmax_block_actions = 7\n')
    monkeypatch.setenv("FLOCKCHAIN_BLOCK_TIME", "0.25")
    monkeypatch.setenv("FLOCKCHAIN_PORT", "9100")
    c = NodeConfig.load(f, port=9200, db_url=None)
    assert (c.chain_id, c.block_time, c.port, c.max_block_actions) == (11, 0.25, 9200, 7)
    j = tmp_path / "node.json"
    j.write_text(json.dumps({"chain_id": 12, "admin_token": "t"}))
    c = NodeConfig.load(j)
    assert (c.chain_id, c.admin_token, c.block_time) == (12, "t", 0.25)
    with pytest.raises(FileNotFoundError):
        NodeConfig.load(tmp_path / "missing.toml")
    monkeypatch.delenv("FLOCKCHAIN_BLOCK_TIME")
    assert NodeConfig.load().block_time == 1.0


def test_json_wire_roundtrip() -> None:
    m = members(1)[0]
    sa = make_action(m.seed, "advance", CHAIN_ID, 3, AdvanceBody(1, 2), m.pubkey)
    assert action_from_json(action_to_json(sa)) == sa
    dep = system_action("l1_deposit", CHAIN_ID, 0, DepositBody(b"\x01" * 20, b"\x02" * 32,
                                                                10**17, 5, 1, b"\x03" * 32))
    j = action_to_json(dep)
    assert j["envelope"]["body"]["amount"] == str(10**17)
    j["envelope"]["body"]["amount"] = hex(10**17)  # hex u256 accepted too
    assert action_from_json(j) == dep
    with pytest.raises(ActionError) as e:
        wire_from_json({"envelope": {"type": "advance", "body": {}}, "signature": "0xq"})
    assert e.value.reason == "malformed"
    assert jsonable({"stake": 5, "x": b"\x01", "rewards": [[b"\x02", (7).to_bytes(32, "big")]]}) \
        == {"stake": 5, "x": "0x01", "rewards": [["0x02", "0x" + "00" * 31 + "07"]]}
    # a u256 the wire carries as 32-byte bin survives jsonable -> wire_from_json
    j = action_to_json(dep)
    j["envelope"]["body"]["amount"] = jsonable(dep.action.body.to_wire())["amount"]
    assert action_from_json(j) == dep


def test_sdk_retries_connection_errors_and_salts(tmp_path: Path) -> None:
    calls = {"n": 0}
    ack = {"action_hash": "0x" + "ab" * 32, "ack": "0x" + "cd" * 64, "received_height": 4,
           "duplicate": False}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise httpx.ConnectError("node restarting")
        if request.url.path == "/v1/accounts/0x" + kp.pubkey.hex():  # the server's models
            return httpx.Response(200, json=dump(AccountView(
                pubkey=kp.pubkey, nonce=5, next_nonce=5, staked=False, account=None)))
        if request.url.path == "/v1/healthz":
            return httpx.Response(200, json=dump(Health(
                ok=True, status="ok", chain_id=CHAIN_ID, height=0, block_hash=b"\0" * 32,
                sequencer_pubkey=b"\1" * 32, mempool=0, max_body_bytes=1024, l1_cursor=None)))
        assert request.headers["content-type"] == "application/msgpack"
        return httpx.Response(202, json=ack)

    kp = Keypair.generate()
    http = httpx.Client(base_url="http://node", transport=httpx.MockTransport(handler))
    node = NodeClient(http=http, backoff=0.001)
    me = FlockClient(node, kp)
    res = me.advance(1, 0)
    assert isinstance(res, SubmitResult) and res.received_height == 4
    assert calls["n"] == 5  # 2 failures + nonce + chain id + submit
    assert me._nonce == 6
    # salts: deterministic from the key, distinct per (kind, task, epoch)
    assert me.salt("update", 1, 0) == FlockClient(node, kp).salt("update", 1, 0)
    assert len({me.salt(k, t, e) for k in ("update", "vote") for t in (1, 2)
                for e in (0, 1)}) == 8


def test_keypair_env_seed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rollup.client import keypair_from_env_or_file

    seed = os.urandom(32)
    monkeypatch.setenv("FLOCKCHAIN_CLIENT_SEED", "0x" + seed.hex())
    assert keypair_from_env_or_file(tmp_path / "unused.key").seed == seed
    assert not (tmp_path / "unused.key").exists()


def test_sdk_commitments_bind_what_the_chain_protocol_says() -> None:
    """The SDK asks the node which protocol its chain runs (``/v1/healthz``; a node that
    predates the field answers without it: protocol 1) and binds its key, task and epoch
    into every commitment from protocol 2 on, exactly as the STF opens them."""
    from state_machine.commitments import CommitBinding
    from state_machine.constants import CURRENT_PROTOCOL, PROTOCOL_V1

    def node_running(protocol: int | None) -> NodeClient:
        def handler(request: httpx.Request) -> httpx.Response:
            body = dump(Health(ok=True, status="ok", chain_id=CHAIN_ID, height=0,
                               block_hash=b"\0" * 32, sequencer_pubkey=b"\1" * 32, mempool=0,
                               max_body_bytes=1024, l1_cursor=None))
            if protocol is None:
                body.pop("protocol")
            else:
                body["protocol"] = protocol
            return httpx.Response(200, json=body)

        http = httpx.Client(base_url="http://node", transport=httpx.MockTransport(handler))
        return NodeClient(http=http, backoff=0.001)

    kp = Keypair.generate()
    assert FlockClient(node_running(None), kp).binding(1, 0) is None
    assert FlockClient(node_running(PROTOCOL_V1), kp).binding(1, 0) is None
    me = FlockClient(node_running(CURRENT_PROTOCOL), kp)
    assert me.protocol == CURRENT_PROTOCOL
    assert me.binding(3, 4) == CommitBinding(kp.pubkey, 3, 4)
