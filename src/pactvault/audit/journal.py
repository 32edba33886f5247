"""The append-only, hash-chained audit journal.

Each entry's hash covers the previous entry's hash and the canonical JSON of the entry itself, so
editing, deleting or reordering any entry breaks every hash after it. Appends are serialised by
locking the single chain-head row, which is what keeps the chain linear when several API processes
write at once (PostgreSQL ``SELECT … FOR UPDATE``; SQLite serialises writers by itself).

There is deliberately no update or delete function here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.canonical import canonical_json
from pactvault.errors import IntegrityError
from pactvault.store.base import utcnow
from pactvault.store.models import AuditChainHead, AuditEvent, new_id

GENESIS_HASH = "0" * 64
CHAIN_HEAD_ID = 1


@dataclass(frozen=True)
class Actor:
    """Who did something, and from where (IP and user agent as the interface saw them)."""

    type: str
    id: str | None = None
    org_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(type="system", id="pactvault")

    def acting_as(self, type: str, id: str | None, org_id: str | None) -> Actor:
        """The same client (IP, user agent) once we know who it is: a user, a signer."""
        return Actor(type=type, id=id, org_id=org_id, ip=self.ip, user_agent=self.user_agent)


def entry_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """SHA-256 over ``prev_hash`` (hex, ASCII) ‖ canonical JSON of the record."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(record)).hexdigest()


def _record_of(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "id": event.id,
        "org_id": event.org_id,
        "occurred_at": event.occurred_at,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": event.details,
    }


def _chain_head(session: Session) -> AuditChainHead:
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == CHAIN_HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        # Normally inserted by the migration; created here for databases built with create_all.
        head = AuditChainHead(id=CHAIN_HEAD_ID, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    return head


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    org_id: str | None = None,
    details: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> AuditEvent:
    """Append one entry in the caller's transaction; it commits or rolls back with the action."""
    head = _chain_head(session)
    event = AuditEvent(
        seq=head.last_seq + 1,
        id=new_id(),
        org_id=org_id if org_id is not None else actor.org_id,
        occurred_at=(occurred_at or utcnow()),
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        ip=actor.ip,
        user_agent=(actor.user_agent or None) and actor.user_agent[:400],
        # Normalise through canonical JSON so what is stored is exactly what was hashed
        # (datetimes become ISO strings, bytes hex) on every database.
        details=json.loads(canonical_json(dict(details or {}))),
        prev_hash=head.last_hash,
    )
    event.entry_hash = entry_hash(event.prev_hash, _record_of(event))
    session.add(event)
    head.last_seq = event.seq
    head.last_hash = event.entry_hash
    session.flush()
    return event


@dataclass
class ChainReport:
    entries: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def iter_events(session: Session, batch: int = 1000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash; name the first entry where the chain breaks."""
    report = ChainReport()
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for event in iter_events(session):
        if event.seq != expected_seq:
            report.problems.append(f"entry {expected_seq} is missing (next is {event.seq})")
            break
        if event.prev_hash != expected_prev:
            report.problems.append(f"entry {event.seq} does not link to entry {event.seq - 1}")
            break
        if entry_hash(event.prev_hash, _record_of(event)) != event.entry_hash:
            report.problems.append(f"entry {event.seq} was altered (hash mismatch)")
            break
        expected_prev = event.entry_hash
        expected_seq += 1
        report.entries += 1
    report.head_hash = expected_prev
    if not report.problems:
        head = session.get(AuditChainHead, CHAIN_HEAD_ID)
        if head is not None and (head.last_seq, head.last_hash) != (report.entries, expected_prev):
            report.problems.append(
                f"chain head names entry {head.last_seq} but the journal ends at {report.entries}"
            )
    return report


def require_intact_chain(session: Session) -> ChainReport:
    report = verify_chain(session)
    if not report.ok:
        raise IntegrityError("audit journal integrity check failed: " + "; ".join(report.problems))
    return report
