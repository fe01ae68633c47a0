"""Static checks of ``docker-compose.yml``, the ``Dockerfile`` and ``.dockerignore``.

Why static: no container engine runs where the tests run, yet a compose file rots
silently (a renamed flag, a volume one service forgot, an env var no code reads). Every
``flockchain`` command in the file is parsed by the real CLI parser, keys are checked the
way the commands will look them up, and URLs, ports, volumes, env and dependencies are
checked against each other.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from rollup.cli import build_parser
from rollup.commands.deploy import ADMIN_TOKEN_ENV, L1_KEY_ENV, key_from_args
from rollup.config import NodeConfig

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE = "flockchain:local"
EXPECTED = {"postgres", "anvil", "deploy", "node", "aggregator", "verifier", "task", "client"}
ONE_SHOT = {"deploy", "task"}
# FLOCKCHAIN_* variables read by something other than NodeConfig
CLI_ENV = {L1_KEY_ENV, ADMIN_TOKEN_ENV, ADMIN_TOKEN_ENV + "_FILE", "FLOCKCHAIN_CLIENT_SEED",
           "FLOCKCHAIN_ANVIL", "FLOCKCHAIN_ARTIFACTS_DIR"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def _interpolate(v: str) -> str:
    """Compose's ``${VAR:-default}`` with VAR unset (what a fresh checkout gets)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", v)


def _parse(svc: dict[str, Any]) -> argparse.Namespace:
    cmd = svc["command"]
    assert isinstance(cmd, list) and cmd[0] == "flockchain", cmd
    try:
        return build_parser().parse_args(cmd[1:])
    except SystemExit as exc:
        raise AssertionError(f"`{' '.join(cmd)}` does not parse (exit {exc.code})") from None


def _flockchain_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items()
            if isinstance(s.get("command"), list) and s["command"][0] == "flockchain"}


def _flag(cmd: list[str], flag: str) -> str | None:
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def _listen_ports(services: dict[str, Any]) -> dict[str, int]:
    node_env = _env(services["node"])
    return {
        "postgres": 5432,
        "anvil": int(_flag(services["anvil"]["command"], "--port") or 8545),
        "node": int(node_env.get("FLOCKCHAIN_PORT", NodeConfig.model_fields["port"].default)),
        "verifier": int(_flag(services["verifier"]["command"], "--port") or 8710),
    }


def _mounts(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, writable) per volume entry."""
    out = []
    for v in svc.get("volumes", []):
        parts = v.split(":")
        out.append((parts[0], parts[1], not (len(parts) > 2 and "ro" in parts[2].split(","))))
    return out


def _volume_of(svc: dict[str, Any], path: str) -> tuple[str, bool] | None:
    best = None
    for src, target, rw in _mounts(svc):
        if (path == target or path.startswith(target.rstrip("/") + "/")) and (
                best is None or len(target) > len(best[2])):
            best = (src, rw, target)
    return (best[0], best[1]) if best else None


def _deps(svc: dict[str, Any]) -> dict[str, str]:
    d = svc.get("depends_on") or {}
    if isinstance(d, list):
        return dict.fromkeys(d, "service_started")
    return {k: (v or {}).get("condition", "service_started") for k, v in d.items()}


def _closure(services: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(_deps(services[name]))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(_deps(services[n]))
    return seen


# --------------------------------------------------------------------------- services


def test_services_and_images(services: dict[str, Any], compose: dict[str, Any]) -> None:
    assert set(services) == EXPECTED
    assert services["postgres"]["image"].startswith("postgres:")
    for name, svc in services.items():
        if name == "postgres":
            continue
        assert svc["image"] == IMAGE, name
        assert svc.get("build") in (".", {"context": "."}), name
    assert set(_flockchain_services(services)) == EXPECTED - {"postgres", "anvil"}
    assert services["anvil"]["command"][0] == "anvil"


def test_every_command_parses_with_the_real_cli(services: dict[str, Any]) -> None:
    expected = {"deploy": "deploy", "node": "node", "aggregator": "aggregator",
                "verifier": "verifier", "task": "task", "client": "client"}
    for name, svc in _flockchain_services(services).items():
        args = _parse(svc)
        assert args.command == expected[name], name
        assert callable(args.func)


def test_l1_keys_and_admin_token_resolve(services: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command finds its keys exactly where it will look at run time."""
    from eth_account import Account

    flags = {"deploy": "--key", "aggregator": "--l1-key", "verifier": "--l1-key",
             "task": "--key"}
    addresses = {}
    for name, flag in flags.items():
        svc = services[name]
        args = _parse(svc)
        for k in [k for k in os.environ if k.startswith("FLOCKCHAIN_")]:
            monkeypatch.delenv(k)
        for k, v in _env(svc).items():
            monkeypatch.setenv(k, v)
        try:
            key = key_from_args(args, flag)
        except SystemExit:
            raise AssertionError(f"{name}: no L1 key ({flag}, file or ${L1_KEY_ENV})") from None
        addresses[name] = Account.from_key(key).address
    assert len(set(addresses.values())) == len(addresses), "services share an L1 account"
    seq = _flag(services["deploy"]["command"], "--sequencer")
    assert seq is not None and seq.lower() == addresses["aggregator"].lower(), \
        "deploy --sequencer must be the aggregator's L1 account (it posts batches)"
    assert "--bond" in services["aggregator"]["command"] or \
        "--bond-sequencer-key" in services["deploy"]["command"], "nobody bonds the sequencer"
    # no admin token in the file: the node creates one in a volume the aggregator reads
    for name, svc in services.items():
        assert ADMIN_TOKEN_ENV not in _env(svc), f"{name}: a token in the compose file"
        assert "--admin-token" not in (svc.get("command") or []), f"{name}: token on argv"
    node_file = _env(services["node"]).get(ADMIN_TOKEN_ENV + "_FILE")
    agg_file = _env(services["aggregator"]).get(ADMIN_TOKEN_ENV + "_FILE")
    assert node_file and node_file == agg_file
    node_vol = _volume_of(services["node"], node_file)
    agg_vol = _volume_of(services["aggregator"], agg_file)
    assert node_vol is not None and node_vol[1], "the node must be able to create the token"
    assert agg_vol is not None and agg_vol[0] == node_vol[0]


