"""Issue 4's integration path on anvil: stake on L1 → on L2 → flagged by the STF → batch
posted → after the challenge period the L1 stake drops by exactly the rollup's
cumulative_slashed (90/10 split); honest clients claim exactly cumulative_reward; the task
owner gets the unused escrow back."""

from __future__ import annotations

import os

import pytest

from devtools.demo import Demo, DemoConfig
from devtools.l1 import anvil_binary

pytestmark = [pytest.mark.slow, pytest.mark.anvil]


def test_full_settlement_on_anvil():
    if anvil_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("anvil binary missing in CI (make install runs npm ci)")
        pytest.skip("anvil not installed")
    r = Demo(DemoConfig.quick(l1="anvil", quiet=True, max_epochs=2)).run()
    slashed = [c for c in r["clients"] if c["cumulative_slashed"] > 0]
    assert slashed and all(c["behaviour"] != "honest" for c in slashed)
    for c in r["clients"]:
        assert c["l1_stake_before"] - c["l1_stake_after"] == c["cumulative_slashed"]
        assert c["reward_claimed"] == c["reward"]
    assert r["slash_treasury_balance"] == sum(s["moved"] - s["moved"] // 10 for s in r["slashes"])
    task = r["task"]
    assert r["refund"]["refund"] == int(task["escrow"]) - int(task["charged"])
    assert all(b["final"] for b in r["batches"]) and not r["verifier"]["challenges"]
