"""bridge.l1 / bridge.contracts / bridge.deploy: backends, time control, deployment record."""

from __future__ import annotations

import json
import os

import pytest
from eth_account import Account
from web3 import Web3

from bridge import l1
from bridge.contracts import CONTRACT_NAMES, Deployment, decode_error
from bridge.deploy import DeployParams, deploy_all, deploy_contract
from devtools import l1 as dev_l1

from .helpers import ETHER, Env, pk, reverts


def test_deployment_json_roundtrip(env: Env) -> None:
    d = env.deployment
    assert d.chain_id == env.w3.eth.chain_id
    again = Deployment.from_json(d.to_json())
    assert again == d
    data = json.loads(d.to_json())
    data["staking_registry"] = data["staking_registry"].lower()
    assert Deployment.from_dict(data) == d  # addresses are normalised
    with pytest.raises(ValueError):
        Deployment.from_dict({**data, "bogus": 1})
    for name in CONTRACT_NAMES:
        assert env.w3.eth.get_code(d.address_of(name)) != b""


def test_deployment_save_load(env: Env, tmp_path) -> None:
    path = tmp_path / "deployment.json"
    env.deployment.save(path)
    assert Deployment.load(path) == env.deployment


def test_deploy_wiring(env: Env) -> None:
    p = env.params
    assert env.registry.functions.stakeAmount().call() == p.stake_amount
    assert env.registry.functions.unbondPeriod().call() == p.unbond_period
    assert env.registry.functions.slashingManager().call() == env.slashing.address
    sc = env.commitment.functions
    assert sc.sequencer().call() == env.sequencer
    assert sc.sequencerBond().call() == p.sequencer_bond
    assert sc.challengeBond().call() == p.challenge_bond
    assert sc.challengePeriod().call() == p.challenge_period
    assert env.slashing.functions.registry().call() == env.registry.address
    assert env.slashing.functions.commitment().call() == env.commitment.address
    assert env.slashing.functions.treasury().call() == env.slash_treasury.address
    assert env.rewards.functions.commitment().call() == env.commitment.address
    assert env.rewards.functions.treasury().call() == env.reward_treasury.address
    assert env.rewards.functions.baseFee().call() == p.base_fee
    assert env.rewards.functions.feePerEpoch().call() == p.fee_per_epoch
    for c in (env.registry, env.commitment, env.slash_treasury, env.reward_treasury):
        assert c.functions.owner().call() == env.owner


def test_default_params_match_spec() -> None:
    p = DeployParams()
    assert p.stake_amount == ETHER // 10
    assert p.base_fee == 5 * ETHER // 100
    assert p.fee_per_epoch == ETHER // 100
    assert set(p.to_dict()) == {
        "stake_amount",
        "unbond_period",
        "base_fee",
        "fee_per_epoch",
        "challenge_period",
        "sequencer_bond",
        "challenge_bond",
    }


def test_advance_time_and_snapshots(env: Env) -> None:
    t0 = env.now()
    t1 = dev_l1.advance_time(env.w3, 3_600)
    assert t1 >= t0 + 3_600
    assert env.now() == t1
    h = env.w3.eth.block_number
    dev_l1.mine(env.w3, 3)
    assert env.w3.eth.block_number == h + 3
    snap = dev_l1.snapshot(env.w3)
    env.stake(env.clients[0], pk(0))
    assert env.registry.functions.stakeOf(env.clients[0]).call() > 0
    dev_l1.revert(env.w3, snap)
    assert env.registry.functions.stakeOf(env.clients[0]).call() == 0
    with pytest.raises(ValueError):
        dev_l1.advance_time(env.w3, -1)


def test_send_with_local_account(env: Env) -> None:
    acct = Account.from_key(Web3.keccak(text="local-signer"))
    l1.send_value(env.w3, env.other, acct.address, ETHER)
    receipt = l1.send(
        env.w3, env.registry.functions.stake(pk(3)), acct, value=env.params.stake_amount
    )
    assert receipt["status"] == 1
    assert env.registry.functions.accountOf(pk(3)).call() == acct.address
    with pytest.raises(l1.TxFailed) as info:
        l1.send(env.w3, env.registry.functions.stake(pk(4)), acct, value=1)
    assert info.value.error == "WrongStakeAmount"
    # A signed plain transfer.
    l1.send_value(env.w3, acct, env.other, 12345)


def test_deploy_all_with_local_account(env: Env) -> None:
    deployer = Account.from_key(Web3.keccak(text="deployer"))
    l1.send_value(env.w3, env.other, deployer.address, 5 * ETHER)
    d = deploy_all(env.w3, deployer, env.sequencer)
    reg = d.contract(env.w3, "StakingRegistry")
    assert reg.functions.owner().call() == deployer.address
    assert reg.functions.slashingManager().call() == d.slashing_manager
    assert 0 < d.deploy_block <= env.w3.eth.block_number


def test_decode_error_unknown() -> None:
    assert decode_error(b"") is None
    assert decode_error("0xdeadbeef") is None


@pytest.mark.anvil
def test_anvil_process_lifecycle() -> None:
    if dev_l1.anvil_binary() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("anvil binary missing in CI")
        pytest.skip("anvil binary not installed")
    port = dev_l1.free_port()
    with dev_l1.start_anvil(port=port, chain_id=4242) as node:
        assert node.port == port and node.url.endswith(f":{port}")
        w3 = node.web3()
        assert w3.eth.chain_id == 4242
        assert len(w3.eth.accounts) == 10
        pid = node.pid
        os.kill(pid, 0)  # alive
    assert not node.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    node.stop()  # idempotent


def test_start_anvil_missing_binary(tmp_path) -> None:
    with pytest.raises(dev_l1.AnvilError):
        dev_l1.start_anvil(binary=tmp_path / "nope")


def test_constructor_guards(env: Env) -> None:
    zero = "0x" + "00" * 20
    with reverts("InvalidPeriod", 2**64):
        deploy_contract(env.w3, "StakingRegistry", env.owner, 1, 2**64)
    with reverts("InvalidPeriod", 2**64):
        deploy_contract(env.w3, "StateCommitment", env.owner, env.sequencer, 1, 1, 2**64)
    with reverts("ZeroAddress"):
        deploy_contract(env.w3, "StateCommitment", env.owner, zero, 1, 1, 1)
    with reverts("ZeroAddress"):
        deploy_contract(env.w3, "SlashingManager", env.owner, zero, env.commitment.address, zero)
    with reverts("ZeroAddress"):
        deploy_contract(env.w3, "RewardManager", env.owner, env.commitment.address, zero, 1, 1)
