"""Copy-on-write state: children never reach their parents, rollback is exact, and a block
applied to a copy leaves the original state (and root) untouched."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state_machine import transition
from state_machine.cow import CowMap, SealedError, clone_record
from state_machine.transition import Block, Rejected, apply_block
from tests.stf_harness import Client, Harness

ops = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 1000)), max_size=40)


@settings(max_examples=60)
@given(st.lists(ops, min_size=1, max_size=12))
def test_cowmap_generations_behave_like_dict_copies(generations):
    """Each generation is a child of the previous one; every earlier generation must
    still read exactly as the dict it was (values, order, length)."""
    m: CowMap[int, int] = CowMap()
    models: list[tuple[CowMap[int, int], dict[int, int]]] = []
    model: dict[int, int] = {}
    for gen in generations:
        m = m.child()
        model = dict(model)
        for k, v in gen:
            m[k] = v
            model[k] = v
        models.append((m, model))
        m.seal()
    for cm, md in models:
        assert list(cm) == list(md) and len(cm) == len(md)
        assert dict(cm.items()) == md and all(cm[k] == v for k, v in md.items())


def test_clone_on_access_never_reaches_the_parent_and_rollback_is_exact():
    class Rec:
        def __init__(self) -> None:
            self.x, self.log = 0, []

    parent: CowMap[str, Rec] = CowMap({"a": Rec()}, clone_record)
    parent.seal()
    child = parent.child()
    child["a"].x = 5
    child["a"].log.append(1)
    assert parent["a"].x == 0 and parent["a"].log == []
    child.begin()
    child["a"].x = 9
    child["b"] = Rec()
    child.rollback()
    assert child["a"].x == 5 and "b" not in child and len(child) == 1
    with pytest.raises(SealedError):
        parent["c"] = Rec()


def test_rejected_action_is_rolled_back_even_if_a_handler_mutated_first(monkeypatch):
    """Defence in depth: a handler that mutates and then raises changes nothing."""
    h = Harness()
    c = Client.make("alice")
    h.block(h.deposit(c))
    base = h.state
    before = base.state_root()

    def bad(state, sa, body):
        state.accounts[c.pubkey].stake = 1
        state.touch_account(c.pubkey)
        state.treasury_total += 5
        raise Rejected("invalid_body", "mutated first")

    monkeypatch.setitem(transition._HANDLERS, "l1_deposit", bad)
    action = h.deposit(Client.make("bob"))
    new, receipts = apply_block(base, Block(base.height + 1, h.parent, base.timestamp, [action]))
    assert not receipts[0].applied
    empty, _ = apply_block(base, Block(base.height + 1, h.parent, base.timestamp, []))
    assert new.state_root() == empty.state_root()
    assert base.state_root() == before and base.accounts[c.pubkey].stake != 1


def test_branching_from_every_state_of_the_recorded_chain_leaves_parents_untouched():
    """Apply each recorded block twice to the same parent: same root both times, and the
    parent (shared, copy-on-write) still has its own root afterwards."""
    import msgpack

    from state_machine.actions import decode_signed
    from state_machine.transition import GENESIS_PARENT, execute_block
    from tests.state_machine.test_recorded_chain import FIXTURE, fixture_genesis

    chain = msgpack.unpackb(FIXTURE.read_bytes(), raw=False)
    state, parent = fixture_genesis(chain), GENESIS_PARENT
    for rec in chain["blocks"]:
        block = Block(rec["height"], parent, rec["timestamp"],
                      [decode_signed(raw) for raw in rec["actions"]])
        before = state.state_root()
        first = execute_block(state, block, rec["state_root"], rec["block_hash"])
        second = execute_block(state, block, rec["state_root"], rec["block_hash"])
        assert state.state_root() == before
        assert first.state_root == second.state_root
        state, parent = first.state, first.hash


def test_get_hands_out_what_getitem_would():
    """CowMap.get (no exception on a miss) must clone exactly when ``m[k]`` clones, and
    journal the same way, on sealed, writable and journaling maps."""
    class Rec:
        def __init__(self, v: int) -> None:
            self.v = v
            self.xs: list[int] = []

    def make() -> CowMap[str, Rec]:
        parent: CowMap[str, Rec] = CowMap({"a": Rec(1), "b": Rec(2)}, clone=clone_record)
        parent.seal()
        return parent

    sealed = make()
    assert sealed.get("a") is sealed["a"] and sealed.get("zz", 7) == 7
    for journaling in (False, True):
        via_get, via_item = make().child(), make().child()
        if journaling:
            via_get.begin()
            via_item.begin()
        for k in ("a", "a", "b", "missing"):
            got = via_get.get(k)
            want = via_item[k] if k in via_item else None
            assert (got is None) == (want is None)
            if got is not None:
                got.xs.append(1)
                want.xs.append(1)
        assert [r.xs for r in via_get.values()] == [r.xs for r in via_item.values()]
        assert via_get.own_keys() == via_item.own_keys() == ["a", "b"]
        if journaling:
            via_get.rollback()
            via_item.rollback()
            assert [r.xs for r in via_get.values()] == [r.xs for r in via_item.values()] == [
                [], []]
