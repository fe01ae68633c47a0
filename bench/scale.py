"""Scale benchmark: block cost vs state size, onboarding, proofs against old batches,
restart, block production vs chain age, L1 event submission vs mempool size, snapshot size
during a reveal phase. Figures side by side with the issue's "today" column (issue 14) and,
with ``--old REV``, the same measurement on an older commit (1k/10k accounts only: the old
deposit scan makes 100k take hours).

Not a test: prints a Markdown table and one JSON line. Databases live on ``--dir`` (default
/dev/shm, so fsync costs do not hide the O(n) terms; the ack path's fsync rate is
``bench/ingest.py``'s business). Usage::

    python bench/scale.py [--accounts 1000,10000,100000] [--blocks 10000] [--old c64452e]
    python bench/scale.py --only-waiting 1000,10000,100000   # block start vs accounts
    python bench/scale.py --past 0,64 --close-revs main,2fba8db,HEAD+  # epoch close vs GEMM
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "node"))

CHAIN_ID = 7
OLD = {  # issue 14, "today" (2-core machines, medians of 3)
    "apply_1000": "22 ms", "apply_10000": "236 ms", "apply_100000": "2.1-4.8 s",
    "deposit_100k": "9.6 ms/deposit at 100k (O(N^2))", "proof": "8.9 s",
    "restart": "replay from the last of 3 kept snapshots", "produce_early": "9 ms",
    "produce_late": "126 ms", "l1_event_10k": "8.6 ms", "snapshot": "whole state + updates",
}


def _fake(i: int) -> tuple[bytes, bytes]:
    h = hashlib.sha256(i.to_bytes(8, "big")).digest()
    return h[:20], hashlib.sha256(h).digest()


def _deposits(first: int, n: int, nonce: int, l1_block: int, amount: int = 0) -> list[Any]:
    from state_machine.actions import DepositBody, system_action
    from state_machine.constants import STAKE_AMOUNT

    out = []
    for k in range(n):
        addr, pk = _fake(first + k)
        body = DepositBody(addr, pk, amount or STAKE_AMOUNT, l1_block + k, 0, b"\x11" * 32)
        out.append(system_action("l1_deposit", CHAIN_ID, nonce + k, body))
    return out


def _block(state: Any, actions: list[Any]) -> Any:
    from state_machine.transition import Block

    return Block(state.height + 1, b"\x00" * 32, 1_700_000_000 + state.height, actions)


def onboard(n: int, per_block: int = 1024, amount: int = 0) -> tuple[Any, float]:
    """A state with ``n`` staked accounts, built by deposit blocks; returns (state, s)."""
    from state_machine.transition import apply_block, genesis_state

    state, done, t = genesis_state(CHAIN_ID), 0, 0.0
    while done < n:
        k = min(per_block, n - done)
        acts = _deposits(done, k, done, 10 + done, amount)
        t0 = time.perf_counter()
        state, receipts = apply_block(state, _block(state, acts))
        t += time.perf_counter() - t0
        assert all(r.applied for r in receipts)
        done += k
    return state, t


def apply_cost(state: Any, reps: int = 21, amount: int = 0) -> float:
    """Median seconds of ``apply_block`` + root for a block of 4 small actions (new
    deposits), over a chain of ``reps`` such blocks (steady state: each on the last)."""
    from state_machine.transition import apply_block

    times = []
    for _ in range(reps):
        n = len(state.accounts)
        acts = _deposits(n, 4, n, 10 + n, amount)
        t0 = time.perf_counter()
        state, _ = apply_block(state, _block(state, acts))
        state.state_root()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_waiting(sizes: list[int]) -> dict[str, float]:
    """``apply_block`` (4 small deposits) while a task waits for clients, at ``n`` accounts
    that are not eligible (stake 1 < MIN_STAKE): every block start asks whether the task
    can open its epoch (before the eligible-account index: a scan and sort of all)."""
    import numpy as np
    from stf_harness import Client, Harness, default_params

    out: dict[str, float] = {}
    for n in sizes:
        state, _ = onboard(n, amount=1)
        h = Harness(state=state, l1_block=10 + n + 1, system_nonce=n)
        cs = [Client.make(f"w{i}") for i in range(3)]  # eligible, but too few to open
        g = np.zeros(16, dtype=np.int32)
        h.block(*[h.deposit(c) for c in cs], h.create_task(1, default_params(16, g)))
        h.block(h.genesis(cs[0], 1, g))
        h.block()
        assert h.state.tasks[1].phase == "waiting_clients"
        out[f"waiting_apply_{n}"] = apply_cost(h.state, amount=1)
    return out


def bench_apply(sizes: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for n in sizes:
        state, t = onboard(n)
        out[f"onboard_{n}"] = t
        out[f"apply_{n}"] = apply_cost(state)
    return out


def _open(url: str, interval: int = 100) -> Any:
    from sequencer import Sequencer, SequencerConfig, Store

    conf = SequencerConfig(chain_id=CHAIN_ID, produce_blocks=False, snapshot_interval=interval)
    tick = itertools.count(1_700_000_000).__next__  # one second a block
    return Sequencer(Store(url), b"\x05" * 32, conf, clock=tick).start()


def bench_chain(blocks: int, root: Path, batch_every: int = 100) -> dict[str, Any]:
    """A chain of ``blocks`` blocks with 16 accounts and a final batch every 100 blocks:
    production time early vs late, restart at 1k and at the end, cold proofs."""
    from helpers import deposit_body, members

    url = f"sqlite:///{root / 'chain.db'}"
    seq = _open(url)
    ms = members(16)
    early: list[float] = []
    late: list[float] = []
    out: dict[str, Any] = {}
    try:
        for h in range(1, blocks + 1):
            if h <= 16:
                seq.submit_l1_event("l1_deposit", deposit_body(ms[h - 1], 10 + h))
            t0 = time.perf_counter()
            seq.produce_block()
            dt = time.perf_counter() - t0
            (early if h <= 200 else late if h > blocks - 200 else []).append(dt)
            if h % batch_every == 0:
                b = seq.make_batch()
                seq.mark_posted(b.idx, b"\xaa" * 32, "final")
            if h in (1000, 10_000) and blocks > h:
                seq.close()
                t0 = time.perf_counter()
                seq = _open(url)
                out[f"restart_{h}"] = time.perf_counter() - t0
    finally:
        seq.close()
    out["produce_early"] = statistics.median(early)
    out["produce_late"] = statistics.median(late)
    t0 = time.perf_counter()
    seq = _open(url)
    out[f"restart_{blocks}"] = time.perf_counter() - t0
    try:
        n_batches = blocks // batch_every
        cold, warm = [], []
        for i in range(0, n_batches, max(1, n_batches // 20)):
            for k, m in enumerate(ms[:3]):  # cold for the first account, cached after
                t0 = time.perf_counter()
                p = seq.batch_state(i).account_proof(m.pubkey)
                (warm if k else cold).append(time.perf_counter() - t0)
                assert p["state_root"] == seq.batch(i).state_root
        out["proof_max"] = max(cold)
        out["proof_median"] = statistics.median(cold)
        out["proof_warm"] = statistics.median(warm)
        snaps = seq.store.snapshot_heights()
        sizes = [len(seq.store.snapshot_at(h)[1]) for h in snaps]
        out["snapshots"] = len(snaps)
        out["snapshot_bytes_median"] = statistics.median(sizes)
    finally:
        seq.close()
    return out


def bench_l1_events(queued: int, root: Path) -> dict[str, float]:
    """Latency of one more L1 event with 0 and with ``queued`` events in the mempool."""
    from state_machine.actions import DepositBody, system_action
    from state_machine.constants import SYSTEM_SENDER

    seq = _open(f"sqlite:///{root / 'mempool.db'}")
    out: dict[str, float] = {}
    try:
        def one(i: int) -> float:
            addr, pk = _fake(10_000_000 + i)
            t0 = time.perf_counter()
            seq.submit_l1_event("l1_deposit", DepositBody(addr, pk, 10**17, 10 + i, 0,
                                                          b"\x11" * 32))
            return time.perf_counter() - t0

        out["l1_event_0"] = statistics.median(one(i) for i in range(50))
        futs = []  # fill fast: admit without waiting, so acks share group commits
        for i in range(50, queued):
            addr, pk = _fake(10_000_000 + i)
            body = DepositBody(addr, pk, 10**17, 10 + i, 0, b"\x11" * 32)
            with seq._lock:
                sa = system_action("l1_deposit", CHAIN_ID, seq.pending_nonce(SYSTEM_SENDER), body)
                futs.append(seq._submit(sa.encode(), system=True, sa=sa))
        for f in futs:
            f.result()
        out[f"l1_event_{queued}"] = statistics.median(one(i) for i in range(queued, queued + 50))
        t0 = time.perf_counter()
        for _ in range(100):
            seq.pending_l1_cursor()
        out["cursor_us"] = (time.perf_counter() - t0) / 100 * 1e6
    finally:
        seq.close()
    return out


def bench_reveal_snapshot(d: int = 1 << 20) -> dict[str, float]:
    """Snapshot size while a reveal phase holds 7 updates of ``d`` int16 each."""
    import numpy as np
    from stf_harness import Client, Harness, default_params

    from state_machine import snapshot

    h = Harness()
    cs = [Client.make(f"c{i}") for i in range(9)]
    genesis = np.zeros(d, dtype=np.int32)
    h.block(*[h.deposit(c) for c in cs], h.create_task(1, default_params(d, genesis)))
    h.block(h.genesis(cs[0], 1, genesis))
    h.block()
    ep = h.state.epochs[(1, 0)]
    props = [c for c in cs if c.pubkey in ep.proposers]
    deltas = {c.pubkey: np.full(d, i + 1, dtype=np.int16) for i, c in enumerate(props)}
    h.block(*[h.commit(c, 1, 0, deltas[c.pubkey]) for c in props])
    h.until_phase_changes(1)
    h.block(*[h.reveal(c, 1, 0, deltas[c.pubkey]) for c in props])
    held = sum(a.nbytes for a in h.state.epochs[(1, 0)].updates.values())
    data = snapshot.encode(h.state, None, None, 0)
    return {"reveal_update_bytes": held, "reveal_snapshot_bytes": len(data)}


def bench_krum(n: int, log_d: int) -> dict[str, float]:
    """Epoch-close scoring (``score_updates``) at n proposers, d = 2^log_d, beside one
    float64 GEMM of the same shape (the issue's yardstick: within 2x)."""
    import numpy as np

    from state_machine import scoring

    d = 1 << log_d
    rng = np.random.default_rng(0)
    deltas = rng.integers(-3000, 3000, (n, d), dtype=np.int16)
    prev = rng.integers(-3000, 3000, d, dtype=np.int16)
    pks = [i.to_bytes(32, "big") for i in range(n)]
    a = deltas.astype(np.float64)
    t0 = time.perf_counter()
    a @ a.T
    gemm = time.perf_counter() - t0
    del a
    t0 = time.perf_counter()
    scoring.score_updates(pks, deltas, prev, max(1, n // 50))
    return {"krum_gemm": gemm, "krum_score": time.perf_counter() - t0}


def bench_close(n: int, log_d: int, pasts: list[int]) -> dict[str, float]:
    """Epoch close (``judge_epoch``, the default aggregator of the code measured; row hashes
    given, as the STF does) at n proposers, d = 2^log_d, with ``m`` public past rows for each
    ``m`` in ``pasts`` (random int16, seed 0), beside one float64 GEMM of the same shape.
    CPU seconds of this process (all BLAS threads), wall seconds beside."""
    import numpy as np

    from state_machine import verdicts

    d, rng = 1 << log_d, np.random.default_rng(0)
    deltas = rng.integers(-3000, 3000, (n, d), dtype=np.int16)
    prev = rng.integers(-3000, 3000, d, dtype=np.int16)
    past = rng.integers(-3000, 3000, (max([0, *pasts]), d), dtype=np.int16)
    pks = [i.to_bytes(32, "big") for i in range(n)]
    a = deltas.astype(np.float64)
    c0, t0 = time.process_time(), time.perf_counter()
    a @ a.T
    out = {"gemm_cpu": time.process_time() - c0, "gemm_wall": time.perf_counter() - t0}
    del a  # the hashes below: as the STF recorded them at reveal, outside the timing
    params = verdicts.SimParams(f=max(1, n // 50))
    kw = {"row_hashes": [verdicts.delta_hash(r) for r in deltas]} \
        if "row_hashes" in inspect.signature(verdicts.judge_epoch).parameters else {}
    for m in pasts:
        hist = verdicts.History(prev_delta=prev, past_updates=past[:m] if m else None)
        c0, t0 = time.process_time(), time.perf_counter()
        verdicts.judge_epoch(params, hist, pks, deltas, **kw)
        out[f"close_cpu_{m}"] = time.process_time() - c0
        out[f"close_wall_{m}"] = time.perf_counter() - t0
    out["aggregator"] = params.aggregator  # type: ignore[assignment]
    return out


def _at_rev(rev: str, flags: list[str]) -> dict[str, Any]:
    """This script with ``flags`` on commit ``rev``'s ``state_machine`` ("" or "HEAD+":
    the working tree), in a child process; its JSON line."""
    tmp = Path(tempfile.mkdtemp(prefix="scale-old-"))
    try:
        root = REPO
        if rev not in ("", "HEAD+"):
            arch = subprocess.run(["git", "-C", str(REPO), "archive", rev, "state_machine",
                                   "tests"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=arch, check=True)
            (tmp / "bench").mkdir()
            shutil.copy(__file__, tmp / "bench" / "scale.py")
            root = tmp
        env = dict(os.environ, PYTHONPATH=str(root))
        res = subprocess.run([sys.executable, str(root / "bench" / "scale.py"), *flags],
                             env=env, check=True, capture_output=True, text=True, cwd=root)
        return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def close_table(n: int, log_d: int, pasts: list[int], revs: list[str], reps: int) -> str:
    """:func:`bench_close` on every rev in turn, ``reps`` rounds (alternately: one load)."""
    flags = ["--only-close", "--krum-n", str(n), "--krum-log-d", str(log_d), "--past",
             ",".join(map(str, pasts))]
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in revs}
    load = [os.getloadavg()[0]]
    for _ in range(reps):
        for rev in revs:
            runs[rev].append(_at_rev(rev, flags))
            load.append(os.getloadavg()[0])
    head = ["code", "aggregator", "GEMM cpu s"]
    head += [f"close cpu s, m={m} (x GEMM)" for m in pasts]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rev in revs:
        med = {key: statistics.median(r[key] for r in runs[rev]) for key in runs[rev][0]
               if key != "aggregator"}
        cells = [rev or "worktree", runs[rev][0]["aggregator"], f"{med['gemm_cpu']:.2f}"]
        cells += [f"{med[f'close_cpu_{m}']:.2f} ({med[f'close_cpu_{m}'] / med['gemm_cpu']:.2f}x)"
                  for m in pasts]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"n={n}, d=2^{log_d}, {reps} rounds, medians; load average 1 min: "
                 + " ".join(f"{x:.2f}" for x in load))
    return "\n".join(lines) + "\n" + json.dumps(runs)


def old_apply(rev: str, sizes: list[int]) -> dict[str, float]:
    """The same ``bench_apply`` on commit ``rev`` (exported to a temp dir)."""
    return _at_rev(rev, ["--only-apply", ",".join(map(str, sizes))])


def bench_epoch(n: int, mib: float, check_mib: float = 4) -> dict[str, Any]:
    """``bench/epoch_scale.py`` at ``n x mib``, and at ``n x check_mib`` too when the big
    case is too large for the clients to recompute the scores in memory (the check that
    the node's tiled epoch close equals the in-memory path)."""
    def one(m: float) -> dict[str, Any]:
        out = subprocess.run([sys.executable, str(REPO / "bench" / "epoch_scale.py"),
                              "--proposers", str(n), "--mib", str(m)], capture_output=True,
                             text=True, check=True)
        sys.stderr.write(out.stderr.strip().splitlines()[-1] + "\n")
        return json.loads(out.stdout.strip().splitlines()[-1])

    r = {"epoch": one(mib)}
    if "scores_equal_in_memory" not in r["epoch"]:
        r["epoch_check"] = one(check_mib)
    return r


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f} ms"


def table(r: dict[str, Any], old: dict[str, float], sizes: list[int], blocks: int) -> str:
    rows = [("what", "issue 14 (today)", f"old ({r.get('old_rev', '-')}) here", "now")]
    for n in sizes:
        rows.append((f"apply_block, 4 small actions, {n:,} accounts", OLD.get(f"apply_{n}", "-"),
                     _ms(old.get(f"apply_{n}")), _ms(r.get(f"apply_{n}"))))
    for n in sizes:
        rows.append((f"same, while a task waits for clients, {n:,} ineligible accounts", "-",
                     "-", _ms(r.get(f"waiting_apply_{n}"))))
    big = max(sizes)
    rows.append((f"onboard {big:,} deposits (blocks of 1,024)", OLD["deposit_100k"],
                 "-", f"{r[f'onboard_{big}']:.1f} s "
                 f"({r[f'onboard_{big}'] / big * 1e6:.0f} us/deposit)"))
    if len(sizes) > 1:
        small = min(sizes)
        rows.append((f"onboard {small:,} deposits", "-", "-",
                     f"{r[f'onboard_{small}'] / small * 1e6:.0f} us/deposit"))
    rows += [
        (f"proof vs a final batch, {blocks:,}-block chain, after restart", OLD["proof"], "-",
         f"cold median {_ms(r['proof_median'])}, max {_ms(r['proof_max'])}; "
         f"next account {_ms(r['proof_warm'])}"),
        ("restart at 1,000 blocks", OLD["restart"], "-", _ms(r.get("restart_1000"))),
        (f"restart at {blocks:,} blocks", OLD["restart"], "-", _ms(r[f"restart_{blocks}"])),
        ("block production, first 200 blocks (median)", OLD["produce_early"], "-",
         _ms(r["produce_early"])),
        (f"block production, last 200 of {blocks:,} (median)", OLD["produce_late"], "-",
         _ms(r["produce_late"])),
        ("L1 event submission, empty mempool", "-", "-", _ms(r["l1_event_0"])),
        (f"L1 event submission, {r['queued']:,} queued", OLD["l1_event_10k"], "-",
         _ms(r[f"l1_event_{r['queued']}"])),
        ("snapshot during a reveal phase", OLD["snapshot"], "-",
         f"{r['reveal_snapshot_bytes'] / 1024:.1f} KiB with "
         f"{r['reveal_update_bytes'] / 2**20:.0f} MiB of updates held"),
        (f"snapshots on the {blocks:,}-block chain", "3 kept, full", "-",
         f"{r['snapshots']} kept, median {r['snapshot_bytes_median'] / 1024:.1f} KiB"),
    ]
    if "krum_score" in r:
        rows.append((f"epoch scoring n={r['krum_n']}, d=2^{r['krum_log_d']} / one float64 GEMM",
                     "n=512: 3.1 s", "-", f"{r['krum_score']:.2f} s / {r['krum_gemm']:.2f} s = "
                     f"{r['krum_score'] / r['krum_gemm']:.2f}x"))
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * 4]
    lines += ["| " + " | ".join(x) + " |" for x in rows[1:]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--accounts", default="1000,10000,100000")
    ap.add_argument("--blocks", type=int, default=10_000)
    ap.add_argument("--queued", type=int, default=10_000)
    ap.add_argument("--krum-n", type=int, default=512, help="0: skip the scoring figure")
    ap.add_argument("--krum-log-d", type=int, default=18)
    ap.add_argument("--old", default="", help="git revision to measure apply_block on too")
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--only-apply", default="", help=argparse.SUPPRESS)
    ap.add_argument("--only-waiting", default="",
                    help="only apply_block while a task waits for clients, at these sizes")
    ap.add_argument("--past", default="",
                    help="epoch close (judge_epoch) at --krum-n x 2^--krum-log-d with these "
                         "numbers of public past rows, e.g. 0,64, vs one GEMM; only that")
    ap.add_argument("--close-revs", default="", help="with --past: revisions to measure "
                    "in turn (HEAD+: the working tree), e.g. main,2fba8db,HEAD+")
    ap.add_argument("--close-reps", type=int, default=1, help="rounds over --close-revs")
    ap.add_argument("--only-close", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only-chain", action="store_true", help="only the chain figures")
    ap.add_argument("--blob-mib", type=int, default=0,
                    help="also run bench/blobs.py (large-update ingest) with this size; 0: skip")
    ap.add_argument("--epoch-proposers", type=int, default=0,
                    help="also run an end-to-end epoch of this many proposers with large v2 "
                         "updates (bench/epoch_scale.py); 0: skip")
    ap.add_argument("--epoch-mib", type=float, default=8, help="update size for that epoch")
    args = ap.parse_args()
    if args.epoch_proposers:  # node + STF + verifier, bounded-memory epoch close
        print(json.dumps(bench_epoch(args.epoch_proposers, args.epoch_mib)))
        return
    if args.past:
        pasts = [int(x) for x in args.past.split(",")]
        if args.only_close:
            print(json.dumps(bench_close(args.krum_n, args.krum_log_d, pasts)))
        else:
            print(close_table(args.krum_n, args.krum_log_d, pasts,
                              args.close_revs.split(",") if args.close_revs else [""],
                              args.close_reps))
        return
    if args.only_chain:  # e.g. --blocks 100000: restart and proofs on a longer chain
        root = Path(tempfile.mkdtemp(prefix="scale-", dir=args.dir))
        try:
            print(json.dumps(bench_chain(args.blocks, root)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    if args.only_apply:
        print(json.dumps(bench_apply([int(x) for x in args.only_apply.split(",")])))
        return
    if args.only_waiting:
        print(json.dumps(bench_waiting([int(x) for x in args.only_waiting.split(",")])))
        return
    sizes = [int(x) for x in args.accounts.split(",")]
    r: dict[str, Any] = {"queued": args.queued, "old_rev": args.old or "-"}
    r.update(bench_apply(sizes))
    r.update(bench_waiting(sizes))
    old = old_apply(args.old, [n for n in sizes if n <= 10_000]) if args.old else {}
    root = Path(tempfile.mkdtemp(prefix="scale-", dir=args.dir))
    try:
        r.update(bench_chain(args.blocks, root))
        r.update(bench_l1_events(args.queued, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    r.update(bench_reveal_snapshot())
    if args.krum_n:
        r.update(krum_n=args.krum_n, krum_log_d=args.krum_log_d)
        r.update(bench_krum(args.krum_n, args.krum_log_d))
    if args.blob_mib:  # chunked upload through the node, fs and S3, vs a do-nothing endpoint
        out = subprocess.run([sys.executable, str(REPO / "bench" / "blobs.py"), "--mib",
                              str(args.blob_mib)], capture_output=True, text=True, check=True)
        r["blobs"] = json.loads(out.stdout.strip().splitlines()[-1])
    print(table(r, old, sizes, args.blocks))
    print(json.dumps({**r, "old": old}))


if __name__ == "__main__":
    main()
