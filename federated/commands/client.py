"""``flockchain client``: a training participant (``federated.client.ClientAgent`` loop).

The client polls the node and acts in whatever role the chain selected it for (or only
``--role proposer|voter``): it trains on ``--data``, commits and reveals its update,
evaluates candidates on ``--test-data`` and votes; ``--behaviour`` makes it one of the
attacks in ``federated.attacks`` (for experiments). Every action it takes is printed as a
JSON line.

With ``--stake`` it first stakes on L1 (``StakingRegistry.stake(pubkey)`` with exactly
``stakeAmount``) unless its L1 account already staked this key. Without an L1 key it
creates one next to ``--key`` (``<key>.l1``); ``--dev-fund`` tops that account up with
``anvil_setBalance``, which only development chains (anvil) accept: that is how scaled
compose replicas get distinct funded accounts without a faucet.

``client=auto`` / ``voter=auto`` in a data spec pick the index from the client's public
key (``pubkey mod of``), so identical replicas (``docker compose --scale client=8``) spread
over the partitions without coordination.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    setup_logging,
    usage_error,
    wait_for_node,
    wei,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

from rollup.daemon import run_daemon, stop_on_signals

log = logging.getLogger("flockchain.client")

ROLES = ("auto", "proposer", "voter")
_AUTO = re.compile(r"(client|voter)=auto")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "client", help="run a training client (proposer/voter as the chain selects)",
        description="Data specs: digits:train | digits:test | digits:iid:client=I:of=N | "
        "digits:dirichlet:alpha=A:client=I:of=N | digits:voter:voter=I:of=N (optional "
        ":seed=K :split=S; I may be 'auto' = pubkey mod N).")
    p.add_argument("--key", required=True, metavar="FILE",
                   help="ed25519 key file (created if missing; $FLOCKCHAIN_CLIENT_SEED wins)")
    p.add_argument("--node", required=True, type=http_url, metavar="URL", help="node base URL")
    p.add_argument("--role", choices=ROLES, default="auto",
                   help="act only in this role (default: whatever the chain selects)")
    p.add_argument("--data", required=True, metavar="SPEC", help="training data spec")
    p.add_argument("--test-data", default="digits:test", metavar="SPEC",
                   help="data a voter evaluates candidates on (default digits:test)")
    p.add_argument("--behaviour", "--behavior", default="honest", metavar="NAME",
                   help="honest or an attack from federated.attacks (see --list-behaviours)")
    p.add_argument("--list-behaviours", action=_ListBehaviours,
                   help="print the known behaviours and exit")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="behaviour parameter (float), e.g. pair_seed=7; repeatable")
    p.add_argument("--name", help="name in logs (default: the key file's stem)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="local training seed (default: from the public key)")
    p.add_argument("--local-epochs", type=non_negative_int, default=2, metavar="N")
    p.add_argument("--lr", type=positive_float, default=0.1)
    p.add_argument("--batch-size", type=non_negative_int, default=32, metavar="N")
    p.add_argument("--interval", type=positive_float, default=0.5, metavar="S",
                   help="seconds between polls (default 0.5)")
    p.add_argument("--max-seconds", type=positive_float, default=None, metavar="S",
                   help="exit after this long (default: run until stopped)")
    p.add_argument("--heartbeat", metavar="FILE",
                   help="touch FILE after every poll (for container health checks)")
    p.add_argument("--threads", type=non_negative_int, default=1, metavar="N",
                   help="torch threads (default 1: many clients share a host)")
    g = p.add_argument_group("L1 staking (with --stake)")
    g.add_argument("--stake", action="store_true",
                   help="stake on L1 first, unless this key is already staked")
    add_l1_args(g, required=False)
    add_key_args(g, "--l1-key", "client's L1 account (stakes; rewards go to it)", env=None)
    g.add_argument("--dev-fund", type=wei, nargs="?", const=10**18, default=None,
                   metavar="WEI", help="development chains only: set the L1 account's "
                   "balance to this (default 1ether) with anvil_setBalance before staking")
    p.add_argument("--wait", type=positive_float, default=60.0, metavar="S",
                   help="seconds to wait for the node / L1 at start-up (default 60)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run, _parser=p)


class _ListBehaviours(argparse.Action):
    """``--list-behaviours`` works like ``--help``: no other argument is needed."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from federated.attacks import ATTACKS

        for name, b in ATTACKS.items():
            print(f"{name}\t{getattr(b, 'summary', '')}")
        parser.exit()


def run(args: argparse.Namespace) -> int:
    return run_guarded(_run, args)


def _params(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    for kv in args.param:
        k, sep, v = kv.partition("=")
        try:
            if not sep or not k:
                raise ValueError
            out[k] = float(v)
        except ValueError:
            usage_error(args, f"--param {kv!r}: expected NAME=NUMBER")
    return out


def resolve_auto(spec: str, pubkey: bytes) -> str:
    """Replace ``client=auto`` / ``voter=auto`` by ``int(pubkey) mod of``."""
    if not _AUTO.search(spec):
        return spec
    m = re.search(r":of=(\d+)", spec)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"{spec}: '=auto' needs of=N")
    index = int.from_bytes(pubkey, "big") % int(m.group(1))
    return _AUTO.sub(lambda mm: f"{mm.group(1)}={index}", spec)


