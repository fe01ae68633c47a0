"""Smoke test for ``bench/epoch_scale.py`` (issue 14): a tiny epoch of v2 updates end to
end through a node process, the STF's tiled epoch close and a verifier process.

No memory or timing assertions (those are the bench's figures): the node's verdicts and
weights equal the in-memory ``judge_epoch`` and the verifier's replay reaches the node's
state root, so the bench (and the mapped-blob path it exercises) does not rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_epoch_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "epoch_scale.py"),
                          "--proposers", "5", "--mib", "0.25", "--dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["outcome"] == "accepted" and r["ok"] is True, r
    assert r["scores_equal_in_memory"] is True, r
    assert r["node_peak_rss_close_mib"] > 0 and r["close_s"] >= 0
