"""The size budget (scripts/check_sizes.py): no production function over 80 lines, no
module over 500 lines, except where docs/size-allowlist.txt says why."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "scripts" /
                                                  "check_sizes.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["check_sizes"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_the_tree_keeps_its_size_budget() -> None:
    tool = _tool()
    assert tool.problems(tool.offenders(), tool.load_allowlist()) == []


def test_an_oversized_function_or_module_is_caught(tmp_path: Path) -> None:
    tool = _tool()
    pkg = tmp_path / "rollup"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    text = (f"class A:\n    def f(self):\n{body.replace('    ', '        ')}"
            f"\n\n\ndef g():\n{body}\n" + "# filler\n" * 400)
    (pkg / "big.py").write_text(text)
    (pkg / "small.py").write_text("def h():\n    return 1\n")
    found = {o.key: o.lines for o in tool.offenders(tmp_path)}
    assert found == {"rollup/big.py": 567, "rollup/big.py::A.f": 82, "rollup/big.py::g": 82}
    problems = tool.problems(tool.offenders(tmp_path), {"rollup/big.py::g": "why"})
    assert len(problems) == 2 and all("split it" in p for p in problems)


def test_stale_and_unexplained_entries_fail(tmp_path: Path) -> None:
    tool = _tool()
    assert "delete its line" in tool.problems([], {"rollup/gone.py": "was big"})[0]
    allow = tmp_path / "allow.txt"
    allow.write_text("rollup/api.py\n")
    with pytest.raises(ValueError, match="needs a reason"):
        tool.load_allowlist(allow)
