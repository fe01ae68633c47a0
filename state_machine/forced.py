"""Forced inclusion of a client's signed action through L1 (issue 11, F-12).

Why: a sequencer that drops a selected client's commit or reveal from its mempool gets
the honest client slashed ``ABSENT``. The client posts the same signed bytes to
``StakingRegistry.forceInclude``; the log becomes the system action ``l1_forced_action``,
which the sequencer must carry in L1 order like every bridge log (the verifier's
``skipped_l1_event`` / ``l1_inclusion_lag`` rules, ``bridge/inclusion.py``).

Rules, one function each:

* the wrapper consumes its L1 position whatever the inner action is (a log the rollup
  could refuse would block every later log: F-02's lesson), and moves no money itself;
* the inner action is applied with exactly the checks of a mempool action
  (``process_inner``: chain id, signature, nonce, phase, window, selection, ...), so
  forcing gives a client nothing it could not have had from an honest sequencer;
* an inner action that is malformed, a system action, or rejected leaves the state as it
  was (handlers raise before their first mutation) and is recorded in the wrapper's
  receipt detail (``receipt_detail``) with its reason.
"""

from __future__ import annotations

from collections.abc import Callable

from state_machine.actions import ActionError, ForcedActionBody, SignedAction, decode_signed
from state_machine.reasons import Reason
from state_machine.rules import Rejected

FORCED_APPLIED = "forced_action_applied"
FORCED_REJECTED = "forced_action_rejected"


def decode_inner(b: ForcedActionBody) -> SignedAction:
    """The wrapped action, or Rejected(reason) if it is malformed or a system action (only
    L1 logs make system actions: a forced one would let anyone forge a deposit)."""
    try:
        inner = decode_signed(b.action)
    except ActionError as exc:
        raise Rejected(exc.reason, exc.detail) from exc
    if inner.action.is_system:
        raise Rejected(Reason.FORCED_SYSTEM_ACTION, inner.action.type)
    return inner


def apply_forced(b: ForcedActionBody, process_inner: Callable[[SignedAction], list[str]]
                 ) -> list[str]:
    """Apply the inner action through ``process_inner`` (the STF's own ``process_action``);
    returns the wrapper's events: ``FORCED_APPLIED`` and the inner events, or
    ``FORCED_REJECTED`` and ``"<reason>: <detail>"``. Never raises Rejected: the L1
    position is consumed either way (the caller advances the cursor)."""
    try:
        events = process_inner(decode_inner(b))
    except Rejected as r:
        return [FORCED_REJECTED, f"{r.reason}: {r.detail}" if r.detail else r.reason]
    return [FORCED_APPLIED, *events]


def receipt_detail(events: list[str]) -> str:
    """The committed receipt detail of an applied action: why a forced inner action was
    rejected (``"forced: <reason>[: <detail>]"``), empty otherwise (so chains without
    forced actions keep their receipts)."""
    if len(events) == 2 and events[0] == FORCED_REJECTED:
        return f"forced: {events[1]}"
    return ""


def inner_v2_update(b: ForcedActionBody) -> tuple[bytes, int] | None:
    """(update_hash, size) of a wrapped ``reveal_update_v2`` (None otherwise): its bytes
    must be resolved beside the block like a mempool v2 reveal's (sequencer and verifier)."""
    try:
        inner = decode_inner(b)
    except Rejected:
        return None
    if inner.action.type != "reveal_update_v2":
        return None
    body = inner.action.body
    return body.update_hash, body.size  # type: ignore[attr-defined]
