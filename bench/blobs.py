"""Large-update ingest through the node's chunked blob uploads (protocol v2, issue 14).

One update of ``--mib`` MiB (96 by default on shared machines; ``--full`` for 512 MiB) is
uploaded the way the SDK does it: a signed declaration (chunk hashes and root computed
client-side before the clock starts), then every chunk as its own ``PUT`` on one connection,
then ``complete`` (whole keccak256 checked, blob published). Each 200 means the chunk is
fsynced and journalled; the 201 means the blob is durable in the backend. Side by side,
in the same run:

* ``sink``: the same chunk bodies PUT to a do-nothing ASGI app on the same uvicorn (reads
  the body, answers), i.e. the cost of HTTP alone;
* ``fs``: the node with its blob store on the local filesystem;
* ``s3``: the node with its blob store on an S3-compatible server (moto in server mode,
  another local process; completion uploads the staged file as an S3 multipart upload).

Protocol 4 (chunk root only, the default): the update is root-addressed, its declared hash
is its chunk root, so the node hashes every byte exactly once (chunks side by side, no
whole-blob keccak). ``--keccak``: the protocol 1-3 upload (whole keccak plus chunk root).

Reported: median MiB/s of each over ``--repeat`` rounds (every sample listed), the ratio
node / sink, and each node's peak RSS (``VmHWM``) next to its RSS before the first upload;
and the raw keccak-256 rates of this machine on 4 MiB chunks (CPU time of this process):
pysha3, pycryptodome, the native library on one chunk at a time and on 8 side by side
(``keccak_native``, absent when not built).
The load average is printed before and after: on a shared machine, read the ratio with it.
Prints one JSON line.
Usage: ``python bench/blobs.py [--mib 96] [--full] [--repeat 3] [--chunk-mib 4]
[--backends fs,s3] [--concurrency 1] [--keccak]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import cpu_seconds, free_port, wait_up  # noqa: E402

from blobstore.uploads import declaration_message  # noqa: E402
from rollup.keys import Keypair  # noqa: E402
from state_machine.chunks import chunk_span, verify_blob, verify_blob_root  # noqa: E402

KEY = Keypair.from_seed(b"\x42" * 32)
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
          "AWS_DEFAULT_REGION": "us-east-1"}


def rss_kib(pid: int) -> dict[str, int]:
    """Current and peak resident set size of ``pid`` (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssFile"):
            out[k] = int(v.split()[0])
    return out


def start(cmd: list[str], tmp: Path, name: str, health: str,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"{name}.log", "ab"),
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    wait_up(health, proc)
    return proc


def start_node(tmp: Path, name: str, env: dict[str, str] | None = None
               ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "rollup.cli", "node", "--db", f"sqlite:///{tmp}/{name}.db",
           "--port", str(port), "--chain-id", "7", "--key", str(tmp / "seq.key"),
           "--blob-dir", str(tmp / f"{name}-blobs"), "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    env = {"FLOCKCHAIN_UPLOAD_UNSTAKED_QUOTA": str(2**30), **(env or {})}  # unstaked bench key
    return start(cmd, tmp, name, url + "/v1/healthz", env), url


def put_chunks(url: str, data: bytes, vb: Any, prefix: str, concurrency: int) -> None:
    """Every chunk PUT once: ``concurrency`` connections, each taking the next chunk."""
    mv = memoryview(data)
    nxt = iter(range(len(vb.chunk_hashes)))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    i = next(nxt, None)
                if i is None:
                    return
                a, b = chunk_span(vb.size, vb.chunk_size, i)
                r = http.put(f"{prefix}/chunks/{i}", content=bytes(mv[a:b]))
                if r.status_code >= 300:
                    raise RuntimeError(f"chunk {i}: {r.status_code} {r.text[:200]}")

    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()


def upload(url: str, data: bytes, vb: Any, concurrency: int) -> float:
    """Seconds from the first chunk to the durable, published blob."""
    sig = KEY.sign(declaration_message(vb.key, vb.size, vb.chunk_size, vb.root))
    decl = {"hash": vb.key.hex(), "size": vb.size, "chunk_size": vb.chunk_size,
            "chunk_hashes": [h.hex() for h in vb.chunk_hashes], "root": vb.root.hex(),
            "sender": KEY.pubkey.hex(), "signature": sig.hex()}
    with httpx.Client(base_url=url, timeout=600) as http:
        http.post("/v1/blobs/uploads", json=decl).raise_for_status()
        t0 = time.perf_counter()
        put_chunks(url, data, vb, f"/v1/blobs/{vb.key.hex()}", concurrency)
        r = http.post(f"/v1/blobs/{vb.key.hex()}/complete")
        dt = time.perf_counter() - t0
        if r.status_code != 201:
            raise RuntimeError(f"complete: {r.status_code} {r.text[:200]}")
    return dt


def sink_time(url: str, data: bytes, vb: Any, concurrency: int) -> float:
    t0 = time.perf_counter()
    put_chunks(url, data, vb, f"/v1/blobs/{vb.key.hex()}", concurrency)
    return time.perf_counter() - t0


def keccak_rates(mib: int = 64) -> dict[str, float]:
    """MiB per CPU second of each keccak-256 on 4 MiB chunks (what the node hashes)."""
    from Crypto.Hash import keccak as pycryptodome

    from state_machine import keccak_native

    data = np.random.default_rng(2).integers(0, 256, mib * 2**20, dtype=np.uint8).tobytes()
    mv = memoryview(data)
    chunks = [mv[i:i + 4 * 2**20] for i in range(0, len(mv), 4 * 2**20)]
    ways: dict[str, Any] = {
        "pycryptodome": lambda: [pycryptodome.new(digest_bits=256, data=c).digest()
                                 for c in chunks]}
    try:
        import sha3

        ways["pysha3"] = lambda: [sha3.keccak_256(c).digest() for c in chunks]
    except ImportError:
        pass
    if keccak_native.available():
        ways[f"native_1_lane_x{keccak_native.lanes()}"] = \
            lambda: [keccak_native.keccak256(c) for c in chunks]
        ways["native_multi"] = lambda: keccak_native.keccak256_many(chunks)
    out = {}
    for name, fn in ways.items():
        t0 = time.process_time()
        fn()
        out[name] = round(mib / (time.process_time() - t0), 1)
    return out


def _servers(tmp: Path, backends: list[str]) -> dict[str, tuple[Any, str]]:
    """The sink, and one node per backend (plus moto for S3), all started up front."""
    procs: dict[str, tuple[Any, str]] = {}
    port = free_port()
    procs["sink"] = (start([sys.executable, str(REPO / "bench" / "ingest.py"), "--serve-sink",
                            str(port)], tmp, "sink", f"http://127.0.0.1:{port}/"),
                     f"http://127.0.0.1:{port}")
    if "fs" in backends:
        procs["fs"] = start_node(tmp, "fs")
    if "s3" in backends:
        s3port = free_port()
        procs["moto"] = (start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(s3port)], tmp, "moto", f"http://127.0.0.1:{s3port}/",
                               S3_ENV), "")
        url = f"s3://bench/updates?endpoint=http://127.0.0.1:{s3port}&create=1"
        procs["s3"] = start_node(tmp, "s3", {**S3_ENV, "FLOCKCHAIN_BLOB_STORE_URL": url})
    return procs


