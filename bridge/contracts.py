"""Compiled L1 contract artifacts, web3 factories and the deployment record.

Why a module of its own: every L1 consumer (deployer, sequencer relays, verifier, tests)
needs the same ABIs and addresses. Artifacts are the committed output of
``contracts/build.mjs`` (``contracts/out/<Name>.json`` with ``abi``, ``bytecode`` and
``deployedBytecode``), so Python never needs node or solc at run time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.contract import Contract

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_ENV = "FLOCKCHAIN_ARTIFACTS_DIR"

# Deployable contracts, in deployment order.
CONTRACT_NAMES: tuple[str, ...] = (
    "StakingRegistry",
    "StateCommitment",
    "SlashTreasury",
    "RewardTreasury",
    "SlashingManager",
    "RewardManager",
)


# Test-only harnesses (contracts/test/), never deployed by deploy_all.
TEST_CONTRACT_NAMES: tuple[str, ...] = ("test/StateProofHarness", "test/Reenterer")


def artifacts_dir() -> Path:
    """``contracts/out`` of this checkout, or ``$FLOCKCHAIN_ARTIFACTS_DIR`` when set."""
    override = os.environ.get(ARTIFACTS_ENV)
    return Path(override) if override else REPO_ROOT / "contracts" / "out"


@cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for key in ("abi", "bytecode", "deployedBytecode"):
        if key not in data:
            raise ValueError(f"artifact {path} lacks {key!r}")
    return data


def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name`` (``test/<Name>`` for test harnesses)."""
    path = artifacts_dir() / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no artifact {path}; run `make contracts`")
    return _load(str(path))


def abi(name: str) -> list[dict[str, Any]]:
    return load_artifact(name)["abi"]


def factory(w3: Web3, name: str) -> type[Contract]:
    """A deployable web3 contract factory for ``name``."""
    art = load_artifact(name)
    return w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])


def at(w3: Web3, name: str, address: str) -> Contract:
    """Contract ``name`` bound to ``address``."""
    return w3.eth.contract(address=to_checksum_address(address), abi=abi(name))


@cache
def _error_table() -> dict[bytes, tuple[str, list[dict[str, Any]]]]:
    table: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
    names = [*CONTRACT_NAMES, *TEST_CONTRACT_NAMES]
    for name in names:
        try:
            entries = abi(name)
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.get("type") == "error":
                selector = function_abi_to_4byte_selector(entry)
                table[selector] = (entry["name"], entry.get("inputs", []))
    return table


def decode_error(data: bytes | str) -> tuple[str, tuple[Any, ...]] | None:
    """Decode revert data into ``(ErrorName, args)`` using every contract's custom errors.

    Returns ``None`` when the selector is unknown (e.g. a Panic or empty revert data).
    """
    from eth_abi import decode

    if isinstance(data, str):
        raw = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    else:
        raw = bytes(data)
    if len(raw) < 4:
        return None
    entry = _error_table().get(raw[:4])
    if entry is None:
        return None
    name, inputs = entry
    types = [i["type"] if i["type"] != "tuple" else _tuple_type(i) for i in inputs]
    values = decode(types, raw[4:])
    return name, tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
    )


def _tuple_type(param: dict[str, Any]) -> str:
    inner = ",".join(
        c["type"] if c["type"] != "tuple" else _tuple_type(c) for c in param["components"]
    )
    return f"({inner})"


@dataclass(frozen=True)
class Deployment:
    """Where the FLockChain contracts live on one chain."""

    chain_id: int
    staking_registry: str
    state_commitment: str
    slash_treasury: str
    reward_treasury: str
    slashing_manager: str
    reward_manager: str
    deploy_block: int = 0  # first block worth scanning for logs

    def address_of(self, name: str) -> str:
        """Address of contract ``name`` (e.g. ``"StakingRegistry"``)."""
        return getattr(self, _FIELD_OF[name])

    def contract(self, w3: Web3, name: str) -> Contract:
        return at(w3, name, self.address_of(name))

    def contracts(self, w3: Web3) -> dict[str, Contract]:
        """Every deployed contract bound to ``w3``, keyed by contract name."""
        return {name: self.contract(w3, name) for name in CONTRACT_NAMES}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown deployment fields: {sorted(unknown)}")
        kwargs = dict(data)
        for name in _FIELD_OF.values():
            kwargs[name] = to_checksum_address(kwargs[name])
        kwargs["chain_id"] = int(kwargs["chain_id"])
        kwargs["deploy_block"] = int(kwargs.get("deploy_block", 0))
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Deployment:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


_FIELD_OF: dict[str, str] = {
    "StakingRegistry": "staking_registry",
    "StateCommitment": "state_commitment",
    "SlashTreasury": "slash_treasury",
    "RewardTreasury": "reward_treasury",
    "SlashingManager": "slashing_manager",
    "RewardManager": "reward_manager",
}
