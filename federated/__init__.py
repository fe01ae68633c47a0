"""Client-side federated learning for FLockChain, as a pure library (no networking).

- :mod:`federated.models`  registry of architectures a task's ``model_spec`` can name
- :mod:`federated.quant`   fixed-point conversion and model/update byte layouts (SPEC §4)
- :mod:`federated.data`    digits split, client partitions, voter test sets, DataSpec
- :mod:`federated.train`   local training, accuracy in bps, delta application, FedAvg mirror
- :mod:`federated.attacks` honest and adversarial client behaviours (``ATTACKS``)
- :mod:`federated.experiments` accuracy and SPEC §5 signal figures (``python -m ...``)
"""
