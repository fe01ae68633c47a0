"""A local FLockChain network as plain processes on loopback (no Docker needed).

Same topology as ``docker-compose.yml``: anvil (L1), a fresh PostgreSQL database on the
local server, ``flockchain deploy``, ``flockchain node``, ``flockchain aggregator``,
``flockchain verifier``, N × ``flockchain client`` and a task created with
``flockchain task create`` (which also publishes the genesis model). Every service is the
real CLI in its own process, so the local network exercises exactly what a deployment
runs; only the wiring (ports, keys, short windows) is chosen here.

Everything lives in one folder (default ``.localnet/``): ``localnet.json`` (what runs,
where, with which PIDs), ``logs/<service>.log``, ``keys/`` (generated, mode 0600) and
``deployment.json``. ``stop`` ends exactly the processes it started, by PID: SIGTERM,
then SIGKILL after a grace period. A PID is only signalled while it still belongs to the
process we started (its start time in ``/proc`` is recorded at launch), so a recycled PID
is never hit.

Why keys are generated and funded with ``anvil_setBalance``: nothing here relies on
anvil's well-known development keys, and funding many accounts that way needs no
transactions (no nonce races between concurrent starters).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devtools.postgres import (
    DEFAULT_PG_URL,
    create_database,
    drop_database,
    pg_url_for,
    postgres_available,
)
from devtools.procs import (
    LocalnetError,
    Service,
    child_env,
    cli_argv,
    pick_port,
    pid_alive,
    proc_start_time,
    tail,
    terminate,
    write_secret,
)

__all__ = ["DEFAULT_PG_URL", "Localnet", "LocalnetConfig", "LocalnetError", "default_dir",
           "pid_alive", "prerequisites"]

DEFAULT_DIR_ENV = "FLOCKCHAIN_LOCALNET_DIR"
STATE_FILE = "localnet.json"
def default_dir() -> Path:
    return Path(os.environ.get(DEFAULT_DIR_ENV, ".localnet"))


@dataclass
class LocalnetConfig:
    """What to start. Ports set to 0 are chosen free at start."""

    dir: Path = field(default_factory=default_dir)
    clients: int = 4
    attackers: tuple[str, ...] = ()
    proposers: int = 3
    voters: int = 1
    f: int = 0
    epochs: int = 2
    model: str = "mlp"
    window: int = 40  # blocks per phase
    block_time: float = 0.25
    chain_id: int = 4242  # the rollup's chain id
    challenge_period: int = 60
    batch_every: float = 2.0
    local_epochs: int = 2
    lr: float = 0.5
    seed: int = 1
    pg_url: str = DEFAULT_PG_URL  # server + maintenance database used to create ours
    db_name: str = "flockchain_localnet"
    anvil_port: int = 8545
    node_port: int = 8700
    verifier_port: int = 8710
    create_task: bool = True
    ready_timeout: float = 90.0

    def validate(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", self.db_name):
            raise LocalnetError("db name must match [a-z_][a-z0-9_]* (at most 41 chars)")
        if self.proposers < 2 * self.f + 3:
            raise LocalnetError(f"proposers must be >= 2f + 3 = {2 * self.f + 3}")
        need = 2 * self.f + 3 + (1 if self.voters else 0)
        if self.clients < need:
            raise LocalnetError(f"{self.clients} clients cannot open an epoch: need {need}")
        if len(self.attackers) > self.clients:
            raise LocalnetError("more attackers than clients")


def prerequisites(pg_url: str = DEFAULT_PG_URL) -> list[str]:
    """What is missing to run a local network (empty when everything is there)."""
    from devtools.l1 import anvil_binary

    missing = []
    if anvil_binary() is None:
        missing.append("anvil binary (npm ci: node_modules/@foundry-rs/anvil-linux-amd64)")
    if not postgres_available(pg_url):
        missing.append(f"PostgreSQL at {urlsplit(pg_url).netloc}")
    return missing


# --------------------------------------------------------------------------- the network


class Localnet:
    """One local network rooted at a folder; ``start``, ``status``, ``stop``."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.dir = Path(directory or default_dir()).resolve()
        self.state: dict[str, Any] = {}
        if (self.dir / STATE_FILE).is_file():
            self.state = json.loads((self.dir / STATE_FILE).read_text())

    # ---- state
    @property
    def services(self) -> list[Service]:
        return [Service(**s) for s in self.state.get("services", [])]

    def _save(self) -> None:
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, default=str))
        os.replace(tmp, self.dir / STATE_FILE)

    def running(self) -> list[Service]:
        return [s for s in self.services if s.alive()]

    def _path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    # ---- process control
    def _secrets(self, names: list[str]) -> dict[str, str]:
        """Secret environment (the admin token) from keys/, never from the state file."""
        files = {"FLOCKCHAIN_ADMIN_TOKEN": "admin.token"}
        return {n: self._path("keys", files[n]).read_text().strip() for n in names}

    def _spawn(self, name: str, argv: list[str], secret_env: list[str] | None = None
               ) -> Service:
        log = self._path("logs", f"{name}.log")
        secret_env = list(secret_env or [])
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    env=child_env(self._secrets(secret_env)),
                                    start_new_session=True)  # survives the launcher
        svc = Service(name, proc.pid, proc_start_time(proc.pid), argv, str(log), secret_env)
        services = self.state.setdefault("services", [])
        at = next((i for i, x in enumerate(services) if x["name"] == name), None)
        if at is None:
            services.append(asdict(svc))
        else:  # a restart keeps its place (stop order stays newest-first)
            services[at] = asdict(svc)
        self._save()
        return svc

    def restart(self, name: str, timeout: float = 10.0) -> Service:
        """Stop one service (SIGTERM, then SIGKILL) and start it again with the same
        command line: how a crashed or upgraded service comes back."""
        svc = next((s for s in self.services if s.name == name), None)
        if svc is None:
            raise LocalnetError(f"no service {name!r}; have {[s.name for s in self.services]}")
        terminate([svc], timeout)
        return self._spawn(name, svc.argv, svc.secret_env)

    def _run_once(self, name: str, argv: list[str], timeout: float,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
        """Run a one-shot command (deploy, task create); returns its last JSON line."""
        log = self._path("logs", f"{name}.log")
        with open(log, "ab") as out:
            try:
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=out, timeout=timeout,
                                   stdin=subprocess.DEVNULL, env=child_env(env))
            except subprocess.TimeoutExpired:
                raise LocalnetError(f"{name} timed out:\n{tail(log)}") from None
            out.write(r.stdout)
        if r.returncode != 0:
            raise LocalnetError(f"{name} failed (exit {r.returncode}):\n{tail(log)}")
        lines = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def _wait(self, what: str, ready: Any, services: list[Service], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for s in services:
                if not s.alive():
                    raise LocalnetError(f"{s.name} exited while starting:\n{tail(s.log)}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {s.name}\n{tail(s.log, 10)}" for s in services)
                raise LocalnetError(f"timed out waiting for {what}\n{tails}")
            time.sleep(0.2)

    @staticmethod
    def _log_has(svc: Service, needle: str) -> bool:
        try:
            return needle in Path(svc.log).read_text(errors="replace")
        except OSError:
            return False

    # ---- keys
    def _l1_key(self, name: str) -> tuple[Path, str]:
        from eth_account import Account

        acct = Account.create()
        path = self._path("keys", f"{name}.l1")
        write_secret(path, "0x" + bytes(acct.key).hex())
        return path, acct.address

    def _ed25519(self, name: str) -> tuple[Path, str]:
        from rollup.keys import Keypair

        path = self._path("keys", f"{name}.key")
        kp = Keypair.generate()
        kp.save(path, overwrite=True)
        return path, "0x" + kp.pubkey.hex()

    # ---- start
    def start(self, cfg: LocalnetConfig) -> dict[str, Any]:
        """Start every service; on any failure stop what was started and raise."""
        cfg.validate()
        if self.running():
            raise LocalnetError(f"a local network is already running in {self.dir} "
                                "(flockchain localnet stop)")
        missing = prerequisites(cfg.pg_url)
        if missing:
            raise LocalnetError("missing: " + "; ".join(missing))
        for sub in ("logs", "keys"):
            shutil.rmtree(self._path(sub), ignore_errors=True)
            self._path(sub).mkdir(parents=True, exist_ok=True)
        for stale in ("deployment.json", STATE_FILE):
            self._path(stale).unlink(missing_ok=True)
        os.chmod(self._path("keys"), 0o700)
        self.state = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                 for k, v in asdict(cfg).items()},
                      "started_at": time.time(), "services": []}
        self._save()
        t0 = time.monotonic()
        try:
            self._start(cfg)
        except BaseException:
            self.stop()
            raise
        self.state["startup_s"] = round(time.monotonic() - t0, 1)
        self._save()
        return self.summary()

    def _start(self, cfg: LocalnetConfig) -> None:
        """Bring the services up in dependency order; each step records what it started
        in the state file, so ``stop`` can end a half-started network."""
        self._plan(cfg)
        w3 = self._start_l1(cfg)
        keys = self._fund_keys(cfg, w3)
        self._deploy(cfg, keys)
        self._start_node(cfg, keys["ed25519/sequencer"][0])
        daemons = self._start_daemons(cfg, keys)
        clients = self._start_clients(cfg, keys)
        self._wait_ready(cfg, daemons, clients)
        if cfg.create_task:
            self._create_task(cfg, keys)
        self._save()

    def _plan(self, cfg: LocalnetConfig) -> None:
        """Fresh databases, ports, the admin token; the URLs go into the state."""
        node_db = pg_url_for(cfg.pg_url, cfg.db_name, "psycopg")
        verifier_db = pg_url_for(cfg.pg_url, cfg.db_name + "_verifier", "psycopg")
        admin = pg_url_for(cfg.pg_url, urlsplit(cfg.pg_url).path.lstrip("/") or "postgres")
        create_database(admin, cfg.db_name)
        create_database(admin, cfg.db_name + "_verifier")
        ports = {"anvil": pick_port(cfg.anvil_port, "anvil", "--anvil-port"),
                 "node": pick_port(cfg.node_port, "the node", "--node-port"),
                 "verifier": pick_port(cfg.verifier_port, "the verifier", "--verifier-port")}
        write_secret(self._path("keys", "admin.token"), secrets.token_hex(16))
        self.state.update(l1=f"http://127.0.0.1:{ports['anvil']}",
                          node=f"http://127.0.0.1:{ports['node']}",
                          verifier=f"http://127.0.0.1:{ports['verifier']}",
                          ports=ports, node_db=node_db, verifier_db=verifier_db,
                          admin_url=admin, databases=[cfg.db_name, cfg.db_name + "_verifier"],
                          deployment=str(self._path("deployment.json")))
        self._save()

    def _start_l1(self, cfg: LocalnetConfig) -> Any:
        from web3 import Web3

        from devtools.l1 import ANVIL_HARDFORK, anvil_binary

        anvil = self._spawn("anvil", [str(anvil_binary()), "--host", "127.0.0.1", "--port",
                                      str(self.state["ports"]["anvil"]), "--accounts", "1",
                                      "--hardfork", ANVIL_HARDFORK, "--chain-id", "31337"])
        w3 = Web3(Web3.HTTPProvider(self.state["l1"], request_kwargs={"timeout": 10}))
        self._wait("anvil", lambda: w3.eth.block_number >= 0, [anvil], cfg.ready_timeout)
        return w3

    def _fund_keys(self, cfg: LocalnetConfig, w3: Any) -> dict[str, tuple[Path, str]]:
        """Every L1 and ed25519 key, L1 ones funded without transactions."""
        keys: dict[str, tuple[Path, str]] = {}
        for name in ("owner", "sequencer", "verifier", "task_owner"):
            keys[name] = self._l1_key(name)
        for i in range(cfg.clients):
            keys[f"client{i}"] = self._l1_key(f"client{i}")
        for _path, addr in keys.values():
            w3.provider.make_request("anvil_setBalance", [addr, hex(100 * 10**18)])
        self.state["l1_accounts"] = {n: a for n, (_p, a) in keys.items()}
        for name in ("sequencer", "aggregator", "genesis"):
            keys[f"ed25519/{name}"] = self._ed25519(name)
        self.state["sequencer_pubkey"] = keys["ed25519/sequencer"][1]
        self._save()
        return keys

    def _deploy(self, cfg: LocalnetConfig, keys: dict[str, tuple[Path, str]]) -> None:
        deployed = self._run_once("deploy", cli_argv(
            "deploy", "--l1", self.state["l1"], "--key-file", str(keys["owner"][0]),
            "--sequencer", keys["sequencer"][1], "--out", self.state["deployment"],
            "--challenge-period", str(cfg.challenge_period),
            "--bond-sequencer-key-file", str(keys["sequencer"][0]), "--force"),
            timeout=cfg.ready_timeout)
        self.state["contracts"] = {k: v for k, v in deployed.items()
                                   if k not in ("event", "file")}
        self._save()

    def _start_node(self, cfg: LocalnetConfig, sequencer_key: Path) -> None:
        import httpx

        node = self._spawn("node", cli_argv(
            "node", "--db", self.state["node_db"], "--host", "127.0.0.1", "--port",
            str(self.state["ports"]["node"]), "--chain-id", str(cfg.chain_id), "--block-time",
            str(cfg.block_time), "--key", str(sequencer_key),
            "--snapshot-interval", "50", "--log-level", "warning"),
            secret_env=["FLOCKCHAIN_ADMIN_TOKEN"])
        url = self.state["node"]
        self._wait("the node", lambda: httpx.get(f"{url}/v1/healthz", timeout=2)
                   .status_code == 200, [node], cfg.ready_timeout)

    def _common(self) -> list[str]:
        return ["--l1", self.state["l1"], "--deployment", self.state["deployment"]]

    def _start_daemons(self, cfg: LocalnetConfig, keys: dict[str, tuple[Path, str]]
                       ) -> tuple[Service, Service]:
        """The aggregator (posting as the sequencer) and the verifier."""
        agg = self._spawn("aggregator", cli_argv(
            "aggregator", "--node", self.state["node"], *self._common(), "--key-file",
            str(keys["ed25519/aggregator"][0]), "--l1-key-file", str(keys["sequencer"][0]),
            "--interval", "0.5", "--batch-every", str(cfg.batch_every)),
            secret_env=["FLOCKCHAIN_ADMIN_TOKEN"])
        ver = self._spawn("verifier", cli_argv(
            "verifier", "--node", self.state["node"], *self._common(), "--l1-key-file",
            str(keys["verifier"][0]), "--chain-id", str(cfg.chain_id), "--db",
            self.state["verifier_db"], "--port", str(self.state["ports"]["verifier"]),
            "--interval", "1"))
        return agg, ver

    def _start_clients(self, cfg: LocalnetConfig, keys: dict[str, tuple[Path, str]]
                       ) -> list[Service]:
        behaviours = list(cfg.attackers) + ["honest"] * (cfg.clients - len(cfg.attackers))
        clients = []
        self.state["clients"] = []
        for i, beh in enumerate(behaviours):
            key, pub = self._ed25519(f"client{i}")
            argv = cli_argv(
                "client", "--key", str(key), "--node", self.state["node"], "--name",
                f"client{i}", "--data", f"digits:dirichlet:alpha=0.5:client={i}:of="
                f"{cfg.clients}:seed={cfg.seed}",
                "--test-data", f"digits:voter:voter={i % 2}:of=2:seed={cfg.seed}",
                "--behaviour", beh, "--local-epochs", str(cfg.local_epochs), "--lr",
                str(cfg.lr), "--seed", str(cfg.seed * 100 + i), "--stake", *self._common(),
                "--l1-key-file", str(keys[f"client{i}"][0]))
            clients.append(self._spawn(f"client{i}", argv))
            self.state["clients"].append({"name": f"client{i}", "behaviour": beh,
                                          "pubkey": pub, "key": str(key),
                                          "l1_address": keys[f"client{i}"][1]})
        self._save()
        return clients

    def _wait_ready(self, cfg: LocalnetConfig, daemons: tuple[Service, Service],
                    clients: list[Service]) -> None:
        import httpx

        agg, ver = daemons
        url = self.state["verifier"]
        self._wait("the aggregator", lambda: self._log_has(agg, '"aggregator_started"'),
                   [agg], cfg.ready_timeout)
        self._wait("the verifier", lambda: httpx.get(f"{url}/healthz", timeout=2)
                   .status_code in (200, 503), [ver], cfg.ready_timeout)
        self._wait("the clients", lambda: all(self._log_has(c, '"client_started"')
                                              for c in clients), clients, cfg.ready_timeout)

    def _create_task(self, cfg: LocalnetConfig, keys: dict[str, tuple[Path, str]]) -> None:
        """A task on L1, with its genesis published on L2."""
        task = self._run_once("task", cli_argv(
            "task", "create", *self._common(), "--key-file", str(keys["task_owner"][0]),
            "--model", cfg.model, "--epochs", str(cfg.epochs), "--proposers",
            str(cfg.proposers), "--voters", str(cfg.voters), "--f", str(cfg.f),
            "--window", str(cfg.window), "--seed", str(cfg.seed), "--node", self.state["node"],
            "--genesis-key-file", str(keys["ed25519/genesis"][0])), timeout=cfg.ready_timeout)
        self.state["task"] = {k: v for k, v in task.items() if k != "event"}

    # ---- status
    def summary(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "l1": self.state.get("l1"), "node": self.state.get("node"),
            "verifier": self.state.get("verifier"), "node_db": self.state.get("node_db"),
            "deployment": self.state.get("deployment"), "task": self.state.get("task"),
            "startup_s": self.state.get("startup_s"),
            "services": {s.name: {"pid": s.pid, "running": s.alive(), "log": s.log}
                         for s in self.services},
        }

    def status(self) -> dict[str, Any]:
        """The summary plus live progress: L2 height and tasks, L1 batches, verifier."""
        import httpx

        out = self.summary()
        if not self.state:
            out["error"] = f"no local network in {self.dir}"
            return out
        with contextlib.suppress(Exception):
            h = httpx.get(f"{self.state['node']}/v1/healthz", timeout=2).json()
            tasks = httpx.get(f"{self.state['node']}/v1/tasks", timeout=2).json()["tasks"]
            out["l2"] = {"height": h.get("height"), "mempool": h.get("mempool"),
                         "tasks": [{k: t.get(k) for k in ("task_id", "status", "epoch",
                                                          "phase", "epochs_run")}
                                   for t in tasks]}
        with contextlib.suppress(Exception):
            out["l1_batches"] = self.l1_batches()
        with contextlib.suppress(Exception):
            out["verifier_health"] = httpx.get(f"{self.state['verifier']}/healthz",
                                               timeout=2).json()
        return out

    def web3(self) -> Any:
        from web3 import Web3

        return Web3(Web3.HTTPProvider(self.state["l1"], request_kwargs={"timeout": 10}))

    def deployment(self) -> Any:
        from bridge.contracts import Deployment

        return Deployment.load(self.state["deployment"])

    def l1_batches(self) -> dict[str, Any]:
        """How many batches L1 holds, and the latest final one."""
        from bridge.settlement import latest_final_batch

        w3, dep = self.web3(), self.deployment()
        sc = dep.contract(w3, "StateCommitment")
        n = sc.functions.nextIndex().call()
        last = sc.functions.batch(n - 1).call() if n else None
        return {"posted": n, "latest_final": latest_final_batch(w3, dep),
                "last_height": last[1] if last else None}

    def finalize(self) -> dict[str, Any]:
        """Move anvil's clock past the challenge period so every posted batch is final."""
        from devtools.l1 import advance_time

        period = int(self.state["config"]["challenge_period"])
        advance_time(self.web3(), period + 1)
        return self.l1_batches()

    # ---- stop
    def stop(self, timeout: float = 10.0, drop_db: bool = False) -> dict[str, str]:
        """SIGTERM every live service (newest first), SIGKILL what is left after
        ``timeout``; returns ``{service: outcome}``."""
        outcome = terminate(list(reversed(self.services)), timeout)
        if drop_db and self.state.get("admin_url"):
            for name in self.state.get("databases", []):
                with contextlib.suppress(Exception):
                    drop_database(self.state["admin_url"], name)
        if self.state:
            self.state["stopped_at"] = time.time()
            self._save()
        return outcome


