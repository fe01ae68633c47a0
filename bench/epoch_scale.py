"""End-to-end epoch with large protocol v2 updates (issue 14): node, STF, verifier.

Three processes, so each one's memory is its own figure:

* the **node** (``--serve``): the node app on SQLite with the filesystem blob store, in
  uvicorn; the bench seeds the L1 events (deposits, the task) through its sequencer, as
  the bridge would, and asks it over stdin to cut a batch;
* the **clients** (this process): ``n`` proposers commit and upload their updates in
  chunks (``commit_update_v2``: staged, not readable before the reveal phase), reveal
  (``reveal_update_v2``: publish, sign the hash), and ``advance`` closes the epoch;
* the **verifier** (``--verify``): fetches the batch's DA in chunks, every update chunk by
  chunk (``VerifyingSource``, spooled to disk and memory-mapped) and re-executes the batch
  from genesis; its state root must equal the node's.

Reported: the node's peak RSS (``VmHWM``) during the uploads and, reset with
``/proc/PID/clear_refs``, during epoch close; wall times; the verifier's peak RSS and time;
and whether the node's verdicts and reward weights equal ``judge_epoch`` on the same
updates as one in-memory ``(n, d)`` array (the untiled path). Updates are random int16 in
``[-R, R]`` around a shared direction (honest-looking, no norm bound). Usage::

    python bench/epoch_scale.py --proposers 16 --mib 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.append(str(REPO / "tests"))  # stf_harness (tests.node.helpers needs it)

from blobs import rss_kib  # noqa: E402
from ingest import free_port  # noqa: E402

CHAIN_ID = 7
IN_MEMORY_CHECK_MAX = 2 << 30  # epoch bytes up to which the clients also judge in memory


def _params(d: int, n: int) -> Any:
    """Protocol 4 task parameters: d parameters, a zero genesis named by its chunk root
    (``publish_genesis_v2``: no 1 GiB action at d = 2^28, nothing hashed here)."""
    import dataclasses

    from state_machine.chunks import zeros_root
    from tests.node.helpers import task_params

    p = task_params(1, np.zeros(1, dtype=np.int32), proposers=n, f=1, voters=0,
                    window=21_600)  # the largest window: phases close by ``advance``
    return dataclasses.replace(p, num_params=d, genesis_model_hash=zeros_root(4 * d))


def serve(d: int, n: int, port: int, db_dir: str) -> None:
    """The node process: app + uvicorn in a thread, L1 events seeded, stdin commands."""
    import uvicorn

    from rollup.config import NodeConfig
    from rollup.node import create_node_app
    from tests.node.helpers import deposit_body, members, task_body

    tmp = Path(db_dir)
    cfg = NodeConfig(db_url=f"sqlite:///{tmp}/chain.db", chain_id=CHAIN_ID,
                     sequencer_key_file=tmp / "seq.key", port=port, blob_dir=tmp / "blobs",
                     block_time=0.2)  # the genesis is a chunked blob (protocol 4)
    app = create_node_app(cfg)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    seq = app.state.sequencer
    for i, m in enumerate(members(n)):
        seq.submit_l1_event("l1_deposit", deposit_body(m, 10 + i))
    seq.submit_l1_event("l1_task_created", task_body(1, _params(d, n), 100, max_epochs=1))
    peak_maps: list[Any] = []

    def watch() -> None:  # the file maps at the highest RssFile seen (every 50 ms)
        top = 0
        while True:
            file_kib = rss_kib(os.getpid()).get("RssFile", 0)
            if file_kib > top:
                top, peak_maps[:] = file_kib, _resident_maps()
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "batch":
            b = seq.make_batch()
            print(json.dumps({"idx": b.idx, "root": b.state_root.hex()}), flush=True)
        elif line.strip() == "trim":  # is the resident level live data or freed heap?
            import ctypes
            import gc

            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            print(json.dumps({"rss_after_trim_kib": rss_kib(os.getpid())["VmRSS"]}), flush=True)
        elif line.strip() == "maps":  # which file maps held the most pages (diagnosis)
            print(json.dumps({"maps": peak_maps}), flush=True)
        elif line.strip() == "quit":
            break
    server.should_exit = True


def _resident_maps(top: int = 6) -> list[tuple[str, int]]:
    """The file mappings of this process with the most resident MiB (``/proc/self/smaps``)."""
    out: dict[str, int] = {}
    name = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and len(parts) >= 5:
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif parts and parts[0] == "Rss:":
            out[name] = out.get(name, 0) + int(parts[1])
    return sorted(((k[-60:], v // 1024) for k, v in out.items()), key=lambda x: -x[1])[:top]


def verify(url: str, idx: int, root: str) -> None:
    """The verifier process: DA in chunks, updates verified chunk by chunk, replay."""
    from types import SimpleNamespace

    import httpx

    from blobstore.arrays import MappedArrays
    from bridge.verifier import Verifier
    from rollup import client as sdk
    from sequencer.da import decode_da, replay_da
    from state_machine.transition import genesis_state

    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as http:
        node = sdk.NodeClient(http=http)
        da = decode_da(sdk.download_da(node, idx))
        hashes = sorted({bytes(h) for _, _, h in da["updates"]})
        src = Verifier.blob_source(SimpleNamespace(node_urls=[url], http=http), hashes)
        out = replay_da(genesis_state(CHAIN_ID), da, blobs=src, arrays=MappedArrays())
    print(json.dumps({"ok": out.state_root.hex() == root,
                      "verify_s": round(time.perf_counter() - t0, 2),
                      "verifier_peak_rss_mib": round(rss_kib(os.getpid())["VmHWM"] / 1024, 1)}))


def _base(d: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(-200, 200, d, dtype=np.int16)


def delta_for(base: np.ndarray, i: int) -> np.ndarray:
    """Honest-looking update ``i``: the shared direction plus its own noise, int16 (made
    again when needed: the clients never hold all 16 x 512 MiB at once)."""
    return base + np.random.default_rng(1000 + i).integers(-200, 200, base.size, dtype=np.int16)


def deltas_for(n: int, d: int, seed: int = 5) -> list[np.ndarray]:
    base = _base(d, seed)
    return [delta_for(base, i) for i in range(n)]


class Sampler:
    """Polls ``/proc/PID/status`` every 20 ms: the peak anonymous (heap) and file-backed
    (mapped blob pages) resident memory since the last :meth:`take` (``VmHWM`` alone does
    not say which)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.stop = pid, {"RssAnon": 0, "RssFile": 0}, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                text = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            for line in text.splitlines():
                k, _, v = line.partition(":")
                if k in self.peak:
                    self.peak[k] = max(self.peak[k], int(v.split()[0]))
            time.sleep(0.02)

    def take(self) -> dict[str, float]:
        out = {k: round(v / 1024, 1) for k, v in self.peak.items()}
        self.peak = {k: 0 for k in self.peak}
        return out


