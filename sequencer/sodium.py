"""Ack signatures from PyNaCl's own libsodium without releasing the GIL (``ctypes.PyDLL``).

Why: PyNaCl (cffi) releases the GIL around every libsodium call. For a ~31 µs ack
signature the release costs more than it buys: with the event loop and the writer running
Python on the other threads, taking the GIL back is a futex wait and wake each time
(measured on the 2-core machines: a libsodium call that releases the GIL cost 76 µs of CPU
alone, 110 µs beside one Python-bound thread). The signature check (~80 µs) still
releases it, so the event loop keeps running meanwhile. Same library, same function, same
bytes: ``sign_detached(m, sk) == SigningKey.sign(m).signature`` (a test compares them);
without the bundled library PyNaCl signs.
"""

from __future__ import annotations

import ctypes

from nacl.bindings import crypto_sign as _nacl_sign

try:
    import nacl._sodium as _sodium_mod

    _c_sign_detached = ctypes.PyDLL(_sodium_mod.__file__).crypto_sign_detached
    _c_sign_detached.restype = ctypes.c_int
    _c_sign_detached.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.c_ulonglong, ctypes.c_char_p]
except (ImportError, OSError, AttributeError):  # pragma: no cover - PyNaCl without it
    _c_sign_detached = None


def sign_detached(msg: bytes, sk: bytes) -> bytes:
    """The 64-byte ed25519 signature of ``msg`` by the 64-byte libsodium secret key ``sk``
    (seed || public key, as ``crypto_sign_seed_keypair`` returns it)."""
    if _c_sign_detached is None or len(sk) != 64 or not isinstance(msg, bytes):
        return _nacl_sign(msg, sk)[:64]
    sig = ctypes.create_string_buffer(64)
    if _c_sign_detached(sig, None, msg, len(msg), sk) != 0:  # pragma: no cover
        raise RuntimeError("crypto_sign_detached failed")
    return sig.raw
