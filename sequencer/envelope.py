"""Wire-level helpers of admission: the action hash, the envelope inside the wire bytes,
and the ed25519 check, each done once on bytes that may be tens of MB.

Why apart from the sequencer: they are pure functions of the bytes; the facade only calls
them.
"""

from __future__ import annotations

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from state_machine import codec
from state_machine.actions import SignedAction
from state_machine.crypto import ACTION_DOMAIN, keccak256

try:  # C keccak (safe-pysha3, in the lock): ~7x faster than pycryptodome for small inputs
    from sha3 import keccak_256 as _keccak_256

    def action_hash(env: bytes, sig: bytes) -> bytes:
        h = _keccak_256(env)
        h.update(sig)
        return h.digest()
except ImportError:  # pragma: no cover - same result, slower

    def action_hash(env: bytes, sig: bytes) -> bytes:
        return keccak256(env, sig)


def verify_env(pubkey: bytes, env: bytes, sig: bytes) -> bool:
    """ed25519 check of ``sig`` over ``ACTION_DOMAIN || env`` (same as
    ``SignedAction.signature_valid``, with one copy of a large message instead of three)."""
    try:
        crypto_sign_open(sig + ACTION_DOMAIN + env, pubkey)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


ENV_PREFIX = b"\x82\xa8envelope"


def envelope_bytes(raw: bytes, sa: SignedAction) -> bytes:
    """The canonical envelope bytes inside canonical wire bytes ``raw``, without
    re-encoding (tens of MB for a reveal). Wire layout: fixmap(2), "envelope", <envelope>,
    "signature", bin(signature); falls back to re-encoding if the layout differs."""
    tail = codec.encode({"signature": sa.signature})[1:]
    if raw[:10] == ENV_PREFIX and raw.endswith(tail):
        return raw[10 : len(raw) - len(tail)]
    return sa.action.encode()
