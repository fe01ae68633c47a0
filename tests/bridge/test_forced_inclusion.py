"""Issue 11, F-12 end to end, on eth-tester and (marked ``anvil``) on anvil: real
contracts, the real sequencer, watcher, poster and verifier.

The attack: the sequencer drops a selected proposer's commit from its mempool; without
recourse the honest client is slashed ``ABSENT`` when the phase closes. Now the client
sends the same signed bytes to ``StakingRegistry.forceInclude``; the action lands through
the watcher and the client is not slashed. A sequencer that also ignores the forced log
gets its batch challenged: ``skipped_l1_event`` when it carries a later log,
``l1_inclusion_lag`` when it sits on it.

The pacing sequencer (protocol 3, ``state_machine.pacing``): one that produces blocks as
fast as it can to run the reveal window out before the forced reveal is due cannot close
it (the window also waits on block time); stamping blocks in the future to meet that floor
gets the batch challenged ``timestamp_ahead_of_l1``; an honest pace is never challenged."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from l1_backends import LocalVerifier, l1_web3
from web3 import Web3

from bridge import l1
from bridge.deploy import DeployParams, bond_sequencer, deploy_all
from bridge.poster import BatchPoster
from bridge.settlement import force_include
from bridge.watcher import L1Watcher
from devtools import l1 as dev_l1
from rollup.keys import Keypair
from rollup.ports import InProcessPorts
from sequencer import Sequencer, SequencerConfig, Store
from state_machine.actions import (
    AdvanceBody,
    CommitUpdateBody,
    PublishGenesisBody,
    RevealUpdateBody,
    SignedAction,
    make_action,
    pop_message,
)
from state_machine.commitments import CommitBinding, update_commitment
from state_machine.crypto import keccak256, sign
from state_machine.tasks import TaskParams
from state_machine.verdicts import ABSENT

CHAIN_ID = 7
D = 64
N = 7
WINDOW = 30
SALT = b"\x07" * 32
PARAMS = DeployParams(challenge_period=600, resolution_delay=60, resolution_window=300,
                      unbond_period=2_000, l2_block_time=0.001)


@pytest.fixture(scope="module", params=["eth-tester", pytest.param("anvil",
                                                                   marks=pytest.mark.anvil)])
def l1_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.fixture
def w3(l1_backend: str) -> Iterator[Web3]:
    with l1_web3(l1_backend) as w:
        yield w


class DroppingSink:
    """The sequencer's system sink, except that a censoring sequencer drops forced logs."""

    def __init__(self, inner: InProcessPorts, drop_forced: bool) -> None:
        self.inner, self.drop_forced = inner, drop_forced
        self.dropped = 0

    def l1_cursor(self) -> tuple[int, int] | None:
        return self.inner.l1_cursor()

    def submit_system(self, typ: str, body: Any) -> bytes:
        if self.drop_forced and typ == "l1_forced_action":
            self.dropped += 1
            return b""
        return self.inner.submit_system(typ, body)


@dataclass
class World:
    w3: Web3
    dep: Any
    seq: Sequencer
    sink: DroppingSink
    watcher: L1Watcher
    keys: list[Keypair]
    addrs: list[str]
    deltas: list[np.ndarray]
    now: list[int]  # the sequencer's clock

    def sign(self, i: int, typ: str, body: Any) -> SignedAction:
        pk = self.keys[i].pubkey
        return make_action(self.keys[i].seed, typ, CHAIN_ID, self.seq.pending_nonce(pk), body,
                           pk)

    def block(self, n: int = 1, tick: int = 1) -> None:
        """``n`` blocks, the clock moving ``tick`` seconds before each (0: as fast as the
        sequencer can produce them)."""
        for _ in range(n):
            self.now[0] += tick
            self.watcher.poll()
            self.seq.produce_block()

    def commit(self, i: int) -> SignedAction:
        bind = CommitBinding(self.keys[i].pubkey, 1, 0)  # protocol 2: bound to the sender
        c = update_commitment(self.deltas[i].astype("<i2").tobytes(), SALT, bind)
        return self.sign(i, "commit_update", CommitUpdateBody(1, 0, c))

    def reveal(self, i: int) -> SignedAction:
        return self.sign(i, "reveal_update",
                         RevealUpdateBody(1, 0, self.deltas[i].astype("<i2").tobytes(), SALT))

    def verifier(self, **kw: Any) -> LocalVerifier:
        return LocalVerifier(self.seq, self.w3, self.dep, [], CHAIN_ID, self.w3.eth.accounts[9],
                             da_grace_seconds=10_000, **kw)

    def post(self) -> None:
        BatchPoster(self.w3, self.dep, self.w3.eth.accounts[1],
                    InProcessPorts(self.seq)).post_pending()


