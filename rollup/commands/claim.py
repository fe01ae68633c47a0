"""``flockchain claim``: collect a reward (or a task refund) on L1 by Merkle proof.

Rewards accrue on L2; L1 pays ``cumulative_reward − alreadyClaimed`` for an account leaf
proven against a *final* batch root. This command takes the latest final batch (or
``--batch``), fetches the account's proof at exactly that batch from the node, checks it
against the root L1 holds, and sends ``RewardManager.claim``. The payment goes to the L1
account that staked the key, whoever sends the transaction (``--l1-key`` only pays gas).

``--refund TASK_ID`` does the same for a finished task's unused escrow
(``RewardManager.refund`` with the task leaf), paid to the task owner.

Nothing to claim (no final batch yet, no reward earned, already claimed) is not an error:
the JSON line says ``"status": "nothing_to_claim"`` with the reason, exit code 0.
"""

from __future__ import annotations

import argparse
from typing import Any

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
    wait_for_node,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "claim", help="claim a reward (or --refund a task) on L1 with a proof from a final batch",
        description="Reward: --key-file (the client's ed25519 key). Refund: --refund TASK_ID. "
        "The proof comes from --node at the latest final batch (or --batch) and is checked "
        "against L1's root before sending.")
    p.add_argument("--node", required=True, type=http_url, metavar="URL", help="node base URL")
    add_l1_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--key-file", metavar="FILE", help="ed25519 key of the rewarded client")
    what.add_argument("--refund", type=non_negative_int, metavar="TASK_ID",
                      help="refund a finished task's unused escrow to its owner")
    add_key_args(p, "--l1-key", "sender (pays gas; the payment goes to the leaf's account)")
    p.add_argument("--batch", type=non_negative_int, metavar="I",
                   help="final batch to prove against (default: the latest final batch)")
    p.add_argument("--wait", type=positive_float, default=30.0, metavar="S",
                   help="seconds to wait for L1 and the node (default 30)")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_run, args)


def _nothing(reason: str, **fields: Any) -> int:
    emit("claim", status="nothing_to_claim", reason=reason, **fields)
    return 0


def _run(args: argparse.Namespace) -> int:
    hexkey = key_from_args(args, "--l1-key")

    from bridge.l1 import TxFailed
    from bridge.settlement import claim_reward, latest_final_batch, refund_task
    from rollup.client import NodeError
    from rollup.commands.deploy import account
    from rollup.ports import _proof_from_json

    sender = account(hexkey)  # type: ignore[arg-type]
    if args.key_file:
        from rollup.keys import Keypair

        try:
            kp = Keypair.load(args.key_file)
        except (OSError, ValueError) as exc:
            usage_error(args, f"--key-file {args.key_file}: {exc}")
    w3 = connect_l1(args.l1, args.wait)
    dep = load_deployment(args.deployment, w3)
    node = wait_for_node(args.node, args.wait)
    sc = dep.contract(w3, "StateCommitment")
    rm = dep.contract(w3, "RewardManager")
    if args.batch is not None:
        if args.batch >= sc.functions.nextIndex().call():
            raise CommandError(f"batch {args.batch} is not on L1")
        if not sc.functions.isFinal(args.batch).call():
            raise CommandError(f"batch {args.batch} is not final yet (challenge window open "
                               "or challenged)")
        batch = args.batch
    else:
        found = latest_final_batch(w3, dep)
        if found is None:
            return _nothing("no final batch on L1 yet (wait for the challenge period)")
        batch = found
    try:
        if args.key_file:
            raw = node.account_proof(kp.pubkey, batch)
        else:
            raw = node.task_proof(args.refund, batch)
    except NodeError as exc:
        if exc.reason == "unknown_batch":
            raise CommandError(f"the node has no batch {batch}: is it the node that posted "
                               "it?") from None
        if exc.status == 404:
            who = "this key has no account" if args.key_file else f"no task {args.refund}"
            return _nothing(f"{who} at batch {batch}", batch=batch)
        raise CommandError(f"proof request failed: {exc}") from None
    proof = _proof_from_json(raw)
    l1_root = bytes(sc.functions.stateRoot(batch).call())
    if proof["state_root"] != l1_root:
        raise CommandError(f"the node's state root for batch {batch} is not L1's "
                           f"(0x{l1_root.hex()}): wrong node or a rewound batch")
    f = proof["fields"]
    try:
        if args.key_file:
            l1_account = "0x" + f["l1_address"].hex()
            already = rm.functions.alreadyClaimed(
                w3.to_checksum_address(l1_account)).call()
            if f["cumulative_reward"] <= already:
                reason = ("no reward earned" if f["cumulative_reward"] == 0
                          else f"all {already} wei already claimed")
                return _nothing(f"{reason} (as of batch {batch})", batch=batch,
                                account=w3.to_checksum_address(l1_account),
                                cumulative_reward=f["cumulative_reward"])
            out = claim_reward(w3, dep, sender, proof, batch)
            emit("claim", status="claimed", batch=batch, cumulative_reward=f["cumulative_reward"],
                 already_claimed=already, **out)
            return 0
        if f["status"] == "running":
            return _nothing(f"task {args.refund} is still running at batch {batch}",
                            batch=batch)
        if rm.functions.task(args.refund).call()[1]:
            return _nothing(f"task {args.refund} was already refunded", batch=batch)
        out = refund_task(w3, dep, sender, proof, batch)
        emit("claim", status="refunded", batch=batch, owner=w3.to_checksum_address(
            "0x" + f["owner"].hex()), **out)
        return 0
    except TxFailed as exc:
        raise CommandError(f"L1 refused the claim: {exc}") from None
