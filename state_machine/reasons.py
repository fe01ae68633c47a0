"""Every reason an action can be refused or rejected, defined once (``Reason``).

Why one enum: the STF writes a reason into each rejected receipt, the sequencer refuses
submissions with a reason, and the HTTP API maps each reason to a status code
(``sequencer.errors.STATUS_BY_REASON``). With one definition per reason a reader can grep
a receipt's reason and land here, and the mempool and the STF cannot drift apart (they did:
an out-of-range vote was ``invalid_value`` in one and ``invalid_body`` in the other).

Values are the strings stored in receipts and returned as ``reason`` over HTTP; changing a
value changes receipts and therefore block hashes (a protocol change).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Rejection / refusal reasons. STF reasons first, then node-only (admission) ones."""

    # ---- well-formedness (STF and node)
    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_BODY = "invalid_body"
    # ---- authentication and ordering (STF precheck)
    BAD_CHAIN_ID = "bad_chain_id"
    BAD_SIGNATURE = "bad_signature"
    BAD_NONCE = "bad_nonce"
    # ---- L1 system actions
    L1_OUT_OF_ORDER = "l1_out_of_order"
    PUBKEY_BOUND = "pubkey_bound"
    ADDRESS_BOUND = "address_bound"
    BAD_POP = "bad_pop"  # deposit whose proof of possession does not verify (issue 11)
    ALREADY_STAKED = "already_staked"
    UNKNOWN_ACCOUNT = "unknown_account"
    DUPLICATE_TASK = "duplicate_task"
    # a forced action (issue 11, F-12) that wraps another system action
    FORCED_SYSTEM_ACTION = "forced_system_action"
    # ---- task / epoch windows and roles
    UNKNOWN_TASK = "unknown_task"
    WRONG_WINDOW = "wrong_window"
    WRONG_EPOCH = "wrong_epoch"
    NOT_SELECTED = "not_selected"
    ALREADY_COMMITTED = "already_committed"
    DUPLICATE_COMMITMENT = "duplicate_commitment"
    NOT_COMMITTED = "not_committed"
    ALREADY_REVEALED = "already_revealed"
    COMMITMENT_MISMATCH = "commitment_mismatch"
    WRONG_LENGTH = "wrong_length"
    HASH_MISMATCH = "hash_mismatch"
    NOTHING_TO_ADVANCE = "nothing_to_advance"
    PHASE_INCOMPLETE = "phase_incomplete"
    # ---- protocol v2 updates (bytes in the blob store, see state_machine/chunks.py)
    BLOB_UNAVAILABLE = "blob_unavailable"
    BLOB_MISMATCH = "blob_mismatch"
    # protocol 4 (chunk root only): a v2 reveal names its content by the chunk root at the
    # one chunk size (``state_machine.rules.check_root_addressed``)
    BAD_CHUNK_SIZE = "bad_chunk_size"
    NOT_CHUNK_ROOT = "not_chunk_root"
    NOT_ON_PROTOCOL = "not_on_protocol"  # an action type this chain's protocol predates
    # ---- node only: admission, transport, operations (never in a receipt)
    NOT_STAKED = "not_staked"
    ALREADY_REJECTED = "already_rejected"
    RATE_LIMITED = "rate_limited"
    MEMPOOL_FULL = "mempool_full"
    TOO_LARGE = "too_large"
    TOO_COMPLEX = "too_complex"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    SYSTEM_ACTION = "system_action"
    NOT_SYSTEM = "not_system"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    HEADERS_TOO_LARGE = "headers_too_large"
    OUT_OF_RANGE = "out_of_range"
    NO_NEW_BLOCKS = "no_new_blocks"
    UNKNOWN_ACTION = "unknown_action"
    UNKNOWN_BLOCK = "unknown_block"
    UNKNOWN_BATCH = "unknown_batch"
    UNKNOWN_EPOCH = "unknown_epoch"
    UNKNOWN_BLOB = "unknown_blob"
    STORAGE_ERROR = "storage_error"
    READ_ONLY = "read_only"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL_ERROR = "internal_error"


class EpochOutcome(StrEnum):
    """Why an epoch ended as it did (``outcome_reason`` in the epoch record); one definition
    each, like ``Reason``. Values are recorded in the state, so changing one is a protocol
    change."""

    TOO_FEW_UPDATES = "too_few_updates"  # fewer than 2f + 3 revealed: nothing is scored
    NO_ACCEPTED_UPDATE = "no_accepted_update"  # every update carried evidence
    INT32_OVERFLOW = "int32_overflow"  # the candidate global model left int32
    NO_COMMITTEE = "no_committee"  # no voters: accepted on the verdicts alone
    NO_VOTES = "no_votes"  # no voter revealed: discarded without the rejection slash
    VOTE_ACCEPTED = "vote_accepted"  # stake-weighted median improvement >= 0
    VOTE_REJECTED = "vote_rejected"  # stake-weighted median improvement < 0
