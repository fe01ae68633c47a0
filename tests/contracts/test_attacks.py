"""Issue 11: each audit finding on the L1 contracts, replayed as the attacker would, now
failing for the attacker (on eth-tester and, marked ``anvil``, on anvil)."""

from __future__ import annotations

from web3 import Web3

from bridge.deploy import deploy_contract

from .helpers import PARAMS, SLACK, AccountRec, Env, RollupState, TaskRec, pk, reverts

STAKE = PARAMS.stake_amount
SEQ_BOND = PARAMS.sequencer_bond
CH_BOND = PARAMS.challenge_bond
PERIOD = PARAMS.challenge_period


def root(n: int) -> bytes:
    return Web3.keccak(text=f"attack-root-{n}")


def owed_by_commitment(env: Env) -> int:
    """Wei StateCommitment still owes: the live bond, credited payouts, bonds in disputes
    not yet collected, and forfeited bonds (locked, never paid out)."""
    sc = env.commitment.functions
    owed = SEQ_BOND if sc.sequencerBonded().call() else 0
    people = {env.challenger, env.other, env.relayer, env.sequencer, env.owner, *env.clients}
    owed += sum(sc.payouts(p).call() for p in people)
    for d in range(1, sc.disputeCount().call() + 1):
        rec = sc.dispute(d).call()
        outcome, n, each = rec[4], rec[5], rec[6]
        pending = sum(1 for p in people if sc.joined(d, p).call() == 1)
        if outcome == 0:
            owed += n * CH_BOND
        elif outcome == 1:
            owed += pending * (CH_BOND + each)
        elif outcome in (3, 4):
            owed += pending * CH_BOND
    return owed + sc.forfeitedBonds().call()


# ------------------------------------------------------------------ F-01 bond double credit


