"""Sequencer: mempool, durable acks, block production, recovery and batches over SQL.

Public API (see ``sequencer.sequencer.Sequencer``)::

    store = Store("sqlite:///data/chain.db")          # or postgresql+psycopg://...
    seq = Sequencer(store, key_seed, SequencerConfig(chain_id=7)).start()
    ack = seq.submit(raw_wire_bytes)                   # signed client action
    ack = seq.submit_l1_event("l1_deposit", body)      # bridge: system action, nonce assigned
    info = seq.produce_block()                         # manual (produce_blocks=False)
    batch = seq.make_batch(); seq.mark_posted(batch.idx, tx_hash)
    seq.close()
"""

from sequencer.errors import ChainMismatch, RecoveryError, SubmitError
from sequencer.sequencer import (
    Ack,
    Batch,
    BlockInfo,
    Sequencer,
    SequencerConfig,
    SequencerHooks,
    ack_message,
    verify_ack,
)
from sequencer.store import Store

__all__ = [
    "Ack",
    "Batch",
    "BlockInfo",
    "ChainMismatch",
    "RecoveryError",
    "Sequencer",
    "SequencerConfig",
    "SequencerHooks",
    "Store",
    "SubmitError",
    "ack_message",
    "verify_ack",
]
