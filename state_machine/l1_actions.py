"""Handlers of the system actions carried in from L1 (deposits, unbonds, beacons, tasks).

Why a module of its own: these are the only handlers whose input comes from the bridge,
not from a client's key; they share one ordering rule (strictly increasing
``(l1_block, log_index)``, :func:`l1_order`) that the verifier's skip and lag checks rely
on. Same contract as every handler in ``transition``: raise ``Rejected`` before the first
change.
"""

from __future__ import annotations

from state_machine.actions import (
    BeaconBody,
    DepositBody,
    DepositPopBody,
    SignedAction,
    TaskCreatedBody,
    UnbondBody,
    pop_message,
)
from state_machine.crypto import verify
from state_machine.lifecycle import arm_idle_expiry
from state_machine.reasons import Reason
from state_machine.rules import Rejected
from state_machine.state import ACTIVE, DONE, TASK_REJECTED, UNBONDING, Account, State, Task
from state_machine.tasks import (
    TaskParamsError,
    decode_task_params,
    max_num_params,
    validate_task_header,
)


def l1_order(state: State, l1_block: int, log_index: int) -> None:
    """Refuse a log at or before the cursor: L1 logs apply once, in L1 order."""
    if state.l1_seen and (l1_block, log_index) <= state.l1_cursor:
        raise Rejected(Reason.L1_OUT_OF_ORDER, f"cursor at {state.l1_cursor}")


def advance_l1(state: State, l1_block: int, log_index: int) -> None:
    """Move the cursor past an applied (or consumed) log; committed in the meta root."""
    state.l1_cursor = (l1_block, log_index)
    state.l1_seen = True


def deposit(state: State, sa: SignedAction, b: DepositBody) -> list[str]:
    l1_order(state, b.l1_block, b.log_index)
    if b.amount <= 0:
        raise Rejected(Reason.INVALID_BODY, "deposit amount must be positive")
    acc = state.accounts.get(b.pubkey)
    if acc is not None:
        if acc.l1_address != b.l1_address:
            raise Rejected(Reason.PUBKEY_BOUND, "pubkey is bound to another L1 address")
        if acc.status != UNBONDING:
            raise Rejected(Reason.ALREADY_STAKED)
    for other in state.address_index.get(b.l1_address, ()):  # O(1): no account scan
        if other != b.pubkey and state.accounts.peek(other).status != UNBONDING:
            raise Rejected(Reason.ADDRESS_BOUND, "L1 address already staked with another pubkey")
    advance_l1(state, b.l1_block, b.log_index)
    if acc is None:
        state.add_account(Account(len(state.accounts), b.l1_address, b.pubkey, b.amount))
        state.register_sender(b.pubkey)
    else:  # withdrew on L1 after unbonding and staked again
        acc.stake, acc.status, acc.unlock_time = b.amount, ACTIVE, 0
        state.touch_account(b.pubkey)
    return ["staked"]


def deposit_pop(state: State, sa: SignedAction, b: DepositPopBody) -> list[str]:
    """A deposit binds its pubkey only with a valid proof of possession (issue 11, F-15);
    a copied pubkey is rejected before it can claim the victim's identity."""
    l1_order(state, b.l1_block, b.log_index)
    if not verify(b.pubkey, pop_message(state.chain_id, b.l1_address), b.pop):
        raise Rejected(Reason.BAD_POP, "pop is not the pubkey's signature over the L1 address")
    plain = DepositBody(b.l1_address, b.pubkey, b.amount, b.l1_block, b.log_index, b.tx_hash)
    return deposit(state, sa, plain)


def beacon(state: State, sa: SignedAction, b: BeaconBody) -> list[str]:
    """The next L1 randomness beacon (numbers are consecutive: none can be skipped)."""
    l1_order(state, b.l1_block, b.log_index)
    if b.number != state.beacon[0] + 1:
        raise Rejected(Reason.L1_OUT_OF_ORDER, f"expected beacon {state.beacon[0] + 1}")
    advance_l1(state, b.l1_block, b.log_index)
    state.beacon = (b.number, b.randomness)
    return ["beacon"]


def unbond(state: State, sa: SignedAction, b: UnbondBody) -> list[str]:
    l1_order(state, b.l1_block, b.log_index)
    acc = state.accounts.get(b.pubkey)
    if acc is None or acc.l1_address != b.l1_address:
        raise Rejected(Reason.UNKNOWN_ACCOUNT)
    advance_l1(state, b.l1_block, b.log_index)
    acc.status, acc.unlock_time = UNBONDING, b.unlock_time
    state.touch_account(b.pubkey)
    return ["unbonding"]


def task_created(state: State, sa: SignedAction, b: TaskCreatedBody) -> list[str]:
    l1_order(state, b.l1_block, b.log_index)
    if b.task_id in state.tasks:
        raise Rejected(Reason.DUPLICATE_TASK, str(b.task_id))
    advance_l1(state, b.l1_block, b.log_index)
    task = Task(
        index=len(state.tasks),
        task_id=b.task_id,
        owner=b.owner,
        spec_hash=b.spec_hash,
        max_epochs=max(b.max_epochs, 1),
        target_accuracy_bps=b.target_accuracy_bps,
        escrow=b.escrow,
        params=None,
    )
    try:
        validate_task_header(b.max_epochs, b.target_accuracy_bps, b.escrow)
        task.params = decode_task_params(b.task_params, max_num_params(state.protocol))
    except TaskParamsError as exc:
        # Recorded, not rejected: the owner must be able to prove the refund on L1.
        task.status, task.phase, task.reject_reason = TASK_REJECTED, DONE, str(exc)
        state.add_task(task)
        return ["task_rejected"]
    state.add_task(task)
    return ["task_created"]


def task_created_v2(state: State, sa: SignedAction, b: TaskCreatedBody) -> list[str]:
    """``TaskCreated`` as new watchers carry it: the task expires if it idles (F-10,
    ``state_machine.lifecycle``); v1 ``l1_task_created`` replays recorded chains."""
    events = task_created(state, sa, b)
    arm_idle_expiry(state, state.tasks[b.task_id])
    return events
