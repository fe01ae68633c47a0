"""A small YAML reader for the subset ``docker-compose.yml`` is written in.

Why it exists: PyYAML is not (yet) in ``requirements.lock``; the compose checks must run
anyway. ``load`` uses PyYAML when it is importable and this reader otherwise. The subset:
block mappings and sequences (indentation), ``- key: value`` items, flow sequences and
mappings (``[...]``, ``{...}``, possibly over several lines), plain, single- and
double-quoted scalars with YAML 1.1 booleans/null/ints/floats as PyYAML resolves them,
and comments. Anchors, aliases, tags and block scalars (``|``, ``>``) are refused with
an error instead of being misread; ``tests/infra/test_compose.py`` checks the two readers
agree whenever PyYAML is present.
"""

from __future__ import annotations

import re
from typing import Any


class SubsetError(ValueError):
    """The text uses YAML this reader does not support (or is not YAML)."""


def load(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        return parse(text)
    return yaml.safe_load(text)


# --------------------------------------------------------------------------- scalars

_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$")
_HEX = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_OCT = re.compile(r"^[-+]?0[0-7_]+$")
_SEXAGESIMAL = re.compile(r"^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$")
_BOOL = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False,
         "y": True, "n": False}


def plain_scalar(s: str) -> Any:
    s = s.strip()
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s.lower() in _BOOL and s in (s.lower(), s.upper(), s.capitalize()):
        if s.lower() in ("y", "n"):  # PyYAML does not resolve single-letter y/n
            return s
        return _BOOL[s.lower()]
    if _INT.match(s):
        return int(s.replace("_", ""))
    if _HEX.match(s):
        return int(s.replace("_", ""), 16)
    if _OCT.match(s):
        return int(s.replace("_", ""), 8)
    if _SEXAGESIMAL.match(s):
        raise SubsetError(f"{s!r} is a base-60 integer in YAML 1.1: quote it")
    if _FLOAT.match(s) and any(c.isdigit() for c in s):
        return float(s.replace("_", ""))
    if s[0] in "&*!|>%@`":
        raise SubsetError(f"unsupported YAML construct: {s!r}")
    return s


def _quoted(s: str, i: int) -> tuple[str, int]:
    """The quoted string starting at ``s[i]``; returns (value, index after it)."""
    q = s[i]
    out = []
    j = i + 1
    while j < len(s):
        c = s[j]
        if q == "'" and c == "'":
            if j + 1 < len(s) and s[j + 1] == "'":
                out.append("'")
                j += 2
                continue
            return "".join(out), j + 1
        if q == '"' and c == "\\":
            nxt = s[j + 1]
            out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/"}.get(nxt, nxt))
            j += 2
            continue
        if q == '"' and c == '"':
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise SubsetError(f"unterminated string: {s[i:]!r}")


def _flow(s: str, i: int) -> tuple[Any, int]:
    """A flow value at ``s[i]`` (after spaces): sequence, mapping, quoted or plain."""
    while i < len(s) and s[i] == " ":
        i += 1
    if s[i] == "[":
        items: list[Any] = []
        i += 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == "]":
                return items, i + 1
            v, i = _flow(s, i)
            items.append(v)
            while s[i] == " ":
                i += 1
            if s[i] == ",":
                i += 1
            elif s[i] != "]":
                raise SubsetError(f"expected , or ] in {s!r}")
    if s[i] == "{":
        m: dict[Any, Any] = {}
        i += 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == "}":
                return m, i + 1
            k, i = _flow(s, i)
            while s[i] == " ":
                i += 1
            if s[i] != ":":
                raise SubsetError(f"expected : in {s!r}")
            v, i = _flow(s, i + 1)
            m[k] = v
            while s[i] == " ":
                i += 1
            if s[i] == ",":
                i += 1
    if s[i] in "'\"":
        return _quoted(s, i)
    j = i
    while j < len(s) and s[j] not in ",]}" and not (s[j] == ":" and s[j + 1:j + 2] == " "):
        j += 1
    return plain_scalar(s[i:j]), j


def scalar(s: str) -> Any:
    s = s.strip()
    if not s:
        return None
    if s[0] in "[{'\"":
        v, end = _flow(s, 0)
        if s[end:].strip():
            raise SubsetError(f"trailing text after value: {s!r}")
        return v
    return plain_scalar(s)


