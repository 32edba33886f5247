"""Anchoring the audit journal in the evidence ledger, and checking the anchors later.

The audit journal's hash chain makes an edit visible *unless* whoever edits it also recomputes
every later hash — which anyone with write access to the table can do. An anchor closes that gap:
at a fixed interval the chain head (sequence number and entry hash) becomes an ``audit.anchor``
ledger leaf, and ledger leaves are covered by signed checkpoints that outside parties keep. From
then on, deleting or editing any journal entry up to that sequence number changes the hash the
journal re-derives for it, and :func:`check_anchors` names the first anchor that no longer holds.

Each anchor is itself an audit event (``ledger.anchor``) and the leaf commits to that very event,
so anchoring never leaves the journal "ahead" of its last anchor and an idle system stays idle.

Lock order, as everywhere: audit journal head first, ledger head second.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.audit.journal import (
    CHAIN_HEAD_ID,
    GENESIS_HASH,
    Actor,
    _record_of,
    entry_hash,
    iter_events,
    record,
)
from pactvault.errors import PactvaultError
from pactvault.ledger.checkpoint import Checkpoint, open_checkpoint
from pactvault.ledger.log import Ledger
from pactvault.ledger.merkle import RootAccumulator
from pactvault.ledger.note import Verifier, parse_note
from pactvault.ledger.records import EvidenceRecord
from pactvault.store.ledger_models import LedgerCheckpoint
from pactvault.store.ledger_ops_models import LedgerAnchor
from pactvault.store.models import AuditChainHead

__all__ = [
    "ANCHOR_ACTION",
    "ANCHOR_EVENT",
    "Anchor",
    "AnchorReport",
    "anchor_due",
    "anchor_journal",
    "check_anchors",
    "latest_anchor",
]

ANCHOR_EVENT = "audit.anchor"  # the ledger leaf's event type
ANCHOR_ACTION = "ledger.anchor"  # the audit journal's action for the same event
# Canonical JSON sorts keys and has no spaces, so an anchor leaf always contains these bytes: a
# scan can skip decoding every other leaf.
_ANCHOR_MARK = b'"type":"audit.anchor"'


@dataclass(frozen=True)
class Anchor:
    """The audit chain up to ``audit_seq`` hashed to ``audit_hash``; committed as leaf
    ``leaf_index``."""

    leaf_index: int
    audit_seq: int
    audit_hash: str
    # Known from the schedule table only, not from the leaf: not part of an anchor's identity.
    anchored_at: datetime | None = field(default=None, compare=False)


def latest_anchor(session: Session) -> Anchor | None:
    """The most recent anchor, from the schedule table (for scheduling, not for verifying)."""
    row = session.execute(
        select(LedgerAnchor).order_by(LedgerAnchor.leaf_index.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    return Anchor(row.leaf_index, row.audit_seq, row.audit_hash, row.anchored_at)


def _journal_head(session: Session, *, lock: bool) -> int:
    query = select(AuditChainHead.last_seq).where(AuditChainHead.id == CHAIN_HEAD_ID)
    seq = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    return int(seq or 0)


def anchor_due(session: Session, now: datetime, interval: timedelta, *, lock: bool) -> bool:
    """Whether the journal has grown past the last anchor and ``interval`` has passed since it.

    ``lock=True`` takes the journal head lock first, so that of several processes deciding at
    once exactly one anchors and the others, once it commits, see that it did.
    """
    head_seq = _journal_head(session, lock=lock)
    last = latest_anchor(session)
    if last is None:
        return head_seq > 0
    if head_seq <= last.audit_seq:
        return False
    return last.anchored_at is None or now - last.anchored_at >= interval


def anchor_journal(session: Session, now: datetime) -> Anchor | None:
    """Commit the audit chain head to the ledger now, in the caller's transaction.

    Returns None when nothing was journalled since the last anchor. The anchor's own audit event
    is recorded first and is the entry the leaf commits to.
    """
    head_seq = _journal_head(session, lock=True)  # audit head first …
    last = latest_anchor(session)
    previous = last.audit_seq if last is not None else 0
    if head_seq <= previous:
        return None
    event = record(
        session,
        Actor.system(),
        ANCHOR_ACTION,
        object_type="ledger",
        details={"previous_anchor_seq": previous},
        occurred_at=now,
    )
    leaf = EvidenceRecord(ANCHOR_EVENT, audit_seq=event.seq, audit_entry_sha256=event.entry_hash)
    ref = Ledger(session).append(leaf)  # … ledger head second
    session.add(
        LedgerAnchor(
            leaf_index=ref.index,
            audit_seq=event.seq,
            audit_hash=event.entry_hash,
            anchored_at=now,
        )
    )
    session.flush()
    return Anchor(ref.index, event.seq, event.entry_hash, now)


# -- checking ----------------------------------------------------------------------------------


@dataclass
class AnchorReport:
    """What :func:`check_anchors` re-derived, and the first thing that did not hold."""

    leaves: int = 0
    anchors: int = 0
    entries: int = 0
    last_anchored_seq: int = 0
    checkpoint_size: int | None = None
    first_mismatch: Anchor | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_anchors(session: Session, *, log_verifier: Verifier | None = None) -> AnchorReport:
    """Re-derive every anchored (seq, hash) from ``audit_events`` and report the first mismatch.

    Anchors are read from the ledger leaves themselves — never from ``ledger_anchors``, which
    only schedules them — and the same scan recomputes the tree root and compares it with the
    latest checkpoint (its signature too, given ``log_verifier``), so an anchor is only trusted
    when the leaf holding it is the one the log signed. The journal is re-hashed from its
    content alone; the stored ``prev_hash``/``entry_hash`` columns are ignored except to point
    at the first edited entry when whoever edited it did not recompute them.
    """
    report = AnchorReport()
    anchors = _anchors_from_leaves(session, report, log_verifier)
    report.anchors = len(anchors)
    if anchors:
        report.last_anchored_seq = anchors[-1].audit_seq
    if report.problems:
        return report
    _rederive_journal(session, anchors, report)
    return report


def _anchors_from_leaves(
    session: Session, report: AnchorReport, log_verifier: Verifier | None
) -> list[Anchor]:
    checkpoint = _latest_checkpoint(session, report, log_verifier)
    ledger = Ledger(session)
    head = ledger.head()
    accumulator = RootAccumulator()
    anchors: list[Anchor] = []
    try:
        for leaf in ledger.leaves(0, head.size):
            accumulator.append(leaf.leaf_hash)
            if checkpoint is not None and accumulator.size == checkpoint.size:
                _compare_root(report, checkpoint, accumulator.root())
            if _ANCHOR_MARK not in leaf.data:
                continue
            anchor = _anchor_of(leaf.index, leaf.data, report)
            if anchor is None:
                continue
            if anchors and anchor.audit_seq <= anchors[-1].audit_seq:
                report.problems.append(
                    f"anchor at leaf {anchor.leaf_index} goes back to audit entry "
                    f"{anchor.audit_seq} after leaf {anchors[-1].leaf_index} anchored "
                    f"{anchors[-1].audit_seq}"
                )
            anchors.append(anchor)
    except PactvaultError as exc:
        report.problems.append(f"ledger leaves cannot be read: {exc.detail}")
    report.leaves = accumulator.size
    if checkpoint is not None and accumulator.size < checkpoint.size:
        report.problems.append(
            f"the latest checkpoint covers {checkpoint.size} leaves but the ledger holds "
            f"{accumulator.size}"
        )
    if accumulator.size == head.size and accumulator.root() != head.root_hash:
        report.problems.append("the ledger's stored tree does not match its leaves")
    return anchors


def _latest_checkpoint(
    session: Session, report: AnchorReport, log_verifier: Verifier | None
) -> Checkpoint | None:
    row = session.execute(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.seq.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    try:
        if log_verifier is not None:
            checkpoint = open_checkpoint(
                row.note, origin=log_verifier.name, verifiers=[log_verifier]
            ).checkpoint
        else:
            checkpoint = Checkpoint.from_body(parse_note(row.note).text)
    except PactvaultError as exc:
        report.problems.append(f"latest checkpoint #{row.seq}: {exc.detail}")
        return None
    report.checkpoint_size = checkpoint.size
    return checkpoint


def _compare_root(report: AnchorReport, checkpoint: Checkpoint, root: bytes) -> None:
    if not hmac.compare_digest(root, checkpoint.root_hash):
        report.problems.append(
            f"the ledger leaves no longer hash to the latest checkpoint's root at size "
            f"{checkpoint.size} ({_b64(root)} ≠ {_b64(checkpoint.root_hash)}): leaves were "
            "rewritten, so their anchors cannot be trusted"
        )


def _anchor_of(index: int, data: bytes, report: AnchorReport) -> Anchor | None:
    try:
        leaf = EvidenceRecord.decode(data)
    except PactvaultError as exc:
        report.problems.append(f"leaf {index}: {exc.detail}")
        return None
    if leaf.type != ANCHOR_EVENT:
        return None
    if leaf.audit_seq is None or leaf.audit_entry_sha256 is None:
        report.problems.append(f"anchor at leaf {index} names no audit entry")
        return None
    return Anchor(index, leaf.audit_seq, leaf.audit_entry_sha256)


def _rederive_journal(session: Session, anchors: list[Anchor], report: AnchorReport) -> None:
    by_seq = {anchor.audit_seq: anchor for anchor in anchors}
    previous: Anchor | None = None  # the last anchor that still holds
    first_edited: int | None = None  # first entry whose stored hash differs from its content
    expected_seq, prev_hash = 1, GENESIS_HASH
    pending = sorted(by_seq)
    for event in iter_events(session):
        if not pending:
            break
        if event.seq != expected_seq:
            anchor = by_seq[pending[0]]
            report.first_mismatch = anchor
            last_missing = event.seq - 1
            missing = (
                str(expected_seq)
                if last_missing == expected_seq
                else f"{expected_seq}–{last_missing}"
            )
            report.problems.append(
                f"audit entries {missing} are missing from the journal; anchor at leaf "
                f"{anchor.leaf_index} (entry {anchor.audit_seq}) can no longer be re-derived"
                + _since(previous)
            )
            return
        computed = entry_hash(prev_hash, _record_of(event))
        if first_edited is None and event.entry_hash != computed:
            first_edited = event.seq
        report.entries += 1
        anchor = by_seq.get(event.seq)
        if anchor is not None:
            if not hmac.compare_digest(computed, anchor.audit_hash):
                report.first_mismatch = anchor
                where = (
                    f"; entry {first_edited} no longer matches its stored hash"
                    if first_edited is not None
                    else ""
                )
                report.problems.append(
                    f"audit entry {anchor.audit_seq} re-derives to {computed[:16]}… but the "
                    f"anchor at leaf {anchor.leaf_index} committed {anchor.audit_hash[:16]}…: "
                    f"an entry at or before {anchor.audit_seq} was edited or deleted"
                    + _since(previous)
                    + where
                )
                return
            previous = anchor
            pending.pop(0)
        prev_hash, expected_seq = computed, expected_seq + 1
    if pending:
        anchor = by_seq[pending[0]]
        report.first_mismatch = anchor
        report.problems.append(
            f"anchored audit entry {anchor.audit_seq} (leaf {anchor.leaf_index}) is gone: the "
            f"journal ends at entry {expected_seq - 1}" + _since(previous)
        )


def _since(previous: Anchor | None) -> str:
    if previous is None:
        return ""
    return f" (entries up to {previous.audit_seq}, anchored at leaf {previous.leaf_index}, hold)"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
