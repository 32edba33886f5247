"""The integrity auditor: re-check everything pactvault stores against everything it promised.

One run, in four phases, with bounded memory (everything is read in batches):

1. **audit journal** — the hash chain (``audit.journal.verify_chain``); a break is named by the
   first entry's ``seq`` that is missing or altered;
2. **ledger** — every leaf against the Merkle tree, the tree against its head, each revision
   leaf against the database, each leaf's audit entry against the journal (``ledger_audit``);
3. **checkpoints** — every checkpoint ever published still verifies and today's tree extends it;
4. **documents** — every document revision: its blob exists, decrypts and authenticates, its
   plaintext's SHA-256 and size equal the database row (and so, by phase 2, the ledger), and a
   ledger leaf records it (``reread``).

Phases 1-3 read one consistent snapshot of the database (``REPEATABLE READ`` on PostgreSQL; a
SQLite read transaction is a snapshot by itself), so concurrent signing can never look like
tampering there. Phase 4 takes its own short transactions (decrypting every document takes
long): a revision newer than the snapshot is matched against the leaves appended since.

Every finding raises an alert (de-duplicated across runs by the exact object it names), up to
``max_alerts`` per run and then one summary alert; the run itself is written to the audit
journal as ``integrity.run`` with its counts. :meth:`IntegrityAuditor.run_if_due` is what the
maintenance loop of every process calls: a lease row makes exactly one of them run it per
``interval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.audit.journal import CHAIN_HEAD_ID, Actor, record, verify_chain
from pactvault.crypto.hashing import equal
from pactvault.errors import InvalidInputError
from pactvault.keys.service import KeyService
from pactvault.ledger.note import Verifier
from pactvault.ledger.publish import CheckpointStore
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.findings import (
    AUDIT_PHASE,
    CRITICAL,
    DOCUMENT_PHASE,
    PHASES,
    WARNING,
    Finding,
    IntegrityReport,
    Progress,
    ProgressUpdate,
)
from pactvault.monitor.lease import JobLease
from pactvault.monitor.ledger_audit import LedgerEvidence, audit_checkpoints, audit_ledger
from pactvault.monitor.reread import BlobReading, StoredRevision, reread
from pactvault.store.base import utcnow
from pactvault.store.blobs import BlobStore
from pactvault.store.db import Database
from pactvault.store.models import AuditChainHead, AuditEvent, DocumentRevision

__all__ = ["JOB_NAME", "PHASES", "IntegrityAuditor", "VerifierSource"]

JOB_NAME = "integrity-audit"
Clock = Callable[[], datetime]
#: Looks the log's verifier key(s) up when a run starts (e.g. from the ledger's key table);
#: a key pinned in configuration is stronger, as the database is what is being audited.
VerifierSource = Callable[[Session], Sequence[Verifier]]


def _ignore(_update: ProgressUpdate) -> None:
    return None


@dataclass(frozen=True)
class _Revision:
    id: str
    stored: StoredRevision
    plaintext_size: int
    plaintext_sha256: str
    ciphertext_sha256: str


class _Run:
    """One run's state: the report, and turning findings into (capped) alerts."""

    def __init__(
        self,
        alerts: AlertService,
        report: IntegrityReport,
        actor: Actor,
        *,
        max_alerts: int,
        max_kept: int,
    ) -> None:
        self.alerts = alerts
        self.report = report
        self.actor = actor
        self.max_alerts = max_alerts
        self.max_kept = max_kept

    def add(self, finding: Finding) -> None:
        report = self.report
        report.findings_total += 1
        report.by_kind[finding.kind] += 1
        if len(report.findings) < self.max_kept:
            report.findings.append(finding)
        if report.alerts_created + report.alerts_repeated >= self.max_alerts:
            report.unalerted += 1
            return
        raised = self.alerts.raise_alert(
            finding.kind,
            severity=finding.severity,
            title=finding.title,
            details=finding.details,
            org_id=finding.org_id,
            subject=finding.subject,
            actor=self.actor,
        )
        if raised.created:
            report.alerts_created += 1
        else:
            report.alerts_repeated += 1

    def finish(self) -> None:
        if self.report.unalerted:
            self.alerts.raise_alert(
                "integrity.findings-truncated",
                severity=CRITICAL,
                title=(
                    f"The integrity audit found {self.report.findings_total} problems; "
                    f"{self.report.unalerted} have no alert of their own"
                ),
                details={
                    "findings": self.report.findings_total,
                    "unalerted": self.report.unalerted,
                    "by_kind": dict(sorted(self.report.by_kind.items())),
                },
                subject={},
                actor=self.actor,
            )


