"""Protocol 5 through the node: v2 reveals over two epochs, a stale-copy free-rider in the
second, and the independent verifier's DA replay (blobs fetched chunk by chunk from the
node) reaching the same roots, batch by batch (docs/protocol.md "Vouched aggregation and
fresh rewards")."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from fastapi.testclient import TestClient

from bridge.verifier import Verifier
from rollup import client as sdk
from rollup.client import FlockClient, NodeClient
from rollup.config import NodeConfig
from rollup.node import create_node_app
from rollup.wire import unhex
from sequencer import Sequencer
from sequencer.da import decode_da, replay_da
from state_machine.constants import CURRENT_PROTOCOL, PROTOCOL_FRESH_PAST
from state_machine.transition import genesis_state
from tests.node.helpers import CHAIN_ID, deposit_body, members, task_body, task_params

D = 1024
N = 8


def _updates(rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Non-IID honest updates (as tests/state_machine/test_fresh_past.py): a shared step,
    a per-class part shared by two clients, each epoch a new common direction + noise."""
    g = rng.normal(0, 300, D)
    cls = [rng.normal(0, 300, D) for _ in range(N // 2)]
    out = []
    for _ in range(2):
        step = rng.normal(0, 200, D)
        out.append([np.clip(g + cls[i % (N // 2)] + step + rng.normal(0, 150, D),
                            -32768, 32767).astype(np.int16) for i in range(N)])
    return out


def test_a_stale_copy_through_the_node_earns_nothing_and_da_replays(tmp_path: Path) -> None:
    assert CURRENT_PROTOCOL == PROTOCOL_FRESH_PAST
    cfg = NodeConfig(db_url=f"sqlite:///{tmp_path}/chain.db", chain_id=CHAIN_ID,
                     sequencer_key_file=tmp_path / "seq.key", port=0,
                     blob_dir=tmp_path / "blobs", block_time=0.03)  # type: ignore[arg-type]
    app = create_node_app(cfg)
    seq: Sequencer = app.state.sequencer
    rng = np.random.default_rng(11)
    ups = _updates(rng)
    with TestClient(app) as http:
        node = NodeClient(http=http)
        ms = members(N, prefix="fp")
        for i, m in enumerate(ms):
            seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
        genesis = np.zeros(D, dtype=np.int32)
        params = task_params(D, genesis, proposers=N, f=1, voters=0, window=200)
        seq.submit_l1_event("l1_task_created", task_body(1, params, 100, max_epochs=3))
        clients = {m.pubkey: FlockClient(node, m.key) for m in ms}
        node.wait_for(lambda: 1 in seq.state.tasks, what="task")
        clients[ms[0].pubkey].publish_genesis(1, genesis, wait=True)
        batches = []
        for e in range(2):
            node.wait_phase(1, "update_commit", epoch=e)
            proposers = [unhex(p) for p in node.epoch(1, e)["proposers"]]
            assert len(proposers) == N
            deltas = dict(zip(proposers, ups[e], strict=True))
            if e == 1:  # the attacker copies the victim's public epoch 0 update, 1 % jitter
                victim = ups[0][0]
                rms = float(np.sqrt(np.mean(victim.astype(np.float64) ** 2)))
                deltas[proposers[-1]] = np.clip(victim + rng.normal(0, 0.01 * rms, D),
                                                -32768, 32767).astype(np.int16)
            acks = [sdk.commit_update_v2(clients[p], 1, e, deltas[p]) for p in proposers]
            acks.append(clients[proposers[0]].advance(1, e))
            assert all(node.wait_included(a.action_hash)["status"] == "included" for a in acks)
            node.wait_phase(1, "update_reveal", epoch=e)
            acks = [sdk.reveal_update_v2(clients[p], 1, e) for p in proposers]
            acks.append(clients[proposers[0]].advance(1, e))
            assert all(node.wait_included(a.action_hash)["status"] == "included" for a in acks)
            node.wait_for(lambda e=e: node.epoch(1, e)["verdicts"], what="scores")
            b = seq.make_batch()
            assert b is not None
            batches.append(b)
        ep = seq.state.epochs[(1, 1)]
        weight = {s["pubkey"]: s["reward_weight"] for s in ep.scores}
        attacker = proposers[-1]
        assert weight[attacker] == 0 and attacker not in ep.rewards
        assert all(weight[p] > 0 for p in proposers[:-1])
        task = seq.state.tasks[1]
        assert len(task.past_updates) == N and all(e == 1 for _, e, _ in task.past_updates)
        r = http.get("/v1/tasks/1")  # the record (and its JSON) carries the public past
        assert r.status_code == 200, r.text
        past = r.json().get("past_updates")
        assert past is not None and len(past) == N, r.json()
        # the independent verifier: each batch's blobs fetched from the node, chunk-checked;
        # the second batch's close reads epoch 0's rows that its own actions never name
        verifier = SimpleNamespace(node_urls=[str(http.base_url)], http=http)
        state = genesis_state(CHAIN_ID)
        for b in batches:
            da = decode_da(node.da(b.idx))
            src = Verifier.blob_source(verifier, sorted({bytes(h) for _, _, h in da["updates"]}))
            assert src is not None
            out = replay_da(state, da, blobs=src)
            assert out.state_root == b.state_root
            state = out.state
