"""The import contracts in ``.importlinter`` hold, and they catch a wrong-way import.

``make lint`` runs ``lint-imports`` too; this test is what makes CI (``make test``) prove the
layering. The second test copies the packages to a temporary directory, adds imports that
point the wrong way, and checks that ``lint-imports`` fails and names each one, so a
contract that silently stopped checking anything would fail here.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"

# (file, import line to add, text lint-imports must print for it)
WRONG_WAY = [
    ("state_machine/codec.py", "import sequencer.store", "state_machine is not allowed to "
     "import sequencer"),
    ("bridge/poster.py", "import sequencer.store", "bridge is not allowed to import sequencer"),
    ("sequencer/errors.py", "import rollup.wire", "sequencer is not allowed to import rollup"),
    ("rollup/config.py", "import federated.models", "rollup is not allowed to import federated"),
    ("rollup/keys.py", "import devtools.l1", "rollup is not allowed to import devtools"),
    ("federated/quant.py", "import rollup.api", "federated is not allowed to import rollup.api"),
    ("rollup/wire.py", "import rollup.metrics", "rollup.wire is not allowed to import "
     "rollup.metrics"),
    ("state_machine/crypto.py", "import httpx", "state_machine is not allowed to import httpx"),
    ("bridge/ports.py", "import torch", "bridge is not allowed to import torch"),
]


def _lint_imports_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if exe.exists():
        return [str(exe), "--no-cache"]
    return [sys.executable, "-c", "import sys; from importlinter.cli import "
            "lint_imports_command as c; sys.exit(c())", "--no-cache"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(_lint_imports_cmd(), cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def _packages() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(CONFIG)
    return cfg["importlinter"]["root_packages"].split()


def test_import_contracts_are_kept() -> None:
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_every_package_is_under_contract() -> None:
    """A new top-level Python package must be placed in the layers, not escape them."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(_packages()), "add the package to .importlinter's root_packages " \
        "and to the layers contract"
    layers = configparser.ConfigParser()
    layers.read(CONFIG)
    text = layers["importlinter:contract:layers"]["layers"]
    for package in packages:
        assert package in text, f"{package} has no place in the layers contract"


def test_wrong_way_imports_are_caught(tmp_path: Path) -> None:
    for package in _packages():
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONFIG, tmp_path / CONFIG.name)
    for rel, line, _ in WRONG_WAY:
        path = tmp_path / rel
        path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # injected\n",
                        encoding="utf-8")
    out = _lint_imports(tmp_path)
    report = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0, report
    missed = [why for _, _, why in WRONG_WAY if why not in report]
    assert not missed, f"not reported: {missed}\n{report}"


@pytest.mark.parametrize("section", ["layers", "federated", "sdk", "pure-stf", "no-torch",
                                     "no-tests", "acyclic"])
def test_contract_ignores_are_explained(section: str) -> None:
    """Every ignored import carries a comment saying ALLOWED (an arrow the contract cannot
    express) or TODO (a wrong arrow being removed), so none silences a new violation."""
    raw = CONFIG.read_text(encoding="utf-8")
    block = raw.split(f"[importlinter:contract:{section}]", 1)[1].split("\n[", 1)[0]
    if "ignore_imports" not in block:
        return
    ignores = block.split("ignore_imports =", 1)[1]
    entries = [ln for ln in ignores.splitlines() if "->" in ln]
    comments = [ln for ln in ignores.splitlines() if ln.strip().startswith("#")]
    assert entries and any("ALLOWED" in c or "TODO" in c for c in comments)


def test_cli_finds_commands_by_package_name(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """rollup.cli registers federated/devtools commands by name (rollup must not import
    them); a package that is not installed contributes none, a broken one still fails."""
    from rollup import cli

    names = cli.command_modules()
    assert {"federated.commands.client", "federated.commands.task",
            "devtools.commands.demo", "devtools.commands.localnet"} <= set(names)
    assert [n.rsplit(".", 1)[1] for n in names] == sorted(n.rsplit(".", 1)[1] for n in names)
    monkeypatch.setattr(cli, "COMMAND_PACKAGES", ("rollup.commands", "not_installed.commands"))
    assert all(n.startswith("rollup.commands.") for n in cli.command_modules())
    broken = tmp_path / "brokencmds"
    broken.mkdir()
    (broken / "__init__.py").write_text("import brokencmds_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_PACKAGES", ("rollup.commands", "brokencmds"))
    with pytest.raises(ModuleNotFoundError, match="brokencmds_missing_dependency"):
        cli.command_modules()
