"""ed25519 key files: one line, the 32-byte secret seed in hex, mode 0600.

Why a plain hex seed: the same file works for clients, the sequencer and scripts, and it is
obvious to an operator what must be kept secret and backed up.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from state_machine.crypto import public_key, sign


@dataclass(frozen=True)
class Keypair:
    seed: bytes
    pubkey: bytes

    @classmethod
    def generate(cls) -> Keypair:
        return cls.from_seed(secrets.token_bytes(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        return cls(seed, public_key(seed))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keypair:
        text = Path(path).read_text().strip()
        return cls.from_seed(bytes.fromhex(text.removeprefix("0x")))

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the seed with mode 0600 (created that way: never world-readable)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        fd = os.open(p, flags, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.seed.hex() + "\n")
        os.chmod(p, 0o600)
        return p

    def sign(self, message: bytes) -> bytes:
        return sign(self.seed, message)


def load_or_create(path: str | os.PathLike[str]) -> Keypair:
    """Load the key at ``path``, creating a fresh one (0600) if the file does not exist."""
    p = Path(path)
    if p.exists():
        return Keypair.load(p)
    kp = Keypair.generate()
    try:
        kp.save(p)
    except FileExistsError:  # created concurrently: use that one
        return Keypair.load(p)
    return kp
