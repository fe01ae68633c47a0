"""Shared helpers for the L1 contract tests: an environment per backend, rollup state
builders (Python Merkle trees from ``state_machine``) and revert assertions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from bridge import l1
from bridge.contracts import Deployment
from bridge.deploy import DeployParams, bond_sequencer, deploy_all
from devtools import l1 as dev_l1
from state_machine.leaves import (
    SUBROOT_ACCOUNTS,
    SUBROOT_TASKS,
    account_leaf,
    compose_state_root,
    state_proof,
    task_leaf,
)
from state_machine.merkle import MerkleTree

ETHER = 10**18
IN_CI = os.environ.get("CI", "").lower() == "true"

# Short periods so tests move time by minutes, not days; same amounts as production.
PARAMS = DeployParams(
    stake_amount=ETHER // 10,
    unbond_period=1_000,
    base_fee=ETHER // 20,
    fee_per_epoch=ETHER // 100,
    challenge_period=600,
    sequencer_bond=ETHER,
    challenge_bond=ETHER // 10,
)
# Margin (seconds) kept around time boundaries: anvil's clock also follows wall time.
SLACK = 30


def pk(n: int) -> bytes:
    """A deterministic non-zero 32-byte pubkey."""
    return Web3.keccak(text=f"pubkey-{n}")


def addr_bytes(address: str) -> bytes:
    return bytes.fromhex(address[2:])


# ----------------------------------------------------------------------------- rollup state


@dataclass
class AccountRec:
    address: str
    pubkey: bytes
    stake: int
    cumulative_slashed: int = 0
    cumulative_reward: int = 0

    def leaf(self) -> bytes:
        return account_leaf(
            addr_bytes(self.address),
            self.pubkey,
            self.stake,
            self.cumulative_slashed,
            self.cumulative_reward,
        )

    def args(self) -> tuple[Any, ...]:
        return (
            self.address,
            self.pubkey,
            self.stake,
            self.cumulative_slashed,
            self.cumulative_reward,
        )


@dataclass
class TaskRec:
    task_id: int
    owner: str
    escrow: int
    charged: int
    treasury_share: int
    status: int
    detail_hash: bytes = b"\x11" * 32

    def leaf(self) -> bytes:
        return task_leaf(
            self.task_id,
            addr_bytes(self.owner),
            self.escrow,
            self.charged,
            self.treasury_share,
            self.status,
            self.detail_hash,
        )

    def args(self) -> tuple[Any, ...]:
        return (
            self.task_id,
            self.owner,
            self.escrow,
            self.charged,
            self.treasury_share,
            self.status,
            self.detail_hash,
        )


@dataclass
class RollupState:
    """A rollup state with real account and task sub-trees and fixed epoch/meta roots."""

    accounts: list[AccountRec] = field(default_factory=list)
    tasks: list[TaskRec] = field(default_factory=list)
    filler_accounts: int = 0  # extra unrelated leaves to make the tree realistic
    epochs_root: bytes = b"\xe0" * 32
    meta_root: bytes = b"\x3e" * 32

    def __post_init__(self) -> None:
        # Leaves are hashed once, here: later edits to the records do not change this state.
        filler = [Web3.keccak(text=f"filler-{i}") for i in range(self.filler_accounts)]
        self._accounts = MerkleTree([a.leaf() for a in self.accounts] + filler)
        self._tasks = MerkleTree([t.leaf() for t in self.tasks])

    def subroots(self) -> list[bytes]:
        return [self._accounts.root(), self._tasks.root(), self.epochs_root, self.meta_root]

    def root(self) -> bytes:
        return compose_state_root(self.subroots())

    def account_proof(self, i: int) -> list[bytes]:
        return state_proof(self.subroots(), SUBROOT_ACCOUNTS, self._accounts.proof(i))

    def task_proof(self, i: int) -> list[bytes]:
        return state_proof(self.subroots(), SUBROOT_TASKS, self._tasks.proof(i))


# ----------------------------------------------------------------------------- environment


@contextlib.contextmanager
def reverts(error: str, *args: Any) -> Iterator[None]:
    """Expect a transaction or call to revert with custom error ``error`` (and, if given,
    exactly ``args``)."""
    with pytest.raises((l1.TxFailed, *l1.REVERT_ERRORS)) as info:
        yield
    exc = info.value
    if isinstance(exc, l1.TxFailed):
        name, got = exc.error, exc.error_args
    else:  # a reverting eth_call
        name, got = l1.decode_revert(exc) or (None, ())
    assert name == error, f"expected {error}, got {exc}"
    if args:
        assert got == tuple(args), got


class Env:
    """One deployment on one backend; tests run between snapshot and revert."""

    def __init__(self, w3: Web3, backend: str) -> None:
        self.w3 = w3
        self.backend = backend
        a = w3.eth.accounts
        self.owner, self.sequencer, self.challenger = a[0], a[1], a[2]
        self.clients = a[3:7]
        self.task_owner, self.relayer, self.other = a[7], a[8], a[9]
        self.params = PARAMS
        self.deployment: Deployment = deploy_all(w3, self.owner, self.sequencer, PARAMS)
        c = self.deployment.contracts(w3)
        self.registry: Contract = c["StakingRegistry"]
        self.commitment: Contract = c["StateCommitment"]
        self.slash_treasury: Contract = c["SlashTreasury"]
        self.reward_treasury: Contract = c["RewardTreasury"]
        self.slashing: Contract = c["SlashingManager"]
        self.rewards: Contract = c["RewardManager"]

    # -- transactions
    def tx(self, call: Any, sender: str, value: int = 0) -> TxReceipt:
        return l1.send(self.w3, call, sender, value=value)

    def balance(self, who: str | Contract) -> int:
        address = who.address if isinstance(who, Contract) else who
        return self.w3.eth.get_balance(address)

    def events(self, contract: Contract, name: str, receipt: TxReceipt) -> list[dict[str, Any]]:
        event = getattr(contract.events, name)()
        return [dict(e["args"]) for e in event.process_receipt(receipt, errors=_DISCARD)]

    def advance(self, seconds: int) -> int:
        return dev_l1.advance_time(self.w3, seconds)

    def now(self) -> int:
        return l1.latest_timestamp(self.w3)

    # -- staking
    def stake(self, who: str, pubkey: bytes) -> TxReceipt:
        return self.tx(self.registry.functions.stake(pubkey), who, self.params.stake_amount)

    # -- batches
    def bond(self) -> None:
        bond_sequencer(self.w3, self.deployment, self.sequencer)

    def propose(self, state_root: bytes, blocks: int = 5) -> int:
        """Bond if needed and propose the next batch; returns its index."""
        self.bond()
        sc = self.commitment.functions
        index = sc.nextIndex().call()
        first = sc.batch(index - 1).call()[1] + 1 if index > 0 else 1
        self.tx(
            sc.proposeBatch(
                index, first, first + blocks - 1, Web3.keccak(index), state_root, Web3.keccak(b"da")
            ),
            self.sequencer,
        )
        return index

    def finalize(self) -> None:
        self.advance(self.params.challenge_period + 1)

    def publish(self, state: RollupState) -> int:
        """Propose ``state``'s root and let it finalize; returns the batch index."""
        index = self.propose(state.root())
        self.finalize()
        assert self.commitment.functions.isFinal(index).call()
        return index

    # -- settlement
    def slash(self, rec: AccountRec, batch: int, proof: Sequence[bytes], caller: str) -> TxReceipt:
        return self.tx(self.slashing.functions.slash(*rec.args(), batch, list(proof)), caller)

    def claim(self, rec: AccountRec, batch: int, proof: Sequence[bytes], caller: str) -> TxReceipt:
        return self.tx(self.rewards.functions.claim(*rec.args(), batch, list(proof)), caller)

    def refund(self, rec: TaskRec, batch: int, proof: Sequence[bytes], caller: str) -> TxReceipt:
        return self.tx(self.rewards.functions.refund(*rec.args(), batch, list(proof)), caller)

    def create_task(self, owner: str, max_epochs: int = 3, params: bytes = b"") -> int:
        price = self.params.base_fee + max_epochs * self.params.fee_per_epoch
        fn = self.rewards.functions.createTask(Web3.keccak(b"spec"), max_epochs, 9000, params)
        receipt = self.tx(fn, owner, price)
        return self.events(self.rewards, "TaskCreated", receipt)[0]["taskId"]


def _discard() -> Any:
    from web3.logs import DISCARD

    return DISCARD


_DISCARD = _discard()
