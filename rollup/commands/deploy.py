"""``flockchain deploy``: deploy and wire the L1 contracts and write the deployment JSON.

This module is also the home of the small L1 command-line helpers that every L1-facing
command shares (``aggregator``, ``client``, ``verifier``, ``claim``, ``task``): argument
types that validate *syntax only* (so ``build_parser().parse_args`` can check a compose
file's commands without touching the filesystem or the network), private-key loading
(flag, key file or ``$FLOCKCHAIN_L1_KEY``), waiting for an RPC endpoint or a node that is
still starting, and loading a deployment record checked against the chain it names.
Keeping them here (the first L1 command) avoids a private module the CLI would have to
skip; nothing in this file imports web3 at import time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

    from bridge.contracts import Deployment
    from rollup.client import NodeClient

L1_KEY_ENV = "FLOCKCHAIN_L1_KEY"
ADMIN_TOKEN_ENV = "FLOCKCHAIN_ADMIN_TOKEN"  # the same variable NodeConfig.admin_token reads

_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_UNITS = {"wei": 0, "gwei": 9, "ether": 18, "eth": 18}


class CommandError(RuntimeError):
    """A condition the operator must fix (printed without a traceback, exit code 1)."""


# --------------------------------------------------------------------------- arg types


def private_key(text: str) -> str:
    """argparse type: a 32-byte hex secp256k1 private key (``0x`` optional)."""
    t = text.strip()
    if not _HEX32.match(t):
        raise argparse.ArgumentTypeError("expected a 32-byte hex private key (64 hex digits)")
    return "0x" + t.removeprefix("0x").lower()


def eth_address(text: str) -> str:
    """argparse type: a 20-byte hex address."""
    if not _ADDRESS.match(text.strip()):
        raise argparse.ArgumentTypeError("expected a 0x-prefixed 20-byte hex address")
    return text.strip()


def http_url(text: str) -> str:
    """argparse type: an http(s) URL (a common mistake is passing a bare host:port)."""
    if not re.match(r"^https?://[^\s/]+", text):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def wei(text: str) -> int:
    """argparse type: an amount in wei; ``0.1ether``, ``5gwei``, ``1e17`` are accepted."""
    t = text.strip().lower().replace("_", "")
    m = re.match(r"^((?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([a-z]*)$", t)
    if not m or m.group(2) not in ("", *_UNITS):
        raise argparse.ArgumentTypeError(f"expected wei, or a number with {'/'.join(_UNITS)}")
    try:
        value = Decimal(m.group(1)) * (Decimal(10) ** _UNITS.get(m.group(2), 0))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole, non-negative number of wei")
    return int(value)


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


# --------------------------------------------------------------------------- shared options


def add_l1_args(p: Any, required: bool = True) -> None:
    """``--l1 URL --deployment FILE``: how every L1-facing command finds the contracts."""
    p.add_argument("--l1", required=required, type=http_url, metavar="URL",
                   help="L1 JSON-RPC URL")
    p.add_argument("--deployment", required=required, metavar="FILE", help="deployment JSON")


def add_key_args(p: argparse.ArgumentParser, flag: str, what: str, env: str | None = L1_KEY_ENV,
                 required: bool = False) -> None:
    """``FLAG HEX`` | ``FLAG-file F`` (mutually exclusive); ``env`` is the fallback."""
    g = p.add_mutually_exclusive_group(required=required and env is None)
    dest = flag.lstrip("-").replace("-", "_")
    fallback = f"; default ${env}" if env else ""
    g.add_argument(flag, dest=dest, type=private_key, metavar="HEX",
                   help=f"{what} private key (visible in ps: prefer {flag}-file){fallback}")
    g.add_argument(f"{flag}-file", dest=f"{dest}_file", metavar="FILE",
                   help=f"file holding the {what} private key in hex")


def key_from_args(args: argparse.Namespace, flag: str, env: str | None = L1_KEY_ENV,
                  required: bool = True) -> str | None:
    """The hex private key given by ``flag``, ``flag-file`` or ``env`` (in that order)."""
    dest = flag.lstrip("-").replace("-", "_")
    value = getattr(args, dest, None)
    if value:
        return value
    path = getattr(args, f"{dest}_file", None)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            usage_error(args, f"{flag}-file: cannot read {path}: {exc.strerror}")
        try:
            return private_key(text)
        except argparse.ArgumentTypeError as exc:
            usage_error(args, f"{flag}-file {path}: {exc}")
    if env and os.environ.get(env):
        try:
            return private_key(os.environ[env])
        except argparse.ArgumentTypeError as exc:
            usage_error(args, f"${env}: {exc}")
    if required:
        hint = f", {flag}-file or ${env}" if env else f" or {flag}-file"
        usage_error(args, f"a private key is required: {flag}{hint}")
    return None


def usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    """Report a bad combination of arguments the way argparse does (usage, exit 2)."""
    parser: argparse.ArgumentParser | None = getattr(args, "_parser", None)
    if parser is None:
        print(f"flockchain: error: {message}", file=sys.stderr)
        raise SystemExit(2)
    parser.error(message)


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level.lower() != "debug":  # one line per HTTP request drowns everything else
        logging.getLogger("httpx").setLevel(logging.WARNING)


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout: what scripts and the local network read."""
    print(json.dumps({"event": event, **fields}, default=str), flush=True)



