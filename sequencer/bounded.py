"""Bounded decoding of untrusted bodies: structure is checked before any object is built.

Why: ``msgpack.unpackb`` and ``json.loads`` build every object a body describes before the
schema is looked at; a 60 MiB msgpack body of empty arrays is 60 million Python lists
(8.9 GiB, 150 s of CPU), and deeply nested JSON raises ``RecursionError``. A signed action
is small in structure whatever its size (no field is a container; the big payloads are
single ``bin`` / hex strings), so we walk the headers first, refuse as soon as a limit is
crossed, and only then decode. The walk looks at most ``max_items`` headers and skips
payloads by their length, so refusing costs O(max_items), never O(body), and accepting
costs what decoding the action costs anyway.

Limits (refusals are :class:`~sequencer.errors.SubmitError` ``too_complex``, HTTP 400):

* msgpack: at most :data:`MAX_ITEMS` objects in total, nesting at most :data:`MAX_DEPTH`,
  no ext types or floats, exactly one top-level object;
* JSON: at most :data:`MAX_JSON_CONTAINERS` ``[``/``{`` bytes in the whole body (counted
  in C; a valid action form has 4), which also bounds nesting, so ``json.loads`` can
  neither recurse deeply nor build many containers.
"""

from __future__ import annotations

import json
from typing import Any

from sequencer.errors import SubmitError
from state_machine.reasons import Reason

MAX_ITEMS = 64  # a signed action has 2 + 5 + (at most 11 body fields) map entries
MAX_DEPTH = 4  # wire -> envelope -> body -> field
MAX_JSON_CONTAINERS = 32

_FIXED = {  # header byte -> bytes that follow (scalars)
    0xC0: 0, 0xC2: 0, 0xC3: 0,
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
}
_LEN = {  # header byte -> size of the length field (bin / str)
    0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4,
}
_CONTAINER = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # -> (len size, x)


def _too_complex(detail: str) -> SubmitError:
    return SubmitError(Reason.TOO_COMPLEX, detail)


def _malformed(detail: str) -> SubmitError:
    return SubmitError(Reason.MALFORMED, detail)


def _header(data: Any, pos: int) -> tuple[int, int, int]:
    """(bytes to skip after the header, child count, new pos) of the object at ``pos``."""
    b = data[pos]
    pos += 1
    if b <= 0x7F or b >= 0xE0:
        return 0, 0, pos
    if 0x80 <= b <= 0x8F:
        return 0, 2 * (b & 0x0F), pos
    if 0x90 <= b <= 0x9F:
        return 0, b & 0x0F, pos
    if 0xA0 <= b <= 0xBF:
        return b & 0x1F, 0, pos
    if b in _FIXED:
        return _FIXED[b], 0, pos
    if b in _LEN or b in _CONTAINER:
        size, mult = (_LEN[b], 0) if b in _LEN else _CONTAINER[b]
        if pos + size > len(data):
            raise _malformed("truncated msgpack header")
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        return (n, 0, pos) if b in _LEN else (0, n * mult, pos)
    if b in (0xCA, 0xCB):
        raise _malformed("floats are not allowed")
    raise _malformed("msgpack ext types (or byte 0xc1) are not allowed")


def _table() -> list[tuple[int, int, int, int]]:
    """Per header byte: (payload bytes to skip, child count, size of a length field,
    children per counted element); a length field of size 0 with skip -1 marks a byte that
    is refused (float, ext, 0xc1). What :func:`_header` computes, looked up once per
    object instead of branching (the walk runs on the event loop for every action)."""
    out = []
    for b in range(256):
        if b in (0xCA, 0xCB) or not (b <= 0xBF or b >= 0xE0 or b in _FIXED or b in _LEN
                                     or b in _CONTAINER):
            out.append((-1, 0, 0, 0))
        elif b in _LEN:
            out.append((0, 0, _LEN[b], 0))
        elif b in _CONTAINER:
            out.append((0, 0, _CONTAINER[b][0], _CONTAINER[b][1]))
        else:
            skip, children, _ = _header(bytes([b]) + b"\0" * 8, 0)
            out.append((skip, children, 0, 0))
    return out


_TABLE = _table()


def check_msgpack_shape(data: Any, max_items: int = MAX_ITEMS,
                        max_depth: int = MAX_DEPTH) -> None:
    """Walk the msgpack headers of ``data`` (bytes-like) without building objects.
    Raises SubmitError (``too_complex`` / ``malformed``)."""
    n = len(data)
    pos, items = 0, 0
    table = _TABLE
    stack = [1]  # objects still expected at each open level
    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        if pos >= n:
            raise _malformed("truncated msgpack")
        stack[-1] -= 1
        items += 1
        if items > max_items:
            raise _too_complex(f"more than {max_items} msgpack objects")
        skip, children, size, mult = table[data[pos]]
        pos += 1
        if size:  # bin / str / array16+ / map16+: a big-endian length follows
            if pos + size > n:
                raise _malformed("truncated msgpack header")
            count = int.from_bytes(data[pos:pos + size], "big")
            pos += size
            if mult:
                children = count * mult
            else:
                skip = count
        elif skip < 0:
            _header(data, pos - 1)  # raises the refusal for this byte
        pos += skip
        if pos > n:
            raise _malformed("truncated msgpack payload")
        if children:
            if len(stack) > max_depth:
                raise _too_complex(f"nesting deeper than {max_depth}")
            if children > max_items:
                raise _too_complex(f"a container of {children} objects")
            stack.append(children)
    if pos != n:
        raise _malformed("trailing bytes after the msgpack object")


def check_json_shape(body: Any, max_containers: int = MAX_JSON_CONTAINERS) -> None:
    """Refuse a JSON body with more than ``max_containers`` opening brackets (an upper
    bound on both its containers and its nesting), counted in C."""
    mv = body if isinstance(body, (bytes, bytearray)) else bytes(body)
    if mv.count(b"[") + mv.count(b"{") > max_containers:
        raise _too_complex(f"more than {max_containers} JSON arrays/objects")


def loads_json(body: Any, max_containers: int = MAX_JSON_CONTAINERS) -> Any:
    """``json.loads`` after :func:`check_json_shape`; malformed JSON is SubmitError."""
    check_json_shape(body, max_containers)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _malformed(f"invalid JSON: {exc}") from None
