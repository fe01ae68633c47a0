"""``flockchain replay``: recompute every stored block from genesis and compare roots."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="re-execute the stored chain; exit 1 on any mismatch")
    p.add_argument("--db", dest="db_url", required=True, help="SQLAlchemy URL of the node DB")
    p.add_argument("--chain-id", type=int, help="default: the chain id stored in the DB")
    p.add_argument("--blob-dir", help="the node's blob directory (v2 update bytes)")
    p.add_argument("--blob-store-url", help="or its S3-compatible blob store")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from blobstore import open_blobstore
    from sequencer.replay import replay_chain
    from sequencer.store import Store

    blobs = open_blobstore(args.blob_store_url) if args.blob_store_url else None
    store = Store(args.db_url, blob_dir=args.blob_dir, blobstore=blobs)
    try:
        report = replay_chain(store, args.chain_id)
    finally:
        store.close()
    print(json.dumps(report.to_json()))
    return 0 if report.ok else 1
