"""`pip install .` (no `fl` extra) runs the node and the verifier: torch and scikit-learn
are needed only by the FL clients (`flockchain client`, `task create`, `demo`).

A fresh venv per test run would cost minutes, so this runs the real code in a subprocess
where ``import torch`` / ``import sklearn`` fail (``sys.modules[name] = None``), as they do
without the extra: the whole CLI parser is built (every command registers without torch),
a node serves HTTP on SQLite over an embedded L1 deployment, and a verifier checks it. The
``no-torch`` contract in ``.importlinter`` is the static half of the same guarantee.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCKED = textwrap.dedent("""
    import sys
    for name in ("torch", "sklearn"):
        sys.modules[name] = None  # `import torch` now raises ImportError, as without [fl]
""")

NODE_AND_VERIFIER = BLOCKED + textwrap.dedent("""
    import contextlib, io, pathlib, tempfile

    import httpx
    from eth_account import Account

    from rollup.cli import build_parser, main

    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc
    for command in ("node", "verifier", "aggregator", "client", "task", "demo"):
        assert command in out.getvalue(), command
    build_parser().parse_args(["node", "--port", "0"])

    from bridge.deploy import DeployParams, bond_sequencer, deploy_all
    from bridge.l1 import send_value
    from bridge.poster import BatchPoster
    from bridge.verifier import Verifier
    from bridge.verifier_service import VerifierService
    from devtools.l1 import embedded_web3
    from rollup.config import NodeConfig
    from rollup.node import start_node
    from rollup.ports import InProcessPorts

    w3 = embedded_web3()
    owner, sequencer, verifier = (Account.create() for _ in range(3))
    for acct in (owner, sequencer, verifier):
        send_value(w3, w3.eth.accounts[0], acct.address, 10**19)
    dep = deploy_all(w3, owner, sequencer.address, DeployParams())
    bond_sequencer(w3, dep, sequencer)
    tmp = pathlib.Path(tempfile.mkdtemp())
    conf = NodeConfig(db_url=f"sqlite:///{tmp}/node.db", port=0, chain_id=7,
                      sequencer_key_file=tmp / "sequencer.key", log_level="warning")
    with start_node(conf) as node:
        assert httpx.get(node.url + "/v1/healthz").status_code == 200
        node.sequencer.produce_block()
        posted = BatchPoster(w3, dep, sequencer, InProcessPorts(node.sequencer)).post_pending()
        service = VerifierService(Verifier(w3, dep, [node.url], 7, verifier), None)
        outcomes = service.step()
        assert posted and outcomes == [(i, "ok") for i in posted], (posted, outcomes)
        assert service.healthy(), service.health()
    assert sys.modules["torch"] is None and sys.modules["sklearn"] is None
    print("OK")
""")

FL_COMMAND = BLOCKED + textwrap.dedent("""
    from rollup.cli import main
    main(["client", "--key", "k", "--node", "http://127.0.0.1:1", "--data", "digits:train"])
""")


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_node_and_verifier_run_without_torch_or_sklearn(tmp_path: Path) -> None:
    out = _run(NODE_AND_VERIFIER, tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    """The FL client does need torch: without it the command fails (so the test above
    would notice a node that started needing it)."""
    out = _run(FL_COMMAND, tmp_path)
    assert out.returncode != 0
    assert "torch" in out.stderr or "sklearn" in out.stderr, out.stderr
