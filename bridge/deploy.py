"""Deploy and wire the FLockChain L1 contracts (SPEC §11).

``deploy_all`` deploys, from ``owner``: StakingRegistry, StateCommitment, SlashTreasury,
RewardTreasury, SlashingManager and RewardManager, then hands the registry its
SlashingManager. The owner is governance for StateCommitment (challenge resolution) and
the treasuries (withdrawals). The sequencer still has to ``bond()`` before it can propose
(``bond_sequencer`` does that). RewardManager is not pre-funded: rewards and refunds are paid
from task escrows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from bridge.contracts import Deployment, factory
from bridge.l1 import Sender, TxFailed, build, send, submit

ETHER = 10**18


@dataclass(frozen=True)
class DeployParams:
    """Deployment parameters (SPEC §8 defaults, in wei and seconds)."""

    stake_amount: int = ETHER // 10  # STAKE_AMOUNT 0.1 ether
    unbond_period: int = 7 * 24 * 3600  # UNBOND_PERIOD 7 days
    base_fee: int = ETHER // 20  # BASE_FEE 0.05 ether
    fee_per_epoch: int = ETHER // 100  # FEE_PER_EPOCH 0.01 ether
    challenge_period: int = 24 * 3600  # CHALLENGE_PERIOD 1 day
    sequencer_bond: int = ETHER  # SEQUENCER_BOND 1 ether
    challenge_bond: int = ETHER // 10  # CHALLENGE_BOND 0.1 ether

    def to_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def deploy_contract(w3: Web3, name: str, sender: Sender, *args: Any) -> Contract:
    """Deploy artifact ``name`` with constructor ``args`` from ``sender``; returns the bound
    contract. Raises ``TxFailed`` (with the decoded custom error, if any) on failure."""
    fac = factory(w3, name)
    tx = build(fac.constructor(*args), sender)
    receipt = submit(w3, sender, tx, what=f"deploying {name}")
    if not receipt["contractAddress"]:
        raise TxFailed(f"deploying {name} created no contract")
    return w3.eth.contract(address=receipt["contractAddress"], abi=fac.abi)


def deploy_all(
    w3: Web3, owner: Sender, sequencer: str, params: DeployParams | None = None
) -> Deployment:
    """Deploy every contract from ``owner`` (an unlocked address or a ``LocalAccount``) and
    wire them; ``sequencer`` is the address allowed to bond and propose batches."""
    p = params or DeployParams()
    start_block = w3.eth.block_number
    registry = deploy_contract(w3, "StakingRegistry", owner, p.stake_amount, p.unbond_period)
    commitment = deploy_contract(
        w3,
        "StateCommitment",
        owner,
        Web3.to_checksum_address(sequencer),
        p.sequencer_bond,
        p.challenge_bond,
        p.challenge_period,
    )
    slash_treasury = deploy_contract(w3, "SlashTreasury", owner)
    reward_treasury = deploy_contract(w3, "RewardTreasury", owner)
    slashing = deploy_contract(
        w3,
        "SlashingManager",
        owner,
        registry.address,
        commitment.address,
        slash_treasury.address,
    )
    rewards = deploy_contract(
        w3,
        "RewardManager",
        owner,
        commitment.address,
        reward_treasury.address,
        p.base_fee,
        p.fee_per_epoch,
    )
    send(w3, registry.functions.setSlashingManager(slashing.address), owner)
    return Deployment(
        chain_id=w3.eth.chain_id,
        staking_registry=registry.address,
        state_commitment=commitment.address,
        slash_treasury=slash_treasury.address,
        reward_treasury=reward_treasury.address,
        slashing_manager=slashing.address,
        reward_manager=rewards.address,
        deploy_block=start_block + 1,
    )


def bond_sequencer(w3: Web3, deployment: Deployment, sequencer: Sender) -> None:
    """Post the sequencer bond (exactly ``StateCommitment.sequencerBond()``) if not yet bonded."""
    sc = deployment.contract(w3, "StateCommitment")
    if sc.functions.sequencerBonded().call():
        return
    amount = sc.functions.sequencerBond().call()
    send(w3, sc.functions.bond(), sequencer, value=amount)