def _has_task(nc: Any) -> bool:
    try:
        return nc.task(1) is not None
    except Exception:  # 404 until the sequencer has applied the L1 event
        return False


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _upload(nc: Any, clients: dict[bytes, Any], proposers: list[bytes], d: int) -> None:
    """Commit (chunks staged), advance, reveal (blobs published): the upload phase, as
    ``commit_update_v2`` / ``reveal_update_v2`` do it, but each update is made, uploaded
    and dropped in turn (the SDK keeps its bytes for the reveal; 16 x 512 MiB would not
    fit beside the node on a 24 GiB machine)."""
    import dataclasses

    from rollup import client as sdk
    from state_machine.actions import CommitUpdateBody, RevealUpdateV2Body
    from state_machine.commitments import update_commitment_v2

    base, staged, acks = _base(d), {}, []
    for i, p in enumerate(proposers):
        fc, data = clients[p], delta_for(base, i).astype("<i2").tobytes()
        vb = fc.blob_of(data)  # the chain's protocol: chunk root only on protocol 4
        sdk.upload_blob(fc.node, fc.key, data, blob=vb, complete=False)
        staged[p] = dataclasses.replace(vb, data=b"")
        del data
        com = update_commitment_v2(vb.key, vb.size, vb.chunk_size, vb.root,
                                   fc.salt("update", 1, 0), fc.binding(1, 0))
        acks.append(fc.send("commit_update", CommitUpdateBody(1, 0, com)))
    del base
    acks.append(clients[proposers[0]].advance(1, 0))
    for a in acks:
        nc.wait_included(a.action_hash, timeout=600)
    nc.wait_phase(1, "update_reveal", epoch=0, timeout=600)
    acks = []
    for p, vb in staged.items():
        fc = clients[p]
        nc._check(nc._request("POST", f"/v1/blobs/{vb.key.hex()}/complete"))
        acks.append(fc.send("reveal_update_v2", RevealUpdateV2Body(
            1, 0, vb.key, vb.size, vb.chunk_size, vb.root, fc.salt("update", 1, 0))))
    for a in acks:
        nc.wait_included(a.action_hash, timeout=600)


def _ask(node: Any, command: str) -> Any:
    """One stdin command to the node process, its one JSON line back."""
    node.stdin.write(command + "\n")
    node.stdin.flush()
    return json.loads(node.stdout.readline())


