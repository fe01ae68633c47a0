"""Bulk keccak-256: the native multi-buffer library when it is built, pysha3 otherwise.

Why: protocol 4 hashes every byte of an update once, as independent 4 MiB chunks, and that
hash is most of a node's CPU per ingested MiB. ``native/keccak`` (built by ``make native``,
part of ``make install``) runs Keccak-f on 4 (AVX2) or 8 (AVX-512) chunks at once in SIMD
lanes, several times one stream's throughput per core; ctypes releases the GIL for the call,
so threads add cores. The digests are the same keccak-256 (consensus; the tests compare
every path with pycryptodome for random lengths around the rate).

Without the library (no compiler, ``FLOCKCHAIN_NATIVE_KECCAK=0``) every function here still
answers, through pysha3 (pycryptodome where pysha3 is missing). Measured on 4 MiB buffers
on the 2-core machines: pysha3 19 instructions per byte (valgrind) and 307 MiB/s median
CPU rate, pycryptodome 48 per byte and 268 MiB/s, so pysha3 stays first for bulk as well.

``FLOCKCHAIN_NATIVE_KECCAK``: unset or ``1`` = load ``native/build/libflockkeccak.so`` if
present; ``0`` = never; any other value = the path of the library to load.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from Crypto.Hash import keccak as _pycryptodome

try:  # the fallback (see the module docstring)
    from sha3 import keccak_256 as _fallback
except ImportError:  # pragma: no cover - same digest

    def _fallback(data: Any = b"") -> Any:  # type: ignore[misc]
        return _pycryptodome.new(digest_bits=256, data=data)

LIB_PATH = Path(__file__).resolve().parent.parent / "native" / "build" / "libflockkeccak.so"
ENV = "FLOCKCHAIN_NATIVE_KECCAK"
_VOIDPP = ctypes.POINTER(ctypes.c_void_p)
_SIZEP = ctypes.POINTER(ctypes.c_size_t)

_lib: Any = None
_state_size = 0


def load(path: str | os.PathLike[str] | None = None) -> bool:
    """(Re)load the library (``path``, else what ``FLOCKCHAIN_NATIVE_KECCAK`` says); False
    and the fallback when it is absent or disabled."""
    global _lib, _state_size
    env = os.environ.get(ENV, "1")
    if path is None and env == "0":
        _lib = None
        return False
    p = Path(path) if path is not None else (LIB_PATH if env == "1" else Path(env))
    try:
        lib = ctypes.CDLL(str(p))
    except OSError:
        _lib = None
        return False
    lib.flk_keccak256.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    lib.flk_keccak256_many.argtypes = [_VOIDPP, _SIZEP, ctypes.c_size_t, ctypes.c_char_p]
    lib.flk_absorb.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    lib.flk_absorb_many.argtypes = [_VOIDPP, _VOIDPP, _SIZEP, ctypes.c_size_t]
    lib.flk_digest.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.flk_init.argtypes = [ctypes.c_void_p]
    lib.flk_state_size.restype = ctypes.c_size_t
    _state_size = lib.flk_state_size()
    _lib = lib
    return True


def unload() -> None:
    """Use the fallback from now on (tests of the pure-Python path)."""
    global _lib
    _lib = None


def available() -> bool:
    return _lib is not None


def lanes() -> int:
    """Buffers hashed side by side by one call: 8 (AVX-512), 4 (AVX2), 1 (scalar C or no
    library)."""
    return int(_lib.flk_lanes()) if _lib is not None else 1


def set_lanes(want: int) -> int:
    """Restrict the library's kernels (tests, bench): 0 best, 1 scalar, 4 at most four
    lanes, 42 the AVX2 kernel even on an AVX-512 CPU. Call it while nothing hashes."""
    return int(_lib.flk_set_lanes(want)) if _lib is not None else 1


def _addr(buf: Any) -> tuple[int, int, Any]:
    """(address, length, keep-alive) of a contiguous buffer, zero-copy (read-only too)."""
    a = np.frombuffer(buf, dtype=np.uint8)
    return a.ctypes.data, a.size, a


def keccak256(data: Any) -> bytes:
    """keccak-256 of one (large) buffer."""
    if _lib is None:
        return bytes(_fallback(data).digest())
    ptr, n, _keep = _addr(data)
    out = ctypes.create_string_buffer(32)
    _lib.flk_keccak256(ptr, n, out)
    return out.raw


def keccak256_many(bufs: Sequence[Any]) -> list[bytes]:
    """keccak-256 of each buffer, side by side in SIMD lanes (one call, GIL released)."""
    if _lib is None:
        return [bytes(_fallback(b).digest()) for b in bufs]
    if not bufs:
        return []
    refs = [_addr(b) for b in bufs]
    ptrs = (ctypes.c_void_p * len(refs))(*[r[0] for r in refs])
    lens = (ctypes.c_size_t * len(refs))(*[r[1] for r in refs])
    out = ctypes.create_string_buffer(32 * len(refs))
    _lib.flk_keccak256_many(ptrs, lens, len(refs), out)
    raw = out.raw
    return [raw[i:i + 32] for i in range(0, len(raw), 32)]


class Hasher:
    """A running keccak-256 (``update`` / ``digest`` / ``copy``) in the library's state, so
    several can be fed side by side with :func:`update_many`. Needs the library."""

    __slots__ = ("_st",)

    def __init__(self, data: Any = b"") -> None:
        if _lib is None:
            raise RuntimeError("native keccak library not loaded")
        self._st = ctypes.create_string_buffer(_state_size)  # zeroed = the initial state
        if len(data):
            self.update(data)

    def update(self, data: Any) -> None:
        ptr, n, _keep = _addr(data)
        _lib.flk_absorb(self._st, ptr, n)

    def digest(self) -> bytes:
        out = ctypes.create_string_buffer(32)
        _lib.flk_digest(self._st, out)
        return out.raw

    def copy(self) -> Hasher:
        h = Hasher.__new__(Hasher)
        h._st = ctypes.create_string_buffer(self._st.raw, _state_size)
        return h


def update_many(hashers: Sequence[Hasher], bufs: Sequence[Any]) -> None:
    """``hashers[j].update(bufs[j])`` for every j, side by side in one call (the hashers
    must be distinct objects)."""
    if not hashers:
        return
    refs = [_addr(b) for b in bufs]
    states = (ctypes.c_void_p * len(hashers))(*[ctypes.addressof(h._st) for h in hashers])
    ptrs = (ctypes.c_void_p * len(refs))(*[r[0] for r in refs])
    lens = (ctypes.c_size_t * len(refs))(*[r[1] for r in refs])
    _lib.flk_absorb_many(states, ptrs, lens, len(refs))


def new_hasher(data: Any = b"") -> Any:
    """A running keccak-256 for bulk data: :class:`Hasher` with the library, else the
    fallback's."""
    if _lib is not None:
        return Hasher(data)
    return _fallback(data)


load()
