"""The FL participants' subcommands of ``flockchain`` (``client``, ``task``): they need
torch (the ``fl`` extra), so they live here and ``rollup.cli`` registers them by package name
(see ``COMMAND_PACKAGES`` there). ``register`` must not import torch: ``flockchain node``
builds the same parser on a machine without it."""