def _genesis(nc: Any, fc: Any, d: int) -> float:
    """Chunked genesis of a zero model: a root-addressed upload, then its root signed;
    seconds until the first epoch opens."""
    from rollup import client as sdk

    t0 = time.perf_counter()
    sdk.publish_genesis_v2(fc, 1, np.zeros(d, dtype=np.int32), wait=True, timeout=600)
    nc.wait_phase(1, "update_commit", epoch=0, timeout=600)
    return round(time.perf_counter() - t0, 2)


def _judge_in_memory(d: int, n: int, keys: list[bytes], deltas: list[np.ndarray]) -> Any:
    from state_machine import verdicts as V

    args = (_params(d, n), V.History(np.zeros(d, dtype=np.int16)), keys, np.stack(deltas))
    try:
        return V.judge_epoch(*args, cols=1 << 40)  # one tile: the untiled path
    except TypeError:  # a commit before tiles (``--old`` comparisons)
        return V.judge_epoch(*args)


def run(n: int, mib: float, tmp: Path) -> dict[str, Any]:
    from rollup import client as sdk
    from rollup.wire import unhex
    from tests.node.helpers import members

    d = int(mib * 2**20) // 2
    port = free_port()
    node = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--dir", str(tmp),
                             "--proposers", str(n), "--d", str(d)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    out: dict[str, Any] = {"proposers": n, "mib": mib, "d": d}
    try:
        assert node.stdout is not None and node.stdin is not None
        assert node.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        nc = sdk.NodeClient(url)
        out["node_rss_start_mib"] = round(rss_kib(node.pid)["VmRSS"] / 1024, 1)
        ms = members(n)
        clients = {m.pubkey: sdk.FlockClient(nc, m.key) for m in ms}
        nc.wait_for(lambda: _has_task(nc), what="task", timeout=120)
        out["genesis_s"] = _genesis(nc, clients[ms[0].pubkey], d)
        proposers = sorted(unhex(p) for p in nc.epoch(1, 0)["proposers"])
        out["node_rss_after_genesis_trimmed_mib"] = round(
            _ask(node, "trim")["rss_after_trim_kib"] / 1024, 1)
        g = rss_kib(node.pid)
        out["node_rss_after_genesis_mib"] = round(g["VmRSS"] / 1024, 1)
        out["node_peak_rss_genesis_mib"] = round(g["VmHWM"] / 1024, 1)  # chunked genesis
        _reset_peak(node.pid)
        sampler = Sampler(node.pid)
        sampler.take()
        t0 = time.perf_counter()
        _upload(nc, clients, proposers, d)
        out["upload_s"] = round(time.perf_counter() - t0, 2)
        out["upload_mib_s"] = round(n * mib / out["upload_s"], 1)
        out["node_peak_rss_upload_mib"] = round(rss_kib(node.pid)["VmHWM"] / 1024, 1)
        out["node_peak_upload_anon_file_mib"] = sampler.take()
        out["peak_reset"] = _reset_peak(node.pid)
        t0 = time.perf_counter()
        a = clients[proposers[0]].advance(1, 0)
        nc.wait_included(a.action_hash, timeout=1200)
        nc.wait_for(lambda: nc.epoch(1, 0)["outcome"], what="epoch close", timeout=1200)
        out["close_s"] = round(time.perf_counter() - t0, 2)
        out["node_peak_rss_close_mib"] = round(rss_kib(node.pid)["VmHWM"] / 1024, 1)
        out["node_peak_close_anon_file_mib"] = sampler.take()
        out["node_maps_at_file_peak_mib"] = _ask(node, "maps")["maps"]
        sampler.stop = True
        ep = nc.epoch(1, 0)
        out["outcome"] = ep["outcome"]
        out["verdicts"] = sorted({v for _, v in ep["verdicts"]})
        if n * d * 2 <= IN_MEMORY_CHECK_MAX:  # else the check runs on a smaller case
            want = _judge_in_memory(d, n, proposers, deltas_for(n, d))
            got = {unhex(s["pubkey"]): (s["verdict"], int(s["reward_weight"]))
                   for s in ep["scores"]}
            out["scores_equal_in_memory"] = got == {
                v.pubkey: (v.verdict, v.reward_weight) for v in want.verdicts}
            del want
        del clients
        node.stdin.write("batch\n")
        node.stdin.flush()
        batch = json.loads(node.stdout.readline())
        v = subprocess.run([sys.executable, __file__, "--verify", url, "--batch",
                            str(batch["idx"]), "--root", batch["root"]], cwd=REPO,
                           capture_output=True, text=True, env={**os.environ,
                                                                "PYTHONPATH": str(REPO)})
        out.update(json.loads(v.stdout.strip().splitlines()[-1]) if v.returncode == 0
                   else {"ok": False, "verify_error": v.stderr[-2000:]})
        out["node_peak_rss_total_mib"] = round(rss_kib(node.pid)["VmHWM"] / 1024, 1)
    finally:
        if node.poll() is None and node.stdin is not None:
            node.stdin.write("quit\n")
            node.stdin.flush()
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
    return out


