"""What the integrity auditor reports: findings, progress updates and the run's report.

A :class:`Finding` names one damaged object exactly (``subject``: contract id and revision
version, ledger leaf index, audit entry seq, checkpoint seq) and says what differs (``details``:
expected against found, as hashes). ``subject`` is also what de-duplicates the alert across runs,
so it holds only identifiers that stay the same while the problem lasts — never a tree size or
a hash that moves on with the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AUDIT_PHASE",
    "CHECKPOINT_PHASE",
    "CRITICAL",
    "DOCUMENT_PHASE",
    "LEDGER_PHASE",
    "PHASES",
    "WARNING",
    "Finding",
    "IntegrityReport",
    "Progress",
    "ProgressUpdate",
]

CRITICAL, WARNING = "critical", "warning"

#: The auditor's phases, in the order a run goes through them (progress updates name them).
AUDIT_PHASE, LEDGER_PHASE, CHECKPOINT_PHASE, DOCUMENT_PHASE = PHASES = (
    "audit journal",
    "ledger",
    "checkpoints",
    "documents",
)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    title: str
    subject: dict[str, Any]
    details: dict[str, Any]
    #: The organisation whose object this is; None for platform-wide objects (ledger, journal).
    org_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "org_id": self.org_id,
            "subject": self.subject,
            "details": self.details,
        }


@dataclass(frozen=True)
class ProgressUpdate:
    phase: str
    done: int
    total: int | None


Progress = Callable[[ProgressUpdate], None]


@dataclass
class IntegrityReport:
    """Counts of what was checked and the findings (the first ``kept`` of them in full)."""

    started_at: datetime
    finished_at: datetime | None = None
    audit_entries: int = 0
    ledger_leaves: int = 0
    checkpoints: int = 0
    revisions: int = 0
    #: Revisions of organisations whose key was destroyed on purpose: unreadable by design.
    revisions_shredded: int = 0
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    alerts_created: int = 0
    alerts_repeated: int = 0
    #: Findings beyond the per-run alert cap (announced by one summary alert instead).
    unalerted: int = 0

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    def summary(self) -> dict[str, Any]:
        """Counts only (no findings): for the audit journal and the job's status row."""
        duration = None
        if self.finished_at is not None:
            duration = int((self.finished_at - self.started_at).total_seconds() * 1000)
        return {
            "outcome": "clean" if self.ok else "findings",
            "started_at": self.started_at.isoformat(),
            "duration_ms": duration,
            "audit_entries": self.audit_entries,
            "ledger_leaves": self.ledger_leaves,
            "checkpoints": self.checkpoints,
            "revisions": self.revisions,
            "revisions_shredded": self.revisions_shredded,
            "findings": self.findings_total,
            "by_kind": dict(sorted(self.by_kind.items())),
            "alerts_created": self.alerts_created,
            "alerts_repeated": self.alerts_repeated,
            "unalerted": self.unalerted,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "ok": self.ok,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "findings_shown": [f.to_dict() for f in self.findings],
        }
