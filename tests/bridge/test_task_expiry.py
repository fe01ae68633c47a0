"""Issue 11, F-10 end to end (eth-tester; anvil marked): a task whose genesis never comes
expires on L2, and the existing refund proof path pays its owner the whole escrow.

The attack it closes: nobody (or a griefer who knows the model hash is unpublishable)
ever starts the task; its escrow used to be locked forever, since L1 refunds only a
finished task. ``TASK_IDLE_BLOCKS`` is shortened here so the test need not produce a
day of blocks; the rule is the one the STF runs (``tests/state_machine/test_lifecycle.py``
checks it at the real constant)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from l1_backends import LocalVerifier, l1_web3
from web3 import Web3

import state_machine.lifecycle as lifecycle
from bridge import l1
from bridge.deploy import DeployParams, bond_sequencer, deploy_all
from bridge.poster import BatchPoster
from bridge.settlement import refund_task
from bridge.watcher import L1Watcher
from devtools import l1 as dev_l1
from rollup.ports import InProcessPorts
from sequencer import Sequencer, SequencerConfig, Store
from sequencer.blocks import block_due
from state_machine.crypto import keccak256
from state_machine.tasks import TaskParams

CHAIN_ID = 7
IDLE = 6
PARAMS = DeployParams(challenge_period=600, resolution_delay=60, resolution_window=300,
                      unbond_period=2_000, l2_block_time=0.001)


@pytest.fixture(params=["eth-tester", pytest.param("anvil", marks=pytest.mark.anvil)])
def w3(request: pytest.FixtureRequest) -> Iterator[Web3]:
    with l1_web3(request.param) as w:
        yield w


def test_task_without_genesis_expires_and_the_owner_gets_the_whole_escrow(
        w3, tmp_path, monkeypatch):
    monkeypatch.setattr(lifecycle, "TASK_IDLE_BLOCKS", IDLE)
    owner, seq_addr, task_owner = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[7]
    dep = deploy_all(w3, owner, seq_addr, PARAMS)
    bond_sequencer(w3, dep, seq_addr)
    rm = dep.contract(w3, "RewardManager")
    genesis = keccak256(b"a model nobody will ever publish")
    params = TaskParams("softmax", 16, 5, 1, genesis)
    price = rm.functions.taskPrice(3).call()
    l1.send(w3, rm.functions.createTask(b"\x33" * 32, 3, 9000, params.encode()), task_owner,
            value=price)
    escrow = price - PARAMS.base_fee
    assert rm.functions.task(1).call()[2] == escrow

    seq = Sequencer(Store(f"sqlite:///{tmp_path}/seq.db"), b"\x05" * 32,
                    SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False),
                    clock=itertools.count(1_700_000_000).__next__).start()
    try:
        ports = InProcessPorts(seq)
        L1Watcher(w3, dep, ports, confirmations=0).poll()
        seq.produce_block()
        task = seq.state.tasks[1]
        assert task.idle_deadline == 1 + IDLE and task.status == 0
        while seq.state.tasks[1].status == 0:  # the sequencer keeps blocks coming ...
            assert block_due(seq.state)  # ... because the idle deadline is pending
            seq.produce_block()
        task = seq.state.tasks[1]
        assert (task.status, task.charged, seq.state.height) == (2, 0, IDLE + 2)
        BatchPoster(w3, dep, seq_addr, ports).post_pending()
        verifier = LocalVerifier(seq, w3, dep, [], CHAIN_ID, w3.eth.accounts[9])
        assert verifier.step() == [(0, "ok")]  # every verifier derives the same expiry
        dev_l1.advance_time(w3, PARAMS.challenge_period + 1)
        treasury = dep.contract(w3, "RewardTreasury").address
        before = (w3.eth.get_balance(task_owner), w3.eth.get_balance(treasury))
        out = refund_task(w3, dep, task_owner, ports.task_proof(0, 1), 0)
        assert (out["refund"], out["treasury"]) == (escrow, 0)
        assert w3.eth.get_balance(rm.address) == 0  # the whole escrow left the manager ...
        assert w3.eth.get_balance(treasury) == before[1]  # ... none of it as a fee
        got = w3.eth.get_balance(task_owner) - before[0]
        assert escrow - 10**16 < got <= escrow  # to the owner, less its gas
    finally:
        seq.close()
