"""Development tooling: everything that runs FLockChain *for* a developer, not in production.

- :mod:`devtools.l1`        an embedded py-evm chain, a local anvil process, chain time travel
- :mod:`devtools.localnet`  ``flockchain localnet``: anvil + PostgreSQL + every service as processes
- :mod:`devtools.demo`      ``flockchain demo``: the whole system end to end in one process

Why a package of its own: production code (``state_machine``, ``sequencer``, ``bridge``,
``rollup``, ``federated``) must never depend on these, and ``.importlinter`` checks that it
does not; devtools may import anything.
"""
