"""The native multi-buffer keccak-256 (native/keccak) against pycryptodome, every kernel.

Digests are consensus (chunk hashes, chunk roots), so every path (scalar, 4-lane AVX2,
4-lane AVX-512VL, 8-lane AVX-512F, one state through a SIMD kernel, the streaming states
fed side by side) must give pycryptodome's keccak-256 bit for bit, for lengths around the
rate (136 bytes) and mixed lane lengths. The fallback (no library) is checked too.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from Crypto.Hash import keccak as pycryptodome
from hypothesis import given, settings
from hypothesis import strategies as st

from state_machine import chunks, keccak_native

REPO = Path(__file__).resolve().parents[2]
RATE = 136
AROUND_RATE = [0, 1, 7, 8, 135, 136, 137, 200, 271, 272, 273, 1000, 4096]
MODES = [0, 1, 4, 42]  # best, scalar only, at most 4 lanes, the AVX2 kernel (see set_lanes)


def ref(data: bytes) -> bytes:
    return bytes(pycryptodome.new(digest_bits=256, data=data).digest())


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The library: the one `make native` built, else built here (so the C code is tested
    even where install ran without it); skipped without a C compiler."""
    if not keccak_native.load():
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            pytest.skip("no native keccak library and no C compiler to build it")
        out = tmp_path_factory.mktemp("keccak") / "libflockkeccak.so"
        subprocess.run([cc, "-O2", "-fPIC", "-shared", "-o", str(out),
                        str(REPO / "native" / "keccak" / "keccak_multi.c")], check=True)
        assert keccak_native.load(out)
    yield
    keccak_native.set_lanes(0)
    keccak_native.load()


@pytest.fixture(params=MODES, ids=lambda m: f"mode{m}")
def mode(request: pytest.FixtureRequest, native: None) -> Iterator[int]:
    keccak_native.set_lanes(request.param)
    yield request.param
    keccak_native.set_lanes(0)


def test_single_buffer_lengths_around_the_rate(mode: int) -> None:
    rng = random.Random(mode)
    for n in [*AROUND_RATE, 4 * 1024 * 1024 + 3]:
        data = rng.randbytes(n)
        assert keccak_native.keccak256(data) == ref(data), n


def test_many_buffers_of_mixed_lengths(mode: int) -> None:
    rng = random.Random(100 + mode)
    for count in range(1, 19):  # spare lanes, full groups of 4 and 8, and beyond
        bufs = [rng.randbytes(rng.choice([*AROUND_RATE, rng.randrange(3000)]))
                for _ in range(count)]
        assert keccak_native.keccak256_many(bufs) == [ref(b) for b in bufs]
    big = [rng.randbytes(4 * 1024 * 1024) for _ in range(3)] + [rng.randbytes(1_000_003)]
    assert keccak_native.keccak256_many(big) == [ref(b) for b in big]


@settings(max_examples=60, deadline=None)
@given(bufs=st.lists(st.binary(max_size=700), max_size=11),
       lanes=st.sampled_from(MODES))
def test_many_property(native: None, bufs: list[bytes], lanes: int) -> None:
    keccak_native.set_lanes(lanes)
    try:
        assert keccak_native.keccak256_many(bufs) == [ref(b) for b in bufs]
    finally:
        keccak_native.set_lanes(0)


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.binary(max_size=900), min_size=1, max_size=6),
       cuts=st.lists(st.lists(st.integers(0, 900), max_size=4), min_size=6, max_size=6),
       lanes=st.sampled_from(MODES))
def test_streaming_states_fed_side_by_side(native: None, data: list[bytes],
                                           cuts: list[list[int]], lanes: int) -> None:
    """Each buffer split at random points; round r feeds piece r of every state still
    going in one update_many call (partial blocks carried between calls per state)."""
    keccak_native.set_lanes(lanes)
    try:
        pieces = []
        for d, cs in zip(data, cuts, strict=False):
            bounds = sorted({0, len(d), *(c for c in cs if c < len(d))})
            pieces.append([d[a:b] for a, b in itertools.pairwise(bounds)] or [b""])
        hashers = [keccak_native.Hasher() for _ in data]
        for r in range(max(len(p) for p in pieces)):
            live = [i for i, p in enumerate(pieces) if r < len(p)]
            keccak_native.update_many([hashers[i] for i in live], [pieces[i][r] for i in live])
        assert [h.digest() for h in hashers] == [ref(d) for d in data]
    finally:
        keccak_native.set_lanes(0)


