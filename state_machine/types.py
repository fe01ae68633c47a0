"""The protocol's units, as types: so a signature says *what* an ``int`` or ``bytes`` is.

Why ``NewType`` and not classes: zero cost at run time (``Wei(5)`` is the int ``5``, and
msgpack, JSON and the Merkle leaves see plain ints and bytes), yet a type checker and a
reader tell a stake in wei from basis points or a block height, which the same ``int``
hid (a vote accuracy above 10000 bps and a balance in wei once looked alike).

- ``Wei``: an amount of ETH in wei (stakes, fees, rewards, slashes; L1 ``uint256``).
- ``Bps``: basis points, 0..10000 = 0..100 % (``constants.BPS``): accuracies, shares.
- ``Height``: an L2 block height (the STF's clock: windows and deadlines count these).
- ``L1Block``: an L1 block number (``l1_*`` system actions name the log's block).
- ``PubKey``: a 32-byte ed25519 public key (an account, a client, the sequencer).
- ``Address``: a 20-byte L1 account address.

Adopted where code is touched, not by a sweep: existing modules keep plain ``int`` and
``bytes`` until they change for another reason.
"""

from __future__ import annotations

from typing import NewType

Wei = NewType("Wei", int)
Bps = NewType("Bps", int)
Height = NewType("Height", int)
L1Block = NewType("L1Block", int)
PubKey = NewType("PubKey", bytes)
Address = NewType("Address", bytes)

__all__ = ["Address", "Bps", "Height", "L1Block", "PubKey", "Wei"]
