"""``flockchain verifier``: independently re-execute every posted batch, challenge bad ones.

Runs :class:`bridge.verifier.Verifier` in a loop (``bridge.verifier_service``) and serves
``GET /healthz`` (JSON progress: verified batches and height, challenges, last error;
503 when no step succeeded recently) and ``GET /metrics`` (Prometheus). With ``--db`` the
verified checkpoints survive restarts (SQLite or PostgreSQL URL).

Why ``--chain-id`` is explicit: the verifier trusts nothing the node says, including which
chain it runs; it replays from its own genesis for that chain id.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rollup.commands.deploy import (
    add_key_args,
    add_l1_args,
    connect_l1,
    emit,
    http_url,
    key_from_args,
    load_deployment,
    non_negative_int,
    positive_float,
    run_guarded,
    setup_logging,
    usage_error,
)
from rollup.daemon import run_daemon, stop_on_signals
from state_machine.constants import CURRENT_PROTOCOL, KNOWN_PROTOCOLS

log = logging.getLogger("flockchain.verifier")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verifier", help="re-execute posted batches from DA, challenge wrong ones (+ /healthz)",
        description="Reads batch headers from StateCommitment, fetches each batch's data from "
        "any --node, checks it against da_hash and the L1 logs, re-executes it and challenges "
        "a wrong root (or withheld data near the deadline) with the challenge bond.")
    add_l1_args(p)
    p.add_argument("--node", required=True, action="append", type=http_url, metavar="URL",
                   dest="nodes", help="a node serving /v1/da (repeat for more sources)")
    add_key_args(p, "--l1-key", "verifier (pays challenge bonds)")
    p.add_argument("--chain-id", required=True, type=non_negative_int, metavar="N",
                   help="the rollup's chain id (replay starts from its genesis)")
    p.add_argument("--protocol", type=int, choices=KNOWN_PROTOCOLS, default=CURRENT_PROTOCOL,
                   metavar="V", help="the rollup's protocol version, fixed at its genesis "
                   "(a node reports it in /v1/healthz; default %(default)s)")
    p.add_argument("--max-clock-drift", type=non_negative_int, default=None, metavar="S",
                   help="challenge a batch with a block timestamp more than S seconds ahead "
                   "of its proposal's L1 block (protocol 3; default 120)")
    p.add_argument("--max-lag-s", type=non_negative_int, default=None, metavar="S",
                   help="challenge a batch with a block that starts while an L1 log mined S "
                   "seconds before its timestamp is still pending (protocol 3; default 3072)")
    p.add_argument("--db", metavar="URL",
                   help="SQLAlchemy URL for checkpoints (sqlite:///f.db, postgresql://...)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=non_negative_int, default=8710, metavar="P",
                   help="HTTP port for /healthz and /metrics (default 8710; 0 = any free)")
    p.add_argument("--interval", type=positive_float, default=2.0, metavar="S",
                   help="seconds between checks (default 2)")
    p.add_argument("--da-grace", type=non_negative_int, default=60, metavar="S",
                   help="challenge withheld data this many seconds before the deadline")
    p.add_argument("--keep-checkpoints", type=non_negative_int, default=16, metavar="N",
                   help="checkpoints kept once final (0 = keep all; default 16)")
    p.add_argument("--wait", type=positive_float, default=60.0, metavar="S",
                   help="seconds to wait for L1 and the deployment file (default 60)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_run, args)


def _run(args: argparse.Namespace) -> int:
    if args.port > 65535:
        usage_error(args, "--port must be <= 65535")
    if args.db and not args.db.startswith(("sqlite:", "postgresql", "postgres:")):
        usage_error(args, "--db must be a sqlite:/// or postgresql:// URL")
    hexkey = key_from_args(args, "--l1-key")
    setup_logging(args.log_level)

    from bridge.inclusion import DEFAULT_MAX_CLOCK_DRIFT_S, DEFAULT_MAX_LAG_S
    from bridge.verifier import Verifier
    from bridge.verifier_service import (
        CheckpointStore,
        VerifierService,
        create_app,
        serve_in_thread,
    )
    from rollup.commands.deploy import account

    w3 = connect_l1(args.l1, args.wait)
    dep = load_deployment(args.deployment, w3, wait_s=args.wait)
    verifier = Verifier(w3, dep, list(args.nodes), args.chain_id, account(hexkey),  # type: ignore[arg-type]
                        protocol=args.protocol,
                        max_clock_drift_s=(DEFAULT_MAX_CLOCK_DRIFT_S if args.max_clock_drift
                                           is None else args.max_clock_drift),
                        max_lag_s=(DEFAULT_MAX_LAG_S if args.max_lag_s is None
                                   else args.max_lag_s),
                        da_grace_seconds=args.da_grace)
    store = None
    if args.db:
        scope = f"{dep.chain_id}:{dep.state_commitment.lower()}:{args.chain_id}"
        store = CheckpointStore(args.db, scope)
    service = VerifierService(verifier, store, interval=args.interval,
                              keep=args.keep_checkpoints)
    service.resume()
    server, thread, port = serve_in_thread(create_app(service), args.host, args.port)
    stop = stop_on_signals()
    emit("verifier_started", url=f"http://{args.host}:{port}", nodes=args.nodes,
         l1_address=verifier.key.address, resumed_from=service.resumed_from,  # type: ignore[union-attr]
         db=bool(store))
    try:
        run_daemon(lambda: _check(service), name="verifier", interval=args.interval,
                   stop=stop, logger=log)
    finally:
        server.should_exit = True
        thread.join(5)
        if store is not None:
            store.close()
    emit("verifier_stopped", verified_batches=verifier.stats.verified_batches,
         challenges=len(verifier.stats.challenges))
    return 0


def _check(service: Any) -> None:
    """One verifier step; each batch's outcome is logged (a challenge as a warning)."""
    for index, outcome in service.step():
        log.log(logging.INFO if outcome == "ok" else logging.WARNING, "batch %d: %s",
                index, outcome)
