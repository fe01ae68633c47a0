"""``flockchain task create``: create a training task on L1 and publish its genesis model.

Why one command does both: a task created on L1 (``RewardManager.createTask``, paying
the base fee and the escrow) reaches the rollup only once an aggregator injects the
``TaskCreated`` log, and it cannot start until someone publishes the genesis model whose
hash the task parameters fix. The genesis is derived deterministically from ``--model``
and ``--seed`` (``federated.train.init_global``), so anyone can publish it; with
``--node`` this command waits for the task on L2 and does so itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from rollup.commands.deploy import (
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
    usage_error,
)

if TYPE_CHECKING:
    import numpy as np

MODELS = ("softmax", "mlp", "cnn")


def _positive_int(text: str) -> int:
    v = non_negative_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("task", help="training tasks on L1 (create)")
    ts = p.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    c = ts.add_parser(
        "create", help="create a task on L1 (pays base fee + escrow) and publish its genesis",
        description="RewardManager.createTask from the owner key; with --node, wait until "
        "the task is on L2 and publish the genesis model (deterministic from --model/--seed).")
    add_l1_args(c)
    add_key_args(c, "--key", "task owner (pays the price, receives the refund)")
    c.add_argument("--model", choices=MODELS, default="mlp")
    c.add_argument("--epochs", type=_positive_int, required=True, metavar="N",
                   help="max epochs (the escrow covers this many)")
    c.add_argument("--target-accuracy-bps", type=non_negative_int, default=10_000,
                   metavar="BPS", help="stop early at this committee accuracy (default 10000)")
    c.add_argument("--proposers", type=_positive_int, default=3, metavar="N",
                   help="proposers per epoch (>= 2f + 3; default 3)")
    c.add_argument("--voters", type=non_negative_int, default=1, metavar="N",
                   help="voters per epoch (default 1)")
    c.add_argument("--f", type=non_negative_int, default=0, help="assumed Byzantine proposers")
    c.add_argument("--window", type=_positive_int, default=40, metavar="BLOCKS",
                   help="blocks per phase (commit, reveal, vote commit, vote reveal)")
    c.add_argument("--require-protection", action="store_true",
                   help="refuse a --window whose time floor cannot guarantee a censored "
                   "client's forced action lands in time (protocol 3; docs/protocol.md "
                   "\"Paced phase windows\"); without it such a window only gets a warning")
    c.add_argument("--scale-bits", type=_positive_int, default=12, metavar="BITS")
    c.add_argument("--seed", type=non_negative_int, default=1,
                   help="genesis model seed (the genesis is init_global(model, seed))")
    c.add_argument("--node", type=http_url, metavar="URL",
                   help="also wait for the task on this node and publish the genesis")
    c.add_argument("--genesis-key-file", metavar="FILE",
                   help="ed25519 key that signs publish_genesis (created if missing; "
                   "default: a fresh key)")
    c.add_argument("--once", action="store_true",
                   help="do nothing if L1 already holds a task (idempotent start-up jobs)")
    c.add_argument("--wait", type=positive_float, default=60.0, metavar="S",
                   help="seconds to wait for L1, the node, and the task on L2 (default 60)")
    c.set_defaults(func=run_create, _parser=c)


def run_create(args: argparse.Namespace) -> int:
    return run_guarded(_create, args)


def _create(args: argparse.Namespace) -> int:
    if args.proposers < 2 * args.f + 3:
        usage_error(args, f"--proposers must be >= 2f + 3 = {2 * args.f + 3}")
    if args.target_accuracy_bps > 10_000:
        usage_error(args, "--target-accuracy-bps must be <= 10000")
    if args.genesis_key_file and not args.node:
        usage_error(args, "--genesis-key-file needs --node")
    from state_machine.pacing import min_window_blocks

    # = bridge.settlement.min_protecting_window_blocks(): the verifier's default per-block
    # lag (256 slots of 12 s) plus 10 min for the client to notice and force
    need = min_window_blocks(256 * 12 + 600)
    if args.window < need:
        why = (f"--window {args.window} is below {need} blocks: forced inclusion cannot "
               "guarantee a censored client's action lands before its phase closes")
        if args.require_protection:
            usage_error(args, why)
        print(f"warning: {why}", file=sys.stderr)
    hexkey = key_from_args(args, "--key")

    from bridge.l1 import TxFailed, send
    from federated.models import num_params, spec_hash
    from federated.train import init_global
    from rollup.commands.deploy import account
    from state_machine.crypto import keccak256
    from state_machine.tasks import TaskParams

    w3 = connect_l1(args.l1, args.wait)
    dep = load_deployment(args.deployment, w3, wait_s=args.wait)
    owner = account(hexkey)  # type: ignore[arg-type]
    genesis = init_global(args.model, args.seed, args.scale_bits)
    genesis_hash = keccak256(genesis.astype("<i4").tobytes())
    params = TaskParams(
        model=args.model, num_params=num_params(args.model), proposers_per_epoch=args.proposers,
        f=args.f, genesis_model_hash=genesis_hash, voters_per_epoch=args.voters,
        scale_bits=args.scale_bits, commit_window=args.window, reveal_window=args.window,
        vote_commit_window=args.window, vote_reveal_window=args.window,
    )
    rm = dep.contract(w3, "RewardManager")
    if args.once and rm.functions.nextTaskId().call() > 1:
        emit("task_exists", next_task_id=rm.functions.nextTaskId().call())
        return 0
    price = rm.functions.taskPrice(args.epochs).call()
    try:
        receipt = send(w3, rm.functions.createTask(spec_hash(args.model), args.epochs,
                                                   args.target_accuracy_bps, params.encode()),
                       owner, value=price)
    except TxFailed as exc:
        raise CommandError(f"createTask failed: {exc}") from None
    from web3.logs import DISCARD  # the receipt also holds BaseFeeCollected etc.

    created = rm.events.TaskCreated().process_receipt(receipt, errors=DISCARD)
    task_id = int(created[0]["args"]["taskId"])
    out = {"task_id": task_id, "owner": owner.address, "price": price, "model": args.model,
           "num_params": params.num_params, "epochs": args.epochs,
           "genesis_hash": "0x" + genesis_hash.hex(), "l1_block": receipt["blockNumber"],
           "genesis_published": False}
    if args.node:
        out["genesis_published"] = _publish_genesis(args, task_id, genesis)
    emit("task_created", **out)
    return 0


def _publish_genesis(args: argparse.Namespace, task_id: int, genesis: np.ndarray) -> bool:
    """Wait for the task on L2 (an aggregator must be injecting L1 logs), then publish."""
    from rollup.client import FlockClient, NodeError, SubmitResult
    from rollup.commands.deploy import wait_for_node
    from rollup.keys import Keypair, load_or_create

    node = wait_for_node(args.node, args.wait)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            task = node.task(task_id)
            break
        except NodeError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise CommandError(f"task {task_id} did not reach the node (is an aggregator "
                                   f"running?): {exc}") from None
            time.sleep(0.5)
    if task["phase"] != "awaiting_genesis":
        return True  # someone else published it already
    kp = load_or_create(args.genesis_key_file) if args.genesis_key_file else Keypair.generate()
    st = FlockClient(node, kp).publish_genesis(task_id, genesis, wait=True, timeout=args.wait)
    assert not isinstance(st, SubmitResult)  # wait=True: the inclusion status
    if st["status"] != "included":
        raise CommandError(f"publish_genesis rejected: {st.get('reason')} {st.get('detail')}")
    return True