def world(w3: Web3, tmp_path: Any, drop_forced: bool = False) -> Iterator[World]:
    owner, seq_addr = w3.eth.accounts[0], w3.eth.accounts[1]
    dep = deploy_all(w3, owner, seq_addr, PARAMS)
    bond_sequencer(w3, dep, seq_addr)
    reg, rm = dep.contract(w3, "StakingRegistry"), dep.contract(w3, "RewardManager")
    keys = [Keypair.from_seed(hashlib.sha256(b"forced-e2e:%d" % i).digest()) for i in range(N)]
    addrs = list(w3.eth.accounts[2:2 + N])
    for k, a in zip(keys, addrs, strict=True):
        pop = sign(k.seed, pop_message(CHAIN_ID, bytes.fromhex(a[2:])))
        l1.send(w3, reg.functions.stake(k.pubkey, pop), a, value=PARAMS.stake_amount)
    genesis = np.zeros(D, dtype=np.int32)
    params = TaskParams("softmax", D, N, 1, keccak256(genesis.astype("<i4").tobytes()),
                        commit_window=WINDOW, reveal_window=WINDOW, vote_commit_window=WINDOW,
                        vote_reveal_window=WINDOW)
    l1.send(w3, rm.functions.createTask(b"\x33" * 32, 2, 10_000, params.encode()), owner,
            value=rm.functions.taskPrice(2).call())
    now = [1_700_000_000]
    seq = Sequencer(Store(f"sqlite:///{tmp_path}/seq.db"), b"\x05" * 32,
                    SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False),
                    clock=lambda: now[0]).start()
    sink = DroppingSink(InProcessPorts(seq), drop_forced)
    watcher = L1Watcher(w3, dep, sink, confirmations=0)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    base = rng.normal(0, 300, D)
    deltas = [(base + rng.normal(0, 300, D)).astype(np.int16) for _ in range(N)]
    wd = World(w3, dep, seq, sink, watcher, keys, addrs, deltas, now)
    wd.block()
    seq.submit(wd.sign(0, "publish_genesis",
                       PublishGenesisBody(1, genesis.astype("<i4").tobytes())).encode())
    wd.block(2)
    assert seq.state.tasks[1].phase == "update_commit"
    try:
        yield wd
    finally:
        seq.close()


VICTIM = 3


def censored_commit_forced(wd: World) -> SignedAction:
    """Every proposer commits; the sequencer drops the victim's; the victim forces it."""
    dropped = wd.commit(VICTIM)
    for i in range(N):
        if i != VICTIM:
            wd.seq.submit(wd.commit(i).encode())
    wd.block()
    assert wd.keys[VICTIM].pubkey not in wd.seq.state.epochs[(1, 0)].update_commits
    force_include(wd.w3, wd.dep, wd.addrs[VICTIM], dropped)
    return dropped


