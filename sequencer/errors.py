"""Submission errors and the HTTP status each reason maps to (SPEC §12).

Why one table: the sequencer, the HTTP API and the SDK must agree on which failures are the
caller's fault and retryable (409: nonce/window races) versus permanent (400/401/422).
"""

from __future__ import annotations

from state_machine.transition import ChainMismatch

__all__ = ["ChainMismatch", "RecoveryError", "SubmitError", "status_for"]

# reason -> HTTP status. Anything not listed is 422 (semantically invalid).
STATUS_BY_REASON: dict[str, int] = {
    # 400: the bytes are not a well-formed action
    "malformed": 400,
    "unknown_type": 400,
    "invalid_body": 400,
    "unsupported_content_type": 400,
    "not_system": 400,
    # 401: not authenticated
    "bad_signature": 401,
    "system_action": 401,
    "unauthorized": 401,
    # 409: conflicts with the chain's (pending) order: nonce, window, duplicates
    "bad_nonce": 409,
    "wrong_window": 409,
    "wrong_epoch": 409,
    "already_committed": 409,
    "already_revealed": 409,
    "duplicate_commitment": 409,
    "l1_out_of_order": 409,
    "nothing_to_advance": 409,
    # 413
    "too_large": 413,
    # 422: well-formed but can never be valid
    "bad_chain_id": 422,
    "unknown_task": 422,
    "wrong_length": 422,
    "hash_mismatch": 422,
    "not_selected": 422,
    "not_committed": 422,
    "commitment_mismatch": 422,
    "invalid_value": 422,
    # 503: the node could not make the action durable
    "storage_error": 503,
    "shutting_down": 503,
}


def status_for(reason: str) -> int:
    return STATUS_BY_REASON.get(reason, 422)


class SubmitError(Exception):
    """A refused submission: nothing was stored. ``status`` is the HTTP code."""

    def __init__(self, reason: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status if status is not None else status_for(reason)

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


class RecoveryError(RuntimeError):
    """The database does not replay to the chain it claims (or was written by another
    chain id)."""
