"""A node opening an existing chain adopts its chain id unless told otherwise (so
``flockchain node --db sqlite:///demo.db`` serves the demo's chain)."""

from __future__ import annotations

import httpx
import pytest

from rollup.config import NodeConfig
from rollup.node import start_node
from sequencer.errors import RecoveryError


def test_node_adopts_the_databases_chain_id(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FLOCKCHAIN_CHAIN_ID", raising=False)
    db = f"sqlite:///{tmp_path}/demo.db"
    key = tmp_path / "seq.key"
    with start_node(NodeConfig(db_url=db, chain_id=31_337, port=0, sequencer_key_file=key,
                               block_time=0.02)) as node:
        node.sequencer.produce_block()
        height = node.sequencer.height
    with start_node(NodeConfig.load(None, db_url=db, port=0, sequencer_key_file=key,
                                    chain_id=None)) as node:  # like `flockchain node --db`
        h = httpx.get(node.url + "/v1/healthz").json()
        assert h["chain_id"] == 31_337 and h["height"] >= height
        assert httpx.get(node.url + "/explorer/").status_code == 200
    with pytest.raises(RecoveryError, match="belongs to chain 31337, not 1"):  # explicit id
        start_node(NodeConfig(db_url=db, chain_id=1, port=0, sequencer_key_file=key))
    monkeypatch.setenv("FLOCKCHAIN_CHAIN_ID", "5")  # the environment is explicit too
    with pytest.raises(RecoveryError):
        start_node(NodeConfig.load(None, db_url=db, port=0, sequencer_key_file=key))


def test_fresh_database_keeps_the_default(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FLOCKCHAIN_CHAIN_ID", raising=False)
    with start_node(NodeConfig(db_url=f"sqlite:///{tmp_path}/new.db", port=0,
                               sequencer_key_file=tmp_path / "k")) as node:
        assert node.sequencer.chain_id == NodeConfig().chain_id
