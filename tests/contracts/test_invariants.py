"""Issue 11: invariants of the L1 contracts over random sequences of stake / unbond /
withdraw / slash / claim / challenge / resolve (hypothesis stateful testing through web3
on eth-tester).

Invariants checked after every step:
* every contract holds at least what it owes: the registry exactly the live stakes, the
  StateCommitment its bond plus every bond and payout not yet collected plus the locked
  forfeits, the RewardManager every credited refund, the SlashingManager nothing;
* no stake leaves L1 while a dispute is open or while a slash proven against a final root
  is not settled (each withdraw attempt is checked against the model).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bridge import l1
from devtools import l1 as dev_l1

from .helpers import PARAMS, SLACK, AccountRec, Env, RollupState, pk
from .test_attacks import owed_by_commitment

STAKE = PARAMS.stake_amount
CH_BOND = PARAMS.challenge_bond


def _ok(fn, *args) -> bool:
    try:
        fn(*args)
    except (l1.TxFailed, *l1.REVERT_ERRORS):
        return False
    return True


class Settlement(RuleBasedStateMachine):
    env: Env  # set by the test (one deployment, each example between snapshot/revert)

    @initialize()
    def start(self) -> None:
        self.snap = dev_l1.snapshot(self.env.w3)
        self.slashed = {c: 0 for c in self.env.clients}  # rollup cumulative slash
        self.withdrawn: list[str] = []

    def teardown(self) -> None:
        dev_l1.revert(self.env.w3, self.snap)

    # ---- helpers
    def _rec(self, who: str) -> AccountRec:
        i = self.env.clients.index(who)
        return AccountRec(who, pk(i), STAKE, self.slashed[who])

    def _state(self) -> RollupState:
        recs = [self._rec(c) for c in self.env.clients
                if self.env.registry.functions.pubkeyOf(c).call() != b"\x00" * 32]
        return RollupState(accounts=recs, filler_accounts=1)

    # ---- rules
    @rule(i=st.integers(0, 3))
    def stake(self, i: int) -> None:
        who = self.env.clients[i]
        _ok(self.env.stake, who, pk(i))

    @rule(i=st.integers(0, 3))
    def unbond(self, i: int) -> None:
        _ok(self.env.tx, self.env.registry.functions.unbond(), self.env.clients[i])

    @rule(i=st.integers(0, 3), amount=st.integers(1, 2 * STAKE))
    def rollup_slashes(self, i: int, amount: int) -> None:
        """The rollup records a slash and posts a batch that finalizes; anyone relays it."""
        who = self.env.clients[i]
        if self.env.registry.functions.pubkeyOf(who).call() == b"\x00" * 32:
            return
        self.slashed[who] += amount
        state = self._state()
        if self.env.commitment.functions.pendingCount().call():
            return  # cannot finalize while disputed; the slash stays recorded on L2
        batch = self.env.publish(state)
        idx = [a.address for a in state.accounts].index(who)
        _ok(self.env.slash, self._rec(who), batch, state.account_proof(idx), self.env.relayer)

    @rule(i=st.integers(0, 3))
    def withdraw(self, i: int) -> None:
        who = self.env.clients[i]
        reg = self.env.registry.functions
        info = reg.stakeInfo(who).call()
        if info[2] != 2 or info[0] == 0:
            return
        unlock = info[1]
        if self.env.now() < unlock:
            self.env.advance(unlock - self.env.now() + 1)
        sc = self.env.commitment.functions
        state = self._state()
        proof_args: list = []
        if not sc.pendingCount().call():
            wait = unlock - PARAMS.challenge_period - self.env.now()
            if wait > 0:
                self.env.advance(wait + 1)
            batch = self.env.publish(state)
            idx = [a.address for a in state.accounts].index(who)
            rec = self._rec(who)
            proof_args = [rec.stake, rec.cumulative_slashed, 0, batch, state.account_proof(idx)]
        disputed = sc.pendingCount().call() > 0
        settled = self.env.slashing.functions.alreadySlashed(who).call() >= self.slashed[who]
        args = proof_args or [STAKE, self.slashed[who], 0, 0, []]
        done = _ok(self.env.tx, reg.withdraw(*args), who)
        # the property: no exit while a dispute is open or a proven slash is unsettled
        assert not (done and (disputed or not settled)), (disputed, settled)
        if done:
            self.withdrawn.append(who)

    @rule(wrong=st.booleans(), late=st.booleans())
    def dispute(self, wrong: bool, late: bool) -> None:
        """Someone challenges the latest batch; governance rules, or the deadline passes."""
        sc = self.env.commitment.functions
        self.env.bond()
        n = sc.nextIndex().call()
        if sc.pendingCount().call():
            return
        index = self.env.propose(self._state().root())
        if not _ok(self.env.tx, sc.challenge(index), self.env.challenger, CH_BOND):
            return
        if late:
            self.env.advance(PARAMS.resolution_window + SLACK)
            assert _ok(self.env.tx, sc.resolveByDefault(index), self.env.other)
        else:
            self.env.resolve(index, wrong)
        d = sc.disputeCount().call()
        _ok(self.env.tx, sc.claimChallenge(d), self.env.challenger)
        del n

    @rule()
    def claim_payouts(self) -> None:
        sc = self.env.commitment.functions
        for who in (self.env.challenger, self.env.other):
            if sc.payouts(who).call():
                self.env.tx(sc.claimPayout(), who)

    # ---- invariants
    @invariant()
    def contracts_hold_what_they_owe(self) -> None:
        env = self.env
        stakes = sum(env.registry.functions.stakeOf(c).call() for c in env.clients)
        assert env.balance(env.registry) == stakes
        assert env.balance(env.commitment) >= owed_by_commitment(env)
        assert env.balance(env.slashing) == 0
        refunds = env.rewards.functions.refunds(env.task_owner).call()
        assert env.balance(env.rewards) >= refunds


@pytest.mark.slow
def test_settlement_invariants(env: Env) -> None:
    if env.backend != "eth-tester":
        pytest.skip("hypothesis runs on the in-process chain (anvil: covered by the replays)")
    Settlement.env = env
    run = settings(max_examples=8, stateful_step_count=10, deadline=None,
                   suppress_health_check=list(HealthCheck))
    Settlement.TestCase.settings = run
    Settlement.TestCase().runTest()
