"""``flockchain`` command line: a thin dispatcher over subcommand modules.

Why a registry: several teams add subcommands (``demo``, ``deploy``, ``aggregator``,
``client``, ``verifier``, ``claim``...). Each lives in its own module exposing
``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit code``);
this file never needs to change for that:

* drop a module into ``rollup/commands/`` (discovered automatically), or
* into another package listed in ``COMMAND_PACKAGES`` (``federated.commands``: the FL
  ``client`` and ``task`` commands; ``devtools.commands``: ``demo``, ``localnet``), or
* list a module living elsewhere (e.g. ``"bridge.cli"``) in ``EXTRA_COMMAND_MODULES``.

Why by name: ``rollup`` sits below ``federated`` and ``devtools`` in the layering that
``.importlinter`` checks, so it must not import them; the packages are found at run time,
and one that is not installed simply contributes no commands.

``register`` must stay cheap: import heavy dependencies (web3, torch) inside the command
function, so ``flockchain --help`` and ``flockchain node`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

COMMAND_PACKAGES: tuple[str, ...] = ("rollup.commands", "federated.commands", "devtools.commands")
EXTRA_COMMAND_MODULES: list[str] = []


def _package_modules(package: str) -> list[str]:
    try:
        pkg = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (package + ".").startswith(exc.name + "."):
            return []  # that package is not installed: no commands from it
        raise
    return sorted(f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                  if not m.name.startswith("_"))


def command_modules() -> list[str]:
    found = sorted((m for package in COMMAND_PACKAGES for m in _package_modules(package)),
                   key=lambda m: m.rsplit(".", 1)[1])  # --help lists commands alphabetically
    return found + [m for m in EXTRA_COMMAND_MODULES if m not in found]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flockchain", description="FLockChain micro-rollup")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
