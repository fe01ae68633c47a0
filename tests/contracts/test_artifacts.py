"""The committed contracts/out artifacts are exactly what contracts/build.mjs produces."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.contracts import CONTRACT_NAMES, TEST_CONTRACT_NAMES, load_artifact

from .helpers import IN_CI

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "contracts" / "out"


def _node() -> str | None:
    node = shutil.which("node")
    solc = ROOT / "node_modules" / "solc" / "package.json"
    if node and solc.is_file():
        return node
    if IN_CI:
        pytest.fail("node and node_modules/solc are required in CI (make install)")
    pytest.skip("node or node_modules/solc missing (run `make install`)")
    return None


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))


def test_committed_artifacts_match_fresh_build(tmp_path: Path) -> None:
    node = _node()
    out = tmp_path / "out"
    proc = subprocess.run(
        [node, str(ROOT / "contracts" / "build.mjs"), "--out", str(out), "--strict"],
        cwd=tmp_path,  # output must not depend on the working directory
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert _tree(out) == _tree(OUT), "artifact set differs: run `make contracts` and commit"
    stale = [name for name in _tree(out) if not filecmp.cmp(out / name, OUT / name, shallow=False)]
    assert not stale, f"stale artifacts {stale}: run `make contracts` and commit"


def test_build_fails_loudly_on_bad_source(tmp_path: Path) -> None:
    node = _node()
    # A copy of the build script next to a broken source tree.
    (tmp_path / "contracts" / "src").mkdir(parents=True)
    shutil.copy(ROOT / "contracts" / "build.mjs", tmp_path / "contracts" / "build.mjs")
    (tmp_path / "contracts" / "src" / "Broken.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity 0.8.28;\ncontract Broken { uint x = ; }\n"
    )
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    proc = subprocess.run(
        [node, str(tmp_path / "contracts" / "build.mjs"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "compilation failed" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_artifacts_have_code_and_abi() -> None:
    for name in (*CONTRACT_NAMES, *TEST_CONTRACT_NAMES):
        art = load_artifact(name)
        assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 2, name
        assert art["deployedBytecode"].startswith("0x") and len(art["deployedBytecode"]) > 2
        assert any(e["type"] == "function" for e in art["abi"]), name
