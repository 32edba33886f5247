"""Restore drills: prove, on a schedule, that the newest backup really restores.

A drill does what an operator would do after losing the machine, into a scratch place:

1. rebuild the root key file from the root key *material* (as ``import-root-key`` does from the
   shares) into a scratch data directory (``PACTVAULT_BACKUP_SCRATCH_DIR`` or the system temp
   directory, mode 0700), sealed under the same passphrase;
2. restore the **latest** backup there (``backup.restore``: manifest signature against this
   instance's backup key, every object's hash, fallback across destinations), into a scratch
   SQLite file — or, for PostgreSQL, into ``PACTVAULT_BACKUP_DRILL_DATABASE_URL`` (an empty
   database the drill may fill and empty again) or else a temporary database it creates on the
   live server and drops afterwards;
3. open a platform on it and run every post-restore check (``backup.checks``);
4. measure **RPO** — the age of the newest restorable data: now minus the backup's snapshot
   time — and **RTO** — the time from starting the restore to a verified, working platform;
5. remove the scratch data, write ``backup.drill`` to the live audit journal, and raise a
   critical ``backup.drill-failed`` alert if anything failed.

What a drill cannot prove: that the custodians still have their shares. ``pactvault backup
import-root-key --check`` does that, against the live root key, without writing anything.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pactvault.audit.journal import Actor, record
from pactvault.backup.errors import BackupError
from pactvault.backup.progress import Progress
from pactvault.backup.restore import RestoreReport, restore
from pactvault.backup.rootkey import CeremonyKeyStore, install_root_key
from pactvault.errors import PactvaultError

if TYPE_CHECKING:
    from pactvault.backup.service import BackupService

__all__ = ["DrillReport", "run_drill"]


@dataclass
class DrillReport:
    ok: bool
    started_at: datetime
    backup_id: str | None = None
    backup_created_at: datetime | None = None
    rpo_seconds: float | None = None
    rto_seconds: float | None = None
    error: str | None = None
    restore: RestoreReport | None = field(default=None, repr=False)

    def summary(self) -> str:
        if not self.ok:
            return f"FAILED: {self.error or 'a check failed'}"
        return (
            f"backup {self.backup_id}: RPO {self.rpo_seconds:.0f} s, RTO {self.rto_seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "backup_id": self.backup_id,
            "backup_created_at": (
                self.backup_created_at.isoformat() if self.backup_created_at else None
            ),
            "rpo_seconds": None if self.rpo_seconds is None else round(self.rpo_seconds, 3),
            "rto_seconds": None if self.rto_seconds is None else round(self.rto_seconds, 3),
            "error": self.error,
            "restore": self.restore.to_dict() if self.restore else None,
        }


class _ScratchDatabase:
    """A PostgreSQL database for one drill: the configured one, or a temporary one."""

    def __init__(self, live_url: str, configured: str | None) -> None:
        self._live = make_url(live_url)
        self._configured = configured
        self._created: str | None = None
        self.url = configured or ""

    def __enter__(self) -> _ScratchDatabase:
        if self._configured:
            return self
        name = "pactvault_drill_" + uuid.uuid4().hex[:12]
        engine = create_engine(self._live, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:
            raise BackupError(
                "the drill could not create a scratch PostgreSQL database "
                f"({type(exc).__name__}); set PACTVAULT_BACKUP_DRILL_DATABASE_URL to an empty "
                "database it may use"
            ) from None
        finally:
            engine.dispose()
        self._created = name
        self.url = self._live.set(database=name).render_as_string(hide_password=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._created:
            engine = create_engine(self._live, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as connection:
                    connection.execute(
                        text(f'DROP DATABASE IF EXISTS "{self._created}" WITH (FORCE)')
                    )
            finally:
                engine.dispose()
        elif self._configured:
            engine = create_engine(self._configured, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as connection:
                    connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                    connection.execute(text("CREATE SCHEMA public"))
            finally:
                engine.dispose()


def run_drill(service: BackupService, *, progress: Progress, actor: Actor) -> DrillReport:
    settings = service.settings
    started_at = service.clock()
    report = DrillReport(ok=False, started_at=started_at)
    scratch_parent = settings.backup_scratch_dir
    if scratch_parent is not None:
        scratch_parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pactvault-drill-", dir=scratch_parent))
    try:
        identity = service.identity()
        database = _ScratchDatabase(
            settings.resolved_database_url, settings.backup_drill_database_url
        )
        sqlite = service.db.is_sqlite
        with database if not sqlite else contextlib.nullcontext():
            target = replace(
                settings,
                home=scratch / "home",
                database_url=None if sqlite else database.url,
                alert_webhook_url=None,
                alert_webhook_secret=None,
                smtp_host=None,
                backup_destinations=(),
                backup_interval_minutes=None,
                backup_drill_interval_hours=None,
            )
            clock = time.monotonic()
            live_keys = CeremonyKeyStore(settings.key_dir, settings.passphrase).open()
            scratch_keys = install_root_key(
                target.key_dir, settings.passphrase, live_keys.material()
            )
            restored = restore(
                target,
                service.destinations,
                scratch_keys,
                identity,
                progress=progress,
                actor=Actor(type="system", id="backup drill"),
                pg_tools=service.pg,
            )
            report.rto_seconds = time.monotonic() - clock
        report.restore = restored
        report.backup_id = restored.backup_id
        report.backup_created_at = restored.created_at
        report.rpo_seconds = (started_at - restored.created_at).total_seconds()
        report.ok = restored.ok
        if not restored.ok and restored.checks is not None:
            failed = [r for r in restored.checks.results if not r.ok]
            report.error = "; ".join(
                f"{r.name}: {r.problems[0] if r.problems else r.detail}" for r in failed
            )[:500]
    except PactvaultError as exc:
        report.error = exc.detail[:500]
    except Exception as exc:  # a drill reports every failure; it never takes the loop down
        report.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _record(service, report, actor)
    return report


def _record(service: BackupService, report: DrillReport, actor: Actor) -> None:
    details = {
        "ok": report.ok,
        "backup_id": report.backup_id,
        "rpo_seconds": None if report.rpo_seconds is None else round(report.rpo_seconds, 3),
        "rto_seconds": None if report.rto_seconds is None else round(report.rto_seconds, 3),
        "error": report.error,
    }
    with service.db.write() as session:
        record(session, actor, "backup.drill", object_type="backup", details=details)
    if not report.ok:
        service.alerts.raise_alert(
            "backup.drill-failed",
            severity="critical",
            title="The backup restore drill failed: the latest backup may not be restorable",
            details=details,
            subject={},
            actor=actor,
        )
