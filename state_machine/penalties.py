"""Every slash: its reason, its amount and the one function that moves the stake.

Why one module: a reader who sees ``"replay"`` in an epoch record finds here its one
definition, its constant and formula (:data:`SLASH_BPS_BY_REASON`), and in
``docs/protocol.md`` ("Slash reasons") why an honest client cannot trigger it and an
attacker cannot trigger it against someone else. Nothing outside this module subtracts
stake for misbehaviour.
"""

from __future__ import annotations

from enum import StrEnum

from state_machine.constants import (
    ABSENT_SLASH_BPS,
    BPS,
    MIN_STAKE,
    SLASH_BPS,
)
from state_machine.state import ACTIVE, EJECTED, EpochState, State


class SlashReason(StrEnum):
    """Why stake moved; the value is what epoch records carry."""

    NORM_BOUND = "norm_bound"  # update norm above the task's declared bound
    ZERO_UPDATE = "zero_update"  # all-zero update: no work
    REPLAY = "replay"  # bit-identical to a past public update or aggregate
    DUPLICATE = "duplicate"  # near-identical to another key's update in the same round
    ABSENT_PROPOSER = "absent_proposer"  # selected, did not reveal
    ABSENT_VOTER = "absent_voter"  # selected, did not reveal a vote
    # v3: no DISAGREEING_VOTER. A vote on the other side of the median is what an honest
    # voter with non-IID test data measures (and what a colluding stake majority could
    # force on the honest minority); it earns no voter reward instead (epochs.py).


# bps of the current stake.
SLASH_BPS_BY_REASON: dict[SlashReason, int] = {
    SlashReason.NORM_BOUND: SLASH_BPS,
    SlashReason.ZERO_UPDATE: SLASH_BPS,
    SlashReason.REPLAY: SLASH_BPS,
    SlashReason.DUPLICATE: SLASH_BPS,
    SlashReason.ABSENT_PROPOSER: ABSENT_SLASH_BPS,
    SlashReason.ABSENT_VOTER: ABSENT_SLASH_BPS,
}


def penalty_amount(reason: SlashReason, stake: int) -> int:
    """Integer wei: ``stake * bps // BPS``."""
    return stake * SLASH_BPS_BY_REASON[reason] // BPS


def apply_penalty(state: State, ep: EpochState, pubkey: bytes, reason: SlashReason) -> int:
    """The one mutator: move the penalty from stake to cumulative_slashed, record it in the
    epoch, eject below MIN_STAKE. Returns the wei moved."""
    acc = state.accounts[pubkey]
    amount = min(penalty_amount(reason, acc.stake), acc.stake)
    if amount <= 0:
        return 0
    acc.stake -= amount
    acc.cumulative_slashed += amount
    if acc.stake < MIN_STAKE and acc.status == ACTIVE:
        acc.status = EJECTED
    ep.slashes.append((pubkey, amount, reason.value))
    state.touch_account(pubkey)
    return amount