class IntegrityAuditor:
    """Re-reads and re-hashes everything; see the module docstring for what is checked.

    ``blob_store`` is the raw store under the platform's ``EncryptedBlobStore`` (the auditor
    decrypts on its own to say what differs, see ``reread``); ``checkpoints`` and
    ``log_verifiers`` let it re-check published checkpoints — without them, existing
    checkpoints are reported as unverifiable rather than silently skipped.
    """

    def __init__(
        self,
        db: Database,
        blob_store: BlobStore,
        keys: KeyService,
        alerts: AlertService,
        *,
        checkpoints: CheckpointStore | None = None,
        log_verifiers: Sequence[Verifier] | VerifierSource = (),
        interval: timedelta = timedelta(days=1),
        lease_ttl: timedelta = timedelta(hours=2),
        batch_size: int = 500,
        max_alerts: int = 1000,
        max_kept_findings: int = 1000,
        clock: Clock = utcnow,
    ) -> None:
        if batch_size < 1 or max_alerts < 0 or max_kept_findings < 0:
            raise InvalidInputError("batch_size must be positive, caps not negative")
        if interval <= timedelta(0):
            raise InvalidInputError("the audit interval must be positive")
        self._db = db
        self._raw = blob_store
        self._keys = keys
        self._alerts = alerts
        self._checkpoints = checkpoints
        self._verifiers = log_verifiers
        self._interval = interval
        self._lease = JobLease(db, JOB_NAME, ttl=lease_ttl)
        self._batch = batch_size
        self._max_alerts = max_alerts
        self._max_kept = max_kept_findings
        self._clock = clock

    @property
    def lease(self) -> JobLease:
        return self._lease

    def _log_verifiers(self, session: Session) -> Sequence[Verifier]:
        if callable(self._verifiers):
            return tuple(self._verifiers(session))
        return tuple(self._verifiers)

    # -- one run -----------------------------------------------------------------------------

    def run(
        self, *, progress: Progress | None = None, actor: Actor | None = None
    ) -> IntegrityReport:
        """Check everything once; findings become alerts; the run is audited."""
        progress = progress or _ignore
        actor = actor or Actor.system()
        report = IntegrityReport(started_at=self._clock())
        run = _Run(
            self._alerts, report, actor, max_alerts=self._max_alerts, max_kept=self._max_kept
        )
        try:
            with self._db.read() as snapshot:
                _consistent_snapshot(snapshot)
                self._check_journal(snapshot, run, progress)
                evidence = audit_ledger(snapshot, run.add, progress, batch_size=self._batch)
                report.ledger_leaves = evidence.scanned_to
                report.checkpoints = audit_checkpoints(
                    snapshot,
                    self._checkpoints,
                    self._log_verifiers(snapshot),
                    evidence.head,
                    run.add,
                    progress,
                )
            self._check_documents(run, evidence, progress)
            run.finish()
        except Exception as exc:
            report.finished_at = self._clock()
            self._audit_run(actor, {**report.summary(), "outcome": "error", "error": _name(exc)})
            raise
        report.finished_at = self._clock()
        self._audit_run(actor, report.summary())
        return report

    def _audit_run(self, actor: Actor, summary: dict[str, object]) -> None:
        with self._db.write() as session:
            record(session, actor, "integrity.run", object_type="integrity", details=summary)

    # -- phase 1: the audit journal ----------------------------------------------------------

    def _check_journal(self, session: Session, run: _Run, progress: Progress) -> None:
        head = session.get(AuditChainHead, CHAIN_HEAD_ID)
        total = int(head.last_seq) if head is not None else 0
        progress(ProgressUpdate(AUDIT_PHASE, 0, total))
        chain = verify_chain(session)
        run.report.audit_entries = chain.entries
        if not chain.ok:
            # verify_chain stops at the first break: every entry before it checked out.
            seq = chain.entries + 1
            run.add(_journal_finding(session, seq, chain.problems[0], chain.entries))
        progress(ProgressUpdate(AUDIT_PHASE, total, total))

    # -- phase 4: the documents --------------------------------------------------------------

    def _check_documents(self, run: _Run, evidence: LedgerEvidence, progress: Progress) -> None:
        with self._db.read() as session:
            total = session.execute(select(func.count()).select_from(DocumentRevision)).scalar_one()
        progress(ProgressUpdate(DOCUMENT_PHASE, 0, total))
        last_id = ""
        while True:
            with self._db.read() as session:
                batch = _revision_batch(session, last_id, self._batch)
                for revision in batch:
                    reading = reread(self._raw, self._keys, session, revision.stored)
                    for finding in _document_findings(revision, reading):
                        run.add(finding)
                    if reading.shredded:
                        run.report.revisions_shredded += 1
                    if evidence.available and not self._in_ledger(session, evidence, revision):
                        run.add(_unrecorded_finding(revision))
                    run.report.revisions += 1
            if not batch:
                break
            last_id = batch[-1].id
            progress(ProgressUpdate(DOCUMENT_PHASE, run.report.revisions, total))
        progress(ProgressUpdate(DOCUMENT_PHASE, run.report.revisions, total))

    @staticmethod
    def _in_ledger(session: Session, evidence: LedgerEvidence, revision: _Revision) -> bool:
        """Whether some ledger leaf announces this revision (catching up on newer leaves)."""
        stored = revision.stored
        if stored.version <= evidence.counts.get(stored.contract_id, 0):
            return True
        evidence.catch_up(session)
        return stored.version <= evidence.counts.get(stored.contract_id, 0)

    # -- scheduling --------------------------------------------------------------------------

    def run_if_due(self, now: datetime | None = None) -> IntegrityReport | None:
        """Run if ``interval`` has passed since the last run began and no process is running
        it now; None otherwise. For the maintenance loop of every process."""
        now = now or self._clock()
        token = self._lease.try_acquire(now, interval=self._interval)
        if token is None:
            return None
        renew_every = self._lease.ttl.total_seconds() / 3
        last_renewal = time.monotonic()

        def keep_lease(_update: ProgressUpdate) -> None:
            nonlocal last_renewal
            if time.monotonic() - last_renewal >= renew_every:
                self._lease.renew(token, self._clock())  # ConflictError aborts a lost run
                last_renewal = time.monotonic()

        try:
            report = self.run(progress=keep_lease, actor=Actor.system())
        except Exception as exc:
            self._lease.release(
                token, self._clock(), outcome="error", summary={"error": _name(exc)}
            )
            self._alerts.raise_alert(
                "integrity.run-failed",
                severity=WARNING,
                title="The scheduled integrity audit could not complete",
                details={"error": _name(exc)},
                subject={},
            )
            raise
        self._lease.release(
            token,
            self._clock(),
            outcome="clean" if report.ok else "findings",
            summary=report.summary(),
        )
        return report


