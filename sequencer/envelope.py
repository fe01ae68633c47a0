"""Wire-level helper of admission: the ed25519 check, done once on bytes that may be tens
of MB.

Why apart from the sequencer: a pure function of the bytes; the facade only calls it. (The
envelope bytes and the action hash come from the decoded action itself: ``decode_signed``
keeps the wire's envelope bytes, and ``SignedAction.hash`` is computed once and read again
by block production.)
"""

from __future__ import annotations

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from state_machine.crypto import ACTION_DOMAIN


def verify_env(pubkey: bytes, env: bytes, sig: bytes) -> bool:
    """ed25519 check of ``sig`` over ``ACTION_DOMAIN || env`` (same as
    ``SignedAction.signature_valid``, with one copy of a large message instead of three)."""
    try:
        crypto_sign_open(sig + ACTION_DOMAIN + env, pubkey)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
