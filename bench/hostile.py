"""Hostile-load benchmark: the attacks of issue 12 against a real node (uvicorn in a
subprocess, SQLite, loopback), one JSON line per attack with its figures and the target.

* ``nested``: 60 MiB msgpack of empty arrays, 60 MiB nested JSON: 400, peak RSS growth
  (VmHWM) <= 2x the body, ``/v1/healthz`` within 1 s throughout.
* ``junk``: 10,000 signed actions from 1,000 unstaked keys against an open epoch: <= 1 MB.
* ``replay``: a rejected action resubmitted 112 times, an applied one 12 times: one row per
  hash, never a second fresh ack.
* ``header``: a 1 MiB header gets 431; 20 connections streaming headers do not grow RSS.
* ``idle``: 2,000 idle connections closed within the idle timeout, new clients served.
* ``admin``: wrong admin tokens get 401 then 429; integers >= 2^63 in paths get 400.

Usage: ``python bench/hostile.py [--only nested,junk,...] [--mib 60] [--keys 1000]``.
Figures are measured, not asserted; tests/node/test_hostile.py runs the same attacks at a
smaller size and asserts the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import selectors
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from state_machine.actions import (  # noqa: E402
    AdvanceBody,
    CommitUpdateBody,
    CommitVoteBody,
    PublishGenesisBody,
    RevealUpdateBody,
    RevealVoteBody,
    make_action,
)
from state_machine.crypto import keccak256, public_key  # noqa: E402
from state_machine.tasks import TaskParams  # noqa: E402

CHAIN_ID = 7
TOKEN = "hostile-bench-admin-token-0123456789"
MSGPACK = {"content-type": "application/msgpack"}
MIB = 2**20


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    db: Path

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` figure in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


@contextmanager
def node(tmp: Path, **env: Any) -> Iterator[Node]:
    """A node subprocess; ``env`` are NodeConfig fields (FLOCKCHAIN_<NAME>)."""
    port = free_port()
    db = tmp / f"n{port}.db"
    e = {**os.environ, "FLOCKCHAIN_DB_URL": f"sqlite:///{db}", "FLOCKCHAIN_PORT": str(port),
         "FLOCKCHAIN_CHAIN_ID": str(CHAIN_ID), "FLOCKCHAIN_BLOCK_TIME": "0.2",
         "FLOCKCHAIN_SEQUENCER_KEY_FILE": str(tmp / "seq.key"), "FLOCKCHAIN_LOG_LEVEL": "warning",
         "FLOCKCHAIN_ADMIN_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    e.update({f"FLOCKCHAIN_{k.upper()}": str(v) for k, v in env.items()})
    proc = subprocess.Popen([sys.executable, "-m", "rollup.cli", "node"], cwd=REPO, env=e,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"n{port}.log", "ab"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/v1/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((tmp / f"n{port}.log").read_text()[-2000:])
        time.sleep(0.05)
    try:
        yield Node(proc, url, port, db)
    finally:
        proc.kill()  # the figures are taken; no graceful shutdown needed
        proc.wait()


def admin(http: httpx.Client, typ: str, body: dict[str, Any]) -> None:
    http.post("/v1/admin/system", json={"type": typ, "body": body},
              headers={"authorization": f"Bearer {TOKEN}"}).raise_for_status()


def seed_of(tag: str, i: int) -> bytes:  # deterministic keys
    return keccak256(tag.encode(), i.to_bytes(4, "big"))


class HealthProbe:
    """Polls ``/v1/healthz`` every ``period`` s on a fresh connection; records latencies."""

    def __init__(self, url: str, period: float = 0.1) -> None:
        self.url, self.period = url, period
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                httpx.get(self.url + "/v1/healthz", timeout=10).raise_for_status()
                self.latencies.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                self.failures += 1
            self._stop.wait(self.period)

    def __enter__(self) -> HealthProbe:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies) or [float("nan")]
        return {"healthz_n": len(self.latencies), "healthz_failures": self.failures,
                "healthz_p50_s": round(lat[len(lat) // 2], 4), "healthz_max_s": round(lat[-1], 4)}



def nested_msgpack(size: int) -> bytes:
    """One array32 of ``size - 5`` empty arrays: ``size`` bytes, ``size`` objects."""
    n = size - 5
    return b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n


def nested_json(size: int) -> bytes:
    half = size // 2
    return b"[" * half + b"]" * half


def send_body(url: str, body: bytes, ctype: str) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/actions", content=body, headers={"content-type": ctype},
                   timeout=120)
    reason = r.json().get("reason", "") if r.headers.get("content-type", "").startswith(
        "application/json") else r.text[:40]
    return r.status_code, reason, time.perf_counter() - t0


def attack_nested(tmp: Path, mib: int = 60) -> list[dict[str, Any]]:
    out = []
    size = mib * MIB
    with node(tmp, max_body_bytes=64 * MIB) as n:
        for kind, body, ctype in (("msgpack", nested_msgpack(size), "application/msgpack"),
                                  ("json", nested_json(size), "application/json")):
            time.sleep(0.3)
            before = n.status("VmRSS")
            hwm0 = n.status("VmHWM")
            with HealthProbe(n.url) as probe:
                status, reason, secs = send_body(n.url, body, ctype)
                time.sleep(0.3)
            growth = max(0, n.status("VmHWM") - max(before, hwm0))
            out.append({
                "attack": f"nested_{kind}", "body_mib": mib, "status": status, "reason": reason,
                "seconds": round(secs, 3), "rss_before_mib": round(before / 1024, 1),
                "peak_growth_mib": round(growth / 1024, 1),
                "growth_over_body": round(growth * 1024 / size, 2),
                **probe.summary(), "target": "400, growth <= 2.0x body, healthz_max_s < 1",
                "ok": status == 400 and growth * 1024 <= 2 * size
                and (probe.summary()["healthz_max_s"] < 1.0),
            })
            del body
    return out



def open_epoch(http: httpx.Client, members: list[bytes], d: int) -> TaskParams:
    """Stake ``members``, create task 1, publish genesis, open epoch 0."""
    for i, s in enumerate(members):
        admin(http, "l1_deposit", {
            "l1_address": "0x" + keccak256(s)[:20].hex(), "pubkey": "0x" + public_key(s).hex(),
            "amount": str(10**17), "l1_block": 10 + i, "log_index": 0,
            "tx_hash": "0x" + "11" * 32})
    genesis = np.zeros(d, dtype=np.int32)
    params = TaskParams(model="bench", num_params=d, proposers_per_epoch=3, f=0,
                        genesis_model_hash=keccak256(genesis.tobytes()), commit_window=20_000,
                        reveal_window=20_000)
    admin(http, "l1_task_created", {
        "task_id": 1, "owner": "0x" + "22" * 20, "spec_hash": "0x" + "33" * 32, "max_epochs": 3,
        "target_accuracy_bps": 10_000, "task_params": "0x" + params.encode().hex(),
        "escrow": str(3 * 10**16), "l1_block": 100, "log_index": 0, "tx_hash": "0x" + "44" * 32})
    while http.get("/v1/tasks/1").status_code != 200:
        time.sleep(0.05)
    s0 = members[0]
    g = make_action(s0, "publish_genesis", CHAIN_ID, 0, PublishGenesisBody(1, genesis.tobytes()),
                    public_key(s0))
    r = http.post("/v1/actions", content=g.encode(), headers=MSGPACK)
    assert r.status_code == 202, r.text
    while http.get("/v1/tasks/1").json()["phase"] != "waiting_clients":
        time.sleep(0.05)
    adv = make_action(s0, "advance", CHAIN_ID, 1, AdvanceBody(1, 0), public_key(s0))
    http.post("/v1/actions", content=adv.encode(), headers=MSGPACK).raise_for_status()
    while http.get("/v1/tasks/1").json()["phase"] != "update_commit":
        time.sleep(0.05)
    return params


def junk_actions(keys: int, per_key: int, d: int, rng: random.Random) -> list[bytes]:
    """``keys * per_key`` validly signed actions from fresh (unstaked) keys, all at nonce 0
    (each is judged by admission's rules, not merely refused for its nonce)."""
    kinds: list[tuple[str, Callable[[], Any]]] = [
        ("advance", lambda: AdvanceBody(1, rng.randrange(2**64))),
        ("advance", lambda: AdvanceBody(1, 0)),
        ("commit_update", lambda: CommitUpdateBody(1, 0, rng.randbytes(32))),
        ("commit_update", lambda: CommitUpdateBody(1, rng.randrange(1, 2**64), rng.randbytes(32))),
        ("reveal_update", lambda: RevealUpdateBody(1, 0, rng.randbytes(2 * d), rng.randbytes(32))),
        ("commit_vote", lambda: CommitVoteBody(1, 0, rng.randbytes(32))),
        ("reveal_vote", lambda: RevealVoteBody(1, 0, 5000, 5000, rng.randbytes(32))),
        ("publish_genesis", lambda: PublishGenesisBody(1, rng.randbytes(4 * d))),
    ]
    out = []
    for k in range(keys):
        s = seed_of("junk", k)
        pk = public_key(s)
        for _ in range(per_key):
            typ, body = rng.choice(kinds)
            out.append(make_action(s, typ, CHAIN_ID, 0, body(), pk).encode())
    return out


def post_many(url: str, payloads: list[bytes], concurrency: int = 8) -> dict[str, int]:
    """POST every payload; counts of ``status reason`` answers."""
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def worker(chunk: list[bytes]) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for p in chunk:
                r = http.post("/v1/actions", content=p, headers=MSGPACK)
                key = f"{r.status_code} {r.json().get('reason', 'ack')}"
                with lock:
                    counts[key] = counts.get(key, 0) + 1

    with ThreadPoolExecutor(concurrency) as ex:
        for f in [ex.submit(worker, payloads[i::concurrency]) for i in range(concurrency)]:
            f.result()
    return counts


def stored(db: Path, senders: set[bytes] | None = None) -> tuple[int, int]:
    """(rows, bytes of action payloads) in the node's database (read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT sender, size FROM actions").fetchall()
    finally:
        con.close()
    rows = [r for r in rows if senders is None or bytes(r[0]) in senders]
    return len(rows), sum(r[1] for r in rows)


def db_bytes(db: Path) -> int:  # the database file and its WAL
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def attack_junk(tmp: Path, keys: int = 1000, per_key: int = 10, d: int = 1024) -> dict[str, Any]:
    rng = random.Random(12)
    members = [seed_of("member", i) for i in range(4)]
    payloads = junk_actions(keys, per_key, d, rng)
    junk_senders = {public_key(seed_of("junk", k)) for k in range(keys)}
    with node(tmp) as n:
        with httpx.Client(base_url=n.url, timeout=60) as http:
            open_epoch(http, members, d)
        size0 = db_bytes(n.db)
        t0 = time.perf_counter()
        counts = post_many(n.url, payloads)
        secs = time.perf_counter() - t0
        time.sleep(0.5)
        rows, nbytes = stored(n.db, junk_senders)
        growth = db_bytes(n.db) - size0
    return {"attack": "unstaked_junk", "keys": keys, "actions": len(payloads),
            "bytes_sent": sum(map(len, payloads)), "statuses": counts, "seconds": round(secs, 2),
            "rows_stored": rows, "payload_bytes_stored": nbytes,
            "db_growth_bytes": growth, "target": "stored <= 1 MB",
            "ok": nbytes <= 10**6 and growth <= 10**6}



def attack_replay(tmp: Path, others: int = 100) -> dict[str, Any]:
    members = [seed_of("member", i) for i in range(4)]
    with node(tmp) as n, httpx.Client(base_url=n.url, timeout=60) as http:
        open_epoch(http, members, 64)
        proposers = set(http.get("/v1/tasks/1/epochs/0").json()["proposers"])
        s = next(m for m in members[1:] if "0x" + public_key(m).hex() in proposers)
        pk = public_key(s)
        nonce = http.get(f"/v1/accounts/0x{pk.hex()}").json()["next_nonce"]
        # rejected in the block: the commit phase is not complete (phase_incomplete)
        bad = make_action(s, "advance", CHAIN_ID, nonce, AdvanceBody(1, 0), pk)
        first = http.post("/v1/actions", content=bad.encode(), headers=MSGPACK)
        assert first.status_code == 202, first.text
        while http.get(f"/v1/actions/0x{bad.hash.hex()}").json()["status"] == "queued":
            time.sleep(0.05)
        verdict = http.get(f"/v1/actions/0x{bad.hash.hex()}").json()["reason"]
        fresh_acks, answers = 0, {}
        for _ in range(12 + others):  # the sender's and third parties' replays: same bytes
            r = http.post("/v1/actions", content=bad.encode(), headers=MSGPACK)
            answers[r.status_code] = answers.get(r.status_code, 0) + 1
            fresh_acks += r.status_code == 202 and not r.json().get("duplicate")
        # an applied action: duplicates carry the first ack, no new row
        good = make_action(s, "commit_update", CHAIN_ID, nonce,
                           CommitUpdateBody(1, 0, keccak256(b"bench-commit")), pk)
        g1 = http.post("/v1/actions", content=good.encode(), headers=MSGPACK).json()
        dups = [http.post("/v1/actions", content=good.encode(), headers=MSGPACK).json()
                for _ in range(12)]
        same_ack = all(d.get("ack") == g1.get("ack") and d.get("duplicate") for d in dups)
        time.sleep(0.5)
        con = sqlite3.connect(f"file:{n.db}?mode=ro", uri=True)
        try:
            rows_bad = con.execute("SELECT count(*) FROM actions WHERE hash = ?",
                                   (bad.hash,)).fetchone()[0]
            rows_good = con.execute("SELECT count(*) FROM actions WHERE hash = ?",
                                    (good.hash,)).fetchone()[0]
        finally:
            con.close()
    return {"attack": "replay", "first_receipt": verdict, "replays": 12 + others,
            "replay_statuses": answers, "fresh_acks_of_replays": fresh_acks,
            "rows_for_rejected_hash": rows_bad, "rows_for_applied_hash": rows_good,
            "duplicates_carry_first_ack": same_ack,
            "target": "never acked twice (1 row per hash)",
            "ok": fresh_acks == 0 and rows_bad == 1 and rows_good == 1 and same_ack}



def raw_request(port: int, head: bytes, chunk: int = 64 * 1024) -> int:
    """Send a request head in chunks; the status answered (0: closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            for i in range(0, len(head), chunk):
                s.sendall(head[i:i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            line = s.recv(64)
        except ConnectionResetError:
            return 0
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0


def big_header(size: int) -> bytes:
    return b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"


def attack_header(tmp: Path, mib: int = 1, streams: int = 20) -> dict[str, Any]:
    with node(tmp) as n:
        status_1m = raw_request(n.port, big_header(mib * MIB))
        status_16m = raw_request(n.port, big_header(16 * MIB))
        many = b"GET /v1/healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 1000 + b"\r\n"
        status_many = raw_request(n.port, many)
        rss0 = n.status("VmRSS")
        socks = []
        for _ in range(streams):  # stream one endless header on each connection
            s = socket.create_connection(("127.0.0.1", n.port))
            s.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
            socks.append(s)
        for _ in range(64):
            for s in socks:
                try:
                    s.sendall(b"a" * 16 * 1024)
                except OSError:
                    pass
        time.sleep(0.3)
        rss1 = n.status("VmRSS")
        for s in socks:
            s.close()
        ok_after = httpx.get(n.url + "/v1/healthz").status_code
    return {"attack": "headers", "status_1mib": status_1m, "status_16mib": status_16m,
            "status_1000_lines": status_many, "streams": streams,
            "rss_growth_streams_mib": round((rss1 - rss0) / 1024, 1),
            "healthz_after": ok_after, "target": "431; no RSS growth",
            "ok": status_1m == 431 and status_16m in (431, 0) and status_many == 431
            and ok_after == 200}


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))


def _wait_closed(socks: list[socket.socket], t0: float, deadline: float) -> list[float]:
    """Seconds after ``t0`` at which each socket saw EOF (all watched at once)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed: list[float] = []
    while len(sel.get_map()) and time.monotonic() - t0 < deadline:
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(1)  # type: ignore[union-attr]
            except ConnectionResetError:
                data = b""
            if not data:
                closed.append(time.monotonic() - t0)
                sel.unregister(key.fileobj)
    for s in socks:
        s.close()
    return closed


def attack_idle(tmp: Path, conns: int = 2000, idle_timeout: float = 3.0) -> dict[str, Any]:
    _raise_nofile(conns + 256)
    with node(tmp, idle_timeout=idle_timeout, header_timeout=idle_timeout) as n:
        socks = []
        t0 = time.monotonic()
        for _ in range(conns):
            socks.append(socket.create_connection(("127.0.0.1", n.port)))
        opened = time.monotonic() - t0
        served, lat = 0, []
        with httpx.Client(base_url=n.url, timeout=5) as http:
            for _ in range(10):  # new clients while the idle ones are open
                t = time.perf_counter()
                try:
                    served += http.get("/v1/healthz").status_code == 200
                except httpx.HTTPError:
                    pass
                lat.append(time.perf_counter() - t)
        closed_at = _wait_closed(socks, t0, deadline=idle_timeout + 3)
    return {"attack": "idle_connections", "connections": conns, "idle_timeout_s": idle_timeout,
            "open_seconds": round(opened, 2), "new_clients_served": f"{served}/10",
            "new_client_max_s": round(max(lat), 3), "closed": len(closed_at),
            "last_closed_after_s": round(max(closed_at, default=float("nan")), 2),
            "target": "all closed within idle timeout (+open time +1 s); new clients served",
            "ok": len(closed_at) == conns and served == 10
            and max(closed_at, default=1e9) <= opened + idle_timeout + 1.0}


def attack_admin(tmp: Path) -> dict[str, Any]:
    with node(tmp) as n, httpx.Client(base_url=n.url) as http:
        codes = [http.post("/v1/admin/batches", headers={"authorization": "Bearer wrong"})
                 .status_code for _ in range(15)]
        right = http.post("/v1/admin/batches", headers={"authorization": f"Bearer {TOKEN}"})
        big = [http.get(p).status_code for p in (
            f"/v1/blocks/{2**63}", f"/v1/batches/{2**64}", f"/v1/tasks/{2**63}",
            f"/v1/tasks/1/epochs/{2**63}", f"/v1/accounts?batch={2**63}", f"/v1/da/{2**63}")]
    return {"attack": "admin_and_ints", "wrong_token_statuses": codes,
            "right_token_after_lockout": right.status_code,
            "int_2_63_statuses": big, "target": "401 then 429; ints 400",
            "ok": codes[0] == 401 and codes[-1] == 429 and right.status_code == 429
            and set(big) == {400}}


ATTACKS: dict[str, Callable[..., Any]] = {
    "nested": attack_nested, "junk": attack_junk, "replay": attack_replay,
    "header": attack_header, "idle": attack_idle, "admin": attack_admin,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(ATTACKS))
    ap.add_argument("--mib", type=int, default=60)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=2000)
    args = ap.parse_args()
    size = {"nested": {"mib": args.mib}, "junk": {"keys": args.keys},
            "idle": {"conns": args.conns}}
    with tempfile.TemporaryDirectory() as d:
        for name in args.only.split(","):
            res = ATTACKS[name](Path(d), **size.get(name, {}))
            for r in res if isinstance(res, list) else [res]:
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
