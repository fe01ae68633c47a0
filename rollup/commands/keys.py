"""``flockchain keys``: create and inspect ed25519 key files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="ed25519 key files (hex seed, mode 0600)")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = ks.add_parser("new", help="generate a key file")
    new.add_argument("--out", required=True, help="file to create (refuses to overwrite)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(func=run_new)
    show = ks.add_parser("show", help="print the public key of a key file")
    show.add_argument("file")
    show.set_defaults(func=run_show)


def run_new(args: argparse.Namespace) -> int:
    import json
    import sys

    from rollup.keys import Keypair

    kp = Keypair.generate()
    try:
        path = kp.save(args.out, overwrite=args.force)
    except FileExistsError:
        print(f"{args.out} exists (use --force to overwrite)", file=sys.stderr)
        return 1
    print(json.dumps({"file": str(path), "pubkey": "0x" + kp.pubkey.hex()}))
    return 0


def run_show(args: argparse.Namespace) -> int:
    import json

    from rollup.keys import Keypair

    print(json.dumps({"pubkey": "0x" + Keypair.load(args.file).pubkey.hex()}))
    return 0
