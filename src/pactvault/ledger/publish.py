"""Publishing checkpoints, and keeping every one ever published.

A log must never sign a checkpoint inconsistent with one it signed before (tlog-checkpoint), and
it must be able to show that later. So :meth:`CheckpointStore.publish` first proves, from
storage, that the tree still extends the last published checkpoint — refusing to sign over a
database that was rewritten — and every signed note is kept (append-only, guarded by the
database) for :meth:`CheckpointStore.verify_history` to re-check against the current tree.

The log key arrives from the caller as a ready signer; the platform keeps it wrapped in its key
service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.errors import ConflictError, IntegrityError, InvalidInputError, PactvaultError
from pactvault.ledger.checkpoint import (
    Checkpoint,
    check_consistent,
    find_forks,
    open_checkpoint,
    sign_checkpoint,
)
from pactvault.ledger.errors import ForkDetectedError
from pactvault.ledger.log import Ledger, TreeHead
from pactvault.ledger.note import Ed25519NoteSigner, Verifier
from pactvault.store.base import utcnow
from pactvault.store.ledger_models import LedgerCheckpoint

__all__ = ["CheckpointStore", "HistoryReport", "PublishedCheckpoint"]


@dataclass(frozen=True)
class PublishedCheckpoint:
    seq: int
    checkpoint: Checkpoint
    note: str
    published_at: datetime


@dataclass
class HistoryReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    forks: list[tuple[Checkpoint, ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class CheckpointStore:
    """Signs checkpoints of the ledger under ``origin`` and records them."""

    def __init__(self, origin: str) -> None:
        Checkpoint(origin, 0, bytes(32))  # validates the origin line
        self.origin = origin

    def publish(
        self,
        session: Session,
        signer: Ed25519NoteSigner,
        *,
        now: datetime | None = None,
        refresh: bool = False,
    ) -> PublishedCheckpoint:
        """Sign the current tree head, in the caller's transaction.

        Holds the ledger head lock, so the signed size and root cannot move underneath and
        concurrent publishers line up. Publishing again with nothing new returns the previous
        checkpoint instead of a duplicate — unless ``refresh``: then the same signed note is
        recorded again at ``now``, so an idle log still shows when it last vouched for its head
        (Ed25519 signing is deterministic, so the note itself is byte-for-byte the same).
        """
        if signer.name != self.origin:
            raise InvalidInputError("the log key's name must be the checkpoint origin")
        ledger = Ledger(session)
        head = ledger.head(lock=True)
        checkpoint = Checkpoint(self.origin, head.size, head.root_hash)
        latest = self.latest(session)
        if latest is not None:
            if latest.checkpoint.origin != self.origin:
                raise ConflictError("the ledger was published under a different origin")
            _check_against_head(ledger, latest.checkpoint, head)
        note = sign_checkpoint(checkpoint, signer)
        if latest is not None and latest.note == note and not refresh:
            return latest
        row = LedgerCheckpoint(
            origin=self.origin,
            tree_size=head.size,
            root_hash=head.root_hash,
            note=note,
            published_at=now or utcnow(),
        )
        session.add(row)
        session.flush()
        return published_checkpoint(row)

    def latest(self, session: Session) -> PublishedCheckpoint | None:
        row = session.execute(
            select(LedgerCheckpoint).order_by(LedgerCheckpoint.seq.desc()).limit(1)
        ).scalar_one_or_none()
        return None if row is None else published_checkpoint(row)

    def history(self, session: Session) -> list[PublishedCheckpoint]:
        rows = session.execute(select(LedgerCheckpoint).order_by(LedgerCheckpoint.seq)).scalars()
        return [published_checkpoint(row) for row in rows]

    def verify_history(self, session: Session, verifiers: Sequence[Verifier]) -> HistoryReport:
        """Re-check every published checkpoint: its signature, that its row matches its note,
        that no two disagree at one size, and that the current tree still extends it."""
        report = HistoryReport()
        ledger = Ledger(session)
        head = ledger.head()
        published = []
        for row in session.execute(
            select(LedgerCheckpoint).order_by(LedgerCheckpoint.seq)
        ).scalars():
            report.checked += 1
            try:
                signed = open_checkpoint(row.note, origin=self.origin, verifiers=verifiers)
            except PactvaultError as exc:
                report.problems.append(f"checkpoint {row.seq}: {exc.detail}")
                continue
            cp = signed.checkpoint
            stored = (row.origin, row.tree_size, bytes(row.root_hash))
            if stored != (cp.origin, cp.size, cp.root_hash):
                report.problems.append(f"checkpoint {row.seq}: stored fields differ from its note")
            published.append(cp)
            try:
                _check_against_head(ledger, cp, head)
            except ForkDetectedError as exc:
                report.problems.append(f"checkpoint {row.seq}: {exc.detail}")
                report.forks.append(exc.evidence)
        for a, b in find_forks(published):
            report.problems.append(f"two checkpoints at size {a.size} have different roots")
            report.forks.append((a, b))
        return report

    def require_consistent_history(
        self, session: Session, verifiers: Sequence[Verifier]
    ) -> HistoryReport:
        report = self.verify_history(session, verifiers)
        if report.forks:
            raise ForkDetectedError("; ".join(report.problems), report.forks[0])
        if not report.ok:
            raise IntegrityError("ledger checkpoint history: " + "; ".join(report.problems))
        return report


def _check_against_head(ledger: Ledger, checkpoint: Checkpoint, head: TreeHead) -> None:
    """ForkDetectedError unless the tree at ``head`` extends ``checkpoint`` (proof from storage)."""
    current = Checkpoint(checkpoint.origin, head.size, head.root_hash)
    if checkpoint.size > head.size:
        raise ForkDetectedError(
            f"the ledger has {head.size} leaves but a checkpoint says {checkpoint.size}",
            (checkpoint, current),
        )
    proof: tuple[bytes, ...] = ()
    if 0 < checkpoint.size < head.size:
        proof = ledger.consistency_proof(checkpoint.size, head.size).hashes
    check_consistent(checkpoint, current, proof)


def published_checkpoint(row: LedgerCheckpoint) -> PublishedCheckpoint:
    """The stored row as the log signed it (no cosignatures: see ``ledger.cosignatures``)."""
    checkpoint = Checkpoint(row.origin, int(row.tree_size), bytes(row.root_hash))
    return PublishedCheckpoint(int(row.seq), checkpoint, row.note, row.published_at)
