"""``flockchain`` command line: a thin dispatcher over subcommand modules.

Why a registry: several teams add subcommands (``demo``, ``deploy``, ``aggregator``,
``client``, ``verifier``, ``claim``...). Each lives in its own module exposing
``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit code``);
this file never needs to change for that:

* drop a module into ``rollup/commands/`` (discovered automatically), or
* list a module living elsewhere (e.g. ``"bridge.cli"``) in ``EXTRA_COMMAND_MODULES``.

``register`` must stay cheap: import heavy dependencies (web3, torch) inside the command
function, so ``flockchain --help`` and ``flockchain node`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import rollup.commands

EXTRA_COMMAND_MODULES: list[str] = []


def command_modules() -> list[str]:
    found = sorted(
        f"rollup.commands.{m.name}"
        for m in pkgutil.iter_modules(rollup.commands.__path__)
        if not m.name.startswith("_")
    )
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
