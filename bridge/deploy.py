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
from state_machine.constants import MAX_WINDOW_BLOCKS, PHASES_PER_EPOCH

ETHER = 10**18


class UnsafeParams(ValueError):
    """The parameter set lets a stake leave L1 before a slash against it can be final."""


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
    resolution_delay: int = 6 * 3600  # verdict timelock
    resolution_window: int = 2 * 24 * 3600  # dispute deadline (then the default applies)
    l2_block_time: float = 1.0  # slowest L2 block interval the deployment assumes (seconds)

    def to_dict(self) -> dict[str, int | float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def max_epoch_seconds(self) -> float:
        """Longest an epoch the client was selected in can stay open on L2."""
        return PHASES_PER_EPOCH * MAX_WINDOW_BLOCKS * self.l2_block_time

    def check(self) -> None:
        """Refuse periods under which a stake could leave before its last slash is final:
        the epochs of an unbonding client, one challenge period and one dispute must all
        fit inside the unbonding period (issue 11, F-03). Raises ``UnsafeParams``."""
        if self.resolution_delay >= self.resolution_window:
            raise UnsafeParams("resolution_delay must be below resolution_window")
        need = self.challenge_period + self.resolution_window + self.max_epoch_seconds()
        if self.unbond_period <= need:
            raise UnsafeParams(
                f"unbond_period {self.unbond_period}s must exceed challenge_period + "
                f"resolution_window + {PHASES_PER_EPOCH} x {MAX_WINDOW_BLOCKS} blocks x "
                f"{self.l2_block_time}s = {need:g}s")


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
    p.check()
    start_block = w3.eth.block_number
    commitment = deploy_contract(
        w3,
        "StateCommitment",
        owner,
        Web3.to_checksum_address(sequencer),
        p.sequencer_bond,
        p.challenge_bond,
        p.challenge_period,
        p.resolution_delay,
        p.resolution_window,
    )
    registry = deploy_contract(
        w3, "StakingRegistry", owner, p.stake_amount, p.unbond_period, commitment.address
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