# --------------------------------------------------------------------------- structure


def _strip_comment(line: str) -> str:
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _depth(s: str) -> int:
    d, quote = 0, None
    for c in s:
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "[{":
            d += 1
        elif c in "]}":
            d -= 1
    return d


def _lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for raw in text.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise SubsetError("tabs in indentation")
        line = _strip_comment(raw)
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        else:
            pending = (len(line) - len(line.lstrip()), line.strip())
        if _depth(pending[1]) <= 0:
            out.append(pending)
            pending = None
    if pending is not None:
        raise SubsetError(f"unclosed flow collection: {pending[1]!r}")
    return out


def _split_key(s: str) -> tuple[Any, str] | None:
    """``key: rest`` → (key, rest); None when ``s`` is not a mapping entry."""
    if s[0] in "'\"":
        k, i = _quoted(s, 0)
        rest = s[i:]
        if rest.startswith(":") and (len(rest) == 1 or rest[1] == " "):
            return k, rest[1:].strip()
        return None
    if s[0] in "[{":
        return None
    idx = s.find(": ")
    if idx == -1:
        if not s.endswith(":"):
            return None
        idx = len(s) - 1
    return plain_scalar(s[:idx]), s[idx + 1:].strip()


def parse(text: str) -> Any:
    lines = _lines(text)
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0][0])
    if i != len(lines):
        raise SubsetError(f"unexpected indentation at: {lines[i][1]!r}")
    return value


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        return _sequence(lines, i, indent)
    if _split_key(lines[i][1]) is None:
        if i + 1 < len(lines) and lines[i + 1][0] >= indent and lines[i + 1][0] > 0 and \
                lines[i + 1][0] == indent:
            raise SubsetError(f"multi-line plain scalars are not supported: {lines[i][1]!r}")
        return scalar(lines[i][1]), i + 1
    return _mapping(lines, i, indent)


def _value_after(lines: list[tuple[int, str]], i: int, indent: int,
                 rest: str) -> tuple[Any, int]:
    """The value of an entry whose inline part is ``rest`` (nested block if empty)."""
    if rest in ("|", ">", "|-", ">-", "|+", ">+") or rest.startswith(("&", "*", "!", "<<")):
        raise SubsetError(f"unsupported YAML construct: {rest!r}")
    if rest:
        return scalar(rest), i + 1
    if i + 1 < len(lines):
        nxt = lines[i + 1]
        if nxt[0] > indent or (nxt[0] == indent and nxt[1].startswith("- ")):
            return _block(lines, i + 1, nxt[0])
    return None, i + 1


def _mapping(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[dict[Any, Any], int]:
    out: dict[Any, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        kv = _split_key(lines[i][1])
        if kv is None:
            raise SubsetError(f"expected 'key: value', got {lines[i][1]!r}")
        key, rest = kv
        if key == "<<":
            raise SubsetError("merge keys are not supported")
        if key in out:
            raise SubsetError(f"duplicate key {key!r}")
        out[key], i = _value_after(lines, i, indent, rest)
    if i < len(lines) and lines[i][0] > indent:
        raise SubsetError(f"unexpected indentation at: {lines[i][1]!r}")
    return out, i


def _sequence(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and (
            lines[i][1] == "-" or lines[i][1].startswith("- ")):
        rest = lines[i][1][1:].strip()
        if not rest:
            value, i = _value_after(lines, i, indent, "")
            out.append(value)
            continue
        nested = rest == "-" or rest.startswith("- ")
        if not nested and (rest[0] in "[{" or _split_key(rest) is None):
            out.append(scalar(rest))
            i += 1
            continue
        # "- key: value" / "- - item" open a block whose column is that of ``rest``
        inner = indent + lines[i][1].index(rest)
        sub = [(inner, rest)]
        j = i + 1
        while j < len(lines) and lines[j][0] >= inner:
            sub.append(lines[j])
            j += 1
        value, used = _block(sub, 0, inner)
        if used != len(sub):
            raise SubsetError(f"bad block in sequence item: {rest!r}")
        out.append(value)
        i = j
    return out, i
