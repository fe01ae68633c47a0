"""Ingest benchmark of a running node (uvicorn in a subprocess, loopback).

(a) **Large actions**: ``reveal_update`` actions of ``--big-mib`` MiB each (real reveals:
    staked proposers of a task with ``num_params = MiB * 2^19``, committed beforehand) are
    POSTed to the node, and the very same bytes are POSTed, in the same run and with the same
    concurrency, to a do-nothing ASGI app (same uvicorn, reads the body, answers 202). The
    ratio of the two throughputs is the node's ingest efficiency. The node does everything
    it does in production: decode, canonical check, signature, hash, admission, durable
    commit (SQLite WAL, ``synchronous=FULL``) before the ack, and block production in the
    background.
(b) **Small actions**: signed ``advance`` actions (each from a fresh key, so nonces never
    interfere) at ``--concurrency`` in flight; each 202 means the action was committed
    (group commit) and signed for. Reports actions/s, p50/p99 ack latency, the node's and
    the load generator's (``bench/ingest_client.py``) CPU per action, actions per group
    commit and the disk's own fsync rate.

Prints one JSON line. Usage: ``python bench/ingest.py [--small 20000] [--big 32]``;
``--node-repo ../old-checkout`` measures another checkout's node with this load generator
(old vs new, alternating, on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest_client import run_fire  # noqa: E402  (bench/ is on sys.path as the script's dir)

from state_machine.actions import (  # noqa: E402
    AdvanceBody,
    CommitUpdateBody,
    PublishGenesisBody,
    RevealUpdateBody,
    make_action,
)
from state_machine.commitments import CommitBinding, update_commitment  # noqa: E402
from state_machine.crypto import keccak256, public_key  # noqa: E402
from state_machine.tasks import TaskParams  # noqa: E402

CHAIN_ID = 7
NODE_REPO = REPO  # --node-repo: the checkout whose node is measured (same load generator)
TOKEN = "bench-token"
MSGPACK = {"content-type": "application/msgpack"}


# ---------------------------------------------------------------------- do-nothing server


async def sink_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole request body and answers 202 with a small JSON: the cost of HTTP
    ingest alone on the same server stack."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    n = 0
    more = True
    while more:
        msg = await receive()
        n += len(msg.get("body", b""))
        more = msg.get("more_body", False)
    body = json.dumps({"received": n}).encode()
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve_sink(port: int) -> None:
    import uvicorn

    uvicorn.run(sink_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start") from None
            time.sleep(0.05)


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # graceful: uvicorn shuts down, the sequencer flushes and closes
    proc.wait(60)


def start_node(tmp: Path, name: str, block_time: float, max_block: int,
               port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    cmd = [sys.executable, "-m", "rollup.cli", "node", "--db", f"sqlite:///{tmp}/{name}.db",
           "--port", str(port), "--chain-id", str(CHAIN_ID), "--block-time", str(block_time),
           "--max-block-actions", str(max_block), "--key", str(tmp / "seq.key"),
           "--snapshot-interval", "0", "--log-level", "warning"]
    # admin token via env (never argv); quotas off: (b) sends advances from fresh keys
    env = {**os.environ, "FLOCKCHAIN_ADMIN_TOKEN": TOKEN, "FLOCKCHAIN_ADMISSION_LIMITS": "false",
           "PYTHONPATH": str(NODE_REPO)}
    proc = subprocess.Popen(cmd, cwd=NODE_REPO, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"{name}.log", "ab"), env=env)
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/v1/healthz", proc)
    return proc, url


def admin(http: httpx.Client, typ: str, body: dict[str, Any]) -> None:
    r = http.post("/v1/admin/system", json={"type": typ, "body": body},
                  headers={"authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()


def wait_included(http: httpx.Client, h: bytes, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        st = http.get(f"/v1/actions/0x{h.hex()}").json()
        if st["status"] in ("included", "rejected"):
            return st
        if time.monotonic() > deadline:
            raise TimeoutError(h.hex())
        time.sleep(0.05)


def task_created(task_id: int, params: TaskParams, l1_block: int) -> dict[str, Any]:
    return {"task_id": task_id, "owner": "0x" + "22" * 20, "spec_hash": "0x" + "33" * 32,
            "max_epochs": 1, "target_accuracy_bps": 10_000,
            "task_params": "0x" + params.encode().hex(), "escrow": str(10**16),
            "l1_block": l1_block, "log_index": 0, "tx_hash": "0x" + "44" * 32}


def deposit(seed: bytes, l1_block: int) -> dict[str, Any]:
    return {"l1_address": "0x" + keccak256(seed)[:20].hex(),
            "pubkey": "0x" + public_key(seed).hex(), "amount": str(10**17),
            "l1_block": l1_block, "log_index": 0, "tx_hash": "0x" + "11" * 32}


def post_all(url: str, payloads: list[bytes], concurrency: int) -> float:
    """POST every payload (``concurrency`` in flight); returns seconds. Any non-202 fails."""
    def worker(chunk: list[bytes]) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            for p in chunk:
                r = http.post("/v1/actions", content=p, headers=MSGPACK)
                if r.status_code != 202:
                    raise RuntimeError(f"{r.status_code} {r.text[:200]}")

    chunks = [payloads[i::concurrency] for i in range(concurrency)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        for f in [ex.submit(worker, c) for c in chunks]:
            f.result()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------- (a) large actions


def bench_big(tmp: Path, n: int, mib: int, concurrency: int) -> dict[str, Any]:
    d = mib * (1 << 19)  # int16 coordinates in `mib` MiB
    seeds = [keccak256(b"bench-proposer", i.to_bytes(4, "big")) for i in range(n)]
    mib = 2**20
    genesis = np.zeros(d, dtype=np.int32)
    params = TaskParams(model="bench", num_params=d, proposers_per_epoch=n, f=1,
                        genesis_model_hash=keccak256(genesis.tobytes()), commit_window=20_000,
                        reveal_window=20_000)
    rng = np.random.default_rng(0)
    base = rng.integers(-300, 300, d)
    updates = {public_key(s): (base + rng.integers(-300, 300, d)).astype("<i2").tobytes()
               for s in seeds}
    salt = b"\x07" * 32

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(sink_port)], cwd=REPO)
    node, url = start_node(tmp, "big", block_time=0.2, max_block=1024)
    try:
        wait_up(f"http://127.0.0.1:{sink_port}/", sink)
        with httpx.Client(base_url=url, timeout=600) as http:
            for i, s in enumerate(seeds):
                admin(http, "l1_deposit", deposit(s, 10 + i))
            admin(http, "l1_task_created", task_created(1, params, 10 + n))
            while http.get("/v1/tasks/1").status_code != 200:
                time.sleep(0.05)
            g = make_action(seeds[0], "publish_genesis", CHAIN_ID, 0,
                            PublishGenesisBody(1, genesis.tobytes()), public_key(seeds[0]))
            http.post("/v1/actions", content=g.encode(), headers=MSGPACK).raise_for_status()
            while http.get("/v1/tasks/1").json()["phase"] != "update_commit":
                time.sleep(0.05)
            last = b""
            for s in seeds:
                pk = public_key(s)
                nonce = http.get(f"/v1/accounts/0x{pk.hex()}").json()["next_nonce"]
                c = make_action(s, "commit_update", CHAIN_ID, nonce,
                                CommitUpdateBody(1, 0, update_commitment(
                                    updates[pk], salt, CommitBinding(pk, 1, 0))), pk)
                r = http.post("/v1/actions", content=c.encode(), headers=MSGPACK)
                r.raise_for_status()
                last = c.hash
            wait_included(http, last)
            adv = make_action(seeds[0], "advance", CHAIN_ID, 2, AdvanceBody(1, 0),
                              public_key(seeds[0]))
            http.post("/v1/actions", content=adv.encode(), headers=MSGPACK).raise_for_status()
            while http.get("/v1/tasks/1").json()["phase"] != "update_reveal":
                time.sleep(0.05)
            reveals = []
            for s in seeds:
                pk = public_key(s)
                nonce = http.get(f"/v1/accounts/0x{pk.hex()}").json()["next_nonce"]
                reveals.append(make_action(s, "reveal_update", CHAIN_ID, nonce,
                                           RevealUpdateBody(1, 0, updates[pk], salt), pk).encode())
        half = n // 2
        first, second = reveals[:half], reveals[half:]
        sink_url = f"http://127.0.0.1:{sink_port}"
        # 1. ingest while blocks are being produced and applied (realistic); CPU time of
        # each server per MiB (all threads; stable on a shared machine, unlike MiB/s), the
        # node's also until the reveals are applied
        size_a = sum(len(p) for p in first)
        c0 = cpu_seconds(sink.pid)
        sink_a = post_all(sink_url, first, concurrency)
        sink_cpu = (cpu_seconds(sink.pid) - c0) / (size_a / mib) * 1e3
        c0 = cpu_seconds(node.pid)
        node_a = post_all(url, first, concurrency)
        node_cpu = (cpu_seconds(node.pid) - c0) / (size_a / mib) * 1e3
        with httpx.Client(base_url=url, timeout=600) as http:
            for p in first:
                wait_included(http, keccak256(p[10:-76], p[-64:]))
        node_cpu_applied = (cpu_seconds(node.pid) - c0) / (size_a / mib) * 1e3
        # 2. ingest path alone: same node restarted with block production deferred
        port = int(url.rsplit(":", 1)[1])
        stop_node(node)
        node, url = start_node(tmp, "big", block_time=3600, max_block=1024, port=port)
        sink_b = post_all(sink_url, second, concurrency)
        node_b = post_all(url, second, concurrency)
        # 3. back to normal block production: time until everything is applied
        stop_node(node)
        node, url = start_node(tmp, "big", block_time=0.2, max_block=1024, port=port)
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, timeout=600) as http:
            ok = [wait_included(http, keccak256(p[10:-76], p[-64:]))["status"] for p in reveals]
        apply_s = time.perf_counter() - t0
        size_b = sum(len(p) for p in second)
        return {
            "actions": n, "action_mib": round(len(reveals[0]) / mib, 3),
            "concurrency": concurrency,
            "with_block_production": {
                "node_mib_s": round(size_a / node_a / mib, 1),
                "sink_mib_s": round(size_a / sink_a / mib, 1),
                "ratio": round(sink_a / node_a, 3),
                "sink_cpu_ms_per_mib": round(sink_cpu, 2),
                "node_cpu_ms_per_mib": round(node_cpu, 2),
                "node_cpu_ms_per_mib_until_applied": round(node_cpu_applied, 2),
            },
            "ingest_only": {
                "node_mib_s": round(size_b / node_b / mib, 1),
                "sink_mib_s": round(size_b / sink_b / mib, 1),
                "ratio": round(sink_b / node_b, 3),
            },
            "backlog_apply_mib_s": round(size_b / apply_s / mib, 1),
            "included": ok.count("included"),
        }
    finally:
        node.terminate()
        sink.terminate()
        node.wait()
        sink.wait()


# ---------------------------------------------------------------------- (b) small actions


def build_small(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        seed = keccak256(b"bench-small", i.to_bytes(4, "big"))
        sa = make_action(seed, "advance", CHAIN_ID, 0, AdvanceBody(2, 0), public_key(seed))
        out.append((sa.encode(), sa.hash))
    return out


def bench_small(tmp: Path, n: int, concurrency: int) -> dict[str, Any]:
    acts = build_small(n + 500)
    node, url = start_node(tmp, "small", block_time=0.5, max_block=4096)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            genesis = np.zeros(4, dtype=np.int32)
            params = TaskParams(model="bench", num_params=4, proposers_per_epoch=5, f=1,
                                genesis_model_hash=keccak256(genesis.tobytes()))
            admin(http, "l1_task_created", task_created(2, params, 5))
            while http.get("/v1/tasks/2").status_code != 200:
                time.sleep(0.05)
        half = n // 2
        warm, first, second = acts[:500], acts[500:500 + half], acts[500 + half:]

        def fire(batch: list[tuple[bytes, bytes]]) -> dict[str, Any]:
            cpu0, mine0 = cpu_seconds(node.pid), _own_cpu()
            secs, lat = run_fire(url, [p for p, _ in batch], concurrency)
            cpu, mine = cpu_seconds(node.pid) - cpu0, _own_cpu() - mine0
            lat.sort()
            return {"actions": len(batch), "actions_per_s": round(len(batch) / secs, 1),
                    "p50_ms": round(statistics.median(lat) * 1e3, 2),
                    "p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1e3, 2),
                    "node_cpu_us_per_action": round(cpu / len(batch) * 1e6, 1),
                    "client_cpu_us_per_action": round(mine / len(batch) * 1e6, 1)}

        fire(warm)
        with_blocks = fire(first)
        text = httpx.get(url + "/v1/metrics").text
        metric = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
                  if ln.startswith("flockchain_ack_commit")}
        with_blocks["actions_per_group_commit"] = round(
            metric.get("flockchain_ack_commit_actions_total", 0)
            / max(1.0, metric.get("flockchain_ack_commits_total", 0)), 1)
        port = int(url.rsplit(":", 1)[1])
        stop_node(node)
        node, url = start_node(tmp, "small", block_time=3600, max_block=10**6, port=port)
        ack_only = fire(second)
        stop_node(node)
        node, url = start_node(tmp, "small", block_time=0.5, max_block=4096, port=port)
        t0 = time.perf_counter()
        with httpx.Client(base_url=url, timeout=600) as http:
            st = wait_included(http, acts[-1][1])
            apply_s = time.perf_counter() - t0
        return {
            "concurrency": concurrency,
            "group_commit_wait_s": float(os.environ.get("FLOCKCHAIN_GROUP_COMMIT_WAIT", "0")),
            "disk_fsyncs_per_s": fsync_rate(tmp),
            "with_block_production": with_blocks,
            "ack_only": ack_only,
            "backlog_apply_actions_per_s": round(len(second) / apply_s, 1),
            "last_status": st["status"],
            "durable": "sqlite WAL synchronous=FULL, ack after group commit",
        }
    finally:
        node.terminate()
        node.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far: per action, the node's cost
    independent of what else runs on a shared machine (throughput is not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # not Linux
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU time of this process (the load generator), to report beside the node's."""
    t = os.times()
    return t.user + t.system


