"""Independent verifier (SPEC §10): re-execute every posted batch, challenge wrong roots.

Why it trusts nothing but L1 and its own STF: it reads each batch header from
StateCommitment, fetches the batch's data from any node it is given, checks the bytes
against ``da_hash``, checks every system action against the L1 log it names, re-executes
the blocks on its own state and compares the last block hash and state root. Any
mismatch, or data still unavailable when the challenge window is about to close, is
challenged with the verifier's bond.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from web3 import Web3

from bridge.contracts import Deployment
from bridge.l1 import Sender, latest_timestamp, send
from bridge.watcher import L1Watcher
from state_machine.actions import ActionError, decode_signed
from state_machine.crypto import keccak256
from state_machine.da import decode_da, replay_da
from state_machine.state import State
from state_machine.transition import GENESIS_PARENT, ChainMismatch, genesis_state

log = logging.getLogger(__name__)


@dataclass
class VerifierStats:
    verified_batches: int = 0
    verified_height: int = 0
    challenges: list[dict[str, Any]] = field(default_factory=list)
    da_failures: int = 0
    last_error: str = ""

    def metrics(self) -> str:
        return "\n".join(
            [
                f"flockchain_verifier_batches_verified {self.verified_batches}",
                f"flockchain_verifier_height {self.verified_height}",
                f"flockchain_verifier_challenges_total {len(self.challenges)}",
                f"flockchain_verifier_da_failures_total {self.da_failures}",
                "",
            ]
        )


class _Checkpoint:
    """Verified state after a batch: where to resume if L1 later rewinds."""

    def __init__(self, state: State, parent: bytes, root: bytes) -> None:
        self.state, self.parent, self.root = state, parent, root


class Verifier:
    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        node_urls: list[str],
        chain_id: int,
        key: Sender,
        da_grace_seconds: int = 60,
        http: httpx.Client | None = None,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.node_urls = node_urls
        self.key = key
        self.sc = deployment.contract(w3, "StateCommitment")
        self.l1 = L1Watcher(w3, deployment, sink=None)  # type: ignore[arg-type]
        self.http = http or httpx.Client(timeout=30)
        self.da_grace = da_grace_seconds
        self.genesis = _Checkpoint(genesis_state(chain_id), GENESIS_PARENT, b"")
        self.checkpoints: dict[int, _Checkpoint] = {}
        self.challenged: set[int] = set()
        self.stats = VerifierStats()

    # ---- data ----
    def fetch_da(self, index: int, expected: bytes) -> bytes | None:
        """The batch payload from the first node that serves bytes matching ``expected``."""
        for url in self.node_urls:
            try:
                r = self.http.get(f"{url.rstrip('/')}/v1/da/{index}")
            except httpx.HTTPError as exc:
                self.stats.last_error = f"{url}: {exc}"
                continue
            if r.status_code == 200 and keccak256(r.content) == expected:
                return r.content
            self.stats.last_error = f"{url}: DA for batch {index} unavailable or wrong"
        return None

    def _system_ok(self, sa) -> bool:
        """The system action equals the L1 log at the position it names."""
        body = sa.action.body
        for ev in self.l1.fetch(body.l1_block, body.l1_block):
            if ev.log_index == body.log_index:
                return ev.typ == sa.action.type and ev.body == body
        return False

    # ---- one batch ----
    def _base(self, index: int) -> _Checkpoint:
        return self.checkpoints[index - 1] if index > 0 else self.genesis

    def check_batch(self, index: int) -> str:
        """Verify batch ``index``: 'ok', 'challenged:<why>' or 'waiting:<why>'."""
        b = self.sc.functions.batch(index).call()
        first, last, last_hash, root, dah = b[0], b[1], bytes(b[2]), bytes(b[3]), bytes(b[4])
        payload = self.fetch_da(index, dah)
        if payload is None:
            self.stats.da_failures += 1
            deadline = self.sc.functions.challengeDeadline(index).call()
            if latest_timestamp(self.w3) + self.da_grace >= deadline:
                return self.challenge(index, "data_unavailable")
            return "waiting:data_unavailable"
        try:
            da = decode_da(payload)
            blocks = da["blocks"]
            bidx = int(da["batch_index"])
        except (ValueError, KeyError, TypeError) as exc:
            return self.challenge(index, f"malformed_da: {exc}")
        base = self._base(index)
        heights = [blk["height"] for blk in blocks]
        if bidx != index or not blocks or heights != list(range(first, last + 1)) or (
            first != base.state.height + 1
        ):
            return self.challenge(index, "da_does_not_match_header")
        parent = base.parent
        for blk in blocks:
            if blk["parent_hash"] != parent:
                return self.challenge(index, f"broken_parent_link at height {blk['height']}")
            parent = blk["block_hash"]
            for raw in blk["actions"]:
                try:
                    sa = decode_signed(raw)
                except ActionError:
                    continue  # recorded as rejected by the STF; re-execution covers it
                if sa.action.is_system and not self._system_ok(sa):
                    return self.challenge(index, f"forged_l1_action at height {blk['height']}")
        try:
            result = replay_da(base.state, da)
        except ChainMismatch as exc:
            return self.challenge(index, f"header_mismatch: {exc}")
        if result.last_block_hash != last_hash or result.state_root != root:
            return self.challenge(index, "wrong_state_root")
        self.checkpoints[index] = _Checkpoint(result.state, result.last_block_hash, root)
        self.stats.verified_batches = len(self.checkpoints)
        self.stats.verified_height = last
        return "ok"

    def challenge(self, index: int, why: str) -> str:
        if index in self.challenged:
            return f"challenged:{why}"
        bond = self.sc.functions.challengeBond().call()
        try:
            receipt = send(self.w3, self.sc.functions.challenge(index), self.key, value=bond)
        except Exception as exc:  # the window closed or someone else challenged first
            self.stats.last_error = f"challenge {index} failed: {exc}"
            log.error("challenge of batch %d failed: %s", index, exc)
            return f"challenge_failed:{why}"
        self.challenged.add(index)
        self.stats.challenges.append(
            {"batch": index, "reason": why, "tx": bytes(receipt["transactionHash"]).hex()}
        )
        log.warning("challenged batch %d: %s", index, why)
        return f"challenged:{why}"

    # ---- loop ----
    def step(self) -> list[tuple[int, str]]:
        """Check every posted batch not yet verified; returns (index, outcome) pairs."""
        n = self.sc.functions.nextIndex().call()
        # L1 rewound (a challenged batch was deleted): forget what is no longer there
        for i in [i for i in self.checkpoints if i >= n]:
            del self.checkpoints[i]
        for i in list(self.checkpoints):
            if bytes(self.sc.functions.stateRoot(i).call()) != self.checkpoints[i].root:
                for j in [j for j in self.checkpoints if j >= i]:
                    del self.checkpoints[j]
        self.challenged = {i for i in self.challenged if i < n}
        out = []
        i = max(self.checkpoints, default=-1) + 1
        while i < n:
            if i in self.challenged:
                break  # successors build on a state we dispute
            outcome = self.check_batch(i)
            out.append((i, outcome))
            if outcome != "ok":
                break
            i += 1
        return out