def _run(args: argparse.Namespace) -> int:
    from federated.attacks import ATTACKS

    if args.behaviour not in ATTACKS:
        usage_error(args, f"unknown --behaviour {args.behaviour!r}; known: "
                    f"{', '.join(ATTACKS)}")
    if args.batch_size < 1:
        usage_error(args, "--batch-size must be >= 1")
    if args.stake and not (args.l1 and args.deployment):
        usage_error(args, "--stake needs --l1 and --deployment")
    if args.dev_fund is not None and not args.stake:
        usage_error(args, "--dev-fund only makes sense with --stake")
    params = _params(args)

    from federated.data import DataSpec, DataSpecError
    from rollup.client import keypair_from_env_or_file

    kp = keypair_from_env_or_file(args.key)
    try:
        train = DataSpec.parse(resolve_auto(args.data, kp.pubkey))
        test = DataSpec.parse(resolve_auto(args.test_data, kp.pubkey))
    except (DataSpecError, ValueError) as exc:
        usage_error(args, f"bad data spec: {exc}")
    setup_logging(args.log_level)

    import torch

    from federated.client import ClientAgent
    from federated.roles import ClientProfile
    from rollup.client import FlockClient

    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.name or Path(args.key).stem
    seed = args.seed if args.seed is not None else int.from_bytes(kp.pubkey[:4], "big")
    profile = ClientProfile(name, args.behaviour, train, test, seed=seed,
                            local_epochs=args.local_epochs, lr=args.lr,
                            batch_size=args.batch_size, params=params)
    staked = _stake(args, kp.pubkey) if args.stake else None
    node = wait_for_node(args.node, args.wait)
    agent = ClientAgent(FlockClient(node, kp), profile, role=args.role)
    stop = stop_on_signals()
    emit("client_started", name=name, pubkey="0x" + kp.pubkey.hex(), behaviour=args.behaviour,
         role=args.role, data=str(train), test_data=str(test), **(staked or {}))
    run_daemon(lambda: _poll(agent), name=f"client {name}", interval=args.interval, stop=stop,
               logger=log, max_seconds=args.max_seconds, heartbeat=args.heartbeat)
    emit("client_stopped", name=name, actions=len(agent.log))
    return 0


def _poll(agent: Any) -> None:
    """One poll of the chain; every action it took is printed, even when the poll then
    failed (the node restarting mid-poll)."""
    seen = len(agent.log)
    try:
        agent.step()
    finally:
        for entry in agent.log[seen:]:
            emit("action", name=agent.profile.name, **entry)


def _stake(args: argparse.Namespace, pubkey: bytes) -> dict[str, Any]:
    """Stake ``pubkey`` from the L1 account unless it is already staked; returns what
    happened (for the start-up line)."""
    from bridge.l1 import TxFailed, send
    from rollup.commands.deploy import account

    hexkey = key_from_args(args, "--l1-key", env=None, required=False)
    if hexkey is None:
        hexkey = _own_l1_key(Path(args.key).with_suffix(Path(args.key).suffix + ".l1"))
    acct = account(hexkey)
    w3 = connect_l1(args.l1, args.wait)
    dep = load_deployment(args.deployment, w3, wait_s=args.wait)
    reg = dep.contract(w3, "StakingRegistry")
    zero = "0x" + "00" * 20
    current = bytes(reg.functions.pubkeyOf(acct.address).call())
    if reg.functions.stakeOf(acct.address).call() > 0:
        if current != pubkey:
            raise CommandError(f"L1 account {acct.address} already stakes another key "
                               f"0x{current.hex()}")
        return {"l1_address": acct.address, "staked": "already"}
    owner = reg.functions.accountOf(pubkey).call()
    if owner.lower() not in (zero, acct.address.lower()):
        raise CommandError(f"this key is already staked by another L1 account {owner}")
    amount = reg.functions.stakeAmount().call()
    if args.dev_fund is not None:
        _dev_fund(w3, acct, max(args.dev_fund, amount + 10**16))
    try:
        receipt = send(w3, reg.functions.stake(pubkey), acct, value=amount)
    except TxFailed as exc:
        raise CommandError(f"stake failed: {exc}") from None
    return {"l1_address": acct.address, "staked": amount, "stake_block": receipt["blockNumber"]}


def _own_l1_key(path: Path) -> str:
    """This client's own L1 key (0600 file next to its ed25519 key), created if missing."""
    import os

    from rollup.commands.deploy import private_key

    if path.exists():
        return private_key(path.read_text(encoding="utf-8"))
    from eth_account import Account

    hexkey = "0x" + bytes(Account.create().key).hex()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(hexkey + "\n")
    return hexkey


def _dev_fund(w3: Web3, acct: LocalAccount, amount: int) -> None:
    if w3.eth.get_balance(acct.address) >= amount:
        return
    resp = w3.provider.make_request("anvil_setBalance", [acct.address, hex(amount)])  # type: ignore[arg-type]
    if "error" in resp:
        raise CommandError(f"--dev-fund: this L1 does not accept anvil_setBalance "
                           f"({resp['error']}); fund {acct.address} yourself")
