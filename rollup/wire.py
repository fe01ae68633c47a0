"""JSON forms of actions and records for the HTTP API and the SDK.

Why a JSON form at all: msgpack (Content-Type ``application/msgpack``, the canonical wire
bytes) is what the SDK sends, but a human with curl should be able to submit and read.

JSON action form (``POST /v1/actions`` with ``application/json``)::

    {"envelope": {"type": "commit_update", "chain_id": 7, "sender": "0x<32 bytes>",
                  "nonce": 0, "body": {"task_id": 1, "epoch": 0, "commitment": "0x.."}},
     "signature": "0x<64 bytes>"}

Byte fields are 0x-hex; ``u64`` fields are JSON integers (or decimal strings); ``u256``
fields (wei amounts) are decimal strings, JSON integers or 0x-hex numbers. The node
re-encodes the JSON into the canonical msgpack envelope, so the signature is always over
``DOMAIN || msgpack(envelope)``, never over JSON.

Records returned by the API use the same conventions, by type (``rollup.schemas``): bytes
as 0x-hex, wei amounts (``Wei``) as decimal strings so JavaScript clients keep every digit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from state_machine import codec
from state_machine.actions import BODY_TYPES, ActionError, SignedAction, decode_signed
from state_machine.reasons import Reason


def hexb(b: bytes) -> str:
    return "0x" + b.hex()


def unhex(s: str, n: int | None = None, what: str = "value") -> bytes:
    """0x-hex (prefix optional) to bytes, optionally of exactly ``n`` bytes."""
    if not isinstance(s, str):
        raise ValueError(f"{what} must be a hex string")
    try:
        b = bytes.fromhex(s[2:] if s[:2] in ("0x", "0X") else s)
    except ValueError:
        raise ValueError(f"{what} is not valid hex") from None
    if n is not None and len(b) != n:
        raise ValueError(f"{what} must be {n} bytes")
    return b


def jsonable(obj: Any) -> Any:
    """Wire values to JSON: bytes -> 0x-hex, tuples -> lists (u256 fields, which the wire
    carries as 32-byte big-endian bin, become 0x-hex numbers, which :func:`wire_from_json`
    accepts). API responses do not use this: their types (``rollup.schemas``) say how each
    field is written, e.g. wei as decimal strings."""
    if isinstance(obj, bytes):
        return hexb(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int, float)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _u64(v: Any, name: str) -> int:
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an unsigned integer")
    return v


def _u256(v: Any, name: str) -> bytes:
    if isinstance(v, bool):
        raise ValueError(f"{name} must be a uint256")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and v[:2] in ("0x", "0X"):
        n = int(v, 16)
    elif isinstance(v, str) and v.isdigit():
        n = int(v)
    else:
        raise ValueError(f"{name} must be a decimal string, integer or 0x-hex uint256")
    if not 0 <= n < 2**256:
        raise ValueError(f"{name} out of uint256 range")
    return n.to_bytes(32, "big")


def _field_from_json(kind: str, name: str, v: Any) -> Any:
    if kind == "u64":
        return _u64(v, name)
    if kind == "u256":
        return _u256(v, name)
    if kind in ("b20", "b32", "bytes"):
        return unhex(v, what=name)
    return v


def wire_from_json(obj: Any) -> bytes:
    """Canonical msgpack wire bytes from the JSON action form; raises ActionError."""
    try:
        if not isinstance(obj, dict) or set(obj) != {"envelope", "signature"}:
            raise ValueError("expected {envelope, signature}")
        env = obj["envelope"]
        if not isinstance(env, dict):
            raise ValueError("envelope must be an object")
        typ = env.get("type")
        if typ not in BODY_TYPES:
            raise ActionError(Reason.UNKNOWN_TYPE, repr(typ))
        schema = BODY_TYPES[typ].SCHEMA
        body = env.get("body")
        if not isinstance(body, dict):
            raise ValueError("body must be an object")
        wire_body = {
            k: _field_from_json(schema[k], k, v) if k in schema else v for k, v in body.items()
        }
        wire_env = {
            k: v for k, v in env.items() if k not in ("sender", "body", "chain_id", "nonce")
        }
        wire_env["body"] = wire_body
        if "sender" in env:
            wire_env["sender"] = unhex(env["sender"], what="sender")
        for k in ("chain_id", "nonce"):
            if k in env:
                wire_env[k] = _u64(env[k], k)
        wire = {"envelope": wire_env, "signature": unhex(obj["signature"], what="signature")}
        return codec.encode(wire)
    except ActionError:
        raise
    except (ValueError, TypeError, codec.CodecError) as exc:
        raise ActionError(Reason.MALFORMED, str(exc)) from None


def action_from_json(obj: Any) -> SignedAction:
    return decode_signed(wire_from_json(obj))


def action_to_json(sa: SignedAction) -> dict[str, Any]:
    """Inverse of :func:`action_from_json` (u256 as decimal strings)."""
    a = sa.action
    schema = type(a.body).SCHEMA
    body: dict[str, Any] = {}
    for k, kind in schema.items():
        v = getattr(a.body, k)
        if kind == "u256":
            body[k] = str(v)
        elif isinstance(v, bytes):
            body[k] = hexb(v)
        else:
            body[k] = v
    return {
        "envelope": {"type": a.type, "chain_id": a.chain_id, "sender": hexb(a.sender),
                     "nonce": a.nonce, "body": body},
        "signature": hexb(sa.signature),
    }