def fsync_rate(directory: Path, n: int = 200) -> float:
    """The disk's own rate of small durable writes (4 KiB write + fsync) where the node's
    database lives: printed beside actions per group commit, so that a slow disk shows as
    the limit instead of hiding behind the node's figure."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            os.pwrite(fd, b"x" * 4096, 0)
            os.fsync(fd)
        return round(n / (time.perf_counter() - t0), 1)
    finally:
        os.close(fd)
        path.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--big", type=int, default=32, help="number of large reveal actions")
    ap.add_argument("--big-mib", type=int, default=4)
    ap.add_argument("--big-concurrency", type=int, default=4)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-small", action="store_true")
    ap.add_argument("--node-repo", type=Path, default=REPO,
                    help="checkout whose node to run (e.g. an old commit's worktree)")
    args = ap.parse_args()
    global NODE_REPO
    NODE_REPO = args.node_repo.resolve()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    with tempfile.TemporaryDirectory(prefix="flockchain-bench-") as td:
        tmp = Path(td)
        out: dict[str, Any] = {"bench": "ingest", "cpus": os.cpu_count(),
                               "python": platform.python_version(),
                               "loadavg_before": round(os.getloadavg()[0], 2),
                               "node_repo": str(NODE_REPO)}
        try:
            import uvicorn.protocols.http.httptools_impl  # noqa: F401

            out["http_impl"] = "httptools"
        except ImportError:
            out["http_impl"] = "h11"
        if not args.skip_big:
            out["big"] = bench_big(tmp, args.big, args.big_mib, args.big_concurrency)
        if not args.skip_small:
            out["small"] = bench_small(tmp, args.small, args.concurrency)
    for line in summary(out):
        print(line, file=sys.stderr)
    print(json.dumps(out))
    return 0


def summary(out: dict[str, Any]) -> list[str]:
    """One human line per figure, each throughput beside what bounds it (the node's CPU per
    action or MiB, the disk's own fsync rate, actions per group commit)."""
    lines = []
    if "small" in out:
        sm, w, a = out["small"], out["small"]["with_block_production"], out["small"]["ack_only"]
        lines.append(
            f"small actions, {sm['concurrency']} in flight: {w['actions_per_s']:,.0f}/s with "
            f"blocks ({w['node_cpu_us_per_action']:.0f} us node CPU/action, "
            f"{w['client_cpu_us_per_action']:.0f} us client, "
            f"{w['actions_per_group_commit']} actions/group commit), {a['actions_per_s']:,.0f}/s"
            f" ack-only ({a['node_cpu_us_per_action']:.0f} us); disk "
            f"{sm['disk_fsyncs_per_s']:,.0f} fsync/s; load {out['loadavg_before']}")
    if "big" in out:
        w = out["big"]["with_block_production"]
        lines.append(
            f"{out['big']['action_mib']} MiB reveals: node {w['node_mib_s']} MiB/s vs sink "
            f"{w['sink_mib_s']} MiB/s = {w['ratio']} (CPU/MiB node {w['node_cpu_ms_per_mib']} "
            f"ms, {w['node_cpu_ms_per_mib_until_applied']} ms until applied; sink "
            f"{w['sink_cpu_ms_per_mib']} ms)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
