"""``flockchain localnet start|stop|status|finalize``: the whole network as local processes.

See :mod:`devtools.localnet` (the work) and ``scripts/localnet`` (the same from bash). The
folder defaults to ``$FLOCKCHAIN_LOCALNET_DIR`` or ``.localnet``.
"""

from __future__ import annotations

import argparse
import json

from rollup.commands.deploy import non_negative_int, positive_float, usage_error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("localnet", help="anvil + PostgreSQL + node + aggregator + verifier + "
                       "clients as local processes (no Docker)")
    ls = p.add_subparsers(dest="localnet_command", metavar="ACTION", required=True)

    def with_dir(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dir", default=None,
                       help="state, logs and keys folder (default $FLOCKCHAIN_LOCALNET_DIR "
                       "or .localnet)")

    s = ls.add_parser("start", help="start every service and create a task")
    with_dir(s)
    s.add_argument("--clients", type=non_negative_int, default=4, metavar="N")
    s.add_argument("--attackers", default="", metavar="A,B",
                   help="behaviours of the first clients (federated.attacks), comma list")
    s.add_argument("--proposers", type=non_negative_int, default=3, metavar="N")
    s.add_argument("--voters", type=non_negative_int, default=1, metavar="N")
    s.add_argument("--f", type=non_negative_int, default=0)
    s.add_argument("--epochs", type=non_negative_int, default=2, metavar="N")
    s.add_argument("--model", choices=["softmax", "mlp", "cnn"], default="mlp")
    s.add_argument("--window", type=non_negative_int, default=40, metavar="BLOCKS")
    s.add_argument("--block-time", type=positive_float, default=0.25, metavar="S")
    s.add_argument("--chain-id", type=non_negative_int, default=4242, metavar="N")
    s.add_argument("--challenge-period", type=non_negative_int, default=60, metavar="S")
    s.add_argument("--batch-every", type=positive_float, default=2.0, metavar="S")
    s.add_argument("--local-epochs", type=non_negative_int, default=2, metavar="N")
    s.add_argument("--lr", type=positive_float, default=0.5)
    s.add_argument("--seed", type=non_negative_int, default=1)
    s.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   metavar="URL", help="PostgreSQL server (its maintenance database)")
    s.add_argument("--db-name", default="flockchain_localnet", metavar="NAME",
                   help="database to (re)create for the node (+ NAME_verifier)")
    s.add_argument("--anvil-port", type=non_negative_int, default=8545, metavar="P")
    s.add_argument("--node-port", type=non_negative_int, default=8700, metavar="P")
    s.add_argument("--verifier-port", type=non_negative_int, default=8710, metavar="P",
                   help="ports: 0 = any free port")
    s.add_argument("--no-task", action="store_true", help="do not create a task")
    s.add_argument("--timeout", type=positive_float, default=90.0, metavar="S",
                   help="seconds each service may take to become ready")
    s.set_defaults(func=run_start, _parser=s)

    st = ls.add_parser("status", help="what runs, L2 height and tasks, L1 batches, verifier")
    with_dir(st)
    st.set_defaults(func=run_status, _parser=st)

    sp = ls.add_parser("stop", help="SIGTERM then SIGKILL every service, by PID")
    with_dir(sp)
    sp.add_argument("--timeout", type=positive_float, default=10.0, metavar="S",
                    help="grace period before SIGKILL (default 10)")
    sp.add_argument("--drop-db", action="store_true", help="also drop the databases")
    sp.set_defaults(func=run_stop, _parser=sp)

    rs = ls.add_parser("restart", help="stop one service and start it again (same command)")
    with_dir(rs)
    rs.add_argument("service", help="anvil, node, aggregator, verifier, client0, ...")
    rs.add_argument("--timeout", type=positive_float, default=10.0, metavar="S",
                    help="grace period before SIGKILL (default 10)")
    rs.set_defaults(func=run_restart, _parser=rs)

    fz = ls.add_parser("finalize", help="advance anvil's clock past the challenge period")
    with_dir(fz)
    fz.set_defaults(func=run_finalize, _parser=fz)


def run_start(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from devtools.localnet import Localnet, LocalnetConfig, LocalnetError, default_dir
    from federated.attacks import ATTACKS

    attackers = tuple(a for a in args.attackers.split(",") if a)
    unknown = [a for a in attackers if a not in ATTACKS]
    if unknown:
        usage_error(args, f"unknown behaviour(s) {', '.join(unknown)}; known: "
                    f"{', '.join(ATTACKS)}")
    for flag in ("anvil_port", "node_port", "verifier_port"):
        if getattr(args, flag) > 65535:
            usage_error(args, f"--{flag.replace('_', '-')} must be <= 65535")
    if args.epochs < 1 or args.window < 1:
        usage_error(args, "--epochs and --window must be >= 1")
    cfg = LocalnetConfig(
        dir=Path(args.dir) if args.dir else default_dir(), clients=args.clients,
        attackers=attackers, proposers=args.proposers, voters=args.voters, f=args.f,
        epochs=args.epochs, model=args.model, window=args.window, block_time=args.block_time,
        chain_id=args.chain_id, challenge_period=args.challenge_period,
        batch_every=args.batch_every, local_epochs=args.local_epochs, lr=args.lr,
        seed=args.seed, pg_url=args.pg_url, db_name=args.db_name, anvil_port=args.anvil_port,
        node_port=args.node_port, verifier_port=args.verifier_port,
        create_task=not args.no_task, ready_timeout=args.timeout)
    try:
        summary = Localnet(cfg.dir).start(cfg)
    except LocalnetError as exc:
        print(f"flockchain localnet start: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def run_status(args: argparse.Namespace) -> int:
    from devtools.localnet import Localnet

    net = Localnet(args.dir)
    out = net.status()
    print(json.dumps(out, indent=2, default=str))
    return 0 if net.state else 1


def run_stop(args: argparse.Namespace) -> int:
    from devtools.localnet import Localnet

    net = Localnet(args.dir)
    if not net.state:
        print(json.dumps({"dir": str(net.dir), "stopped": {}, "note": "nothing to stop"}))
        return 0
    outcome = net.stop(timeout=args.timeout, drop_db=args.drop_db)
    print(json.dumps({"dir": str(net.dir), "stopped": outcome}, indent=2))
    return 1 if "still running" in outcome.values() else 0


def run_restart(args: argparse.Namespace) -> int:
    import sys

    from devtools.localnet import Localnet, LocalnetError

    net = Localnet(args.dir)
    try:
        svc = net.restart(args.service, timeout=args.timeout)
    except LocalnetError as exc:
        print(f"flockchain localnet restart: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"service": svc.name, "pid": svc.pid, "log": svc.log}))
    return 0


def run_finalize(args: argparse.Namespace) -> int:
    from devtools.localnet import Localnet

    net = Localnet(args.dir)
    if not net.state or not net.running():
        print(f"flockchain localnet finalize: no running local network in {net.dir}")
        return 1
    print(json.dumps(net.finalize()))
    return 0
