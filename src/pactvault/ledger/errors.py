"""The ledger's exceptions, placed in the shared hierarchy so interfaces map them without help.

A failed proof or an untrusted note is a :class:`~pactvault.errors.VerificationError` (the data
someone showed us does not check out); a fork is an :class:`~pactvault.errors.IntegrityError`
(our own log contradicts itself, which is never fixed by retrying and must be reported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pactvault.errors import IntegrityError, InvalidInputError, VerificationError

if TYPE_CHECKING:
    from pactvault.ledger.checkpoint import Checkpoint

__all__ = ["EvidenceRecordError", "ForkDetectedError", "NoteError", "ProofError"]


class EvidenceRecordError(InvalidInputError):
    """A ledger record was refused: unknown field or event type, or a value that is not a hash."""

    slug = "invalid-evidence-record"
    title = "Invalid evidence record"


class ProofError(VerificationError):
    """An inclusion or consistency proof does not verify."""

    slug = "invalid-proof"
    title = "Merkle proof does not verify"


class NoteError(VerificationError):
    """A signed note or checkpoint is malformed, or not signed by a trusted key."""

    slug = "invalid-note"
    title = "Signed note rejected"


class ForkDetectedError(IntegrityError):
    """Two checkpoints of one log cannot both be true: the log showed different histories.

    ``evidence`` holds the conflicting checkpoints, which together (with their signatures) prove
    the misbehaviour to a third party.
    """

    slug = "ledger-fork"
    title = "Ledger fork detected"

    def __init__(self, detail: str, evidence: tuple[Checkpoint, ...] = ()) -> None:
        super().__init__(detail)
        self.evidence = evidence