def run_guarded(fn: Any, args: argparse.Namespace) -> int:
    """Run a command body; ``CommandError`` becomes a one-line message and exit code 1."""
    try:
        return int(fn(args) or 0)
    except CommandError as exc:
        print(f"flockchain {args.command}: {exc}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- L1 and node


def account(hexkey: str) -> LocalAccount:
    from eth_account import Account

    return Account.from_key(hexkey)


def connect_l1(url: str, wait_s: float = 30.0) -> Web3:
    """A Web3 over ``url``, waiting up to ``wait_s`` for the RPC to answer (the chain may
    still be starting when a service comes up)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    deadline = time.monotonic() + wait_s
    while True:
        try:
            w3.eth.block_number  # noqa: B018 - a cheap liveness call
            return w3
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise CommandError(f"L1 RPC {url} does not answer: {exc}") from None
            time.sleep(0.5)


def load_deployment(path: str, w3: Web3 | None = None, wait_s: float = 0.0) -> Deployment:
    """The deployment record at ``path`` (waiting ``wait_s`` for it to appear), checked
    against ``w3``: same chain id and contract code at every address."""
    from bridge.contracts import CONTRACT_NAMES, Deployment

    p = Path(path)
    deadline = time.monotonic() + wait_s
    while not p.is_file():
        if time.monotonic() >= deadline:
            raise CommandError(f"deployment file {path} not found (run `flockchain deploy`)")
        time.sleep(0.5)
    try:
        dep = Deployment.load(p)
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"deployment file {path} is invalid: {exc}") from None
    if w3 is not None:
        chain = w3.eth.chain_id
        if chain != dep.chain_id:
            raise CommandError(f"{path} is for chain {dep.chain_id}, the L1 RPC is chain {chain}")
        for name in CONTRACT_NAMES:
            if not w3.eth.get_code(dep.address_of(name)):
                raise CommandError(f"{path}: no {name} code at {dep.address_of(name)} on this "
                                   "chain (a restarted dev chain? deploy again)")
    return dep


def wait_for_node(url: str, wait_s: float = 30.0) -> NodeClient:
    """A NodeClient for ``url`` once ``/v1/healthz`` answers."""
    from rollup.client import NodeClient

    node = NodeClient(url, retries=0)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            node.health()
            node.retries = 8
            return node
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise CommandError(f"node {url} does not answer: {exc}") from None
            time.sleep(0.5)


# --------------------------------------------------------------------------- deploy

_PARAM_FLAGS = {  # DeployParams field -> (flag, type, help)
    "stake_amount": ("--stake-amount", wei, "exact stake per client (default 0.1ether)"),
    "unbond_period": ("--unbond-period", non_negative_int, "seconds (default 7 days)"),
    "base_fee": ("--base-fee", wei, "task base fee (default 0.05ether)"),
    "fee_per_epoch": ("--fee-per-epoch", wei, "task escrow per epoch (default 0.01ether)"),
    "challenge_period": ("--challenge-period", non_negative_int, "seconds (default 1 day)"),
    "sequencer_bond": ("--sequencer-bond", wei, "default 1ether"),
    "challenge_bond": ("--challenge-bond", wei, "default 0.1ether"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="deploy the L1 contracts and write the deployment JSON",
        description="Deploy StakingRegistry, StateCommitment, the treasuries, SlashingManager "
        "and RewardManager from the owner key (governance), wire them, optionally post the "
        "sequencer bond, and write the deployment record other commands read.")
    p.add_argument("--l1", required=True, type=http_url, metavar="URL", help="L1 JSON-RPC URL")
    add_key_args(p, "--key", "deployer (owner, governance)")
    p.add_argument("--sequencer", required=True, type=eth_address, metavar="ADDRESS",
                   help="L1 address allowed to bond and propose batches (the aggregator's key)")
    p.add_argument("--out", required=True, metavar="FILE", help="deployment JSON to write")
    for field_name, (flag, typ, hlp) in _PARAM_FLAGS.items():
        p.add_argument(flag, dest=field_name, type=typ, default=None, help=hlp,
                       metavar="WEI" if typ is wei else "S")
    add_key_args(p, "--bond-sequencer-key", "sequencer (posts the bond)", env=None)
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--reuse", action="store_true",
                   help="if --out exists and its contracts are on this chain, keep it (exit 0)")
    p.add_argument("--wait", type=positive_float, default=30.0, metavar="S",
                   help="seconds to wait for the L1 RPC (default 30)")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    return run_guarded(_run, args)


def _run(args: argparse.Namespace) -> int:
    from bridge.deploy import DeployParams, bond_sequencer, deploy_all
    from bridge.l1 import TxFailed

    if args.force and args.reuse:
        usage_error(args, "--force and --reuse contradict each other")
    owner_key = key_from_args(args, "--key")
    bond_key = key_from_args(args, "--bond-sequencer-key", env=None, required=False)
    bonder = account(bond_key) if bond_key else None
    if bonder is not None and bonder.address.lower() != args.sequencer.lower():
        usage_error(args, f"--bond-sequencer-key is {bonder.address}, not --sequencer "
                    f"{args.sequencer}")
    out = Path(args.out)
    w3 = connect_l1(args.l1, args.wait)
    reused = False
    if out.exists() and not args.force:
        if not args.reuse:
            raise CommandError(f"{out} exists (use --force to redeploy or --reuse to keep it)")
        dep = load_deployment(str(out), w3)
        sc = dep.contract(w3, "StateCommitment")
        if sc.functions.sequencer().call().lower() != args.sequencer.lower():
            raise CommandError(f"{out}: StateCommitment's sequencer is not {args.sequencer}")
        reused = True
    else:
        overrides = {k: getattr(args, k) for k in _PARAM_FLAGS if getattr(args, k) is not None}
        params = DeployParams(**overrides)
        try:
            dep = deploy_all(w3, account(owner_key), args.sequencer, params)  # type: ignore[arg-type]
        except TxFailed as exc:
            raise CommandError(f"deployment failed: {exc}") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        dep.save(tmp)
        os.replace(tmp, out)  # readers never see a half-written file
    sc = dep.contract(w3, "StateCommitment")
    if bonder is not None:
        try:
            bond_sequencer(w3, dep, bonder)
        except TxFailed as exc:
            raise CommandError(f"posting the sequencer bond failed: {exc}") from None
    rm = dep.contract(w3, "RewardManager")
    reg = dep.contract(w3, "StakingRegistry")
    emit("deployed" if not reused else "reused", file=str(out), **dep.to_dict(),
         sequencer=sc.functions.sequencer().call(),
         sequencer_bonded=sc.functions.sequencerBonded().call(),
         challenge_period=sc.functions.challengePeriod().call(),
         stake_amount=reg.functions.stakeAmount().call(),
         base_fee=rm.functions.baseFee().call())
    return 0
