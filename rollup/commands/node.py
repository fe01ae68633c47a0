"""``flockchain node``: run the sequencer and the HTTP API."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="run a node (sequencer + HTTP API)", allow_abbrev=False,
                       description="Settings: defaults < --config FILE (TOML/JSON) < "
                       "FLOCKCHAIN_* environment < flags.")
    p.add_argument("--config", help="TOML or JSON config file")
    p.add_argument("--db", dest="db_url", help="SQLAlchemy URL (default sqlite:///data/...)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--chain-id", type=int)
    p.add_argument("--block-time", type=float)
    p.add_argument("--max-block-actions", type=int)
    p.add_argument("--max-body-bytes", type=int)
    p.add_argument("--key", dest="sequencer_key_file", help="sequencer key file (hex seed)")
    p.add_argument("--snapshot-interval", type=int)
    p.add_argument("--blob-dir")
    p.add_argument("--admin-token-file", help="enables /v1/admin/* with the bearer token in "
                   "this file (or set FLOCKCHAIN_ADMIN_TOKEN; never a flag: argv is public)")
    p.add_argument("--admin-remote", action="store_true", default=None,
                   help="answer /v1/admin/* on non-loopback addresses too")
    p.add_argument("--log-level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from rollup.config import NodeConfig
    from rollup.node import serve

    fields = ("db_url", "host", "port", "chain_id", "block_time", "max_block_actions",
              "max_body_bytes", "sequencer_key_file", "snapshot_interval", "blob_dir",
              "admin_token_file", "admin_remote", "log_level")
    config = NodeConfig.load(args.config, **{f: getattr(args, f) for f in fields})

    def ready(url: str) -> None:
        print(json.dumps({"event": "listening", "url": url}), flush=True)

    serve(config, ready=ready)
    return 0
