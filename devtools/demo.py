"""``flockchain demo``: the whole system in one command, on embedded defaults.

What runs: an L1 (py-evm in process, or anvil), the six contracts, a node on SQLite (or the
``--db`` URL) serving HTTP, an aggregator, an independent verifier, and N staked clients
(honest ones plus attackers) that train on non-IID digits and post signed updates. At the
end the batches are final on L1, slashes have been executed there by Merkle proof, every
client with a reward has claimed it, and the task owner has its unused escrow back.

Why everything talks through the real interfaces (HTTP to the node, transactions to the
contracts): the demo doubles as the end-to-end test, so it must exercise exactly what a
deployment would, only faster (short windows, time travel on L1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from state_machine.types import Wei

log = logging.getLogger("flockchain.demo")

CRUDE_ATTACKS = ("sign_flip", "lazy", "replay", "duplicate", "gaussian_noise", "ipm")
FAULTS = ("wrong-root", "withhold-da", "forge-deposit")
_ZERO_WEI = Wei(0)
# v2 verdicts: honest clients clip to the task's norm bound (int16 LSB units). First-round
# honest mlp updates of this demo measure 9,300-22,200 (median 19,800): 2x the median.
DEMO_NORM_BOUND = 40_000
DEMO_SIGN_FLIP_SCALE = 20.0


@dataclass
class DemoConfig:
    l1: str = "embedded"  # embedded | anvil | an RPC URL
    db: str | None = None  # SQLAlchemy URL; default: SQLite in a temporary directory
    proposers: int = 10
    voters: int = 3
    attackers: tuple[str, ...] = ("sign_flip", "lazy", "replay")
    f: int = 3
    model: str = "mlp"
    alpha: float = 0.5
    max_epochs: int = 5
    target_accuracy_bps: int = 9_000
    local_epochs: int = 10
    lr: float = 0.5
    seed: int = 1
    window_blocks: int = 120  # 30 s at block_time 0.25: clients train one after another
    block_time: float = 0.25
    timeout_s: float = 600.0
    fault: str | None = None
    quiet: bool = False
    port: int = 0  # node port (0: any free one); `--serve` keeps it up after the report

    @classmethod
    def quick(cls, **kw: Any) -> DemoConfig:
        base = {"max_epochs": 4, "target_accuracy_bps": 9_500}
        base.update(kw)
        return cls(**base)


@dataclass
class ClientRecord:
    name: str
    behaviour: str
    pubkey: str
    l1_address: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    l1_stake_before: Wei = _ZERO_WEI
    l1_stake_after: Wei = _ZERO_WEI
    reward: Wei = _ZERO_WEI
    reward_claimed: Wei = _ZERO_WEI
    cumulative_slashed: Wei = _ZERO_WEI


def _seed_bytes(cfg: DemoConfig, tag: str) -> bytes:
    return hashlib.sha256(f"flockchain-demo/{cfg.seed}/{tag}".encode()).digest()


class Demo:
    """One demo run; ``run()`` returns the report dict."""

    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        self.tmp = tempfile.TemporaryDirectory(prefix="flockchain-demo-")
        self.report: dict[str, Any] = {"config": asdict(self.cfg)}
        self.anvil = None
        self.node = None
        from rich.console import Console

        self.console = Console(quiet=cfg.quiet, stderr=False)

    # ------------------------------------------------------------------ setup
    def _l1(self) -> Any:
        from web3 import Web3

        from devtools.l1 import embedded_web3, start_anvil

        if self.cfg.l1 == "embedded":
            return embedded_web3(num_accounts=10)
        if self.cfg.l1 == "anvil":
            self.anvil = start_anvil()
            return self.anvil.web3()
        return Web3(Web3.HTTPProvider(self.cfg.l1))

    def _start_node(self) -> None:
        from rollup.config import NodeConfig
        from rollup.node import start_node

        db = self.cfg.db or f"sqlite:///{self.tmp.name}/node.db"
        if db.startswith("postgresql"):
            from sequencer.store import Store

            store = Store(db)
            store.drop()  # the demo starts a fresh chain on the given database
            store.close()
        key = Path(self.tmp.name) / "sequencer.key"
        key.write_text(_seed_bytes(self.cfg, "sequencer").hex())
        conf = NodeConfig(db_url=db, port=self.cfg.port, chain_id=31_337,
                          block_time=self.cfg.block_time, sequencer_key_file=key,
                          snapshot_interval=50, log_level="warning")
        self.node = start_node(conf)

    def run(self, close: bool = True) -> dict[str, Any]:
        """Run the demo; with ``close=False`` the L1, node and verifier stay up for
        inspection (tests) until :meth:`close`."""
        try:
            return self._run()
        finally:
            if close:
                self.close()

    def close(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None
        if self.anvil is not None:
            self.anvil.stop()
            self.anvil = None
        self.tmp.cleanup()

    def _run(self) -> dict[str, Any]:
        """The demo as named steps; each leaves what the next needs on ``self``."""
        t0 = time.monotonic()
        self.console.rule("[bold]FLockChain demo")
        self._deploy()
        self._start_node()
        assert self.node is not None
        from rollup.client import NodeClient
        from rollup.ports import InProcessPorts

        self.ports = _FaultyPorts(InProcessPorts(self.node.sequencer), self.cfg.fault, self)
        self.node_client = NodeClient(self.node.url)
        self.console.print(f"node on {self.node.url} ({(self.cfg.db or 'sqlite').split(':')[0]})"
                           f"; explorer: {self.node.url}/explorer/")
        self._stake_clients()
        self._start_aggregator()
        task_id = self._create_task()
        epochs = self._train(task_id)
        verify_log = self._verify()
        settled = self._settle(task_id)
        self._report(task_id, epochs, verify_log, settled, t0)
        self._print_report()
        return self.report

    # ------------------------------------------------------------------ steps
    def _deploy(self) -> None:
        """L1, funded operator accounts, the six contracts, the sequencer's bond."""
        from eth_account import Account

        from bridge.deploy import DeployParams, bond_sequencer, deploy_all
        from bridge.l1 import send_value

        w3 = self._l1()
        accounts = {
            name: Account.from_key(_seed_bytes(self.cfg, f"l1/{name}"))
            for name in ("owner", "sequencer", "task_owner", "verifier", "aggregator")
        }
        for acct in accounts.values():
            send_value(w3, w3.eth.accounts[0], acct.address, 10 * 10**18)
        self.params = DeployParams(challenge_period=3_600, unbond_period=7 * 24 * 3600)
        dep = deploy_all(w3, accounts["owner"], accounts["sequencer"].address, self.params)
        bond_sequencer(w3, dep, accounts["sequencer"])
        self.w3, self.deployment, self.l1_accounts = w3, dep, accounts
        self.console.print(f"L1 [cyan]{self.cfg.l1}[/] chain {dep.chain_id}: contracts "
                           "deployed, sequencer bonded")

    def _stake_clients(self) -> None:
        """Keys and L1 accounts for every client (attackers first), each staked on L1."""
        from eth_account import Account

        from bridge.l1 import send, send_value
        from federated.client import ClientAgent
        from rollup.client import FlockClient, Keypair
        from state_machine.actions import pop_message

        cfg, w3 = self.cfg, self.w3
        l2_chain = int(self.node_client.health()["chain_id"])
        n = cfg.proposers + cfg.voters
        behaviours = list(cfg.attackers) + ["honest"] * (n - len(cfg.attackers))
        registry = self.deployment.contract(w3, "StakingRegistry")
        stake_amount = registry.functions.stakeAmount().call()
        self.agents: list[ClientAgent] = []
        self.records: list[ClientRecord] = []
        for i, beh in enumerate(behaviours):
            name = f"client{i:02d}"
            kp = Keypair.from_seed(_seed_bytes(cfg, f"ed25519/{name}"))
            acct = Account.from_key(_seed_bytes(cfg, f"l1/{name}"))
            send_value(w3, w3.eth.accounts[0], acct.address, 10**18)
            pop = kp.sign(pop_message(l2_chain, bytes.fromhex(acct.address[2:])))
            send(w3, registry.functions.stake(kp.pubkey, pop), acct, value=stake_amount)
            profile = self._profile(i, n, name, beh)
            self.agents.append(ClientAgent(FlockClient(self.node_client, kp), profile))
            self.records.append(ClientRecord(
                name, beh, "0x" + kp.pubkey.hex(), acct.address,
                l1_stake_before=registry.functions.stakeOf(acct.address).call()))
        self.accounts = {r.name: Account.from_key(_seed_bytes(cfg, f"l1/{r.name}"))
                         for r in self.records}
        self.console.print(f"{n} clients staked {stake_amount / 1e18:g} ETH each on L1 "
                           f"(attackers: {', '.join(cfg.attackers) or 'none'})")

    def _profile(self, i: int, n: int, name: str, behaviour: str) -> Any:
        """Client ``i`` of ``n``: its Dirichlet partition, a voter test set, its seed."""
        from federated.data import DataSpec
        from federated.roles import ClientProfile

        cfg = self.cfg
        train = DataSpec.parse(f"digits:dirichlet:alpha={cfg.alpha}:client={i}:of={n}"
                               f":seed={cfg.seed}")
        test = DataSpec.parse(f"digits:voter:voter={i % 2}:of=2:seed={cfg.seed}")
        params: dict[str, float] = {}
        if behaviour == "duplicate":
            params = {"pair_seed": float(cfg.seed)}
        if behaviour == "sign_flip":  # the crude (boosted) flipper: far above the norm bound
            params = {"scale": DEMO_SIGN_FLIP_SCALE}
        return ClientProfile(name, behaviour, train, test, seed=cfg.seed * 100 + i,
                             local_epochs=cfg.local_epochs, lr=cfg.lr, params=params)

    def _start_aggregator(self) -> None:
        from rollup.aggregator import Aggregator
        from rollup.client import FlockClient, Keypair

        agg_key = Keypair.from_seed(_seed_bytes(self.cfg, "ed25519/aggregator"))
        self.aggregator = Aggregator(FlockClient(self.node_client, agg_key), self.ports,
                                     self.w3, self.deployment, self.l1_accounts["sequencer"],
                                     batch_every_s=2.0,
                                     confirmations=0,  # the embedded chain cannot reorg
                                     # one L1 beacon, posted below, seeds every epoch
                                     beacon_every_s=float("inf"))
        if self.cfg.fault == "forge-deposit":
            self.ports.forge_deposit()
        # Selection from one L1 beacon (as production does, never from the rollup root):
        # roles then do not depend on which block each action happened to land in, so two
        # runs of the demo select the same clients and train the same models.
        self.aggregator.post_beacon(force=True)
        self.aggregator.watcher.poll()

    def _create_task(self) -> int:
        """The task on L1 (owner pays base fee + escrow), then its genesis on L2."""
        from web3.logs import DISCARD

        from bridge.l1 import send
        from federated.models import num_params, spec_hash
        from federated.train import init_global
        from state_machine.crypto import keccak256
        from state_machine.tasks import TaskParams

        cfg, w3, owner = self.cfg, self.w3, self.l1_accounts["task_owner"]
        d = num_params(cfg.model)
        genesis = init_global(cfg.model, cfg.seed, 12)
        task_params = TaskParams(
            model=cfg.model, num_params=d, proposers_per_epoch=cfg.proposers, f=cfg.f,
            genesis_model_hash=keccak256(genesis.astype("<i4").tobytes()),
            voters_per_epoch=cfg.voters, scale_bits=12, commit_window=cfg.window_blocks,
            reveal_window=cfg.window_blocks, vote_commit_window=cfg.window_blocks,
            vote_reveal_window=cfg.window_blocks, norm_bound=DEMO_NORM_BOUND,
        )
        rm = self.deployment.contract(w3, "RewardManager")
        price = rm.functions.taskPrice(cfg.max_epochs).call()
        self.owner_balance_before = w3.eth.get_balance(owner.address)
        receipt = send(w3, rm.functions.createTask(spec_hash(cfg.model), cfg.max_epochs,
                                                   cfg.target_accuracy_bps,
                                                   task_params.encode()), owner, value=price)
        created = rm.events.TaskCreated().process_receipt(receipt, errors=DISCARD)
        task_id = int(created[0]["args"]["taskId"])
        self.console.print(f"task {task_id} created on L1: {cfg.model} ({d} params), "
                           f"{cfg.max_epochs} epochs, paid {price / 1e18:g} ETH (base fee + "
                           "escrow)")
        self.aggregator.watcher.poll()
        nc = self.node_client
        nc.wait_for(lambda: any(t["task_id"] == task_id for t in nc.tasks()), 30,
                    what="task on L2")
        self.agents[0].client.publish_genesis(task_id, genesis)
        return task_id

    def _train(self, task_id: int) -> list[dict[str, Any]]:
        """Step clients and aggregator until the task ends; one summary per final epoch."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from federated.data import digits_split

        self._split = digits_split()
        epochs: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.cfg.timeout_s
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
                "{task.completed}/{task.total}"), TimeElapsedColumn(), console=self.console,
                disable=self.cfg.quiet) as progress:
            bar = progress.add_task("epochs", total=self.cfg.max_epochs)
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError("demo did not finish in time")
                task = self.node_client.task(task_id)
                for a in self.agents:
                    a.step()
                self.aggregator.step()
                progress.update(bar, description=f"epoch {task['epoch']} · {task['phase']}")
                for summary in self._final_epochs(task_id, len(epochs), task["epoch"]):
                    epochs.append(summary)
                    progress.advance(bar)
                    self.console.print(self._epoch_line(summary))
                if task["status"] != "running" and len(epochs) >= task["epochs_run"]:
                    return epochs
                time.sleep(0.05)

    def _final_epochs(self, task_id: int, first: int, last: int) -> list[dict[str, Any]]:
        """Summaries of epochs ``first..last`` that have an outcome, in order."""
        from federated.train import accuracy_bps
        from rollup.client import NodeError

        out = []
        for e in range(first, last + 1):
            try:
                rec = self.node_client.epoch(task_id, e)
            except NodeError:  # not opened yet (genesis or clients pending)
                break
            if rec["outcome"] == "pending":
                break
            g = self.node_client.blob(bytes.fromhex(rec["global_after"][2:]))
            q = np.frombuffer(g, dtype="<i4").astype(np.int32)
            test_acc = accuracy_bps(self.cfg.model, q, 12, self._split.X_test,
                                    self._split.y_test)
            out.append(self._epoch_summary(rec, self.records, test_acc))
        return out

    def _verify(self) -> list[tuple[int, str]]:
        """Post the last batch; an independent verifier checks every batch, again near
        the end of the challenge window."""
        from bridge.verifier import Verifier
        from devtools.l1 import advance_time

        seq = self.node.sequencer  # type: ignore[union-attr]
        self.node_client.wait_for(lambda: seq.mempool_size == 0, 30, what="empty mempool")
        time.sleep(self.cfg.block_time * 3)
        self.aggregator.post_batches(force=True)
        source = (self.node.url if self.cfg.fault != "withhold-da"  # type: ignore[union-attr]
                  else self.ports.withholding_url())
        self.verifier = Verifier(self.w3, self.deployment, [source], seq.chain_id,
                                 self.l1_accounts["verifier"], da_grace_seconds=600,
                                 protocol=seq.protocol)
        verify_log = self.verifier.step()
        advance_time(self.w3, self.params.challenge_period - 120)
        verify_log += self.verifier.step()
        self.console.print(f"verifier: {len(self.verifier.checkpoints)} batches verified, "
                           f"{len(self.verifier.stats.challenges)} challenged")
        return verify_log

    def _settle(self, task_id: int) -> dict[str, Any]:
        """Past the window: slashes relayed, rewards claimed, the escrow refunded."""
        from bridge.settlement import claim_reward, latest_final_batch, refund_task
        from devtools.l1 import advance_time

        w3, dep = self.w3, self.deployment
        advance_time(w3, 121)
        final = latest_final_batch(w3, dep)
        slashes = self.aggregator.relay.run_once()
        claims = []
        if final is not None:
            proofs = {"0x" + p["fields"]["pubkey"].hex(): p
                      for p in self.ports.inner.account_proofs(final)}
            for r in self.records:
                mine = proofs.get(r.pubkey)
                if mine is not None and mine["fields"]["cumulative_reward"] > 0:
                    claims.append(claim_reward(w3, dep, self.accounts[r.name], mine, final))
        refund = None
        task = self.node_client.task(task_id)
        if final is not None and task["status"] != "running":
            refund = refund_task(w3, dep, self.l1_accounts["task_owner"],
                                 self.ports.inner.task_proof(final, task_id), final)
        return {"task": task, "slashes": slashes, "claims": claims, "refund": refund}

    def _report(self, task_id: int, epochs: list[dict[str, Any]],
                verify_log: list[tuple[int, str]], settled: dict[str, Any], t0: float) -> None:
        w3, dep, claims, task = self.w3, self.deployment, settled["claims"], settled["task"]
        registry = dep.contract(w3, "StakingRegistry")
        for r in self.records:
            r.l1_stake_after = registry.functions.stakeOf(r.l1_address).call()
            a = self.node_client.account(bytes.fromhex(r.pubkey[2:]))["account"]
            r.reward = int(a["cumulative_reward"])
            r.cumulative_slashed = int(a["cumulative_slashed"])
            r.reward_claimed = sum(x["paid"] for x in claims if x["account"] == r.l1_address)
        sc = dep.contract(w3, "StateCommitment")
        roots = [{"batch": i, "state_root": "0x" + bytes(sc.functions.stateRoot(i).call()).hex(),
                  "final": sc.functions.isFinal(i).call()}
                 for i in range(sc.functions.nextIndex().call())]
        owner = self.l1_accounts["task_owner"].address
        self.report.update(
            task={k: task[k] for k in ("task_id", "status", "epochs_run", "accepted_epochs",
                                       "accuracy_bps", "charged", "treasury", "escrow")},
            epochs=epochs,
            clients=[asdict(r) for r in self.records],
            slashes=settled["slashes"],
            claims=claims,
            refund=settled["refund"],
            task_owner_net_paid=self.owner_balance_before - w3.eth.get_balance(owner),
            batches=roots,
            slash_treasury_balance=w3.eth.get_balance(dep.slash_treasury),
            slash_caller=self.l1_accounts["sequencer"].address,
            verifier={"verified": len(self.verifier.checkpoints),
                      "challenges": self.verifier.stats.challenges,
                      "log": [list(x) for x in verify_log]},
            seconds=round(time.monotonic() - t0, 1),
        )

    # ------------------------------------------------------------------ reporting
    def _epoch_summary(self, rec: dict[str, Any], records: list[ClientRecord],
                       test_acc: int) -> dict[str, Any]:
        names = {r.pubkey: r.name for r in records}
        verdicts = {}
        for pk, v in rec["verdicts"]:
            reasons = next((s["reasons"] for s in rec["scores"] if s["pubkey"] == pk), [])
            name = names.get(pk, f"unknown:{pk[:10]}")  # e.g. a forged deposit (--fault)
            verdicts[name] = {"role": "proposer", "verdict": v, "reasons": reasons}
        for pk, v in rec["voter_verdicts"]:
            verdicts[names.get(pk, f"unknown:{pk[:10]}")] = {"role": "voter", "verdict": v,
                                                             "reasons": []}
        for r in records:
            if r.name in verdicts:
                r.verdicts.append({"epoch": rec["epoch"], **verdicts[r.name]})
        return {"epoch": rec["epoch"], "outcome": rec["outcome"],
                "reason": rec["outcome_reason"], "accuracy_bps": rec["accuracy_bps"],
                "test_accuracy_bps": test_acc, "aggregate_vote_bps": rec["aggregate"],
                "verdicts": verdicts}

    def _epoch_line(self, e: dict[str, Any]) -> str:
        flagged = [f"{n}:{v['verdict']}" for n, v in sorted(e["verdicts"].items())
                   if v["verdict"] not in ("ACCEPTED", "AGREE")]
        acc = e["accuracy_bps"]
        return (f"epoch {e['epoch']}: [bold]{e['outcome']}[/] ({e['reason']}), committee "
                f"accuracy {acc / 100 if acc is not None else '-'}%, test accuracy "
                f"{e['test_accuracy_bps'] / 100}%; flagged: {', '.join(flagged) or 'none'}")

    def _print_report(self) -> None:
        from rich.table import Table

        r = self.report
        t = Table(title="clients")
        for col in ("name", "behaviour", "verdicts", "L1 stake before", "L1 stake after",
                    "reward claimed"):
            t.add_column(col)
        for cl in r["clients"]:
            vs = " ".join(f"e{v['epoch']}:{v['verdict'][:4]}" for v in cl["verdicts"])
            t.add_row(cl["name"], cl["behaviour"], vs, f"{cl['l1_stake_before'] / 1e18:.4f}",
                      f"{cl['l1_stake_after'] / 1e18:.4f}", f"{cl['reward_claimed'] / 1e18:.5f}")
        self.console.print(t)
        task = r["task"]
        refund = r["refund"]["refund"] / 1e18 if r["refund"] else 0
        self.console.print(
            f"task {task['task_id']}: {task['status']} after {task['epochs_run']} epochs "
            f"({task['accepted_epochs']} accepted), charged {int(task['charged']) / 1e18:g} ETH, "
            f"refunded {refund:g} ETH; {len(r['slashes'])} slashes executed on L1; "
            f"{len(r['batches'])} batches posted, all final: "
            f"{all(b['final'] for b in r['batches'])}; verifier challenges: "
            f"{len(r['verifier']['challenges'])}; {r['seconds']} s")


class _FaultyPorts:
    """The in-process ports, optionally misbehaving (``--fault``) to exercise the verifier."""

    def __init__(self, inner: Any, fault: str | None, demo: Demo) -> None:
        self.inner, self.fault, self.demo = inner, fault, demo

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def unposted_batches(self) -> list[Any]:
        out = self.inner.unposted_batches()
        if self.fault == "wrong-root":
            from dataclasses import replace

            out = [replace(b, state_root=hashlib.sha256(b.state_root).digest()) for b in out]
        return out

    def forge_deposit(self) -> None:
        """Inject a deposit no L1 log backs (the verifier must catch it)."""
        from state_machine.actions import DepositBody

        pk = _seed_bytes(self.demo.cfg, "forged-pubkey")
        self.inner.submit_system("l1_deposit", DepositBody(b"\x66" * 20, pk, 10**17, 1, 0,
                                                           b"\x00" * 32))

    def withholding_url(self) -> str:
        return "http://127.0.0.1:9"  # nothing listens: the data is withheld


def main_json(cfg: DemoConfig, path: str | None) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    report = Demo(cfg).run()
    if path:
        Path(path).write_text(json.dumps(report, indent=2, default=str))
    return report
