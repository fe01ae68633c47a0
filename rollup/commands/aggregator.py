"""``flockchain aggregator``: the operator daemon against a remote node (HTTP + admin token).

It runs :class:`rollup.aggregator.Aggregator` over :class:`rollup.ports.HttpPorts`: L1 logs
into the rollup, ``advance`` when a phase is complete, batches cut and posted to
StateCommitment, slashes relayed against final roots. Each epoch's verdicts are printed as
one JSON line (``{"event": "epoch", ...}``).

Why the loop is ours and not ``Aggregator.run``: its duties are independent, so a failure
in one (say the slash relay, when the node lacks an endpoint, or an L1 hiccup while
posting) must not starve the others; each duty is guarded separately and a repeating error
is logged once, not every second.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rollup.commands.deploy import (
    ADMIN_TOKEN_ENV,
    CommandError,
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
    wait_for_node,
)
from rollup.daemon import Guard, run_daemon, stop_on_signals
from state_machine.reasons import Reason

log = logging.getLogger("flockchain.aggregator")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "aggregator", help="run the aggregator daemon (L1 watcher, advance, batches, slashes)",
        description="Carries L1 logs into the rollup, advances complete phases, cuts and "
        "posts batches to StateCommitment (the --l1-key must be the deployment's sequencer) "
        "and relays slashes proven against final roots.")
    p.add_argument("--node", required=True, type=http_url, metavar="URL", help="node base URL")
    add_l1_args(p)
    p.add_argument("--admin-token", metavar="T",
                   help=f"the node's admin bearer token; default ${ADMIN_TOKEN_ENV}")
    p.add_argument("--key-file", required=True, metavar="FILE",
                   help="ed25519 key that signs `advance` (created if missing)")
    add_key_args(p, "--l1-key", "L1 sequencer (posts batches, pays gas for slashes)")
    p.add_argument("--interval", type=positive_float, default=1.0, metavar="S",
                   help="seconds between polls (default 1)")
    p.add_argument("--confirmations", type=non_negative_int, default=2, metavar="N",
                   help="L1 blocks a log must be buried under before injection, so a "
                   "shallow reorg never reaches L2 (default 2)")
    p.add_argument("--batch-every", type=positive_float, default=5.0, metavar="S",
                   help="seconds between batch cuts/posts (default 5)")
    p.add_argument("--bond", action="store_true",
                   help="post the sequencer bond first if it is not posted yet")
    p.add_argument("--heartbeat", metavar="FILE",
                   help="touch FILE after every loop (for container health checks)")
    p.add_argument("--wait", type=positive_float, default=60.0, metavar="S",
                   help="seconds to wait for L1, the node and the deployment file (default 60)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_run, args)


def _run(args: argparse.Namespace) -> int:
    import os

    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV)
    token_file = os.environ.get(ADMIN_TOKEN_ENV + "_FILE")  # e.g. a compose secret volume
    if not token and token_file and os.path.exists(token_file):
        with open(token_file) as f:
            token = f.read().strip()
    if not token:
        usage_error(args, f"--admin-token (or ${ADMIN_TOKEN_ENV}) is required: batches and "
                    "L1 events go through the node's admin endpoints")
    l1_key = key_from_args(args, "--l1-key")
    setup_logging(args.log_level)

    from rollup.aggregator import Aggregator
    from rollup.client import FlockClient
    from rollup.commands.deploy import account
    from rollup.keys import load_or_create
    from rollup.ports import HttpPorts

    w3 = connect_l1(args.l1, args.wait)
    dep = load_deployment(args.deployment, w3, wait_s=args.wait)
    node = wait_for_node(args.node, args.wait)
    sender = account(l1_key)  # type: ignore[arg-type]
    sc = dep.contract(w3, "StateCommitment")
    is_sequencer = sc.functions.sequencer().call().lower() == sender.address.lower()
    if not is_sequencer:
        log.warning("%s is not the deployment's sequencer: batches will not be posted",
                    sender.address)
    elif args.bond and not sc.functions.sequencerBonded().call():
        from bridge.deploy import bond_sequencer
        from bridge.l1 import TxFailed

        try:
            bond_sequencer(w3, dep, sender)
        except TxFailed as exc:
            raise CommandError(f"posting the sequencer bond failed: {exc}") from None
        emit("sequencer_bonded", l1_address=sender.address)
    elif not sc.functions.sequencerBonded().call():
        log.warning("the sequencer is not bonded: proposeBatch reverts until it bonds "
                    "(--bond, or flockchain deploy --bond-sequencer-key)")
    signer = FlockClient(node, load_or_create(args.key_file))
    ports = _ports_class(HttpPorts)(node, token)
    if "l1_cursor" not in node.health():
        log.warning("the node does not report l1_cursor in /v1/healthz: L1 logs are rescanned "
                    "from the deployment block and the ones it already has are skipped")
    _check_admin(node, token)
    agg = Aggregator(signer, ports, w3, dep, sender, confirmations=args.confirmations,
                     batch_every_s=args.batch_every)
    stop = stop_on_signals()
    emit("aggregator_started", node=args.node, l1=args.l1, l1_address=sender.address,
         signer="0x" + signer.pubkey.hex(), posts_batches=is_sequencer)
    guards = {n: Guard(n, log) for n in ("l1_watch", "advance", "report", "batches", "slash")}
    run_daemon(lambda: _duties(agg, guards, is_sequencer), name="aggregator",
               interval=args.interval, stop=stop, logger=log, heartbeat=args.heartbeat)
    emit("aggregator_stopped")
    return 0


def _duties(agg: Any, guards: dict[str, Guard], is_sequencer: bool) -> None:
    """One round of the aggregator's duties, each guarded on its own: L1 down must not
    stop epochs advancing, and a failing batch post must not stop slashes."""
    injected = guards["l1_watch"](agg.watcher.poll)
    if injected:
        emit("l1_events", injected=injected)
    guards["advance"](agg.advance_ready)
    for rec in guards["report"](agg.report_epochs) or []:
        emit("epoch", task=rec["task_id"], epoch=rec["epoch"], outcome=rec["outcome"],
             reason=rec["outcome_reason"], accuracy_bps=rec.get("accuracy_bps"),
             verdicts=dict(rec["verdicts"]), voter_verdicts=dict(rec["voter_verdicts"]))
    if is_sequencer:
        for index in guards["batches"](agg.post_batches) or []:
            emit("batch_posted", index=index)
    for s in guards["slash"](lambda: _relay_once(agg)) or []:
        agg.slashes.append(s)
        emit("slashed", **s)


def _relay_once(agg: Any) -> list[dict[str, Any]]:
    """``SlashRelay.run_once`` with a readable error when the node cannot list accounts."""
    from rollup.client import NodeError

    try:
        return agg.relay.run_once()
    except NodeError as exc:
        if exc.status == 404 and exc.reason == "not_found":
            raise RuntimeError("the node does not serve GET /v1/accounts?batch=I, so slashes "
                               "cannot be relayed (a node without that endpoint)") from exc
        raise


def _ports_class(base: type) -> type:
    """``HttpPorts`` that reads the node's ``409 l1_out_of_order`` as "already injected".

    Why: without the node's ``l1_cursor`` (or when another aggregator got there first) the
    watcher re-offers L1 logs the node already holds. The sequencer refuses anything at or
    before its pending L1 cursor, which is exactly-once by construction, so that refusal
    means "done", not "failed"; ``HttpPorts`` itself would stop on the missing action hash
    and the watcher would never get past that log.
    """

    class ResumingPorts(base):  # type: ignore[misc, valid-type]
        def submit_system(self, typ: str, body: Any) -> bytes:
            from rollup.wire import jsonable, unhex

            r = self._admin("POST", "/v1/admin/system",
                            json={"type": typ, "body": jsonable(body.to_wire())})
            j = r.json()
            if r.status_code == 409:
                if j.get("reason") == Reason.L1_OUT_OF_ORDER:
                    log.debug("L1 %s at %d/%d is already on L2", typ, body.l1_block,
                              body.log_index)
                    return b""
                raise RuntimeError(f"/v1/admin/system refused {typ}: {j}")
            return unhex(j["action_hash"], 32)

    return ResumingPorts


def _check_admin(node: Any, token: str) -> None:
    """Fail at start-up, not on every batch, when the admin endpoints refuse us. The probe
    is an empty system action: authorization is checked first and the empty body is then
    refused as malformed (400), so nothing changes on the node."""
    r = node.http.request("POST", "/v1/admin/system", json={},
                          headers={"authorization": f"Bearer {token}"})
    if r.status_code == 404:
        raise CommandError("the node's admin endpoints are disabled (start it with "
                           "FLOCKCHAIN_ADMIN_TOKEN or --admin-token-file)")
    if r.status_code in (401, 403):
        raise CommandError("the node refused the admin token")
