"""A small real chain with attackers, for the explorer and model-export tests.

Why this way: a real node (uvicorn on a free port, SQLite), real clients (``ClientAgent``
training the task's torch model on non-IID digits, two of them attacking) and the real
STF, but blocks are produced by the test (``produce_blocks=False``) with two-block phase
windows, so three epochs take seconds and the chain is the same on every run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.helpers import deposit_body, member

from federated.client import ClientAgent
from federated.data import DataSpec
from federated.models import num_params, spec_hash
from federated.roles import ClientProfile
from federated.train import init_global
from rollup.client import FlockClient, NodeClient
from rollup.config import NodeConfig
from rollup.node import NodeHandle, start_node
from state_machine.actions import TaskCreatedBody
from state_machine.constants import FEE_PER_EPOCH
from state_machine.crypto import keccak256
from state_machine.tasks import TaskParams

CHAIN_ID = 7
TASK_ID = 1
MODEL = "mlp"
SCALE_BITS = 12
NORM_BOUND = 40_000  # v2 verdicts: honest clients clip to it; the boosted flipper exceeds it
BEHAVIOURS = ("sign_flip", "lazy") + ("honest",) * 8
WINDOW = 2


@dataclass
class Chain:
    node: NodeHandle
    agents: list[ClientAgent]
    behaviour: dict[str, str] = field(default_factory=dict)  # 0x-pubkey -> behaviour

    @property
    def url(self) -> str:
        return self.node.url

    def attackers(self) -> list[str]:
        return [pk for pk, b in self.behaviour.items() if b != "honest"]


def _params(max_epochs: int) -> tuple[TaskParams, Any]:
    genesis = init_global(MODEL, 1, SCALE_BITS)
    params = TaskParams(
        model=MODEL, num_params=num_params(MODEL), proposers_per_epoch=7, f=2,
        genesis_model_hash=keccak256(genesis.astype("<i4").tobytes()), voters_per_epoch=3,
        scale_bits=SCALE_BITS, commit_window=WINDOW, reveal_window=WINDOW,
        vote_commit_window=WINDOW, vote_reveal_window=WINDOW, norm_bound=NORM_BOUND)
    return params, genesis


def _agents(node: NodeClient) -> tuple[list[ClientAgent], dict[str, str]]:
    agents, behaviour = [], {}
    n = len(BEHAVIOURS)
    for i, beh in enumerate(BEHAVIOURS):
        m = member(f"explorer{i}")
        train = DataSpec.parse(f"digits:dirichlet:alpha=0.5:client={i}:of={n}:seed=1")
        test = DataSpec.parse(f"digits:voter:voter={i % 2}:of=2:seed=1")
        params = {"scale": 20.0} if beh == "sign_flip" else {}
        prof = ClientProfile(f"client{i:02d}", beh, train, test, seed=100 + i,
                             local_epochs=10, lr=0.5, params=params)
        agents.append(ClientAgent(FlockClient(node, m.key), prof))
        behaviour["0x" + m.pubkey.hex()] = beh
    return agents, behaviour


def build_chain(tmp: Path, max_epochs: int = 3) -> Chain:
    """Start a node and run ``max_epochs`` epochs of a task with two attackers."""
    conf = NodeConfig(db_url=f"sqlite:///{tmp}/chain.db", chain_id=CHAIN_ID, port=0,
                      sequencer_key_file=tmp / "seq.key", log_level="warning")
    # blocks are stepped by hand, one chain second apart (protocol 3 windows wait on time)
    node = start_node(conf, clock=itertools.count(1_700_000_000).__next__, produce_blocks=False)
    seq = node.sequencer
    client = NodeClient(node.url)
    agents, behaviour = _agents(client)
    for i in range(len(agents)):
        seq.submit_l1_event("l1_deposit", deposit_body(member(f"explorer{i}"), 10 + i))
    params, genesis = _params(max_epochs)
    seq.submit_l1_event("l1_task_created", TaskCreatedBody(
        TASK_ID, b"\x22" * 20, spec_hash(MODEL), max_epochs, 9_900, params.encode(),
        max_epochs * FEE_PER_EPOCH, 100, 0, b"\x44" * 32))
    seq.produce_block()
    agents[0].client.publish_genesis(TASK_ID, genesis)
    seq.produce_block()
    run_epochs(node, agents)
    return Chain(node, agents, behaviour)


def run_epochs(node: NodeHandle, agents: list[ClientAgent], limit: int = 400) -> None:
    """Step every client, then produce a block, until the task stops running; cut a batch
    after every epoch and mark all but the last one posted."""
    seq = node.sequencer
    epochs_seen = 0
    for _ in range(limit):
        task = seq.state.tasks[TASK_ID]
        if task.status != 0:  # TASK_RUNNING
            break
        for a in agents:
            a.step()
        seq.produce_block()
        if seq.state.tasks[TASK_ID].epochs_run > epochs_seen:
            epochs_seen = seq.state.tasks[TASK_ID].epochs_run
            b = seq.make_batch()
            if b is not None and b.idx > 0:
                seq.mark_posted(b.idx - 1, bytes([b.idx]) * 32, "posted")
    else:
        raise AssertionError("the task did not finish")
    seq.produce_block()
    seq.make_batch()
