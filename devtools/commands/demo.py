"""``flockchain demo``: run the whole system end to end (see ``devtools.demo``)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run L1, node, aggregator, verifier and clients end to end")
    p.add_argument("--l1", default="embedded", help="embedded (py-evm), anvil, or an RPC URL")
    p.add_argument("--db", default=None, help="node database URL (default: temporary SQLite)")
    p.add_argument("--quick", action="store_true", help="at most 4 epochs (well under 2 minutes)")
    p.add_argument("--json", metavar="FILE", default=None, help="write the report as JSON")
    p.add_argument("--proposers", type=int, default=10)
    p.add_argument("--voters", type=int, default=3)
    p.add_argument("--attackers", default="sign_flip,lazy,replay",
                   help="comma list of behaviours from federated.attacks ('none' for all honest)")
    p.add_argument("--f", type=int, default=3, help="assumed Byzantine count (n >= 2f + 3)")
    p.add_argument("--model", default="mlp", choices=["softmax", "mlp", "cnn"])
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default 5; quick 4)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault", choices=["wrong-root", "withhold-da", "forge-deposit"],
                   default=None, help="make the sequencer misbehave (verifier tests)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--serve", action="store_true",
                   help="keep the node up after the report (browse its /explorer/)")
    p.add_argument("--port", type=int, default=0, help="node port (default: any free port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from devtools.demo import DemoConfig, main_json
    from federated.attacks import ATTACKS

    attackers = tuple(a for a in args.attackers.split(",") if a and a != "none")
    unknown = [a for a in attackers if a not in ATTACKS]
    if unknown:
        print(f"unknown behaviour(s): {', '.join(unknown)}; known: {', '.join(ATTACKS)}",
              file=sys.stderr)
        return 2
    if args.proposers < 2 * args.f + 3:
        print(f"--proposers must be >= 2f + 3 = {2 * args.f + 3}", file=sys.stderr)
        return 2
    kw = dict(l1=args.l1, db=args.db, proposers=args.proposers, voters=args.voters,
              attackers=attackers, f=args.f, model=args.model, seed=args.seed,
              fault=args.fault, quiet=args.quiet, port=args.port)
    if args.epochs is not None:
        kw["max_epochs"] = args.epochs
    cfg = DemoConfig.quick(**kw) if args.quick else DemoConfig(**kw)
    if args.serve:
        return serve(cfg, args.json)
    main_json(cfg, args.json)
    return 0


def serve(cfg: object, path: str | None) -> int:
    """``--serve``: run the demo, then keep its node up so a person can browse
    ``/explorer/`` until Ctrl-C or SIGTERM (handled even when started in the background)."""
    import json
    import logging
    import signal
    import threading
    import time
    from pathlib import Path

    from devtools.demo import Demo

    logging.basicConfig(level=logging.WARNING)
    demo = Demo(cfg)  # type: ignore[arg-type]
    report = demo.run(close=False)
    if path:
        Path(path).write_text(json.dumps(report, indent=2, default=str))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"explorer: {demo.node.url}/explorer/ (serving the demo's chain; Ctrl-C to stop)",
          flush=True)
    try:
        while demo.node is not None and demo.node._thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0
