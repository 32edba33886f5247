"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``, type 0x04).

A witness states "as of time T, the largest consistent tree I have seen for this log has this
root". It signs ``"cosignature/v1\\ntime <T>\\n" ‖ checkpoint body`` and publishes the 8-byte
big-endian T followed by the 64-byte signature as an ordinary note signature line, which clients
that know the witness key check and everyone else ignores.

:class:`Witness` is what lets one pactvault instance witness another's ledger: it cosigns only a
checkpoint that is correctly signed by the log and consistent with the last one it cosigned.
Keeping that last checkpoint (one row per log) is the caller's job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pactvault.errors import ConflictError
from pactvault.ledger.checkpoint import Checkpoint, check_consistent, open_checkpoint
from pactvault.ledger.errors import NoteError
from pactvault.ledger.note import (
    ALG_COSIGNATURE_V1,
    Ed25519Key,
    NoteSignature,
    Verifier,
    check_key_name,
    parse_ed25519_key,
)

__all__ = [
    "CosignatureSigner",
    "CosignatureVerifier",
    "Witness",
    "cosignature_message",
    "cosignature_time",
    "parse_cosigner_key",
]

_MAX_TIMESTAMP = (1 << 63) - 1


def cosignature_message(body: bytes, timestamp: int) -> bytes:
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError("cosignature timestamp out of range")
    return b"cosignature/v1\ntime %d\n" % timestamp + body


def cosignature_time(signature: NoteSignature) -> int:
    """The POSIX time a witness put in its cosignature."""
    if len(signature.signature) != 72:
        raise NoteError("not an Ed25519 cosignature")
    return int.from_bytes(signature.signature[:8], "big")


@dataclass(frozen=True)
class CosignatureVerifier(Ed25519Key):
    """Checks a witness's timestamped cosignature/v1 (type 0x04) over a checkpoint."""

    ALGORITHM: ClassVar[int] = ALG_COSIGNATURE_V1

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 72:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        try:
            self.public_key.verify(signature[8:], cosignature_message(text, timestamp))
        except InvalidSignature:
            return False
        return True


def parse_cosigner_key(vkey: str) -> CosignatureVerifier:
    """A witness verifier from its key string (type 0x04 only)."""
    return parse_ed25519_key(vkey, CosignatureVerifier, "cosignature")


class CosignatureSigner:
    """Produces cosignature/v1 lines with a witness key the caller holds."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        self.verifier = CosignatureVerifier(name, private_key.public_key())
        self.key_id = self.verifier.key_id

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> NoteSignature:
        message = cosignature_message(checkpoint.body().encode("utf-8"), timestamp)
        signature = timestamp.to_bytes(8, "big") + self._key.sign(message)
        return NoteSignature(self.name, self.key_id, signature)


class Witness:
    """Cosigns a log's checkpoints, refusing any that rewinds or forks what it saw before."""

    def __init__(
        self, signer: CosignatureSigner, origin: str, log_verifiers: Sequence[Verifier]
    ) -> None:
        self.signer = signer
        self.origin = origin
        self.log_verifiers = tuple(log_verifiers)

    def cosign(
        self,
        note: str,
        *,
        previous: Checkpoint | None,
        proof: Sequence[bytes] = (),
        now: int | None = None,
    ) -> tuple[Checkpoint, NoteSignature]:
        """Verify ``note`` and cosign it; ``proof`` leads from ``previous`` (the last checkpoint
        this witness cosigned for the log, None the first time) to the new one.

        Returns the checkpoint (store it as the next ``previous``) and the signature line to
        hand back to the log.
        """
        checkpoint = open_checkpoint(
            note, origin=self.origin, verifiers=self.log_verifiers
        ).checkpoint
        if previous is not None:
            if checkpoint.size < previous.size:
                raise ConflictError(
                    f"checkpoint of size {checkpoint.size} is older than the one already "
                    f"cosigned ({previous.size})"
                )
            check_consistent(previous, checkpoint, proof)
        timestamp = int(time.time()) if now is None else now
        return checkpoint, self.signer.cosign(checkpoint, timestamp)