def test_forced_commit_lands_and_the_honest_client_is_not_slashed(w3, tmp_path):
    for wd in world(w3, tmp_path):
        censored_commit_forced(wd)
        wd.block()
        victim = wd.keys[VICTIM].pubkey
        assert victim in wd.seq.state.epochs[(1, 0)].update_commits
        while wd.seq.state.tasks[1].phase == "update_commit":
            wd.block()
        for i in range(N):
            wd.seq.submit(wd.reveal(i).encode())
        wd.block()
        while wd.seq.state.epochs[(1, 0)].outcome == "pending":
            wd.block()
        ep = wd.seq.state.epochs[(1, 0)]
        assert ep.verdicts[victim] != ABSENT and ep.outcome == "accepted"
        assert wd.seq.state.accounts[victim].cumulative_slashed == 0
        wd.post()
        assert wd.verifier().step() == [(0, "ok")]


def test_sequencer_skipping_the_forced_log_is_challenged(w3, tmp_path):
    for wd in world(w3, tmp_path, drop_forced=True):
        censored_commit_forced(wd)
        # a later log (a beacon) is carried: the cursor moves past the forced one
        l1.send(w3, wd.dep.contract(w3, "StakingRegistry").functions.postBeacon(),
                w3.eth.accounts[0])
        wd.block()
        assert wd.sink.dropped == 1
        wd.post()
        [(index, verdict)] = wd.verifier().step()
        assert index == 0 and verdict.startswith("challenged:skipped_l1_event")


def test_sequencer_sitting_on_the_forced_log_is_challenged(w3, tmp_path):
    for wd in world(w3, tmp_path, drop_forced=True):
        censored_commit_forced(wd)
        wd.block()
        dev_l1.mine(w3, 8)
        wd.post()
        [(index, verdict)] = wd.verifier(max_lag_blocks=8).step()
        assert index == 0 and verdict.startswith("challenged:l1_inclusion_lag")


