"""Gas of the settlement paths against a realistic 1,000-account state (depth-10 proofs).

Run with ``-s`` to see the figures; the bound is generous on purpose (regressions, not tuning).
"""

from __future__ import annotations

import pytest
from web3 import Web3

from .helpers import PARAMS, AccountRec, Env, RollupState, TaskRec, pk

N_ACCOUNTS = 1_000
GAS_BOUND = 200_000


def test_gas_slash_and_claim_1000_accounts(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    gas: dict[str, int] = {}
    alice = env.clients[0]
    gas["stake"] = env.stake(alice, pk(0))["gasUsed"]
    tid = env.create_task(env.task_owner, 10)
    gas["createTask"] = 0  # filled below from a second task (warm counters)
    receipt = env.tx(
        env.rewards.functions.createTask(Web3.keccak(b"spec"), 10, 9000, b"\x80" * 64),
        env.task_owner,
        PARAMS.base_fee + 10 * PARAMS.fee_per_epoch,
    )
    gas["createTask"] = receipt["gasUsed"]

    me = AccountRec(alice, pk(0), PARAMS.stake_amount, PARAMS.stake_amount // 10, 10**15)
    task = TaskRec(
        tid, env.task_owner, 10 * PARAMS.fee_per_epoch, 4 * PARAMS.fee_per_epoch, 8 * 10**14, 1
    )
    # The real account sits in the middle of 999 other leaves.
    others = [
        AccountRec(Web3.to_checksum_address(Web3.keccak(i)[:20]), pk(10_000 + i), 1, 0, 0)
        for i in range(N_ACCOUNTS - 1)
    ]
    pos = 777
    accounts = [*others[:pos], me, *others[pos:]]
    state = RollupState(accounts, tasks=[TaskRec(99, env.other, 1, 0, 0, 1), task])
    proof = state.account_proof(pos)
    assert len(proof) == 10 + 3

    env.bond()
    sc = env.commitment.functions
    receipt = env.tx(
        sc.proposeBatch(0, 1, 100, Web3.keccak(b"b"), state.root(), Web3.keccak(b"da")),
        env.sequencer,
    )
    gas["proposeBatch"] = receipt["gasUsed"]
    env.finalize()

    gas["slash"] = env.slash(me, 0, proof, env.relayer)["gasUsed"]
    gas["claim"] = env.claim(me, 0, proof, env.relayer)["gasUsed"]
    gas["refund"] = env.refund(task, 0, state.task_proof(1), env.relayer)["gasUsed"]
    # a forced commit (a signed commit_update is 231 bytes on the wire) and the size cap,
    # after a first forced action (the first ever pays the counter's zero-to-one store)
    force = env.registry.functions.forceInclude
    gas["forceInclude_first"] = env.tx(force(b"\x85" * 231), alice)["gasUsed"]
    gas["forceInclude"] = env.tx(force(b"\x85" * 231), alice)["gasUsed"]
    cap = env.registry.functions.MAX_FORCED_ACTION_BYTES().call()
    gas["forceInclude_max"] = env.tx(force(b"\x85" * cap), alice)["gasUsed"]

    with capsys.disabled():
        print(f"\n[gas/{env.backend}] {N_ACCOUNTS} accounts, proof {len(proof)} words: {gas}")
    for name in ("slash", "claim", "refund", "forceInclude"):
        assert gas[name] < GAS_BOUND, (name, gas[name])
