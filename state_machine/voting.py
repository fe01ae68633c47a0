"""Committee vote aggregation (SPEC §7, as in FLock).

Why a stake-weighted *lower* median: it is an integer, needs no division, is robust to
a stake minority of dishonest voters, and ties resolve deterministically by sorting on
(value, pubkey).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from state_machine.constants import VOTE_TOLERANCE_BPS


@dataclass(frozen=True)
class Vote:
    pubkey: bytes
    stake: int
    acc_candidate_bps: int
    acc_current_bps: int

    @property
    def diff(self) -> int:
        return self.acc_candidate_bps - self.acc_current_bps


@dataclass(frozen=True)
class VoterOutcome:
    pubkey: bytes
    diff: int
    agrees: bool
    reward_weight: int


@dataclass(frozen=True)
class VoteResult:
    aggregate: int
    accepted: bool
    accuracy_bps: int
    outcomes: list[VoterOutcome]


def weighted_lower_median(values: Sequence[tuple[int, bytes, int]]) -> int:
    """Smallest value v whose cumulative weight reaches half the total weight.

    ``values`` are (value, pubkey, weight); sorting by (value, pubkey) fixes ties.
    With zero total weight, the plain lower median is used.
    """
    items = sorted(values, key=lambda t: (t[0], t[1]))
    total = sum(w for _, _, w in items)
    if total == 0:
        return items[(len(items) - 1) // 2][0]
    cum = 0
    for value, _, w in items:
        cum += w
        if 2 * cum >= total:
            return value
    return items[-1][0]


def _sign_nonneg(x: int) -> bool:
    return x >= 0


def tally(votes: Sequence[Vote], tolerance: int = VOTE_TOLERANCE_BPS) -> VoteResult:
    """Aggregate, accept/discard, per-voter agreement and reward weight (a disagreeing
    voter's weight is 0; since protocol v3 it is not slashed)."""
    if not votes:
        raise ValueError("no votes")
    agg = weighted_lower_median([(v.diff, v.pubkey, v.stake) for v in votes])
    outcomes = []
    for v in sorted(votes, key=lambda x: x.pubkey):
        dev = abs(v.diff - agg)
        agrees = _sign_nonneg(v.diff) == _sign_nonneg(agg)
        weight = v.stake * max(0, tolerance - dev) if agrees else 0
        outcomes.append(VoterOutcome(v.pubkey, v.diff, agrees, weight))
    accuracy = sorted(v.acc_candidate_bps for v in votes)[(len(votes) - 1) // 2]
    return VoteResult(agg, agg >= 0, accuracy, outcomes)