def test_client_can_stake_and_reads_valid_data_specs(services: dict[str, Any]) -> None:
    from federated.commands.client import resolve_auto
    from federated.data import DataSpec

    svc = services["client"]
    args = _parse(svc)
    assert args.stake and (args.dev_fund is not None or args.l1_key or args.l1_key_file)
    for spec in (args.data, args.test_data):
        for pk in (b"\x00" * 32, b"\xff" * 32, bytes(range(32))):
            DataSpec.parse(resolve_auto(spec, pk))
    replicas = svc["deploy"]["replicas"]
    task = _parse(services["task"])
    need = 2 * task.f + 3 + (1 if task.voters else 0)
    assert task.proposers + task.voters <= replicas and need <= replicas, \
        "not enough client replicas to open an epoch"


def test_node_environment_maps_to_node_config(services: dict[str, Any]) -> None:
    fields = NodeConfig.model_fields
    env = _env(services["node"])
    for key in env:
        assert key.startswith("FLOCKCHAIN_"), key
        assert key.removeprefix("FLOCKCHAIN_").lower() in fields, f"{key}: no NodeConfig field"
    prefix = {k: v for k, v in env.items()}
    cfg = NodeConfig(**{k.removeprefix("FLOCKCHAIN_").lower(): v for k, v in prefix.items()})
    assert cfg.host == "0.0.0.0", "the node must listen on all interfaces in a container"
    assert cfg.admin_token is None and cfg.admin_token_file is not None
    assert cfg.admin_remote, "the aggregator reaches the admin API over the compose network"
    db = urlsplit(cfg.db_url)
    pg = _env(services["postgres"])
    assert db.scheme == "postgresql+psycopg"
    assert db.hostname == "postgres" and (db.port or 5432) == 5432
    assert db.username == pg["POSTGRES_USER"] and db.password == pg["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == pg["POSTGRES_DB"]
    for path in (str(cfg.sequencer_key_file), str(cfg.blob_dir)):
        vol = _volume_of(services["node"], path)
        assert vol is not None and vol[1], f"{path} must live on a writable volume"


def test_other_environment_is_read_by_the_cli(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if name in ("postgres", "node"):
            continue
        for key in _env(svc):
            assert key in CLI_ENV, f"{name}: nothing reads {key}"


def test_urls_point_at_services_that_listen_there(services: dict[str, Any]) -> None:
    listen = _listen_ports(services)
    for name, svc in _flockchain_services(services).items():
        for value in svc["command"]:
            if not value.startswith("http"):
                continue
            u = urlsplit(value)
            assert u.hostname in listen, f"{name}: {value} is not a service"
            assert u.port == listen[u.hostname], f"{name}: {value} but it listens on " \
                f"{listen[u.hostname]}"
            assert u.hostname in _closure(services, name), \
                f"{name} uses {u.hostname} without depending on it"
    assert _flag(services["anvil"]["command"], "--host") == "0.0.0.0"
    assert _flag(services["verifier"]["command"], "--host") == "0.0.0.0"
    chain = _env(services["node"])["FLOCKCHAIN_CHAIN_ID"]
    assert _flag(services["verifier"]["command"], "--chain-id") == chain


def test_published_ports(services: dict[str, Any]) -> None:
    listen = _listen_ports(services)
    host_ports = []
    for name, svc in services.items():
        for p in svc.get("ports", []):
            assert isinstance(p, str), f"{name}: quote port mappings ({p!r})"
            parts = p.split(":")
            host, container = (parts[-2], parts[-1]) if len(parts) > 1 else (p, p)
            assert int(container) == listen[name], f"{name}: publishes {container}"
            host_ports.append(int(host))
            if name == "node":  # the admin API must not be reachable from outside the host
                assert len(parts) == 3 and parts[0] == "127.0.0.1", p
    assert len(host_ports) == len(set(host_ports))


def test_dependencies_and_healthchecks(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        long_running = name not in ONE_SHOT
        assert svc.get("restart") == ("unless-stopped" if long_running else "no"), name
        if long_running:
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        for dep, cond in _deps(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond in ("service_started", "service_healthy",
                            "service_completed_successfully")
            if cond == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
            if cond == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{dep} never completes"
        assert name not in _closure(services, name), f"dependency cycle through {name}"
    for name in ("aggregator", "client"):  # heartbeat file == the file the check reads
        svc = services[name]
        test = svc["healthcheck"]["test"]
        assert _flag(svc["command"], "--heartbeat") == test[test.index("--file") + 1]


def test_volumes(services: dict[str, Any], compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in services.items():
        for src, target, _rw in _mounts(svc):
            assert not src.startswith((".", "/")), f"{name}: bind mount {src}"
            assert src in declared, f"{name}: volume {src} is not declared"
            assert target.startswith("/")
            used.add(src)
    assert used == declared, f"unused volumes: {declared - used}"
    out = _flag(services["deploy"]["command"], "--out")
    assert out is not None
    shared = _volume_of(services["deploy"], out)
    assert shared is not None and shared[1], "deploy must write --out to a writable volume"
    for name, svc in _flockchain_services(services).items():
        dep = _flag(svc["command"], "--deployment")
        if dep is not None:
            assert dep == out, name
            assert _volume_of(svc, dep) is not None and _volume_of(svc, dep)[0] == shared[0], \
                f"{name} cannot see the deployment file"
    for name, flag in (("aggregator", "--key-file"), ("verifier", "--db")):
        value = _flag(services[name]["command"], flag)
        assert value is not None
        path = value.removeprefix("sqlite:///")
        vol = _volume_of(services[name], path)
        assert vol is not None and vol[1], f"{name} {flag} {value} is not on a writable volume"
    anvil_state = _flag(services["anvil"]["command"], "--state")
    assert anvil_state and _volume_of(services["anvil"], anvil_state)


# --------------------------------------------------------------------------- image


def _healthcheck_script() -> str:
    text = DOCKERFILE.read_text()
    m = re.search(r"COPY --chmod=755 <<'PY' /usr/local/bin/healthcheck\n(.*?)\nPY\n", text,
                  re.S)
    assert m, "the Dockerfile must install /usr/local/bin/healthcheck"
    return m.group(1)


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms[-1] == "python:3.11-slim", "runtime image"
    assert "requirements.lock" in text and re.search(r"pip install .*-r \S*requirements.lock",
                                                     text)
    assert "pip install --no-deps -e ." in text
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", text, re.M)
    for pkg in packages:
        name = pkg.rstrip("*")
        assert name in copied, f"the image lacks the {name} package"
    assert "contracts/out" in copied, "contract artifacts"
    for path in copied:
        if not path.startswith("<<"):
            assert (ROOT / path).exists(), f"COPY {path}: no such path"
    assert "package-lock.json" in text and "@foundry-rs/anvil-linux-amd64" in text
    assert re.search(r"^CMD \[\"flockchain\"", text, re.M)
    ignored = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")]
    for path in [*copied, "package.json", "package-lock.json", "requirements.lock"]:
        top = path.split("/")[0]
        assert top not in ignored and path not in ignored, f".dockerignore drops {path}"
    for must in (".venv", "node_modules", ".git", ".localnet"):
        assert must in ignored


def test_healthcheck_helper(tmp_path: Path) -> None:
    script = tmp_path / "healthcheck"
    script.write_text(_healthcheck_script())
    beat = tmp_path / "alive"
    beat.touch()

    def run(*args: str) -> int:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              timeout=30).returncode

    assert run("--file", str(beat), "--max-age", "30") == 0
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert run("--file", str(beat), "--max-age", "30") == 1
    assert run("--file", str(tmp_path / "missing")) == 1
    assert run("http://127.0.0.1:9/") == 1  # nothing listens on the discard port
