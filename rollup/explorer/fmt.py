"""Formatting helpers for the explorer's templates: amounts, hashes, reasons.

Why tolerant parsers: the explorer reads records whose exact layout other parts of the
project may change (wei fields as 32-byte big-endian, as decimal strings, or as ints;
new verdict reasons). Every helper here accepts all of those forms and falls back to
showing the raw value rather than failing the page.
"""

from __future__ import annotations

from typing import Any

WEI_PER_ETH = 10**18

# Human text for the reason codes the STF writes. Unknown codes are shown as they are.
REASON_TEXT: dict[str, str] = {
    # v2 verdicts (state_machine.penalties.SlashReason and judge_epoch's notes)
    "norm_bound": "update norm above the task's declared bound (honest clients clip to it)",
    "zero_update": "all-zero update: no training at all",
    "replay": "bit-identical to a past public update or aggregate",
    "copy_of_public_update": "an exact copy of a public update: left out, its author not blamed",
    "not_admitted": "left out of the aggregate by the task's robust aggregation rule",
    "norm_violation": "verdict NORM_VIOLATION: update norm above the task's bound",
    # v1 verdicts (chains recorded before v2)
    "lazy_free_rider": "update norm far below the median norm (did little or no training)",
    "replay_free_rider": "update points the same way as last epoch's aggregate (replayed it)",
    "duplicate": "update is (nearly) identical to another proposer's",
    "krum_outlier": "Krum score far above the median (far from the other updates)",
    "adversarial_direction": "update points against the Multi-Krum centre (negative cosine)",
    "absent": "selected but did not act in time",
    "absent_proposer": "selected as proposer but revealed no update in time",
    "absent_voter": "selected as voter but revealed no vote in time",
    "outlier": "verdict OUTLIER: its update points against the other updates",
    "free_rider": "verdict FREE_RIDER: no real training (tiny or replayed update)",
    "excluded": "verdict EXCLUDED: a Krum outlier",
    "disagreeing_voter": "vote far from the committee's stake-weighted median",
    "round_rejected": "its accepted update was in a round the committee rejected",
    # epoch outcomes
    "vote_accepted": "the committee found the candidate better",
    "vote_rejected": "the committee found the candidate worse",
    "too_few_updates": "fewer than 2f + 3 updates were revealed",
    "no_accepted_update": "every update was flagged",
    "no_committee": "no voters selected: accepted on the checks alone",
    "no_votes": "no voter revealed a vote",
    "int32_overflow": "the aggregate overflowed int32",
}

# Verdicts that mean "this participant did its job" (styled as good).
GOOD_VERDICTS = frozenset({"ACCEPTED", "AGREE", "accepted", "agree"})


def as_int(x: Any) -> int | None:
    """An integer from an int, a decimal string, a 0x-hex string or big-endian bytes."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    if isinstance(x, bytes | bytearray):
        return int.from_bytes(x, "big")
    if isinstance(x, str):
        s = x.strip()
        try:
            return int(s, 16) if s.lower().startswith("0x") else int(s)
        except ValueError:
            return None
    return None


def eth(x: Any, digits: int = 6) -> str:
    """Wei as ETH for people (``0.05 ETH``); unparseable values are shown raw."""
    v = as_int(x)
    if v is None:
        return "-" if x is None else str(x)
    s = f"{v / WEI_PER_ETH:.{digits}f}".rstrip("0").rstrip(".")
    return f"{s} ETH"


def short(h: Any, n: int = 6) -> str:
    """``0x1234…abcd`` for long hex strings; anything else unchanged."""
    s = str(h)
    if s.startswith("0x") and len(s) > 2 + 2 * n + 1:
        return f"{s[: 2 + n]}…{s[-n:]}"
    return s


def pct(bps: Any) -> str:
    v = as_int(bps)
    return "-" if v is None else f"{v / 100:.2f}%"


def points(bps: Any) -> str:
    """A signed accuracy difference in bps as percentage points (``+1.25 pts``)."""
    v = as_int(bps)
    return "-" if v is None else f"{v / 100:+.2f} pts"


def reason_text(code: Any) -> str:
    s = str(code)
    base = s.split(":", 1)[0]
    return REASON_TEXT.get(s, REASON_TEXT.get(base, s.replace("_", " ")))


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number(v: Any) -> str:
    """Integers with thin grouping (exact); floats to 4 significant digits."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}".replace(",", "\u202f")
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
