"""Client-side federated learning for FLockChain: the library, the client daemon, and the
FL participants' commands. Needs the ``fl`` extra (torch, scikit-learn); talks to a node
only through the SDK (``rollup.client``), as ``.importlinter`` checks.

- :mod:`federated.models`  registry of architectures a task's ``model_spec`` can name
- :mod:`federated.quant`   fixed-point conversion and model/update byte layouts (SPEC §4)
- :mod:`federated.data`    digits split, client partitions, voter test sets, DataSpec
- :mod:`federated.train`   local training, accuracy in bps, delta application, FedAvg mirror
- :mod:`federated.attacks` honest and adversarial client behaviours (``ATTACKS``)
- :mod:`federated.experiments` accuracy and SPEC §5 signal figures (``python -m ...``)
- :mod:`federated.client`  ``ClientAgent``: acts in whatever role the chain selected
- :mod:`federated.commands` ``flockchain client`` and ``flockchain task create``
"""