def _consistent_snapshot(session: Session) -> None:
    """Make every read of ``session`` see one moment (before its first query)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _name(exc: BaseException) -> str:
    # The class only: messages of unexpected errors may carry internals.
    return type(exc).__name__


def _revision_batch(session: Session, after_id: str, size: int) -> list[_Revision]:
    rows = session.execute(
        select(
            DocumentRevision.id,
            DocumentRevision.org_id,
            DocumentRevision.contract_id,
            DocumentRevision.version,
            DocumentRevision.blob_key,
            DocumentRevision.wrapped_key,
            DocumentRevision.plaintext_size,
            DocumentRevision.plaintext_sha256,
            DocumentRevision.ciphertext_sha256,
        )
        .where(DocumentRevision.id > after_id)
        .order_by(DocumentRevision.id)
        .limit(size)
    ).all()
    return [
        _Revision(
            id=r.id,
            stored=StoredRevision(
                r.org_id, r.contract_id, int(r.version), r.blob_key, bytes(r.wrapped_key)
            ),
            plaintext_size=int(r.plaintext_size),
            plaintext_sha256=r.plaintext_sha256,
            ciphertext_sha256=r.ciphertext_sha256,
        )
        for r in rows
    ]


def _document_findings(revision: _Revision, reading: BlobReading) -> list[Finding]:
    stored = revision.stored
    subject = {"contract_id": stored.contract_id, "version": stored.version}
    where = f"Contract {stored.contract_id} revision {stored.version}"
    base = {**subject, "revision_id": revision.id, "blob_key": stored.blob_key}
    if reading.missing:
        return [
            Finding(
                "integrity.blob-missing",
                CRITICAL,
                f"{where}: the stored document is missing",
                subject,
                {**base, "problem": reading.problem},
                stored.org_id,
            )
        ]
    if reading.shredded:
        return []
    if not reading.decrypted:
        return [
            Finding(
                "integrity.decrypt-failed",
                CRITICAL,
                f"{where}: the stored document does not decrypt ({reading.problem})",
                subject,
                {
                    **base,
                    "problem": reading.problem,
                    "expected_ciphertext_sha256": revision.ciphertext_sha256,
                    "found_ciphertext_sha256": reading.ciphertext_sha256,
                },
                stored.org_id,
            )
        ]
    if reading.plaintext_size != revision.plaintext_size or not equal(
        reading.plaintext_sha256 or "", revision.plaintext_sha256
    ):
        return [
            Finding(
                "integrity.blob-mismatch",
                CRITICAL,
                f"{where}: the stored document decrypts to a different document",
                subject,
                {
                    **base,
                    "expected_sha256": revision.plaintext_sha256,
                    "found_sha256": reading.plaintext_sha256,
                    "expected_size": revision.plaintext_size,
                    "found_size": reading.plaintext_size,
                },
                stored.org_id,
            )
        ]
    if not equal(reading.ciphertext_sha256 or "", revision.ciphertext_sha256):
        # The right document, re-encrypted: nothing pactvault does rewrites a blob.
        return [
            Finding(
                "integrity.ciphertext-mismatch",
                WARNING,
                f"{where}: the stored document was re-encrypted outside pactvault",
                subject,
                {
                    **base,
                    "expected_ciphertext_sha256": revision.ciphertext_sha256,
                    "found_ciphertext_sha256": reading.ciphertext_sha256,
                },
                stored.org_id,
            )
        ]
    return []


def _unrecorded_finding(revision: _Revision) -> Finding:
    stored = revision.stored
    subject = {"contract_id": stored.contract_id, "version": stored.version}
    return Finding(
        "integrity.ledger-mismatch",
        CRITICAL,
        f"Contract {stored.contract_id} revision {stored.version} has no evidence ledger leaf",
        subject,
        {
            **subject,
            "revision_id": revision.id,
            "problem": "no ledger leaf records this revision",
            "expected_sha256": None,
            "found_sha256": revision.plaintext_sha256,
        },
        stored.org_id,
    )


def _journal_finding(session: Session, seq: int, problem: str, verified: int) -> Finding:
    """Name the first broken entry and, where the database still shows it, what differs."""
    details: dict[str, object] = {"seq": seq, "problem": problem, "verified_entries": verified}
    event = session.get(AuditEvent, seq)
    if event is None:
        following = session.execute(
            select(func.min(AuditEvent.seq)).where(AuditEvent.seq > seq)
        ).scalar_one_or_none()
        details.update(next_seq=following)
        title = f"Audit journal entry {seq} is missing"
    else:
        previous = session.get(AuditEvent, seq - 1) if seq > 1 else None
        if previous is not None and event.prev_hash != previous.entry_hash:
            details.update(expected_prev_hash=previous.entry_hash, found_prev_hash=event.prev_hash)
        details.update(stored_entry_hash=event.entry_hash, action=event.action)
        title = f"Audit journal entry {seq} was altered or relinked"
    return Finding("integrity.audit-chain", CRITICAL, title, {"seq": seq}, details)
