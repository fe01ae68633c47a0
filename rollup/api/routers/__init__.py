"""One router per resource: actions, chain (blocks, state root), state (accounts, tasks,
epochs, proofs, blobs), batches (batches, DA), ops (health, metrics), admin."""
