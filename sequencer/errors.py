"""Submission errors and the HTTP status each reason maps to (SPEC §12).

Why one table: the sequencer, the HTTP API and the SDK must agree on which failures are the
caller's fault and retryable (409: nonce/window races) versus permanent (400/401/422).
"""

from __future__ import annotations

from state_machine.reasons import Reason
from state_machine.transition import ChainMismatch

__all__ = ["ChainMismatch", "RecoveryError", "SubmitError", "status_for"]

R = Reason

# reason -> HTTP status: the one table (SPEC §12). Anything not listed is 422.
STATUS_BY_REASON: dict[str, int] = {
    # 400: the bytes are not a well-formed action (or request)
    **dict.fromkeys((R.MALFORMED, R.UNKNOWN_TYPE, R.INVALID_BODY, R.UNSUPPORTED_CONTENT_TYPE,
                     R.NOT_SYSTEM, R.TOO_COMPLEX, R.OUT_OF_RANGE), 400),
    # 401: not authenticated
    **dict.fromkeys((R.BAD_SIGNATURE, R.SYSTEM_ACTION, R.UNAUTHORIZED), 401),
    # 403: authenticated but not allowed to make the node store this
    R.NOT_STAKED: 403,
    # 404 / 405
    **dict.fromkeys((R.NOT_FOUND, R.UNKNOWN_ACTION, R.UNKNOWN_BLOCK, R.UNKNOWN_BATCH,
                     R.UNKNOWN_EPOCH, R.UNKNOWN_BLOB, R.UNKNOWN_ACCOUNT), 404),
    R.METHOD_NOT_ALLOWED: 405,
    # 409: conflicts with the chain's (pending) order: nonce, window, duplicates
    **dict.fromkeys((R.BAD_NONCE, R.WRONG_WINDOW, R.WRONG_EPOCH, R.ALREADY_COMMITTED,
                     R.ALREADY_REVEALED, R.DUPLICATE_COMMITMENT, R.L1_OUT_OF_ORDER,
                     R.NOTHING_TO_ADVANCE, R.NO_NEW_BLOCKS, R.ALREADY_REJECTED), 409),
    R.TOO_LARGE: 413,
    R.HEADERS_TOO_LARGE: 431,
    # 429: try later
    **dict.fromkeys((R.RATE_LIMITED, R.MEMPOOL_FULL), 429),
    # 422: well-formed but can never be valid
    **dict.fromkeys((R.BAD_CHAIN_ID, R.UNKNOWN_TASK, R.WRONG_LENGTH, R.HASH_MISMATCH,
                     R.NOT_SELECTED, R.NOT_COMMITTED, R.COMMITMENT_MISMATCH), 422),
    R.INTERNAL_ERROR: 500,
    # 503: the node could not make the action durable
    **dict.fromkeys((R.STORAGE_ERROR, R.READ_ONLY, R.SHUTTING_DOWN), 503),
}


def status_for(reason: str) -> int:
    return STATUS_BY_REASON.get(reason, 422)


class SubmitError(Exception):
    """A refused submission: nothing was stored. ``status`` is the HTTP code."""

    def __init__(self, reason: Reason | str, detail: str = "", status: int | None = None) -> None:
        reason = str(Reason(reason))
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status if status is not None else status_for(reason)

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


class RecoveryError(RuntimeError):
    """The database does not replay to the chain it claims (or was written by another
    chain id)."""