@pytest.mark.anvil
def test_force_include_command(tmp_path, capsys):
    """``flockchain force-include`` checks the bytes before paying gas, then sends them."""
    import json

    from rollup.cli import main
    from state_machine.actions import DepositBody, system_action

    if dev_l1.anvil_binary() is None:
        pytest.skip("anvil binary not installed (npm ci)")
    key = Keypair.from_seed(b"\x09" * 32)
    sa = make_action(key.seed, "commit_update", CHAIN_ID, 0,
                     CommitUpdateBody(1, 0, b"\x01" * 32), key.pubkey)
    with dev_l1.start_anvil() as node:
        w3 = node.web3()
        dep = deploy_all(w3, w3.eth.accounts[0], w3.eth.accounts[1], PARAMS)
        dep.save(tmp_path / "dep.json")
        anvil0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        base = ["force-include", "--l1", node.url, "--deployment", str(tmp_path / "dep.json"),
                "--l1-key", anvil0]
        assert main([*base, "--action", sa.encode().hex()]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (out["status"], out["type"], out["number"]) == ("sent", "commit_update", 1)
        forged = system_action("l1_deposit", CHAIN_ID, 0, DepositBody(
            b"\x66" * 20, b"\x67" * 32, 1, 1, 0, b"\x00" * 32))
        with pytest.raises(SystemExit):
            main([*base, "--action", forged.encode().hex()])
        with pytest.raises(SystemExit):
            main([*base, "--action", "c0ffee"])
        reg = dep.contract(w3, "StakingRegistry")
        assert reg.functions.forcedCount().call() == 1


def revealing_without(wd: World, victim: int) -> SignedAction:
    """Everyone commits (the phase closes early); every reveal but the victim's lands (the
    sequencer drops it). Returns the dropped reveal."""
    for i in range(N):
        wd.seq.submit(wd.commit(i).encode())
    wd.block()
    wd.seq.submit(wd.sign(0, "advance", AdvanceBody(1, 0)).encode())
    wd.block()
    assert wd.seq.state.tasks[1].phase == "update_reveal"
    dropped = wd.reveal(victim)
    for i in range(N):
        if i != victim:
            wd.seq.submit(wd.reveal(i).encode())
    wd.block(tick=0)
    return dropped


def test_rushing_sequencer_cannot_close_the_reveal_window_before_the_forced_reveal(
        w3, tmp_path):
    """The residual of F-12, replayed: the sequencer drops the victim's reveal and produces
    blocks as fast as it can (its clock does not move) to end the window before the forced
    reveal is due. The window stays open past its height; the forced reveal lands; the batch
    verifies and the victim is not slashed."""
    for wd in world(w3, tmp_path):
        dropped = revealing_without(wd, VICTIM)
        wd.block(5 * WINDOW, tick=0)
        task = wd.seq.state.tasks[1]
        assert wd.seq.height > task.phase_deadline and task.phase == "update_reveal"
        assert task.phase_not_before > wd.seq.state.timestamp
        force_include(wd.w3, wd.dep, wd.addrs[VICTIM], dropped)
        wd.block(tick=0)
        assert wd.keys[VICTIM].pubkey in wd.seq.state.epochs[(1, 0)].updates
        while wd.seq.state.epochs[(1, 0)].outcome == "pending":
            wd.block()  # time passes: the window closes on its floor
        ep = wd.seq.state.epochs[(1, 0)]
        assert ep.verdicts[wd.keys[VICTIM].pubkey] != ABSENT and ep.outcome == "accepted"
        wd.post()
        assert wd.verifier().step() == [(0, "ok")]


def test_sequencer_stamping_blocks_ahead_of_l1_is_challenged(w3, tmp_path):
    """To meet the window's floor without waiting, the sequencer stamps its blocks an hour
    into the future, closes the reveal window and gets the victim slashed ``ABSENT``: the
    batch is challenged, its timestamps ran ahead of the L1 block that proposed it."""
    for wd in world(w3, tmp_path):
        revealing_without(wd, VICTIM)
        wd.now[0] = l1.latest_timestamp(w3) + 3_600
        while wd.seq.state.tasks[1].phase == "update_reveal":
            wd.block(tick=0)
        assert wd.seq.state.epochs[(1, 0)].verdicts[wd.keys[VICTIM].pubkey] == ABSENT
        wd.post()
        [(index, verdict)] = wd.verifier().step()
        assert index == 0 and verdict.startswith("challenged:timestamp_ahead_of_l1"), verdict


def test_honest_pace_on_l1_time_is_never_challenged(w3, tmp_path):
    """The sequencer's clock is L1's: a block a second while L1 time moves on. Every window
    closes on its height, the batch verifies (drift 0: not even clock skew is needed)."""
    for wd in world(w3, tmp_path):
        revealing_without(wd, VICTIM)
        deadline = wd.seq.state.tasks[1].phase_deadline
        while wd.seq.state.tasks[1].phase == "update_reveal":
            dev_l1.advance_time(w3, 1)
            wd.now[0] = l1.latest_timestamp(w3)
            wd.block(tick=0)
        assert wd.seq.height == deadline + 1
        wd.post()
        assert wd.verifier(max_clock_drift_s=0).step() == [(0, "ok")]


def test_sequencer_sitting_on_a_forced_reveal_through_the_close_is_challenged(w3, tmp_path):
    """The batch-granular lag rule let a sequencer that posts the whole phase as one batch
    order the closing block before the forced reveal. Per block, in the rollup's (L1-
    anchored) clock, the log is overdue once a block is stamped ``max_lag_s`` after it was
    mined: the batch that closes the window over it is challenged."""
    for wd in world(w3, tmp_path, drop_forced=True):
        force_include(wd.w3, wd.dep, wd.addrs[VICTIM], revealing_without(wd, VICTIM))
        while wd.seq.state.tasks[1].phase == "update_reveal":
            dev_l1.advance_time(w3, 1)
            wd.now[0] = l1.latest_timestamp(w3)
            wd.block(tick=0)
        assert wd.sink.dropped >= 1  # the watcher offers it again every poll
        assert wd.seq.state.epochs[(1, 0)].verdicts[wd.keys[VICTIM].pubkey] == ABSENT
        wd.post()
        [(index, verdict)] = wd.verifier(max_lag_s=10).step()
        assert index == 0 and verdict.startswith("challenged:l1_inclusion_lag"), verdict
        assert "pending at height" in verdict
