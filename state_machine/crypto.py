"""Hashing, signatures and the minimal ABI encoding the STF commits to.

Why here and not web3: the state machine must stay a pure, dependency-light spec.
Every byte layout below is reproduced by the Solidity contracts (see docs/protocol.md),
so it is written out explicitly instead of borrowed from an RPC library.
"""

from __future__ import annotations

from typing import Any

try:  # C keccak (safe-pysha3): ~7x faster than pycryptodome on 32-64 byte inputs
    from sha3 import keccak_256 as _keccak_256
except ImportError:  # pragma: no cover - same digest, slower constructor
    from Crypto.Hash import keccak as _keccak

    def _keccak_256(data: bytes = b""):  # type: ignore[no-redef]
        return _keccak.new(digest_bits=256, data=data)

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from state_machine import keccak_native

ACTION_DOMAIN = b"flockchain/action/v1"
ACK_DOMAIN = b"flockchain/ack/v1"
ZERO32 = b"\x00" * 32
PUBKEY_LEN = 32
SIGNATURE_LEN = 64
ADDRESS_LEN = 20
# inputs from this size on go to keccak_native (the native library when built: 1.6x pysha3
# on one MiB-sized buffer; pysha3 otherwise, which keeps the 32-64 byte inputs)
BULK_BYTES = 64 * 1024


def keccak256(*parts: bytes) -> bytes:
    """keccak256 of the concatenation of ``parts`` (Ethereum's hash, not SHA3-256)."""
    if len(parts) == 1:
        p = parts[0]
        if len(p) < BULK_BYTES:
            return _keccak_256(p).digest()
        return keccak_native.keccak256(p)
    h = _keccak_256()
    for p in parts:
        h.update(p)
    return h.digest()


def keccak_hasher(data: bytes = b"") -> Any:
    """A running keccak256 (``update`` / ``copy`` / ``digest``) started with ``data``: for
    hashes that share a prefix, computed in one pass."""
    return _keccak_256(data)


def sign(secret_seed: bytes, message: bytes) -> bytes:
    """ed25519 signature of ``message`` with the 32-byte secret seed."""
    return SigningKey(secret_seed).sign(message).signature


def verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid ed25519 signature by ``pubkey`` over ``message``."""
    if len(pubkey) != PUBKEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        VerifyKey(pubkey).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def ack_message(action_hash: bytes, received_height: int) -> bytes:
    """What a sequencer ack signs: ``ACK_DOMAIN || action_hash || received_height`` (8 bytes
    BE). The domain prefix keeps an ack from ever being a valid signature over an action
    (whose messages start with ``ACTION_DOMAIN``)."""
    return ACK_DOMAIN + action_hash + received_height.to_bytes(8, "big")


def verify_ack(sequencer_pubkey: bytes, action_hash: bytes, received_height: int,
               ack: bytes) -> bool:
    """True iff ``ack`` is the sequencer's signature for this action and height."""
    return verify(sequencer_pubkey, ack_message(action_hash, received_height), ack)


def public_key(secret_seed: bytes) -> bytes:
    """The ed25519 public key for a 32-byte secret seed."""
    return bytes(SigningKey(secret_seed).verify_key)


# ---- ABI encoding of static types (abi.encode semantics: 32-byte words) ----


def abi_uint(value: int) -> bytes:
    """abi.encode(uint256)."""
    if not 0 <= value < 2**256:
        raise ValueError(f"uint256 out of range: {value}")
    return value.to_bytes(32, "big")


def abi_bytes32(value: bytes) -> bytes:
    """abi.encode(bytes32)."""
    if len(value) != 32:
        raise ValueError("bytes32 must be 32 bytes")
    return value


def abi_address(value: bytes) -> bytes:
    """abi.encode(address): 20 bytes left-padded with zeros."""
    if len(value) != ADDRESS_LEN:
        raise ValueError("address must be 20 bytes")
    return b"\x00" * 12 + value
