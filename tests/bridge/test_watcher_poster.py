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
    send(w3, reg.functions.stake(pk, b"\x00" * 64), who, value=reg.functions.stakeAmount().call())


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
    w = L1Watcher(w3, dep, sink, confirmations=0)
    assert w.poll() == 4
    types = [t for t, _ in sink.actions]
    assert types == ["l1_deposit_pop"] * 3 + ["l1_task_created_v2"]
    positions = [(b.l1_block, b.log_index) for _, b in sink.actions]
    assert positions == sorted(positions)
    assert sink.actions[3][1].task_params == params
    assert w.poll() == 0  # nothing new
    # a restarted watcher resumes at the cursor
    assert L1Watcher(w3, dep, sink, confirmations=0).poll() == 0
    unbond = dep.contract(w3, "StakingRegistry").functions.unbond()
    send(w3, unbond, w3.eth.accounts[2])
    w = L1Watcher(w3, dep, sink, confirmations=0)
    assert w.poll() == 1 and sink.actions[-1][0] == "l1_unbond"


def test_confirmation_depth_is_on_by_default(chain):
    """F-11: a log in the head block (which a one-block reorg can drop) is not injected."""
    from bridge.watcher import DEFAULT_CONFIRMATIONS

    w3, dep, _, _ = chain
    sink = FakeSink()
    w = L1Watcher(w3, dep, sink)
    assert w.confirmations == DEFAULT_CONFIRMATIONS >= 1
    _stake(w3, dep, w3.eth.accounts[1], b"\x07" * 32)
    assert w.poll() == 0
    mine(w3, DEFAULT_CONFIRMATIONS)
    assert w.poll() == 1


def test_a_log_that_cannot_be_encoded_is_skipped_not_retried_forever(chain, monkeypatch):
    """F-02: one unencodable log (e.g. from an older contract that took any uint256) is
    recorded as ignored and ingestion goes on with the logs after it."""
    import dataclasses

    import bridge.watcher as watcher

    w3, dep, owner, _ = chain
    rm = dep.contract(w3, "RewardManager")
    params = TaskParams("mlp", 10, 5, 1, b"\x01" * 32).encode()
    send(w3, rm.functions.createTask(b"\x02" * 32, 2, 9000, params), owner,
         value=rm.functions.taskPrice(2).call())
    _stake(w3, dep, w3.eth.accounts[1], b"\x07" * 32)
    real = watcher._event_to_action

    def old_contract(ev):  # what the pre-fix contract let through
        out = real(ev)
        if out.typ == "l1_task_created_v2":
            return dataclasses.replace(out, body=dataclasses.replace(
                out.body, target_accuracy_bps=2**64))
        return out

    monkeypatch.setattr(watcher, "_event_to_action", old_contract)
    sink = FakeSink()
    w = L1Watcher(w3, dep, sink, confirmations=0)
    assert w.poll() == 1 and [t for t, _ in sink.actions] == ["l1_deposit_pop"]
    assert [i[2] for i in w.ignored] == ["l1_task_created_v2"]
    assert w.poll() == 0 and len(w.ignored) == 1  # not retried, not re-reported


def test_aggregator_duties_are_independent(chain):
    """F-02: a watcher that fails on every poll no longer stops batch posting."""
    from types import SimpleNamespace

    from rollup.aggregator import Aggregator

    w3, dep, _, seq = chain
    src = FakeBatches([_batch(0, b"\xaa" * 32)])

    class Ports(FakeSink, FakeBatches):
        def __init__(self) -> None:
            FakeSink.__init__(self)
            FakeBatches.__init__(self, src.batches)

        def account_proofs(self, batch_index):
            return []

    signer = SimpleNamespace(node=SimpleNamespace(tasks=lambda: []))
    agg = Aggregator(signer, Ports(), w3, dep, seq, batch_every_s=0.0)  # type: ignore[arg-type]

    def broken():
        raise ValueError("log cannot be decoded")

    agg.watcher.poll = broken  # type: ignore[method-assign]
    agg.step()
    assert agg.failures == {"ingest": 1}
    assert dep.contract(w3, "StateCommitment").functions.nextIndex().call() == 1


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


def test_beacons_are_carried_and_the_aggregator_posts_them(chain):
    from types import SimpleNamespace

    from rollup.aggregator import Aggregator

    w3, dep, _, seq = chain
    signer = SimpleNamespace(node=SimpleNamespace(tasks=lambda: []))
    agg = Aggregator(signer, FakeSink(), w3, dep, seq, confirmations=0,  # type: ignore[arg-type]
                     beacon_every_s=0.0)
    assert agg.post_beacon() is True
    assert agg.post_beacon() is False  # not due for BEACON_INTERVAL blocks
    mine(w3, 32)
    assert agg.post_beacon() is True
    sink = FakeSink()
    assert L1Watcher(w3, dep, sink, confirmations=0).poll() == 2
    assert [(t, b.number) for t, b in sink.actions] == [("l1_beacon", 1), ("l1_beacon", 2)]
