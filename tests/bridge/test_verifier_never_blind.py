"""Issue 11, F-08: the reference verifier never goes blind.

The attack: the sequencer withholds a batch's data until the window is nearly over, the
verifier challenges, governance dismisses; the old verifier then skipped the batch (and
everything after it) for good. Now it re-verifies a batch that survived its dispute,
re-challenges while the window is open, persists what it disputes, and raises an alert
(unhealthy) once a batch it holds wrong can no longer be challenged."""

from __future__ import annotations

from web3 import Web3

from bridge import l1
from bridge.deploy import DeployParams, bond_sequencer, deploy_all
from bridge.verifier import Verifier
from bridge.verifier_service import CheckpointStore, VerifierService
from devtools import l1 as dev_l1

PARAMS = DeployParams(unbond_period=2_000, challenge_period=600, resolution_delay=60,
                      resolution_window=300, l2_block_time=0.001)


def _setup():
    w3 = dev_l1.embedded_web3()
    owner, seq, ver = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[2]
    dep = deploy_all(w3, owner, seq, PARAMS)
    bond_sequencer(w3, dep, seq)
    sc = dep.contract(w3, "StateCommitment")
    l1.send(w3, sc.functions.proposeBatch(0, 1, 3, b"\x01" * 32, b"\x02" * 32,
                                          Web3.keccak(b"withheld")), seq)
    # no node serves the data; grace > window: "data unavailable" is challenged at once
    v = Verifier(w3, dep, [], chain_id=7, key=ver, da_grace_seconds=10_000)
    return w3, owner, sc, v


def _dismiss(w3, owner, sc) -> None:
    l1.send(w3, sc.functions.proposeVerdict(0, False), owner)
    dev_l1.advance_time(w3, PARAMS.resolution_delay + 1)
    l1.send(w3, sc.functions.executeVerdict(0), owner)


def test_verifier_rechecks_after_dismissal_and_alerts_when_stuck(tmp_path):
    w3, owner, sc, v = _setup()
    svc = VerifierService(v, CheckpointStore(f"sqlite:///{tmp_path}/v.db", "s"))
    assert svc.step() == [(0, "challenged:data_unavailable")]
    assert v.challenged == {0: 1}
    assert svc.step() == []  # waits while the dispute is open
    # a restarted verifier remembers what it disputes
    again = Verifier(w3, v.deployment, [], chain_id=7, key=v.key, da_grace_seconds=10_000)
    assert VerifierService(again, svc.store).resume() is None
    assert again.challenged == {0: 1}

    _dismiss(w3, owner, sc)  # governance dismisses a correct challenge
    deadline = sc.functions.challengeDeadline(0).call()
    dev_l1.advance_time(w3, deadline - l1.latest_timestamp(w3) - 30)
    assert svc.step() == [(0, "challenged:data_unavailable")]  # not blind: disputes again
    assert v.challenged == {0: 2} and v.stats.rechecks == 1
    assert svc.healthy()

    _dismiss(w3, owner, sc)  # dismissed again, now after the window closed
    assert svc.step() == [(0, "challenge_failed:data_unavailable")]
    assert v.stats.alerts and "batch 0" in v.stats.alerts[0]
    assert not svc.healthy() and svc.health()["alerts"] == v.stats.alerts
    assert "flockchain_verifier_alerts_total 1" in svc.metrics()
