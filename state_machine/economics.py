"""Integer-wei slashing and per-epoch fee distribution (SPEC §8).

Why per-epoch pools: the fee for an epoch (escrow / max_epochs) is fixed when the task
is created, so each epoch's rewards can be credited at finalization and the total charge
at completion is exactly ``epochs_run * fee_per_epoch``. Every division floors; the
remainder (dust) and any pool nobody earned goes to the RewardTreasury share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from state_machine.constants import BPS, PROPOSER_SHARE_BPS, PROTOCOL_FEE_BPS


def split_by_weight(
    pool: int, weights: Sequence[tuple[bytes, int]]
) -> tuple[dict[bytes, int], int]:
    """Split ``pool`` proportionally to weights; returns (payouts, dust)."""
    total = sum(w for _, w in weights)
    if pool <= 0 or total <= 0:
        return {}, max(pool, 0)
    out: dict[bytes, int] = {}
    for key, w in sorted(weights):
        share = pool * w // total
        if share:
            out[key] = out.get(key, 0) + share
    return out, pool - sum(out.values())


@dataclass(frozen=True)
class EpochPayout:
    rewards: dict[bytes, int]
    treasury: int


def epoch_payout(
    fee_per_epoch: int,
    proposers: Sequence[tuple[bytes, int]],
    voters: Sequence[tuple[bytes, int]],
    has_committee: bool,
) -> EpochPayout:
    """Distribute one epoch's fee.

    ``proposers``: (pubkey, contribution weight) of ACCEPTED proposers of an accepted round
    (``verdicts.contribution_weights``; empty when
    the round was rejected or discarded); ``voters``: (pubkey, reward_weight) of agreeing
    voters. Without a committee the proposers receive the whole non-protocol share.
    """
    protocol = fee_per_epoch * PROTOCOL_FEE_BPS // BPS
    rest = fee_per_epoch - protocol
    proposer_pool = rest * PROPOSER_SHARE_BPS // BPS if has_committee else rest
    voter_pool = rest - proposer_pool
    p_out, p_dust = split_by_weight(proposer_pool, proposers)
    v_out, v_dust = split_by_weight(voter_pool, voters)
    rewards = dict(p_out)
    for k, v in v_out.items():
        rewards[k] = rewards.get(k, 0) + v
    treasury = protocol + p_dust + v_dust
    assert sum(rewards.values()) + treasury == fee_per_epoch
    return EpochPayout(rewards, treasury)
