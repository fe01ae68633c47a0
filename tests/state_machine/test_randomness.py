"""Issue 11: selection seeds from an L1 beacon, which the sequencer cannot grind.

The attack: with the v1 seed ``keccak256(state_root_before_block || task || epoch)`` the
sequencer reorders the actions before the opening block until its own keys are selected.
Once a beacon is applied the seed no longer depends on that root."""

from __future__ import annotations

import numpy as np

from state_machine.actions import BeaconBody, system_action
from state_machine.randomness import beacon_seed, epoch_seed, legacy_seed
from tests.stf_harness import CHAIN_ID, Client, Harness, default_params


def _beacon(h: Harness, number: int, randomness: bytes):
    h.l1_block += 1
    body = BeaconBody(number, randomness, h.l1_block, 0, b"\x77" * 32)
    return system_action("l1_beacon", CHAIN_ID, h.system_nonce, body)


def _open_epoch(h: Harness, grind: int) -> bytes:
    """Stake 10 clients, create a task, publish genesis from client ``grind`` (the
    sequencer's free choice of what precedes the opening: a different pre-root); returns
    the opened epoch's seed."""
    clients = [Client.make(f"c{i}") for i in range(10)]
    for c in clients:
        [r] = h.block(h.deposit(c))
        assert r.applied
    genesis = np.zeros(4, dtype=np.int32)
    [r] = h.block(h.create_task(1, default_params(4, genesis)))
    [r] = h.block(h.genesis(clients[grind], 1, genesis))
    assert r.applied, r
    h.until_phase_changes(1)
    return h.state.epochs[(1, 0)].seed


def test_without_a_beacon_the_seed_is_v1_and_depends_on_the_root():
    seeds = {_open_epoch(Harness(), grind) for grind in (0, 1, 2)}
    assert len(seeds) == 3  # what the sequencer could grind


def test_with_a_beacon_reordering_cannot_change_the_seed():
    seeds = set()
    for grind in (0, 1, 2):
        h = Harness()
        [r] = h.block(_beacon(h, 1, b"\xab" * 32))
        assert r.applied, r
        h.system_nonce += 1
        seeds.add(_open_epoch(h, grind))
    assert seeds == {beacon_seed(b"\xab" * 32, 1, 1, 0)}


def test_beacons_are_consecutive_and_committed_in_the_root():
    h = Harness()
    [r] = h.block(_beacon(h, 2, b"\x01" * 32))  # skipping beacon 1
    assert (r.applied, r.reason) == (False, "l1_out_of_order")
    assert h.state.beacon[0] == 0
    [r] = h.block(_beacon(h, 1, b"\x01" * 32))
    assert r.applied and h.state.beacon == (1, b"\x01" * 32)
    other = h.state.copy()
    other.beacon = (1, b"\x02" * 32)  # a sequencer claiming other randomness
    assert other.meta_root() != h.state.meta_root()
    other.beacon = (0, b"\x00" * 32)  # no beacon: the v1 meta root
    assert other.meta_root() != h.state.meta_root()


def test_epoch_seed_rules():
    h = Harness()
    assert epoch_seed(h.state, b"\x01" * 32, 3, 4) == legacy_seed(b"\x01" * 32, 3, 4)
    h.state.beacon = (5, b"\x09" * 32)
    assert epoch_seed(h.state, b"\x01" * 32, 3, 4) == epoch_seed(h.state, b"\x02" * 32, 3, 4)
    assert epoch_seed(h.state, b"\x01" * 32, 3, 4) != epoch_seed(h.state, b"\x01" * 32, 3, 5)