def test_f01_two_upheld_disputes_take_one_bond(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    b1 = env.propose(root(1))
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    env.tx(sc.challenge(b1), env.other, CH_BOND)
    env.resolve(b1, True)  # takes the bond
    env.tx(sc.bond(), env.sequencer, SEQ_BOND)  # the sequencer bonds again (generation 2)
    env.resolve(b0, True)  # batch 0 was backed by generation 1: already taken
    got = env.collect(1, env.challenger) + env.collect(2, env.other)
    assert got == 2 * CH_BOND + SEQ_BOND  # was 2 * CH_BOND + 2 * SEQ_BOND
    # the new bond is intact and can leave once nothing is disputable
    assert sc.sequencerBonded().call()
    assert env.balance(env.commitment) == SEQ_BOND == owed_by_commitment(env)
    env.tx(sc.withdrawBond(), env.sequencer)
    assert env.balance(env.commitment) == 0


# ------------------------------------------------------------------ F-05 one challenge slot


def test_f05_sequencer_self_challenge_cannot_lock_out_honest_verifiers(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    accomplice = env.clients[0]
    env.tx(sc.challenge(b0), accomplice, CH_BOND)  # the sequencer's own address, first
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)  # honest verifier still gets in
    env.tx(sc.challenge(b0), env.other, CH_BOND)
    env.resolve(b0, True)
    # the reward is shared by everyone who was right: the accomplice gets 1/3, not all
    share = SEQ_BOND // 3
    assert env.collect(1, env.challenger) == CH_BOND + share
    assert env.collect(1, accomplice) == CH_BOND + share
    assert env.balance(env.commitment) == owed_by_commitment(env)


def test_f05_dismissed_dispute_can_be_reopened_in_the_window(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    env.tx(sc.challenge(b0), env.clients[0], CH_BOND)
    env.resolve(b0, False)  # dismissed (e.g. a captured governance)
    assert sc.batch(b0).call()[7] == 2
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)  # the fraud can be challenged again
    assert sc.batch(b0).call()[6:] == (2, 1)
    assert not sc.isFinal(b0).call()


# ------------------------------------------------------------------ F-06 no deadline


def test_f06_open_dispute_has_a_deadline_and_a_default(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    b1 = env.propose(root(1))
    env.tx(sc.challenge(b0), env.other, CH_BOND)  # 0.1 ETH griefing challenge
    opened = sc.dispute(1).call()[1]
    deadline = opened + PARAMS.resolution_window
    with reverts("DeadlineNotReached", b0, deadline):
        env.tx(sc.resolveByDefault(b0), env.relayer)
    env.advance(PARAMS.resolution_window + 1)
    with reverts("VerdictTooLate", b0, deadline):  # governance can no longer act
        env.tx(sc.proposeVerdict(b0, False), env.owner)
    receipt = env.tx(sc.resolveByDefault(b0), env.relayer)  # anyone
    assert env.events(env.commitment, "BatchesDeleted", receipt) == [
        {"fromIndex": b0, "toIndex": b1}]
    # default: nothing unproven finalizes, nobody is punished, the bond is free again
    assert sc.nextIndex().call() == 0 and sc.pendingCount().call() == 0
    assert sc.sequencerBonded().call()
    assert env.collect(1, env.other) == CH_BOND
    env.tx(sc.withdrawBond(), env.sequencer)  # no longer frozen
    assert env.balance(env.commitment) == 0


def test_f06_a_queued_verdict_wins_over_the_default(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    env.tx(sc.proposeVerdict(b0, True), env.owner)
    env.advance(PARAMS.resolution_window + 1)
    with reverts("DeadlineNotReached"):
        env.tx(sc.resolveByDefault(b0), env.relayer)
    env.tx(sc.executeVerdict(b0), env.relayer)
    assert env.collect(1, env.challenger) == CH_BOND + SEQ_BOND


# ------------------------------------------------------------------ F-07 owner powers


def test_f07_resolver_never_collects_forfeited_bonds(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    env.resolve(b0, False, executor=env.owner)
    assert sc.payouts(env.owner).call() == 0
    with reverts("NothingToCollect", 1, env.owner):
        env.tx(sc.claimChallenge(1), env.owner)
    assert sc.forfeitedBonds().call() == CH_BOND


def test_f07_no_renounce_and_two_step_ownership(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    with reverts("RenounceDisabled"):
        env.tx(sc.renounceOwnership(), env.owner)
    env.tx(sc.transferOwnership(env.other), env.owner)
    assert sc.owner().call() == env.owner  # nothing moves until accepted
    assert sc.pendingOwner().call() == env.other
    with reverts("OwnableUnauthorizedAccount", env.relayer):
        env.tx(sc.acceptOwnership(), env.relayer)
    env.tx(sc.acceptOwnership(), env.other)
    assert sc.owner().call() == env.other


def test_f07_verdict_is_timelocked(env: Env) -> None:
    sc = env.commitment.functions
    b0 = env.propose(root(0))
    env.tx(sc.challenge(b0), env.challenger, CH_BOND)
    receipt = env.tx(sc.proposeVerdict(b0, False), env.owner)
    [ev] = env.events(env.commitment, "VerdictQueued", receipt)
    assert ev["eta"] >= env.now() + PARAMS.resolution_delay - SLACK
    with reverts("VerdictNotReady", b0, ev["eta"]):
        env.tx(sc.executeVerdict(b0), env.owner)
    assert sc.pendingCount().call() == 1  # stays disputed during the delay


# ------------------------------------------------------------------ F-03 stake escape


def _slashed_leaf(env: Env, who: str, n: int, slashed: int) -> AccountRec:
    env.stake(who, pk(n))
    return AccountRec(who, pk(n), STAKE, slashed)


def test_f03_no_withdraw_while_a_dispute_is_open(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(0))
    env.tx(env.registry.functions.unbond(), alice)
    args = env.exit_args(alice)
    b = env.propose(root(9))
    env.tx(env.commitment.functions.challenge(b), env.other, CH_BOND)  # held open
    with reverts("ChallengesPending", 1):
        env.tx(env.registry.functions.withdraw(*args), alice)
    env.advance(PARAMS.resolution_window + 1)
    env.tx(env.commitment.functions.resolveByDefault(b), env.relayer)  # bounded by deadline
    env.tx(env.registry.functions.withdraw(*args), alice)


def test_f03_unsettled_slash_blocks_the_exit(env: Env) -> None:
    alice = env.clients[0]
    rec = _slashed_leaf(env, alice, 0, STAKE // 2)
    env.tx(env.registry.functions.unbond(), alice)
    args = env.exit_args(alice, rec)
    with reverts("SlashNotSettled", STAKE // 2, 0):
        env.tx(env.registry.functions.withdraw(*args), alice)
    # relaying the slash (anyone, or alice herself) unblocks the exit at the post-slash amount
    env.slash(rec, args[3], args[4], alice)
    receipt = env.tx(env.registry.functions.withdraw(*args), alice)
    assert env.events(env.registry, "Withdrawn", receipt)[0]["amount"] == STAKE // 2


def test_f03_exit_needs_a_recent_final_batch(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(0))
    rec = AccountRec(alice, pk(0), STAKE)
    state = RollupState(accounts=[rec], filler_accounts=1)
    old = env.publish(state)  # a final root from before the unbond: may miss slashes
    env.tx(env.registry.functions.unbond(), alice)
    env.advance(PARAMS.unbond_period + SLACK)  # posting outage: no batch since
    with reverts("BatchTooOld"):
        env.tx(env.registry.functions.withdraw(
            STAKE, 0, 0, old, state.account_proof(0)), alice)
    fresh = env.propose(state.root())  # a new batch, but not final yet
    with reverts("BatchNotFinal", fresh):
        env.tx(env.registry.functions.withdraw(STAKE, 0, 0, fresh, state.account_proof(0)),
               alice)
    with reverts("InvalidProof"):  # a forged leaf claiming no slash
        env.finalize()
        env.tx(env.registry.functions.withdraw(STAKE, 0, 1, fresh, state.account_proof(0)),
               alice)
    env.tx(env.registry.functions.withdraw(STAKE, 0, 0, fresh, state.account_proof(0)), alice)


# ------------------------------------------------------------------ F-04 zero-amount slash


def test_f04_zero_amount_slash_does_not_settle_debt(env: Env) -> None:
    alice = env.clients[0]
    env.stake(alice, pk(0))
    env.tx(env.registry.functions.unbond(), alice)
    env.withdraw(alice)  # stake is now 0
    rec = AccountRec(alice, pk(0), STAKE, STAKE // 4)
    state = RollupState(accounts=[rec])
    batch = env.publish(state)
    with reverts("NothingToTake", alice, STAKE // 4):  # the client tries it itself
        env.slash(rec, batch, state.account_proof(0), alice)
    assert env.slashing.functions.alreadySlashed(alice).call() == 0
    env.stake(alice, pk(0))  # re-stakes "clean"...
    env.slash(rec, batch, state.account_proof(0), env.relayer)  # ...the debt is still owed
    assert env.registry.functions.stakeOf(alice).call() == STAKE - STAKE // 4


# ------------------------------------------------------------------ F-13/14 relay incentive


def test_f13_self_relay_earns_nothing(env: Env) -> None:
    alice = env.clients[0]
    rec = _slashed_leaf(env, alice, 0, 10_000)
    state = RollupState(accounts=[rec])
    batch = env.publish(state)
    receipt = env.slash(rec, batch, state.account_proof(0), alice)
    [ev] = env.events(env.slashing, "Slashed", receipt)
    assert (ev["callerReward"], ev["toTreasury"]) == (0, 10_000)


def test_f14_slash_many_pays_the_relayer_once_and_skips_settled(env: Env) -> None:
    recs = [_slashed_leaf(env, c, i, (i + 1) * 10_000) for i, c in enumerate(env.clients)]
    state = RollupState(accounts=recs)
    batch = env.publish(state)
    env.slash(recs[0], batch, state.account_proof(0), env.other)  # front-run one of them
    items = [(*r.args(), batch, state.account_proof(i)) for i, r in enumerate(recs)]
    before = env.balance(env.relayer)
    receipt = env.tx(env.slashing.functions.slashMany(items), env.relayer)
    evs = env.events(env.slashing, "Slashed", receipt)
    assert [e["account"] for e in evs] == list(env.clients[1:])
    reward = sum(e["callerReward"] for e in evs)
    assert reward == sum((i + 1) * 1_000 for i in range(1, 4))
    from bridge import l1

    assert env.balance(env.relayer) == before + reward - l1.gas_cost(receipt)
    with reverts("NothingSettled"):
        env.tx(env.slashing.functions.slashMany(items), env.relayer)
    bad = list(items)
    bad[0] = (*recs[0].args()[:3], STAKE, 0, batch, state.account_proof(0))
    with reverts("InvalidProof"):
        env.tx(env.slashing.functions.slashMany(bad), env.relayer)


# ------------------------------------------------------------------ F-02 unencodable logs


def test_f02_task_fields_are_range_checked_on_l1(env: Env) -> None:
    rm = env.rewards.functions
    price = PARAMS.base_fee + PARAMS.fee_per_epoch
    spec = Web3.keccak(b"spec")
    with reverts("InvalidTargetAccuracy", 2**64):
        env.tx(rm.createTask(spec, 1, 2**64, b""), env.task_owner, price)
    with reverts("InvalidTargetAccuracy", 10_001):
        env.tx(rm.createTask(spec, 1, 10_001, b""), env.task_owner, price)
    with reverts("TaskParamsTooLong", 4097):
        env.tx(rm.createTask(spec, 1, 10_000, b"\x00" * 4097), env.task_owner, price)
    with reverts("InvalidMaxEpochs", 2**64):
        env.tx(rm.createTask(spec, 2**64, 10_000, b""), env.task_owner, price)
    env.tx(rm.createTask(spec, 1, 10_000, b"\x00" * 4096), env.task_owner, price)


# ------------------------------------------------------------------ F-10 refusing owner


def test_f10_owner_refusing_eth_strands_nothing_else(env: Env) -> None:
    owner = deploy_contract(env.w3, "test/Reenterer", env.owner)
    rm = env.rewards
    price = PARAMS.base_fee + 2 * PARAMS.fee_per_epoch
    env.tx(owner.functions.execute(rm.address, rm.encode_abi(
        "createTask", [Web3.keccak(b"s"), 2, 9000, b""])), env.owner, price)
    env.tx(owner.functions.setRejectPayments(True), env.owner)
    t = TaskRec(1, owner.address, 2 * PARAMS.fee_per_epoch, PARAMS.fee_per_epoch, 200, 1)
    state = RollupState(tasks=[t])
    batch = env.publish(state)
    treasury0 = env.balance(env.reward_treasury)
    env.refund(t, batch, state.task_proof(0), env.relayer)  # not blocked by the owner
    assert env.balance(env.reward_treasury) == treasury0 + 200  # treasury share moved
    assert rm.functions.refunds(owner.address).call() == t.escrow - t.charged


# ------------------------------------------------------------------ F-09 L1 inbox


def test_f09_every_bridge_log_is_counted_and_chained(env: Env) -> None:
    from eth_abi import encode

    reg, rm = env.registry.functions, env.rewards.functions
    assert (reg.inboxCount().call(), rm.inboxCount().call()) == (0, 0)
    alice = env.clients[0]
    env.stake(alice, pk(0))
    from .helpers import POP

    value = int.from_bytes(Web3.keccak(encode(["uint256", "bytes"], [STAKE, POP])), "big")
    h1 = Web3.keccak(encode(["bytes32", "uint256", "address", "bytes32", "uint256"],
                            [b"\x00" * 32, 1, alice, pk(0), value]))
    assert (reg.inboxCount().call(), reg.inboxHash().call()) == (1, h1)
    receipt = env.tx(reg.unbond(), alice)
    unlock = env.events(env.registry, "Unbonded", receipt)[0]["unlockTime"]
    h2 = Web3.keccak(encode(["bytes32", "uint256", "address", "bytes32", "uint256"],
                            [h1, 2, alice, pk(0), unlock]))
    assert (reg.inboxCount().call(), reg.inboxHash().call()) == (2, h2)
    tid = env.create_task(env.task_owner, 2, b"\x01\x02")
    h3 = Web3.keccak(encode(
        ["bytes32", "uint256", "address", "bytes32", "uint256", "uint256", "bytes32", "uint256"],
        [b"\x00" * 32, tid, env.task_owner, Web3.keccak(b"spec"), 2, 9000,
         Web3.keccak(b"\x01\x02"), 2 * PARAMS.fee_per_epoch]))
    assert (rm.inboxCount().call(), rm.inboxHash().call()) == (1, h3)


def test_f03_withdraw_stake_helper_follows_the_exit_rule(env: Env) -> None:
    from bridge.settlement import withdraw_stake

    alice = env.clients[0]
    rec = _slashed_leaf(env, alice, 0, STAKE // 10)
    env.tx(env.registry.functions.unbond(), alice)
    args = env.exit_args(alice, rec)
    proof = {"fields": {"l1_address": bytes.fromhex(alice[2:]), "stake": rec.stake,
                        "cumulative_slashed": rec.cumulative_slashed,
                        "cumulative_reward": rec.cumulative_reward}, "proof": args[4]}
    with reverts("SlashNotSettled", STAKE // 10, 0):
        withdraw_stake(env.w3, env.deployment, alice, proof, args[3])
    env.slash(rec, args[3], args[4], env.relayer)
    out = withdraw_stake(env.w3, env.deployment, alice, proof, args[3])
    assert out["paid"] == STAKE - STAKE // 10 and out["account"] == alice


# ------------------------------------------------------------------ selection randomness


def test_beacon_is_l1_randomness_rate_limited_and_counted(env: Env) -> None:
    reg = env.registry.functions
    receipt = env.tx(reg.postBeacon(), env.other)  # anyone
    [ev] = env.events(env.registry, "Beacon", receipt)
    block = env.w3.eth.get_block(receipt["blockNumber"])
    assert ev["number"] == 1
    if env.backend == "anvil":  # py-evm's dev chain has no RANDAO (prevrandao reads 0)
        assert ev["randomness"] == bytes(block["mixHash"])  # prevrandao
    assert (reg.beaconCount().call(), reg.lastBeaconBlock().call()) == (1, block["number"])
    assert reg.inboxCount().call() == 1
    nxt = block["number"] + 32
    with reverts("BeaconTooSoon", nxt):  # nobody can pick among many beacons
        env.tx(reg.postBeacon(), env.relayer)
    from devtools import l1 as dev_l1

    dev_l1.mine(env.w3, nxt - env.w3.eth.block_number)
    receipt = env.tx(reg.postBeacon(), env.relayer)
    assert env.events(env.registry, "Beacon", receipt)[0]["number"] == 2


# ------------------------------------------------------------------ F-12 forced inclusion


def test_f12_force_include_is_counted_chained_and_size_capped(env: Env) -> None:
    from eth_abi import encode

    reg = env.registry.functions
    action = b"\x82signed-action" * 10
    receipt = env.tx(reg.forceInclude(action), env.other)  # anyone may relay it
    [ev] = env.events(env.registry, "ForcedAction", receipt)
    assert (ev["number"], ev["sender"], ev["action"]) == (1, env.other, action)
    h1 = Web3.keccak(encode(["bytes32", "uint256", "address", "bytes32", "uint256"],
                            [b"\x00" * 32, 4, env.other, Web3.keccak(action), 1]))
    assert (reg.inboxCount().call(), reg.inboxHash().call(), reg.forcedCount().call()) == (
        1, h1, 1)
    cap = reg.MAX_FORCED_ACTION_BYTES().call()
    env.tx(reg.forceInclude(b"\x01" * cap), env.other)  # exactly the cap is fine
    with reverts("ForcedActionTooLong", cap + 1, cap):
        env.tx(reg.forceInclude(b"\x01" * (cap + 1)), env.other)
    with reverts("EmptyForcedAction"):
        env.tx(reg.forceInclude(b""), env.other)
    assert reg.inboxCount().call() == 2
