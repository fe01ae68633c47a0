"""Development subcommands of ``flockchain`` (``demo``, ``localnet``), registered by
``rollup.cli`` by package name (see ``COMMAND_PACKAGES`` there)."""
