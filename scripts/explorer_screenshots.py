"""Regenerate the explorer screenshots in ``docs/explorer/`` from a fresh demo chain.

Why a script: the screenshots in the README must show what the current code renders (the
verdicts changed in v2); this runs ``flockchain demo --quick`` into a SQLite file, serves
that chain with ``flockchain node --db``, and photographs the task page, an attacker's
account page and the first epoch with a slash, in Debian's chromium via Playwright.

Usage: ``.venv/bin/python scripts/explorer_screenshots.py [--out docs/explorer]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo(db: str, report: Path) -> dict:
    cmd = [sys.executable, "-m", "rollup.cli", "demo", "--quick", "--quiet", "--db", db,
           "--json", str(report)]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=600)
    return json.loads(report.read_text())


def _serve(db: str, port: int, work: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rollup.cli", "node", "--db", db, "--port", str(port),
           "--host", "127.0.0.1", "--key", str(work / "seq.key"), "--blob-dir",
           str(work / "blobs")]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/healthz", timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("node did not start")


def _shoot(url: str, out: Path, report: dict) -> None:
    from playwright.sync_api import sync_playwright

    attacker = max((c for c in report["clients"] if c["behaviour"] != "honest"),
                   key=lambda c: int(c["cumulative_slashed"]))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/explorer/tasks/1")
        page.screenshot(path=str(out / "task.png"), full_page=True)
        page.goto(f"{url}/explorer/accounts/{attacker['pubkey']}")
        page.screenshot(path=str(out / "attacker.png"), full_page=True)
        page.goto(f"{url}/explorer/tasks/1/epochs/0")
        page.screenshot(path=str(out / "epoch.png"), full_page=True)
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "explorer"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="shots-") as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'demo.db'}"
        report = _demo(db, work / "report.json")
        port = _free_port()
        node = _serve(db, port, work)
        try:
            _shoot(f"http://127.0.0.1:{port}", Path(args.out), report)
        finally:
            node.terminate()
            node.wait(timeout=30)
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
