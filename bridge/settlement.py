"""Settlement on L1 by Merkle proof: slashing relay, reward claims and task refunds; and a
client's way around a censoring sequencer (``force_include``).

Why pull-based and idempotent: the contracts pay ``cumulative − already_settled``, so the
relay may run any number of times, from any process, after any crash; it only sends a
transaction when the proven cumulative value exceeds what L1 has already moved.
"""

from __future__ import annotations

import logging
from typing import Any

from web3 import Web3

from bridge.contracts import Deployment
from bridge.l1 import Sender, send
from bridge.ports import ProofSource
from state_machine.actions import SignedAction
from state_machine.pacing import min_window_blocks

log = logging.getLogger(__name__)


def _cs(addr: bytes | str) -> str:
    return Web3.to_checksum_address(addr if isinstance(addr, str) else "0x" + addr.hex())


def latest_final_batch(w3: Web3, deployment: Deployment) -> int | None:
    """The highest batch index that is final (unchallenged, past its window)."""
    sc = deployment.contract(w3, "StateCommitment")
    n = sc.functions.nextIndex().call()
    for i in range(n - 1, -1, -1):
        if sc.functions.isFinal(i).call():
            return i
    return None


def _leaf_args(p: dict[str, Any]) -> list[Any]:
    f = p["fields"]
    return [_cs(f["l1_address"]), f["pubkey"], f["stake"], f["cumulative_slashed"],
            f["cumulative_reward"]]


