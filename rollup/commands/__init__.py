"""Subcommands of ``flockchain``: every non-underscore module here is registered by
``rollup.cli``; each defines ``register(subparsers: argparse._SubParsersAction) -> None``."""