def stf_close(n: int, mib: float, tmp: Path) -> dict[str, Any]:
    """The STF's epoch close alone at any size (``--stf-only``): ``n`` update files on disk,
    mapped read-only as the node's blob store maps them, ``judge_epoch`` over their tiles,
    then the candidate (``apply_delta``). For d beyond ``MAX_NUM_PARAMS`` (issue 14's
    d = 2^28), which no task can declare yet. Peak RSS of this process per step."""
    from state_machine import verdicts as V
    from state_machine.aggregation import apply_delta
    from state_machine.tiles import StackedRows

    d = int(mib * 2**20) // 2
    rng = np.random.default_rng(9)
    base_part = 1 << 22
    t0 = time.perf_counter()
    rows = []
    for i in range(n):
        path = tmp / f"u{i}.bin"
        with open(path, "wb") as f:
            for lo in range(0, d, base_part):
                w = min(base_part, d - lo)
                part = np.random.default_rng(lo).integers(-200, 200, w, dtype=np.int16)
                f.write((part + rng.integers(-200, 200, w, dtype=np.int16)).tobytes())
        rows.append(np.frombuffer(np.memmap(path, dtype=np.uint8, mode="r"), dtype="<i2"))
    out: dict[str, Any] = {"proposers": n, "mib": mib, "d": d,
                           "write_s": round(time.perf_counter() - t0, 1)}
    params = _params(d, n)  # hashes a d-long genesis: before the measured part
    _reset_peak(os.getpid())
    out["rss_before_mib"] = round(rss_kib(os.getpid())["VmRSS"] / 1024, 1)
    t0 = time.perf_counter()
    j = V.judge_epoch(params, V.History(np.zeros(d, dtype=np.int16)),
                      [i.to_bytes(32, "big") for i in range(n)], StackedRows(rows))
    out["judge_s"] = round(time.perf_counter() - t0, 1)
    out["judge_peak_rss_mib"] = round(rss_kib(os.getpid())["VmHWM"] / 1024, 1)
    out["verdicts"] = sorted({v.verdict for v in j.verdicts})
    assert j.aggregate is not None
    g = np.ones(d, dtype=np.int32)  # the global model: a whole int32 array in the state
    t0 = time.perf_counter()
    cand = apply_delta(g, j.aggregate)
    out["candidate_s"] = round(time.perf_counter() - t0, 1)
    out["close_peak_rss_mib"] = round(rss_kib(os.getpid())["VmHWM"] / 1024, 1)
    out["model_bytes_mib"] = round((g.nbytes + cand.nbytes + j.aggregate.nbytes) / 2**20, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--proposers", type=int, default=16)
    ap.add_argument("--mib", type=float, default=8, help="update size per proposer (MiB)")
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--verify", default="", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--root", default="", help=argparse.SUPPRESS)
    ap.add_argument("--d", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help="where the node's SQLite and blobs live")
    ap.add_argument("--stf-only", action="store_true",
                    help="only the STF's epoch close over mapped files (any d, no node)")
    args = ap.parse_args()
    if args.serve:
        serve(args.d, args.proposers, args.serve, args.dir)
        return 0
    if args.verify:
        verify(args.verify, args.batch, args.root)
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="flockchain-epoch-", dir=args.dir) as td:
        if args.stf_only:
            print(json.dumps({"bench": "epoch_stf_close", **stf_close(args.proposers,
                                                                       args.mib, Path(td))}))
            return 0
        r = run(args.proposers, args.mib, Path(td))
    print(f"epoch of {r['proposers']} x {r['mib']} MiB: upload {r.get('upload_s')} s, node "
          f"peak RSS {r.get('node_peak_rss_upload_mib')} MiB; close {r.get('close_s')} s, "
          f"node peak RSS {r.get('node_peak_rss_close_mib')} MiB; verifier "
          f"{r.get('verify_s')} s, {r.get('verifier_peak_rss_mib')} MiB, ok={r.get('ok')}; "
          f"scores = in-memory: {r.get('scores_equal_in_memory')}", file=sys.stderr)
    print(json.dumps({"bench": "epoch_scale", **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
