"""Size budget: no production function over 80 lines, no module over 500 lines, except
where ``docs/size-allowlist.txt`` says why.

Why a tool: the budget is in the developers' guide, and a budget no one measures drifts
(``create_app`` grew to 402 lines one route at a time). ``make lint`` runs this and
``tests/infra/test_sizes.py`` runs it in CI.

Counted: every ``.py`` file under the production packages, ``bench/`` and ``scripts/``
(not ``tests/``). A module's size is its line count; a function's is ``def`` to its last
line (decorators excluded, nested functions included, so a 400-line factory of route
handlers counts as 400). Methods are named ``Class.method``.

Allowlist lines: ``path  # why`` (a module) or ``path::Qual.name  # why`` (a function);
the reason is required. An entry that no longer exceeds the budget is an error too, so
the list only shrinks: delete the line once the split lands.

    python scripts/check_sizes.py          # exit 1 on any violation or stale entry
    python scripts/check_sizes.py --report # every offender with its size, allowed or not
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWLIST = ROOT / "docs" / "size-allowlist.txt"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
SCANNED = ("state_machine", "sequencer", "rollup", "bridge", "federated", "devtools", "bench",
           "scripts")


@dataclass(frozen=True)
class Offender:
    key: str  # "path" or "path::Qual.name"
    lines: int
    limit: int


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def offenders(root: Path = ROOT) -> list[Offender]:
    """Every module and function over budget under ``root``, allowed or not."""
    out: list[Offender] = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8")
            n = len(text.splitlines())
            if n > MAX_MODULE_LINES:
                out.append(Offender(rel, n, MAX_MODULE_LINES))
            for name, node in _functions(ast.parse(text, rel)):
                size = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
                if size > MAX_FUNCTION_LINES:
                    out.append(Offender(f"{rel}::{name}", size, MAX_FUNCTION_LINES))
    return out


def load_allowlist(path: Path = ALLOWLIST) -> dict[str, str]:
    """``{key: reason}``; raises ``ValueError`` for an entry without a reason."""
    allowed: dict[str, str] = {}
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, why = line.partition("#")
        if not why.strip():
            raise ValueError(f"{path.name}:{i}: {key.strip()} needs a reason after '#'")
        allowed[key.strip()] = why.strip()
    return allowed


def problems(found: list[Offender], allowed: dict[str, str]) -> list[str]:
    """What fails the check: offenders not allowed, and allowlist entries now in budget."""
    keys = {o.key for o in found}
    out = [f"{o.key}: {o.lines} lines (budget {o.limit}); split it, or add it to "
           f"{ALLOWLIST.relative_to(ROOT)} with the reason" for o in found if o.key not in allowed]
    out += [f"{k}: within budget now (or gone); delete its line from "
            f"{ALLOWLIST.relative_to(ROOT)}" for k in allowed if k not in keys]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", action="store_true", help="list every offender and exit 0")
    args = ap.parse_args(argv)
    found = offenders()
    allowed = load_allowlist()
    if args.report:
        for o in sorted(found, key=lambda o: -o.lines):
            print(f"{o.lines:5d} / {o.limit:3d}  {o.key}  {allowed.get(o.key, '(not allowed)')}")
        return 0
    bad = problems(found, allowed)
    for line in bad:
        print(line, file=sys.stderr)
    print(f"size budget: {len(found)} over budget, {len(allowed)} allowed, "
          f"{len(bad)} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
