"""L2 → L1: post batches of blocks to StateCommitment (SPEC §10).

Why it reconciles with the chain first: after a crash the sequencer may have sent
``proposeBatch`` without recording it. The contract's ``nextIndex`` and stored root tell
which of our unposted batches are already there; those are marked posted instead of sent
twice, and a root mismatch is an error a human must look at, never papered over.
"""

from __future__ import annotations

import logging

from web3 import Web3

from bridge.contracts import Deployment
from bridge.l1 import Sender, send
from bridge.ports import BatchHeader, BatchSource

log = logging.getLogger(__name__)


class BatchConflict(RuntimeError):
    """L1 holds a different root for a batch index we consider ours."""


class BatchPoster:
    def __init__(self, w3: Web3, deployment: Deployment, sequencer: Sender,
                 source: BatchSource) -> None:
        self.w3 = w3
        self.sender = sequencer
        self.source = source
        self.sc = deployment.contract(w3, "StateCommitment")

    def _post(self, b: BatchHeader) -> bytes:
        call = self.sc.functions.proposeBatch(
            b.index, b.first_height, b.last_height, b.last_block_hash, b.state_root, b.da_hash
        )
        receipt = send(self.w3, call, self.sender)
        return bytes(receipt["transactionHash"])

    def post_pending(self, cut: bool = True) -> list[int]:
        """Cut a batch over new blocks (if asked) and post every unposted one."""
        if cut:
            self.source.cut_batch()
        posted = []
        for b in self.source.unposted_batches():
            on_chain_next = self.sc.functions.nextIndex().call()
            if b.index < on_chain_next:
                root = bytes(self.sc.functions.stateRoot(b.index).call())
                if root != b.state_root:
                    raise BatchConflict(f"batch {b.index}: L1 has {root.hex()}, we have "
                                        f"{b.state_root.hex()}")
                self.source.mark_posted(b.index, b"")
                continue
            if b.index > on_chain_next:
                raise BatchConflict(f"batch {b.index} but L1 expects {on_chain_next}")
            tx = self._post(b)
            self.source.mark_posted(b.index, tx)
            posted.append(b.index)
            log.info("batch %d (heights %d-%d) posted", b.index, b.first_height, b.last_height)
        return posted
