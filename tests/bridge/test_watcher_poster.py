"""Bridge services against a real (embedded) L1: exactly-once log injection with
confirmations and restarts, and idempotent batch posting."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from bridge.deploy import DeployParams, bond_sequencer, deploy_all
from bridge.l1 import send, send_value
from bridge.ports import BatchHeader
from bridge.poster import BatchConflict, BatchPoster
from bridge.watcher import L1Watcher
from devtools.l1 import embedded_web3, mine
from state_machine.tasks import TaskParams


class FakeSink:
    """Records injected system actions like the sequencer does (cursor = last injected)."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, object]] = []

    def l1_cursor(self):
        if not self.actions:
            return None
        b = self.actions[-1][1]
        return (b.l1_block, b.log_index)

    def submit_system(self, typ, body) -> bytes:
        self.actions.append((typ, body))
        return b"\x00" * 32


@pytest.fixture()
def chain():
    w3 = embedded_web3()
    owner, seq = w3.eth.accounts[0], Account.from_key(os.urandom(32))
    send_value(w3, owner, seq.address, 5 * 10**18)
    dep = deploy_all(w3, owner, seq.address, DeployParams(challenge_period=100))
    bond_sequencer(w3, dep, seq)
    return w3, dep, owner, seq


def _stake(w3, dep, who: str, pk: bytes) -> None:
    reg = dep.contract(w3, "StakingRegistry")
    send(w3, reg.functions.stake(pk), who, value=reg.functions.stakeAmount().call())


def test_logs_injected_in_l1_order_exactly_once_across_restarts(chain):
    w3, dep, owner, _ = chain
    sink = FakeSink()
    for i, who in enumerate(w3.eth.accounts[1:4]):
        _stake(w3, dep, who, bytes([i + 1]) * 32)
    rm = dep.contract(w3, "RewardManager")
    params = TaskParams("mlp", 10, 5, 1, b"\x01" * 32).encode()
    send(
        w3,
        rm.functions.createTask(b"\x02" * 32, 2, 9000, params),
        owner,
        value=rm.functions.taskPrice(2).call(),
    )
    w = L1Watcher(w3, dep, sink)
    assert w.poll() == 4
    types = [t for t, _ in sink.actions]
    assert types == ["l1_deposit"] * 3 + ["l1_task_created"]
    positions = [(b.l1_block, b.log_index) for _, b in sink.actions]
    assert positions == sorted(positions)
    assert sink.actions[3][1].task_params == params
    assert w.poll() == 0  # nothing new
    assert L1Watcher(w3, dep, sink).poll() == 0  # a restarted watcher resumes at the cursor
    unbond = dep.contract(w3, "StakingRegistry").functions.unbond()
    send(w3, unbond, w3.eth.accounts[2])
    assert L1Watcher(w3, dep, sink).poll() == 1 and sink.actions[-1][0] == "l1_unbond"


def test_confirmations_hold_back_recent_logs(chain):
    w3, dep, _, _ = chain
    sink = FakeSink()
    w = L1Watcher(w3, dep, sink, confirmations=3)
    _stake(w3, dep, w3.eth.accounts[1], b"\x07" * 32)
    assert w.poll() == 0  # only 0 blocks deep
    mine(w3, 3)
    assert w.poll() == 1


class FakeBatches:
    def __init__(self, batches: list[BatchHeader]) -> None:
        self.batches = batches
        self.posted: dict[int, bytes] = {}

    def cut_batch(self):
        return None

    def unposted_batches(self):
        return [b for b in self.batches if b.index not in self.posted]

    def mark_posted(self, index, tx_hash):
        self.posted[index] = tx_hash


def _batch(i: int, root: bytes) -> BatchHeader:
    return BatchHeader(i, 10 * i + 1, 10 * i + 10, bytes([i + 1]) * 32, root, b"\x09" * 32)


def test_poster_posts_in_order_and_reconciles_after_a_crash(chain):
    w3, dep, _, seq = chain
    sc = dep.contract(w3, "StateCommitment")
    src = FakeBatches([_batch(0, b"\xaa" * 32), _batch(1, b"\xbb" * 32)])
    assert BatchPoster(w3, dep, seq, src).post_pending() == [0, 1]
    assert sc.functions.nextIndex().call() == 2
    # crash after sending batch 2 but before recording it: a new poster must not resend
    src.batches.append(_batch(2, b"\xcc" * 32))
    send(w3, sc.functions.proposeBatch(2, 21, 30, b"\x03" * 32, b"\xcc" * 32, b"\x09" * 32), seq)
    assert BatchPoster(w3, dep, seq, src).post_pending() == []
    assert 2 in src.posted and sc.functions.nextIndex().call() == 3
    # a different root at an index L1 already holds is a conflict, never papered over
    src.batches.append(_batch(3, b"\xdd" * 32))
    send(w3, sc.functions.proposeBatch(3, 31, 40, b"\x04" * 32, b"\xee" * 32, b"\x09" * 32), seq)
    with pytest.raises(BatchConflict):
        BatchPoster(w3, dep, seq, src).post_pending()
