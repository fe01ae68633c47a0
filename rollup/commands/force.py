"""``flockchain force-include``: send a signed action the sequencer left out through L1
(issue 11, F-12).

A client whose acknowledged commit, vote or reveal is not included (a censoring
sequencer) posts the same signed bytes to ``StakingRegistry.forceInclude``; the rollup
must carry the log in L1 order and applies the action with the mempool's checks
(docs/protocol.md, "Enforced inclusion"). Do it at least ``force_margin_s`` before the
phase deadline. The action carries its own signature: ``--l1-key`` only pays gas.

The bytes are checked before any gas is spent: they must decode as a signed, non-system
action no longer than the registry's cap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rollup.commands.deploy import (
    CommandError,
    add_key_args,
    add_l1_args,
    connect_l1,
    emit,
    key_from_args,
    load_deployment,
    positive_float,
    run_guarded,
    usage_error,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "force-include", help="force a signed action the sequencer dropped through L1",
        description="Posts the action's wire bytes (--action HEX or --action-file FILE with "
        "raw bytes) to StakingRegistry.forceInclude.")
    add_l1_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--action", metavar="HEX", help="signed action wire bytes, hex")
    what.add_argument("--action-file", metavar="FILE", help="file holding the raw bytes")
    add_key_args(p, "--l1-key", "sender (pays gas)")
    p.add_argument("--wait", type=positive_float, default=30.0, metavar="S",
                   help="seconds to wait for L1 (default 30)")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_run, args)


def _action_bytes(args: argparse.Namespace) -> bytes:
    from state_machine.actions import ActionError, decode_signed

    try:
        if args.action is not None:
            raw = bytes.fromhex(args.action.removeprefix("0x"))
        else:
            raw = Path(args.action_file).read_bytes()
    except (OSError, ValueError) as exc:
        usage_error(args, f"cannot read the action: {exc}")
    try:
        sa = decode_signed(raw)
    except ActionError as exc:
        usage_error(args, f"not a signed action ({exc.reason}): {exc}")
    if sa.action.is_system:
        usage_error(args, f"{sa.action.type} is a system action: only L1 logs make those")
    return raw


def _run(args: argparse.Namespace) -> int:
    hexkey = key_from_args(args, "--l1-key")
    raw = _action_bytes(args)

    from bridge.l1 import TxFailed
    from bridge.settlement import force_include
    from rollup.commands.deploy import account
    from state_machine.actions import decode_signed

    w3 = connect_l1(args.l1, args.wait)
    dep = load_deployment(args.deployment, w3)
    cap = dep.contract(w3, "StakingRegistry").functions.MAX_FORCED_ACTION_BYTES().call()
    if len(raw) > cap:
        raise CommandError(f"the action is {len(raw)} bytes; forceInclude takes at most {cap}")
    try:
        out = force_include(w3, dep, account(hexkey), raw)  # type: ignore[arg-type]
    except TxFailed as exc:
        raise CommandError(f"L1 refused forceInclude: {exc}") from None
    a = decode_signed(raw).action
    emit("force_include", status="sent", type=a.type, sender="0x" + a.sender.hex(),
         nonce=a.nonce, **out)
    return 0
