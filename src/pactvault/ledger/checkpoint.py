"""C2SP tlog-checkpoints: the signed statement "this log had N leaves with root R".

The body is three lines — origin, decimal tree size, base64 root hash — plus optional extension
lines, signed as a C2SP signed note (``note.py``), so outside witnesses and standard tlog tools
can follow pactvault's ledger. Parsing is strict: one canonical spelling per checkpoint.

A checkpoint is only worth something if the log never signs two that contradict each other;
:func:`check_consistent` and :func:`find_forks` turn a contradiction into a
:class:`~pactvault.ledger.errors.ForkDetectedError` carrying both checkpoints as evidence.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pactvault.ledger.errors import ForkDetectedError, NoteError, ProofError
from pactvault.ledger.merkle import EMPTY_ROOT, HASH_SIZE
from pactvault.ledger.note import (
    ALG_COSIGNATURE_V1,
    Ed25519NoteSigner,
    NoteSignature,
    Verifier,
    b64decode_strict,
    open_note,
    sign_note,
)
from pactvault.ledger.proofs import verify_consistency

__all__ = [
    "Checkpoint",
    "SignedCheckpoint",
    "check_consistent",
    "find_forks",
    "open_checkpoint",
    "sign_checkpoint",
]

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_SIZE = (1 << 64) - 1


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not line or any(ch < " " for ch in line):
                raise NoteError("checkpoint lines must be non-empty, single lines of text")
        if not 0 <= self.size <= _MAX_SIZE:
            raise NoteError("checkpoint tree size out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteError("checkpoint root hash must be 32 bytes")

    def body(self) -> str:
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = (self.origin, str(self.size), root, *self.extensions)
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def from_body(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise NoteError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint body needs origin, size and root lines")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise NoteError("checkpoint tree size is not a canonical decimal")
        return cls(origin, int(size), b64decode_strict(root), tuple(extensions))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the witness cosignatures that did too."""

    checkpoint: Checkpoint
    note: str
    cosignatures: tuple[NoteSignature, ...] = ()


def sign_checkpoint(checkpoint: Checkpoint, signer: Ed25519NoteSigner) -> str:
    """The checkpoint as a signed note; the log key's name should be its origin."""
    return sign_note(checkpoint.body(), [signer])


def open_checkpoint(
    note: str | bytes,
    *,
    origin: str,
    verifiers: Sequence[Verifier],
    witnesses: Sequence[Verifier] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """Verify a checkpoint note: signed by a trusted log key, for the expected log, and (when a
    quorum is asked for) cosigned by at least ``quorum`` distinct trusted witnesses.

    Log keys and witness keys are separate lists so a witness's cosignature can never stand in
    for the log's own signature.
    """
    opened = open_note(note, verifiers)
    checkpoint = Checkpoint.from_body(opened.text)
    if checkpoint.origin != origin:
        raise NoteError("checkpoint is for a different log")
    if any(getattr(w, "ALGORITHM", None) != ALG_COSIGNATURE_V1 for w in witnesses):
        # A log key passed as a "witness" would count the log's own signature as a cosignature.
        raise NoteError("witness keys must be cosignature/v1 keys")
    cosigned: list[NoteSignature] = []
    if witnesses:
        text = opened.text.encode("utf-8")
        known = {(w.name, w.key_id): w for w in witnesses}
        seen: set[tuple[str, int]] = set()
        for sig in opened.note.signatures:
            key = (sig.name, sig.key_id)
            witness = known.get(key)
            if witness is None or key in seen:
                continue
            if not witness.verify(text, sig.signature):
                raise NoteError(f"cosignature by {sig.name} does not verify")
            seen.add(key)
            cosigned.append(sig)
    if len(cosigned) < quorum:
        raise NoteError(f"checkpoint has {len(cosigned)} trusted cosignatures, {quorum} required")
    text_note = note.decode("utf-8") if isinstance(note, bytes) else note
    return SignedCheckpoint(checkpoint, text_note, tuple(cosigned))


def check_consistent(a: Checkpoint, b: Checkpoint, proof: Sequence[bytes]) -> None:
    """Raise ForkDetectedError unless both checkpoints can describe one append-only log.

    ``proof`` is the consistency proof from the smaller tree to the larger (empty for equal
    sizes). Same size with different roots is a fork whatever the proof says.
    """
    if a.origin != b.origin:
        raise NoteError("checkpoints of different logs cannot be compared")
    old, new = sorted((a, b), key=lambda c: c.size)
    if old.size == 0:
        if old.root_hash != EMPTY_ROOT:
            raise ForkDetectedError("a checkpoint of the empty tree has a non-empty root", (old,))
        return
    try:
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    except ProofError as exc:
        raise ForkDetectedError(
            f"checkpoints at sizes {old.size} and {new.size} are inconsistent: {exc.detail}",
            (old, new),
        ) from exc


def find_forks(checkpoints: Iterable[Checkpoint]) -> list[tuple[Checkpoint, Checkpoint]]:
    """Pairs of checkpoints of one log with the same size and different roots."""
    first: dict[tuple[str, int], Checkpoint] = {}
    forks = []
    for cp in checkpoints:
        seen = first.setdefault((cp.origin, cp.size), cp)
        if seen.root_hash != cp.root_hash:
            forks.append((seen, cp))
    return forks
