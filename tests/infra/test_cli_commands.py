"""The operator commands' command lines: ``--help`` works, bad arguments fail clearly.

Why in-process: ``rollup.cli.main`` is what the console script runs; calling it directly
keeps these tests fast (no web3/torch import for argument errors). One subprocess run
checks the module entry point the local network uses (``python -m rollup.cli``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from federated.commands.client import resolve_auto
from rollup.cli import build_parser, main
from rollup.commands.deploy import private_key, wei

KEY = "0x" + "11" * 32
DEP = ["--deployment", "/nonexistent/deployment.json"]
L1 = ["--l1", "http://127.0.0.1:9"]  # the discard port: nothing answers
NODE = ["--node", "http://127.0.0.1:9"]

HELP = [
    ["deploy"], ["aggregator"], ["client"], ["verifier"], ["claim"], ["force-include"],
    ["task", "create"],
    ["localnet", "start"], ["localnet", "stop"], ["localnet", "status"],
    ["localnet", "finalize"],
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("FLOCKCHAIN_L1_KEY", "FLOCKCHAIN_ADMIN_TOKEN", "FLOCKCHAIN_CLIENT_SEED"):
        monkeypatch.delenv(k, raising=False)


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI expecting failure; returns (exit code, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    assert code != 0, f"{argv} succeeded"
    return code, err


@pytest.mark.parametrize("cmd", HELP, ids=lambda c: " ".join(c))
def test_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: flockchain {' '.join(cmd)}")


def test_module_entry_point() -> None:
    r = subprocess.run([sys.executable, "-m", "rollup.cli", "verifier", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--chain-id" in r.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["deploy", "--l1", "localhost:8545", "--key", KEY, "--sequencer", "0x" + "00" * 20,
      "--out", "d.json"], "expected an http:// or https:// URL"),
    (["deploy", *L1, "--key", "0x1234", "--sequencer", "0x" + "00" * 20, "--out", "d.json"],
     "argument --key: expected a 32-byte hex private key"),
    (["deploy", *L1, "--key", KEY, "--sequencer", "nobody", "--out", "d.json"],
     "argument --sequencer: expected a 0x-prefixed 20-byte hex address"),
    (["deploy", *L1, "--key", KEY, "--sequencer", "0x" + "00" * 20, "--out", "d.json",
      "--stake-amount", "lots"], "argument --stake-amount"),
    (["deploy", *L1, "--key", KEY, "--key-file", "k", "--sequencer", "0x" + "00" * 20,
      "--out", "d.json"], "not allowed with argument"),
    (["deploy", *L1, "--sequencer", "0x" + "00" * 20, "--out", "d.json"],
     "a private key is required: --key, --key-file or $FLOCKCHAIN_L1_KEY"),
    (["deploy", *L1, "--key", KEY, "--sequencer", "0x" + "00" * 20, "--out", "d.json",
      "--force", "--reuse"], "--force and --reuse contradict"),
    (["deploy", *L1, "--key", KEY, "--sequencer", "0x" + "00" * 20, "--out", "d.json",
      "--bond-sequencer-key", "0x" + "22" * 32], ", not --sequencer 0x0000"),
    (["aggregator", *NODE, *L1, *DEP, "--key-file", "a.key", "--l1-key", KEY],
     "--admin-token (or $FLOCKCHAIN_ADMIN_TOKEN) is required"),
    (["aggregator", *NODE, *L1, *DEP, "--key-file", "a.key", "--admin-token", "t"],
     "a private key is required: --l1-key"),
    (["aggregator", *NODE, *L1, *DEP, "--admin-token", "t", "--l1-key", KEY],
     "the following arguments are required: --key-file"),
    (["aggregator", *NODE, *L1, *DEP, "--key-file", "a", "--admin-token", "t",
      "--l1-key", KEY, "--interval", "0"], "argument --interval: must be > 0"),
    (["client", "--key", "c.key", *NODE, "--data", "digits:train", "--behaviour", "evil"],
     "unknown --behaviour 'evil'"),
    (["client", "--key", "c.key", *NODE, "--data", "digits:train", "--stake"],
     "--stake needs --l1 and --deployment"),
    (["client", "--key", "c.key", *NODE, "--data", "digits:train", "--dev-fund"],
     "--dev-fund only makes sense with --stake"),
    (["client", "--key", "c.key", *NODE, "--data", "digits:train", "--param", "x"],
     "--param 'x': expected NAME=NUMBER"),
    (["client", "--key", "c.key", *NODE, "--role", "boss", "--data", "digits:train"],
     "argument --role: invalid choice"),
    (["verifier", *L1, *NODE, *DEP, "--l1-key", KEY, "--chain-id", "1", "--db",
      "mysql://x"], "--db must be a sqlite:/// or postgresql:// URL"),
    (["verifier", *L1, *NODE, *DEP, "--l1-key", KEY], "required: --chain-id"),
    (["verifier", *L1, *NODE, *DEP, "--l1-key", KEY, "--chain-id", "-1"],
     "argument --chain-id: must be >= 0"),
    (["claim", *NODE, *L1, *DEP, "--l1-key", KEY],
     "one of the arguments --key-file --refund is required"),
    (["claim", *NODE, *L1, *DEP, "--l1-key", KEY, "--key-file", "k", "--refund", "1"],
     "not allowed with argument"),
    (["claim", *NODE, *L1, *DEP, "--l1-key", KEY, "--key-file", "/nonexistent/k"],
     "--key-file /nonexistent/k"),
    (["claim", *NODE, *L1, *DEP, "--l1-key-file", "/nonexistent/l1", "--refund", "1"],
     "--l1-key-file: cannot read /nonexistent/l1"),
    (["task", "create", *L1, *DEP, "--key", KEY, "--epochs", "2", "--proposers", "4",
      "--f", "1"], "--proposers must be >= 2f + 3 = 5"),
    (["task", "create", *L1, *DEP, "--key", KEY, "--epochs", "0"],
     "argument --epochs: must be >= 1"),
    (["task", "create", *L1, *DEP, "--key", KEY, "--epochs", "1", "--model", "gpt"],
     "argument --model: invalid choice"),
    (["task", "create", *L1, *DEP, "--key", KEY, "--epochs", "1", "--genesis-key-file", "g"],
     "--genesis-key-file needs --node"),
    (["task", "create", *L1, *DEP, "--key", KEY, "--epochs", "1", "--require-protection"],
     "--window 40 is below 14685 blocks"),
    (["localnet", "start", "--attackers", "honest,nope"], "unknown behaviour(s) nope"),
    (["localnet", "start", "--node-port", "70000"], "--node-port must be <= 65535"),
    (["localnet", "frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments(argv: list[str], message: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _fail(argv, capsys)
    assert code == 2, err
    assert message in err, err
    assert "usage: flockchain" in err  # argparse style: usage line, then the error


def test_bad_key_file_content(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "l1.key"
    f.write_text("not a key\n")
    code, err = _fail(["claim", *NODE, *L1, *DEP, "--l1-key-file", str(f), "--refund", "1"],
                      capsys)
    assert code == 2 and "expected a 32-byte hex private key" in err


def test_env_key_is_validated(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLOCKCHAIN_L1_KEY", "garbage")
    code, err = _fail(["claim", *NODE, *L1, *DEP, "--refund", "1"], capsys)
    assert code == 2 and "$FLOCKCHAIN_L1_KEY: expected a 32-byte hex" in err


def test_unreachable_l1_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _fail(["deploy", *L1, "--key", KEY, "--sequencer", "0x" + "00" * 20,
                       "--out", "/nonexistent/d.json", "--wait", "0.2"], capsys)
    assert code == 1
    assert err.startswith("flockchain deploy: L1 RPC http://127.0.0.1:9 does not answer")
    assert "Traceback" not in err


def test_localnet_status_without_a_network(tmp_path: object,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["localnet", "status", "--dir", str(tmp_path)]) == 1
    assert "no local network" in capsys.readouterr().out
    assert main(["localnet", "stop", "--dir", str(tmp_path)]) == 0


# --------------------------------------------------------------------------- parsers


def test_wei_units() -> None:
    assert wei("0.1ether") == 10**17
    assert wei("5 gwei") == 5 * 10**9
    assert wei("1e18") == 10**18
    assert wei("1_000") == 1000
    for bad in ("-1", "0.5", "1.5wei", "ten", "1parsec"):
        with pytest.raises(argparse.ArgumentTypeError):
            wei(bad)


def test_private_key_normalised() -> None:
    assert private_key("AB" * 32 + "\n") == "0x" + "ab" * 32
    with pytest.raises(argparse.ArgumentTypeError):
        private_key("0x" + "ab" * 31)


def test_resolve_auto() -> None:
    pk = (7).to_bytes(32, "big")
    assert resolve_auto("digits:iid:client=auto:of=4", pk) == "digits:iid:client=3:of=4"
    assert resolve_auto("digits:voter:voter=auto:of=2:seed=1", pk) == \
        "digits:voter:voter=1:of=2:seed=1"
    assert resolve_auto("digits:train", pk) == "digits:train"
    with pytest.raises(ValueError):
        resolve_auto("digits:iid:client=auto", pk)


def test_every_command_module_registers_cheaply() -> None:
    """Building the parser must not import web3 or torch (``flockchain node`` starts fast)."""
    code = ("import sys; from rollup.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('web3', 'torch', 'sklearn') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {"aggregator", "client", "deploy", "verifier", "claim", "localnet", "task"} <= set(
        build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_client_lists_behaviours_without_other_arguments(
        capsys: pytest.CaptureFixture[str]) -> None:
    from federated.attacks import ATTACKS

    with pytest.raises(SystemExit) as exc:
        main(["client", "--list-behaviours"])
    assert exc.value.code == 0
    listed = [ln.split("\t")[0] for ln in capsys.readouterr().out.splitlines()]
    assert listed == list(ATTACKS)