def run(tmp: Path, mib: int, chunk_mib: int, backends: list[str], repeat: int,
        concurrency: int = 1, keccak: bool = False) -> dict[str, Any]:
    """``repeat`` rounds; each round uploads a fresh update (no dedup) to every target, in a
    rotating order so a noisy neighbour does not always hit the same one. Medians reported,
    with the CPU time (all threads) each server process spent per MiB: on a shared machine
    that figure is stable where MiB/s is not."""
    base = np.random.default_rng(1).integers(0, 256, mib * 2**20, dtype=np.uint8).tobytes()
    procs = _servers(tmp, backends)
    targets = ["sink", *backends]
    samples: dict[str, list[float]] = {t: [] for t in targets}
    cpu: dict[str, list[float]] = {t: [] for t in targets}
    out: dict[str, Any] = {"mib": mib, "chunk_mib": chunk_mib, "repeat": repeat,
                           "concurrency": concurrency,
                           "addressing": "keccak" if keccak else "chunk_root"}
    try:
        before = {b: rss_kib(procs[b][0].pid)["VmRSS"] for b in backends}
        for r in range(repeat):
            data = bytes([r]) + base[1:]
            t0 = time.perf_counter()
            hasher = verify_blob if keccak else verify_blob_root  # what the SDK does first
            vb = hasher(data, chunk_mib * 2**20)
            out["client_hash_s"] = round(time.perf_counter() - t0, 3)
            for t in targets[r % len(targets):] + targets[:r % len(targets)]:
                url, c0 = procs[t][1], cpu_seconds(procs[t][0].pid)
                dt = (sink_time(url, data, vb, concurrency) if t == "sink"
                      else upload(url, data, vb, concurrency))
                samples[t].append(round(mib / dt, 1))
                cpu[t].append(round((cpu_seconds(procs[t][0].pid) - c0) / mib * 1e3, 2))
        peak = {b: rss_kib(procs[b][0].pid)["VmHWM"] for b in backends}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(60)
    med = {t: float(np.median(v)) for t, v in samples.items()}
    out["sink_mib_s"] = med["sink"]
    out["sink_samples"] = samples["sink"]
    out["sink_cpu_ms_per_mib"] = float(np.median(cpu["sink"]))
    for b in backends:
        out[b] = {"mib_s": med[b], "samples": samples[b],
                  "ratio_vs_sink": round(med[b] / med["sink"], 2),
                  "cpu_ms_per_mib": float(np.median(cpu[b])),
                  "node_rss_before_mib": round(before[b] / 1024, 1),
                  "node_peak_rss_mib": round(peak[b] / 1024, 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mib", type=int, default=96, help="update size (MiB)")
    ap.add_argument("--full", action="store_true", help="the 512 MiB case of issue 14")
    ap.add_argument("--chunk-mib", type=int, default=4)
    ap.add_argument("--backends", default="fs,s3")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keccak", action="store_true",
                    help="protocol 1-3 upload: keccak-addressed (whole keccak + chunk root)")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="chunks in flight (same for the sink and the nodes)")
    args = ap.parse_args()
    mib = 512 if args.full else args.mib
    with tempfile.TemporaryDirectory(prefix="flockchain-blobs-") as td:
        out = {"bench": "blobs", "cpus": os.cpu_count(), "python": platform.python_version(),
               "loadavg_before": round(os.getloadavg()[0], 2),
               **run(Path(td), mib, args.chunk_mib, args.backends.split(","), args.repeat,
                      args.concurrency, args.keccak),
               "keccak_mib_per_cpu_s": keccak_rates(),
               "loadavg_after": round(os.getloadavg()[0], 2)}
    for b in args.backends.split(","):
        r = out[b]
        print(f"{mib} MiB, {args.concurrency} chunk(s) in flight: node ({b}) {r['mib_s']} MiB/s"
              f" vs sink {out['sink_mib_s']} MiB/s = {r['ratio_vs_sink']}; CPU/MiB node "
              f"{r['cpu_ms_per_mib']} ms, sink {out['sink_cpu_ms_per_mib']} ms; peak RSS "
              f"{r['node_peak_rss_mib']} MiB", file=sys.stderr)
    print(f"keccak-256 MiB per CPU s on 4 MiB chunks: {out['keccak_mib_per_cpu_s']}",
          file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
