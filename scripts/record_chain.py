"""Record a chain through the STF as a replay fixture: ``tests/fixtures/chain_v1.msgpack``
(protocol 1 chain, ``--protocol 1``) ... ``chain_v5.msgpack`` (protocol 5, the default).

Why: refactors of the STF, the state representation or block execution must not change a
single root. The fixture holds every block's actions as signed wire bytes plus the
state root and block hash the code of the day produced; ``tests/state_machine/
test_recorded_chain.py`` replays it. Re-record only on a deliberate protocol change, and
say so in ``docs/protocol.md`` (the fixture's ``protocol`` field names the version).

Scenario: 14 staked clients, two tasks (one with a committee), honest proposers plus
sign-flip, zero, replay and Gaussian-noise attackers (protocol 5 adds a stale-copy free-rider
revealing a 1 %-jittered copy of a victim's past update), an absent proposer, rejected
actions (bad nonce, wrong window), an unbond, 3 epochs each. The same scenario is recorded
under each chain protocol version (``--protocol``, ``state_machine.constants``); a fixture
records its version as ``protocol_version`` (absent: 1, recorded before versions existed).
Never overwrite a committed fixture with a different one: ``--out`` writes elsewhere, so
``--protocol 1 --out /tmp/x`` must reproduce ``chain_v1.msgpack`` byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgpack
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from stf_harness import Client, Harness, default_params  # noqa: E402

from state_machine.actions import UnbondBody  # noqa: E402
from state_machine.constants import (  # noqa: E402
    CURRENT_PROTOCOL,
    PROTOCOL_BOUND_COMMITMENTS,
    PROTOCOL_CHUNK_ROOT_ONLY,
    PROTOCOL_FRESH_PAST,
    PROTOCOL_PACED_WINDOWS,
    PROTOCOL_V1,
)
from state_machine.transition import genesis_state  # noqa: E402

PROTOCOL = "v2-verdicts"
FIXTURES = ROOT / "tests" / "fixtures"
OUT = {PROTOCOL_V1: FIXTURES / "chain_v1.msgpack",
       PROTOCOL_BOUND_COMMITMENTS: FIXTURES / "chain_v2.msgpack",
       PROTOCOL_PACED_WINDOWS: FIXTURES / "chain_v3.msgpack",
       PROTOCOL_CHUNK_ROOT_ONLY: FIXTURES / "chain_v4.msgpack",
       PROTOCOL_FRESH_PAST: FIXTURES / "chain_v5.msgpack"}
D = 512


def _deltas(rng: np.random.Generator, selected: list[bytes], prev: np.ndarray | None,
            stale: np.ndarray | None = None) -> dict:
    """One epoch's updates by proposer. ``stale`` (protocol 5: the public past update of
    last epoch's proposer 5, or None): proposer 2 reveals a 1 %-jittered copy of it, and so
    that someone is paid at all (the freshness gate then decides the copy's pay), the noise
    attacker is honest and the sign flip unscaled. Earlier protocols keep the scenario they
    were recorded with (``stale`` None: the same draws)."""
    base = rng.normal(300, 50, D)
    out = {}
    for i, pk in enumerate(selected):
        honest = np.clip(base + rng.normal(0, 150, D), -32768, 32767).astype(np.int16)
        kind = i % 7
        if stale is not None and kind == 2:
            rms = float(np.sqrt(np.mean(stale.astype(np.float64) ** 2)))
            out[pk] = np.clip(stale + rng.normal(0, 0.01 * rms, D), -32768, 32767).astype(np.int16)
        elif kind == 1:
            scale = 1 if stale is not None else 2
            out[pk] = (-honest.astype(np.int32) * scale).clip(-32768, 32767).astype(np.int16)
        elif kind == 3:
            out[pk] = np.zeros(D, dtype=np.int16)
        elif kind == 4 and prev is not None:
            out[pk] = prev.astype(np.int16)
        elif kind == 5 and stale is None:
            out[pk] = rng.normal(0, 2000, D).clip(-32768, 32767).astype(np.int16)
        elif kind == 6 and i == len(selected) - 1:
            out[pk] = None  # absent
        else:
            out[pk] = honest
    return out


def _selected(h: Harness, task_id: int, role: str) -> list[bytes]:
    ep = h.state.epochs[(task_id, h.state.tasks[task_id].epoch)]
    return list(ep.proposers if role == "proposers" else ep.voters)


def _wait(h: Harness, task_ids: list[int]) -> None:
    """Empty blocks until every task has left its current phase (deadlines close them)."""
    before = {t: (h.state.tasks[t].phase, h.state.tasks[t].epoch) for t in task_ids}
    for _ in range(20):
        if all((h.state.tasks[t].phase, h.state.tasks[t].epoch) != before[t] for t in task_ids):
            return
        h.block()


def _blob_task(h: Harness, task_id: int) -> bool:
    """Protocol 4 records task 2's updates as root-addressed blobs (v2 reveals named by
    their chunk root); earlier protocols keep the scenario they were recorded with."""
    return h.state.protocol >= PROTOCOL_CHUNK_ROOT_ONLY and task_id == 2


def _commit(h: Harness):  # type: ignore[no-untyped-def]
    return lambda c, t, e, d: (h.commit_blob if _blob_task(h, t) else h.commit)(c, t, e, d)


def _reveal(h: Harness, task_id: int):  # type: ignore[no-untyped-def]
    return h.reveal_blob if _blob_task(h, task_id) else h.reveal


def _run_epochs(h: Harness, by_pk: dict, task_ids: list[int], rng, prev: dict) -> None:
    """One epoch of every task in ``task_ids``, in lockstep so no window expires unused."""
    epoch = {t: h.state.tasks[t].epoch for t in task_ids}
    fresh_past = h.state.protocol >= PROTOCOL_FRESH_PAST
    deltas = {t: _deltas(rng, _selected(h, t, "proposers"), prev.get(t),
                         prev.get((t, "victim")) if fresh_past else None) for t in task_ids}
    acting = {t: [pk for pk, d in deltas[t].items() if d is not None] for t in task_ids}
    commits = [_commit(h)(by_pk[pk], t, epoch[t], deltas[t][pk]) for t in task_ids
               for pk in acting[t]]
    stranger = by_pk[acting[task_ids[0]][0]]
    h.block(*commits, h.advance(stranger, task_ids[0], epoch[task_ids[0]] + 5))  # rejected
    _wait(h, task_ids)
    h.block(*[_reveal(h, t)(by_pk[pk], t, epoch[t], deltas[t][pk]) for t in task_ids
              for pk in acting[t]])
    _wait(h, task_ids)
    voting = [t for t in task_ids if h.state.tasks[t].phase == "vote_commit"]
    votes = {t: {pk: (7000 + 100 * i, 6500) for i, pk in enumerate(_selected(h, t, "voters"))}
             for t in voting}
    if voting:
        h.block(*[h.commit_vote(by_pk[pk], t, epoch[t], *v) for t in voting
                  for pk, v in votes[t].items()])
        _wait(h, voting)
        h.block(*[h.reveal_vote(by_pk[pk], t, epoch[t], *v) for t in voting
                  for pk, v in votes[t].items()])
        _wait(h, voting)
    for t in task_ids:
        honest = [d for d in deltas[t].values() if d is not None]
        prev[t] = honest[0] if honest else prev.get(t)
        if fresh_past and len(deltas[t]) > 5:  # the stale copier's victim next epoch
            prev[(t, "victim")] = list(deltas[t].values())[5]


def record(protocol: int = CURRENT_PROTOCOL) -> dict:
    rng = np.random.default_rng(20261201)
    h = Harness(state=genesis_state(7, protocol))
    blocks: list[dict] = []
    original_block = h.block

    def recording_block(*actions):
        receipts = original_block(*actions)
        blocks.append({
            "height": h.state.height,
            "timestamp": 1_700_000_000 + h.state.height - 1,
            "actions": [a.encode() for a in actions],
            "state_root": h.state.state_root(),
            "block_hash": h.parent,
            "applied": [r.applied for r in receipts],
        })
        return receipts

    h.block = recording_block  # type: ignore[method-assign]
    clients = [Client.make(f"rec{i}") for i in range(14)]
    by_pk = {c.pubkey: c for c in clients}
    g = np.zeros(D, dtype=np.int32)
    p1 = default_params(D, g, proposers=7, f=1)
    p2 = default_params(D, g, proposers=7, f=1, voters=3)
    h.block(*[h.deposit(c) for c in clients], h.create_task(1, p1), h.create_task(2, p2))
    h.block(h.genesis(clients[0], 1, g), h.genesis(clients[1], 2, g))
    h.block()
    prev: dict = {}
    for _ in range(3):
        running = [t for t in (1, 2) if h.state.tasks[t].phase == "update_commit"]
        if running:
            _run_epochs(h, by_pk, running, rng, prev)
    for _ in range(4):  # deadlines with nobody acting
        h.block()
    h.l1_block += 1
    unbond = UnbondBody(clients[13].address, clients[13].pubkey, 2_000_000_000, h.l1_block, 0,
                        b"\x55" * 32)
    h.block(h._sys("l1_unbond", unbond))
    chain = {"protocol": PROTOCOL, "chain_id": 7, "blocks": blocks}
    if h.blobs:  # v2 update bytes (the verifier recomputes each root from them)
        chain["blobs"] = sorted(bytes(vb.data) for vb in h.blobs.values())
    if protocol != PROTOCOL_V1:  # the v1 fixture predates the field and stays byte-identical
        chain["protocol_version"] = protocol
    return chain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", type=int, choices=sorted(OUT), default=CURRENT_PROTOCOL,
                    help="chain protocol version to record under")
    ap.add_argument("--out", type=Path, help="write here instead of the fixture")
    args = ap.parse_args()
    chain = record(args.protocol)
    out = args.out or OUT[args.protocol]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(msgpack.packb(chain, use_bin_type=True))
    print(f"{out}: protocol {args.protocol}, {len(chain['blocks'])} blocks, "
          f"final root {chain['blocks'][-1]['state_root'].hex()}")


if __name__ == "__main__":
    main()
