"""Witness cosignatures of our checkpoints, as stored: recording them and attaching them to notes.

A cosignature signs the checkpoint *body* (origin, size, root), so one received for a published
checkpoint is just as valid on every other publication of the same body (an idle log re-publishes
its unchanged head). Attaching therefore matches by size and root, and keeps the newest
cosignature per witness: its timestamp says how recently that witness vouched for the head.

These functions work inside the caller's session, so the ledger service can serve checkpoints
with their cosignatures from one read, and the cosigning client can store what it verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pactvault.ledger.checkpoint import Checkpoint
from pactvault.ledger.note import NoteSignature, add_signatures
from pactvault.ledger.publish import PublishedCheckpoint
from pactvault.ledger.witness import cosignature_time
from pactvault.store.witness_models import LedgerCosignature

__all__ = [
    "StoredCosignature",
    "attach_cosignatures",
    "cosignatures_of",
    "record_cosignature",
    "with_cosignatures",
]


@dataclass(frozen=True)
class StoredCosignature:
    checkpoint_seq: int
    signature: NoteSignature
    cosigned_at: datetime
    received_at: datetime


def record_cosignature(
    session: Session,
    published: PublishedCheckpoint,
    signature: NoteSignature,
    received_at: datetime,
) -> bool:
    """Store a cosignature the caller has verified over ``published``'s body; False if this
    witness's cosignature of that publication was already stored."""
    cp = published.checkpoint
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(LedgerCosignature)
        .values(
            checkpoint_seq=published.seq,
            witness_name=signature.name,
            witness_key_id=signature.key_id,
            tree_size=cp.size,
            root_hash=cp.root_hash,
            signature=signature.signature,
            cosigned_at=datetime.fromtimestamp(cosignature_time(signature), UTC),
            received_at=received_at,
        )
        .on_conflict_do_nothing()
        .returning(LedgerCosignature.id)  # psycopg reports rowcount -1 for ON CONFLICT inserts
    )
    return session.execute(statement).first() is not None


def cosignatures_of(session: Session, checkpoint: Checkpoint) -> list[StoredCosignature]:
    """The newest stored cosignature of each witness over ``checkpoint``'s size and root."""
    return _newest(_rows(session, [checkpoint])).get(_body(checkpoint), [])


def with_cosignatures(
    session: Session, published: PublishedCheckpoint | None
) -> PublishedCheckpoint | None:
    """``published`` with its witnesses' cosignature lines appended to the note."""
    if published is None:
        return None
    return attach_cosignatures(session, [published])[0]


def attach_cosignatures(
    session: Session, published: Sequence[PublishedCheckpoint]
) -> list[PublishedCheckpoint]:
    """Each checkpoint's note with the cosignatures held for its body (one query for all)."""
    if not published:
        return []
    newest = _newest(_rows(session, [p.checkpoint for p in published]))
    out = []
    for item in published:
        held = newest.get(_body(item.checkpoint))
        if held:
            note = add_signatures(item.note, [c.signature for c in held])
            item = replace(item, note=note)
        out.append(item)
    return out


def _body(checkpoint: Checkpoint) -> tuple[int, bytes]:
    return checkpoint.size, checkpoint.root_hash


def _rows(session: Session, checkpoints: Sequence[Checkpoint]) -> list[LedgerCosignature]:
    sizes = sorted({cp.size for cp in checkpoints})
    column = LedgerCosignature.tree_size
    # A page of many checkpoints reads one range rather than a huge IN list; extra rows from
    # sizes in between are simply not matched.
    where = column.in_(sizes) if len(sizes) <= 100 else column.between(sizes[0], sizes[-1])
    return list(session.execute(select(LedgerCosignature).where(where)).scalars())


def _newest(rows: Sequence[LedgerCosignature]) -> dict[tuple[int, bytes], list[StoredCosignature]]:
    """Per checkpoint body, the newest cosignature of each witness key, in witness-name order."""
    best: dict[tuple[int, bytes], dict[tuple[str, int], LedgerCosignature]] = {}
    for row in rows:
        per_witness = best.setdefault((int(row.tree_size), bytes(row.root_hash)), {})
        key = (row.witness_name, int(row.witness_key_id))
        seen = per_witness.get(key)
        if seen is None or (row.cosigned_at, row.id) > (seen.cosigned_at, seen.id):
            per_witness[key] = row
    return {
        body: [
            StoredCosignature(
                int(row.checkpoint_seq),
                NoteSignature(row.witness_name, int(row.witness_key_id), bytes(row.signature)),
                row.cosigned_at,
                row.received_at,
            )
            for _, row in sorted(per_witness.items())
        ]
        for body, per_witness in best.items()
    }
