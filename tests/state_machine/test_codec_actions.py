"""Canonical msgpack and action envelopes: what is accepted, what is rejected."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from state_machine import codec
from state_machine.actions import (
    BODY_TYPES,
    SYSTEM_TYPES,
    Action,
    ActionError,
    CommitUpdateBody,
    DepositBody,
    SignedAction,
    decode_signed,
    make_action,
    system_action,
)
from state_machine.constants import SYSTEM_SENDER
from state_machine.crypto import keccak256, public_key
from state_machine.reasons import Reason
from state_machine.transition import Receipt

SEED = b"\x01" * 32
PK = public_key(SEED)

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(values)
def test_roundtrip_is_identity(v):
    data = codec.encode(v)
    assert codec.encode(codec.decode(data)) == data


@given(values)
def test_decode_accepts_exactly_the_canonical_encoding(v):
    """The fast canonical check (key order walked, no re-sort) accepts what the rule
    "re-encode canonically and compare" accepts, and nothing else."""
    data = msgpack.packb(v, use_bin_type=True)  # maps in whatever order hypothesis built
    try:
        codec.decode(data)
        accepted = True
    except codec.CodecError:
        accepted = False
    assert accepted == (codec.encode(v) == data)


_SAMPLE = {"u64": 5, "u256": 7, "b20": b"\x02" * 20, "b32": b"\x03" * 32, "bytes": b"xy",
           "str": "m"}


@pytest.mark.parametrize("typ", sorted(BODY_TYPES))
def test_decoded_envelope_bytes_are_its_canonical_encoding(typ):
    """``decode_signed`` keeps the envelope's bytes from the wire instead of re-encoding;
    they must be exactly what encoding the decoded action gives, for every action type."""
    cls = BODY_TYPES[typ]
    body = cls(**{k: _SAMPLE[kind] for k, kind in cls.SCHEMA.items()})
    system = typ in SYSTEM_TYPES
    action = Action(typ, 7, SYSTEM_SENDER if system else PK, 3, body)
    wire = SignedAction(action, b"" if system else b"\x09" * 64).encode()
    back = decode_signed(wire)
    kept = back.action.__dict__["_encoded"]
    assert kept == codec.encode(back.action.to_wire()) == action.encode()
    assert back.hash == keccak256(action.encode(), back.signature)


def test_rejects_unsorted_keys():
    raw = b"\x82" + msgpack.packb("b") + b"\x01" + msgpack.packb("a") + b"\x02"
    with pytest.raises(codec.CodecError, match="non-canonical"):
        codec.decode(raw)


def test_rejects_floats_and_long_ints_and_trailing_bytes():
    with pytest.raises(codec.CodecError):
        codec.decode(msgpack.packb(1.5))
    with pytest.raises(codec.CodecError):
        codec.encode({"a": 1.0})
    with pytest.raises(codec.CodecError, match="non-canonical"):
        codec.decode(b"\xcd\x00\x05")  # uint16 form of 5
    with pytest.raises(codec.CodecError):
        codec.decode(codec.encode(1) + b"\x00")


def _commit(nonce=0):
    return make_action(SEED, "commit_update", 7, nonce, CommitUpdateBody(1, 0, b"\x05" * 32), PK)


def test_signed_action_roundtrip_and_hash():
    sa = _commit()
    assert sa.signature_valid()
    back = decode_signed(sa.encode())
    assert back == sa and back.hash == keccak256(sa.action.encode(), sa.signature)


def test_tampered_signature_or_body_fails_verification():
    sa = _commit()
    bad_sig = SignedAction(sa.action, bytes([sa.signature[0] ^ 1]) + sa.signature[1:])
    assert not bad_sig.signature_valid()
    other = _commit(nonce=1)
    assert not SignedAction(other.action, sa.signature).signature_valid()


def _wire(mutate):
    w = _commit().to_wire()
    mutate(w)
    return codec.encode(w)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda w: w["envelope"]["body"].__setitem__("extra", 1), "invalid_body"),
        (lambda w: w["envelope"]["body"].pop("commitment"), "invalid_body"),
        (lambda w: w["envelope"]["body"].__setitem__("commitment", b"short"), "invalid_body"),
        (lambda w: w["envelope"]["body"].__setitem__("epoch", -1), "invalid_body"),
        (lambda w: w["envelope"].__setitem__("type", "mint"), "unknown_type"),
        (lambda w: w["envelope"].__setitem__("extra", 0), "malformed"),
        (lambda w: w.__setitem__("signature", b"x" * 10), "malformed"),
        (lambda w: w["envelope"].__setitem__("sender", "not-bytes"), "invalid_body"),
    ],
)
def test_schema_violations_have_reasons(mutate, reason):
    with pytest.raises(ActionError) as exc:
        decode_signed(_wire(mutate))
    assert exc.value.reason == reason


def test_system_action_needs_zero_sender_and_no_signature():
    body = DepositBody(b"\x01" * 20, PK, 10**17, 1, 0, b"\x00" * 32)
    sa = system_action("l1_deposit", 7, 0, body)
    assert sa.signature_valid()
    assert not SignedAction(sa.action, b"\x00" * 64).signature_valid()
    assert decode_signed(sa.encode()) == sa
    # u256 travels as 32-byte bin
    assert sa.to_wire()["envelope"]["body"]["amount"] == (10**17).to_bytes(32, "big")


@pytest.mark.parametrize("receipt", [
    Receipt(b"\x01" * 32, True),
    Receipt(b"\x02" * 32, False, Reason.BAD_NONCE, "expected nonce 3, got 5"),
    Receipt(b"\x03" * 32, False, "wrong_window", "phase ë closed ✓"),
    Receipt(b"", True, "ok", "x" * 300),
])
def test_receipt_encode_is_the_canonical_encoding_of_its_record(receipt: Receipt) -> None:
    """receipts_root hashes Receipt.encode(); it must equal codec.encode(to_record())."""
    assert receipt.encode() == codec.encode(receipt.to_record())
    assert codec.decode(receipt.encode()) == receipt.to_record()
