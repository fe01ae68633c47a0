"""End to end: `flockchain demo --quick --json` and the verifier against a faulty sequencer.

Each demo run starts an embedded L1, deploys the contracts, runs a node on SQLite, stakes
13 clients (3 attackers), trains on non-IID digits, posts batches, waits out the
challenge period on L1, and settles slashes, rewards and the refund by Merkle proof.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devtools.demo import Demo, DemoConfig

pytestmark = pytest.mark.slow
CRUDE = {"sign_flip", "lazy", "replay"}


def _demo_json(tmp_path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "rollup.cli",
        "demo",
        "--quick",
        "--quiet",
        "--json",
        str(out),
        *extra,
    ]
    subprocess.run(cmd, check=True, timeout=300, env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    attacked = _demo_json(tmp_path_factory.mktemp("attacked"))
    honest = _demo_json(tmp_path_factory.mktemp("honest"), "--attackers", "none")
    return attacked, honest


def test_every_crude_attacker_slashed_on_l1_and_no_honest_client(reports):
    r, _ = reports
    clients = r["clients"]
    assert {c["behaviour"] for c in clients} >= CRUDE
    proposed = 0
    for c in clients:
        moved = c["l1_stake_before"] - c["l1_stake_after"]
        # L1 moved exactly what the rollup proved
        assert moved == c["cumulative_slashed"], c
        if c["behaviour"] in CRUDE:
            # the chain picks roles: an attacker only attacks when selected to propose
            as_proposer = [v for v in c["verdicts"] if v["role"] == "proposer"]
            if as_proposer:
                proposed += 1
                assert all(v["verdict"] in ("OUTLIER", "FREE_RIDER") for v in as_proposer), c
                assert moved > 0, f"{c['name']} ({c['behaviour']}) was not slashed on L1"
        else:
            assert moved == 0 and c["cumulative_slashed"] == 0, f"honest {c['name']} slashed"
            assert not any(
                v["verdict"] in ("OUTLIER", "FREE_RIDER", "DUPLICATE") for v in c["verdicts"]
            )
    assert proposed >= 2, "too few attackers were ever selected to propose"
    # 90 % of every slash went to the SlashTreasury (10 % to the caller)
    total = sum(c["cumulative_slashed"] for c in clients)
    assert r["slash_treasury_balance"] == sum(s["moved"] - s["moved"] // 10 for s in r["slashes"])
    assert sum(s["moved"] for s in r["slashes"]) == total


def test_rewards_claimed_refund_and_finality(reports):
    r, _ = reports
    for c in r["clients"]:
        assert c["reward_claimed"] == c["reward"], c  # claimed exactly cumulative_reward
    task = r["task"]
    assert task["status"] == "completed"
    assert r["refund"]["refund"] == int(task["escrow"]) - int(task["charged"])
    rewards = sum(c["reward"] for c in r["clients"])
    assert rewards + int(task["treasury"]) == int(task["charged"])
    assert r["batches"] and all(b["final"] for b in r["batches"])
    assert r["verifier"]["challenges"] == [] and r["verifier"]["verified"] == len(r["batches"])


def test_accuracy_within_two_points_of_all_honest(reports):
    attacked, honest = reports
    a = attacked["epochs"][-1]["test_accuracy_bps"]
    h = honest["epochs"][-1]["test_accuracy_bps"]
    assert a >= h - 200, (a, h)
    assert all(c["cumulative_slashed"] == 0 for c in honest["clients"])


def _faulty(fault: str) -> Demo:
    demo = Demo(DemoConfig.quick(fault=fault, quiet=True, max_epochs=1))
    demo.run(close=False)
    return demo


def test_wrong_root_is_challenged_never_final_and_governance_moves_bonds():
    from bridge.l1 import TxFailed, send

    demo = _faulty("wrong-root")
    try:
        w3, dep, acc = demo.w3, demo.deployment, demo.l1_accounts
        ch = demo.verifier.stats.challenges
        assert (
            ch
            and ch[0]["batch"] == 0
            and ch[0]["reason"].startswith(("wrong_state_root", "header_mismatch"))
        )
        sc = dep.contract(w3, "StateCommitment")
        assert not any(
            sc.functions.isFinal(i).call() for i in range(sc.functions.nextIndex().call())
        )
        assert demo.report["slashes"] == []
        # a slash proven against the challenged batch reverts
        proof = demo.ports.inner.account_proofs(0)[0]
        f = proof["fields"]
        sm = dep.contract(w3, "SlashingManager")
        call = sm.functions.slash(
            w3.to_checksum_address(f["l1_address"]),
            f["pubkey"],
            f["stake"],
            f["cumulative_slashed"] + 1,
            f["cumulative_reward"],
            0,
            proof["proof"],
        )
        with pytest.raises(TxFailed) as exc:
            send(w3, call, acc["aggregator"])
        assert exc.value.error == "BatchNotFinal"
        # governance: the root was wrong -> sequencer bond + challenge bond to the challenger
        bond, cbond = sc.functions.sequencerBond().call(), sc.functions.challengeBond().call()
        send(w3, sc.functions.resolveChallenge(0, True), acc["owner"])
        assert sc.functions.payouts(acc["verifier"].address).call() == bond + cbond
        assert sc.functions.nextIndex().call() == 0  # the batch and its successors deleted
    finally:
        demo.close()


def test_withheld_da_is_reported_then_challenged_before_the_window_closes():
    demo = _faulty("withhold-da")
    try:
        log = demo.report["verifier"]["log"]
        # first look: reported and retried; near the end of the window: challenged
        assert log[0] == [0, "waiting:data_unavailable"]
        assert [0, "challenged:data_unavailable"] in log
        assert demo.verifier.stats.da_failures >= 2
        sc = demo.deployment.contract(demo.w3, "StateCommitment")
        assert not sc.functions.isFinal(0).call()
    finally:
        demo.close()


def test_forged_deposit_is_challenged():
    demo = _faulty("forge-deposit")
    try:
        ch = demo.verifier.stats.challenges
        assert ch and ch[0]["reason"].startswith("forged_l1_action")
    finally:
        demo.close()