class SlashRelay:
    """Settles every account whose proven slash grew, in one ``SlashingManager.slashMany``
    transaction per round: one base cost for the whole batch, so the 10 % relay reward
    covers the gas even when each slash is small (issue 11, F-14)."""

    def __init__(self, w3: Web3, deployment: Deployment, caller: Sender,
                 proofs: ProofSource) -> None:
        self.w3, self.deployment, self.caller, self.proofs = w3, deployment, caller, proofs
        self.sm = deployment.contract(w3, "SlashingManager")
        self.registry = deployment.contract(w3, "StakingRegistry")

    def due(self, batch: int) -> list[dict[str, Any]]:
        """Account proofs at ``batch`` with slash owed and stake left to take it from."""
        out = []
        for p in self.proofs.account_proofs(batch):
            account = _cs(p["fields"]["l1_address"])
            if p["fields"]["cumulative_slashed"] <= self.sm.functions.alreadySlashed(
                    account).call():
                continue
            if self.registry.functions.stakeOf(account).call() == 0:
                continue  # withdrawn or fully slashed: the debt stays owed (F-04)
            out.append(p)
        return out

    def run_once(self) -> list[dict[str, Any]]:
        batch = latest_final_batch(self.w3, self.deployment)
        if batch is None:
            return []
        due = self.due(batch)
        if not due:
            return []
        accounts = [_cs(p["fields"]["l1_address"]) for p in due]
        before = {a: self.registry.functions.stakeOf(a).call() for a in accounts}
        items = [(*_leaf_args(p), batch, p["proof"]) for p in due]
        receipt = send(self.w3, self.sm.functions.slashMany(items), self.caller)
        done = []
        for a in accounts:
            moved = before[a] - self.registry.functions.stakeOf(a).call()
            done.append({"account": a, "batch": batch, "moved": moved,
                         "tx": bytes(receipt["transactionHash"]).hex(),
                         "gas": receipt["gasUsed"] // len(accounts)})
            log.info("slashed %s by %d wei at batch %d", a, moved, batch)
        return done


def claim_reward(w3: Web3, deployment: Deployment, sender: Sender, proof: dict[str, Any],
                 batch: int) -> dict[str, Any]:
    """RewardManager.claim for one account leaf; pays the account, whoever sends it."""
    rm = deployment.contract(w3, "RewardManager")
    account = _cs(proof["fields"]["l1_address"])
    receipt = send(w3, rm.functions.claim(*_leaf_args(proof), batch, proof["proof"]), sender)
    from web3.logs import DISCARD

    events = rm.events.RewardClaimed().process_receipt(receipt, errors=DISCARD)
    paid = sum(int(e["args"]["amount"]) for e in events)
    return {"account": account, "paid": paid, "gas": receipt["gasUsed"],
            "tx": bytes(receipt["transactionHash"]).hex()}


def refund_task(w3: Web3, deployment: Deployment, sender: Sender, proof: dict[str, Any],
                batch: int) -> dict[str, Any]:
    """RewardManager.refund of a finished task's unused escrow (proven from its leaf)."""
    rm = deployment.contract(w3, "RewardManager")
    f = proof["fields"]
    status = {"running": 0, "completed": 1, "rejected": 2}[f["status"]]
    call = rm.functions.refund(f["task_id"], _cs(f["owner"]), f["escrow"], f["charged"],
                               f["treasury"], status, proof["detail_hash"], batch, proof["proof"])
    receipt = send(w3, call, sender)
    gas = receipt["gasUsed"]
    # Refunds are credited (pull payment, F-10); the owner collects its own at once.
    owner = _cs(f["owner"])
    sender_addr = sender if isinstance(sender, str) else sender.address
    if _cs(sender_addr) == owner and rm.functions.refunds(owner).call() > 0:
        gas += send(w3, rm.functions.withdrawRefund(), sender)["gasUsed"]
    return {"task_id": f["task_id"], "refund": f["escrow"] - f["charged"],
            "treasury": f["treasury"], "gas": gas,
            "tx": bytes(receipt["transactionHash"]).hex()}


def withdraw_stake(w3: Web3, deployment: Deployment, sender: Sender, proof: dict[str, Any],
                   batch: int) -> dict[str, Any]:
    """StakingRegistry.withdraw for the sender's own leaf, proven in final ``batch``.

    The exit is tied to finality (issue 11, F-03): ``batch`` must be final, proposed at or
    after ``unlockTime - challengePeriod``, no dispute may be open, and the leaf's slash
    must already be settled (relay it first with ``SlashRelay``); the contract says which
    with a custom error otherwise."""
    reg = deployment.contract(w3, "StakingRegistry")
    f = proof["fields"]
    call = reg.functions.withdraw(f["stake"], f["cumulative_slashed"], f["cumulative_reward"],
                                  batch, proof["proof"])
    receipt = send(w3, call, sender)
    from web3.logs import DISCARD

    events = reg.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
    paid = sum(int(e["args"]["amount"]) for e in events)
    return {"account": _cs(f["l1_address"]), "paid": paid, "gas": receipt["gasUsed"],
            "tx": bytes(receipt["transactionHash"]).hex()}


def force_include(w3: Web3, deployment: Deployment, sender: Sender,
                  action: SignedAction | bytes) -> dict[str, Any]:
    """StakingRegistry.forceInclude of a signed action the sequencer left out (issue 11,
    F-12): the rollup must then apply it in L1 order with the mempool's checks (see
    ``state_machine.forced``). Use it when an acknowledged action is still not included
    and the phase's deadline is less than ``force_margin_s`` away (docs/protocol.md,
    "Enforced inclusion"); any L1 account may send it, the action carries its signature."""
    raw = action.encode() if isinstance(action, SignedAction) else action
    reg = deployment.contract(w3, "StakingRegistry")
    receipt = send(w3, reg.functions.forceInclude(raw), sender)
    from web3.logs import DISCARD

    events = reg.events.ForcedAction().process_receipt(receipt, errors=DISCARD)
    return {"number": int(events[0]["args"]["number"]), "l1_block": receipt["blockNumber"],
            "gas": receipt["gasUsed"], "tx": bytes(receipt["transactionHash"]).hex()}


def force_margin_s(l1_block_time_s: float, confirmations: int, max_lag_blocks: int,
                   batch_interval_s: float) -> float:
    """How long before a phase deadline (wall time) a client must have sent
    ``forceInclude`` for the inclusion rules to guarantee its action lands in time: the
    sequencer may wait ``confirmations`` blocks, then sit on the log until a batch is
    proposed ``max_lag_blocks`` L1 blocks later, and batches come every
    ``batch_interval_s``."""
    return (confirmations + max_lag_blocks) * l1_block_time_s + batch_interval_s


def force_deadline_l1(phase_not_before: int, max_lag_s: int = 256 * 12) -> int:
    """Protocol 3: the L1 timestamp by which a client's ``forceInclude`` log must be mined
    for its action to apply before the current phase closes, read off the task record
    (``phase_not_before``). The closing block is stamped at least ``phase_not_before``, and
    no block may start while a log ``max_lag_s`` older than its stamp is pending
    (``bridge.inclusion.block_lag``), so a log mined by then is applied in an earlier block.
    Holds however fast the sequencer produces blocks; blocks stamped ahead of L1 are
    challenged (``timestamp_ahead_of_l1``)."""
    return phase_not_before - max_lag_s


def min_protecting_window_blocks(max_lag_s: int = 256 * 12, reaction_s: int = 600) -> int:
    """Protocol 3: the least window (blocks) whose time floor leaves a client ``reaction_s``
    seconds, after the phase opens, to see that its action was not included and get the
    forced log mined before :func:`force_deadline_l1`: ``window_floor_s(W) >= max_lag_s +
    reaction_s``. Defaults (256 slots of 12 s, 10 min): 14,685 blocks (61 min 12 s of floor;
    4.1 h at 1 s blocks)."""
    return min_window_blocks(max_lag_s + reaction_s)