def test_hasher_copy_and_digest_leave_the_state(native: None) -> None:
    h = keccak_native.Hasher(b"a" * 300)
    c = h.copy()
    assert h.digest() == h.digest() == ref(b"a" * 300)
    h.update(b"b" * 10)
    assert c.digest() == ref(b"a" * 300) and h.digest() == ref(b"a" * 300 + b"b" * 10)


def test_roots_equal_with_and_without_the_library(native: None) -> None:
    """The fallback (pycryptodome for bulk, pysha3 for the running whole hash) gives the
    same chunk hashes and roots: a node without a compiler agrees with one with it."""
    data = os.urandom(3 * chunks.CONTENT_CHUNK_SIZE + 12345)
    with_lib = (chunks.content_root(data), chunks.verify_blob(data, 1 << 20).key,
                chunks.zeros_root(9 * 1024 * 1024 + 5))
    keccak_native.unload()
    try:
        assert not keccak_native.available() and keccak_native.lanes() == 1
        assert keccak_native.keccak256_many([b"x", b""]) == [ref(b"x"), ref(b"")]
        assert keccak_native.keccak256(data) == ref(data)
        without = (chunks.content_root(data), chunks.verify_blob(data, 1 << 20).key,
                   chunks.zeros_root(9 * 1024 * 1024 + 5))
        h = chunks.chunk_hasher()
        h.update(data[:1000])
        assert bytes(h.digest()) == ref(data[:1000])
    finally:
        keccak_native.load()
    assert with_lib == without
    assert with_lib[2] == chunks.content_root(bytes(9 * 1024 * 1024 + 5))


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch, native: None) -> None:
    monkeypatch.setenv(keccak_native.ENV, "0")
    try:
        assert not keccak_native.load() and not keccak_native.available()
    finally:
        monkeypatch.delenv(keccak_native.ENV)
        keccak_native.load()


@pytest.mark.parametrize("with_lib", [True, False], ids=["native", "fallback"])
def test_batch_hasher_keeps_each_hashers_order(native: None, with_lib: bool) -> None:
    """Slices of 6 streams submitted from 3 threads, interleaved: every stream's digest is
    the keccak of its slices in submission order (batched side by side or not)."""
    from blobstore.batch_hash import BatchHasher

    if not with_lib:
        keccak_native.unload()
    try:
        bh = BatchHasher(threads=2)
        rng = random.Random(7)
        datas = [[rng.randbytes(rng.randrange(1, 5000)) for _ in range(12)] for _ in range(6)]
        hashers = [chunks.chunk_hasher() for _ in datas]
        for _ in datas:
            bh.start_stream()

        def feed(ks: list[int]) -> None:
            for r in range(12):
                for k in ks:
                    bh.submit(hashers[k], datas[k][r])

        ts = [threading.Thread(target=feed, args=([k, k + 3],)) for k in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for h in hashers:
            bh.submit(h, b"", urgent=True).result(timeout=30)
            bh.end_stream()
        assert [bytes(h.digest()) for h in hashers] == [ref(b"".join(d)) for d in datas]
    finally:
        keccak_native.load()


@pytest.mark.parametrize("direct", [True, False])
def test_write_durable_aligned_and_not(tmp_path: Path, direct: bool) -> None:
    from blobstore.direct import ChunkBuffer, write_durable

    path = tmp_path / "data"
    with open(path, "wb") as f:
        f.truncate(3 * 65536 + 5000)
    want = bytearray(3 * 65536 + 5000)
    for offset, n in ((0, 65536), (65536, 65536 + 100), (2 * 65536 + 100, 4000),
                      (3 * 65536, 5000)):
        buf = ChunkBuffer(n)
        data = os.urandom(n)
        buf.append(data[:77])
        buf.append(data[77:])
        write_durable(path, offset, buf.data(), direct=direct)
        want[offset:offset + n] = data
    assert path.read_bytes() == bytes(want)


def test_buffer_pool_reuses_and_bounds() -> None:
    from blobstore.direct import BufferPool

    pool = BufferPool(keep_bytes=3 * 65536)
    a, b = pool.get(65536), pool.get(65536)
    a.append(b"xy")
    pool.put(a)
    pool.put(b)
    pool.put(BufferPool().get(2 * 65536))  # over the cap: not kept
    again = pool.get(65536)
    assert again is a and again.length == 0 and len(pool._free) == 1
    assert pool.get(1000) is not b  # another size: a fresh buffer
