"""Canonical msgpack (SPEC §2): sorted string keys, shortest ints, no floats, bin bytes.

Why strict decoding: the action hash and signatures are taken over bytes, so two
encodings of the same value must not both be accepted. We decode, re-encode canonically
and demand byte equality; this rejects unsorted or duplicate keys, long integer forms,
``str`` where ``bin`` is required, and anything else that is not the unique encoding.
"""

from __future__ import annotations

from typing import Any

import msgpack

MAX_DEPTH = 16


class CodecError(ValueError):
    """Input is not canonical msgpack of the allowed types."""


def _is_leaf(value: Any, depth: int) -> bool:
    """Shared by both walks: True for an allowed scalar, raise for a forbidden one or too
    deep a nesting, False for a container (the caller walks it)."""
    if depth > MAX_DEPTH:
        raise CodecError("nesting too deep")
    if isinstance(value, bool) or value is None or isinstance(value, (bytes, str)):
        return True
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise CodecError("integer out of msgpack range")
        return True
    if isinstance(value, float):
        raise CodecError("floats are not allowed")
    return False


def _check(value: Any, depth: int = 0) -> None:
    if _is_leaf(value, depth):
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check(v, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CodecError("map keys must be strings")
            _check(v, depth + 1)
        return
    raise CodecError(f"type not allowed: {type(value).__name__}")


def _check_decoded(value: Any, depth: int = 0) -> None:
    """:func:`_check` of a decoded value, plus: every map's keys in strictly increasing
    bytewise order, the order :func:`encode` writes. Decoded maps keep the wire's key
    order, so after this walk ``packb(value)`` equals ``encode(value)`` without sorting
    or rebuilding anything (decoding is on every submission's path)."""
    if _is_leaf(value, depth):
        return
    if isinstance(value, list):
        for v in value:
            _check_decoded(v, depth + 1)
        return
    if isinstance(value, dict):
        prev = b""
        for i, (k, v) in enumerate(value.items()):
            if not isinstance(k, str):
                raise CodecError("map keys must be strings")
            kb = k.encode()
            if i and kb <= prev:
                raise CodecError("non-canonical encoding")
            prev = kb
            _check_decoded(v, depth + 1)
        return
    raise CodecError(f"type not allowed: {type(value).__name__}")


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value, key=lambda s: s.encode())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def encode(value: Any) -> bytes:
    """Canonical msgpack bytes of ``value`` (dict keys sorted bytewise)."""
    _check(value)
    return msgpack.packb(_canonical(value), use_bin_type=True)


def encode_ordered(value: dict[str, Any]) -> bytes:
    """:func:`encode` of a flat map whose keys the caller wrote in canonical (bytewise)
    order and whose values it knows to be scalars of the allowed types (bytes, str, bool,
    None, in-range int): the same bytes without the generic walk and re-sort. For records
    hashed once per action in every block (receipts); ``tests/state_machine`` pins it to
    :func:`encode`."""
    return msgpack.packb(value, use_bin_type=True)


def _no_ext(code: int, data: bytes) -> Any:
    raise CodecError("extension types are not allowed")


def decode(data: bytes) -> Any:
    """Decode canonical msgpack; raises CodecError on any non-canonical input."""
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_no_ext,
            max_bin_len=len(data),
            max_str_len=len(data),
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError(f"malformed msgpack: {exc}") from exc
    _check_decoded(value)
    if msgpack.packb(value, use_bin_type=True) != bytes(data):
        raise CodecError("non-canonical encoding")
    return value
