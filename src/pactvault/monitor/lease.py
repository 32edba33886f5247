"""A lease that lets many processes share one periodic job and run it exactly once per interval.

Every API process runs the same maintenance loop, so a daily job would run once per process
without coordination. The job's row in ``scheduled_jobs`` is the coordination: taking the lease
is one write transaction that checks "due and nobody holds it" and records a random holder
token; the holder renews it while working and releases it with the outcome. A lease expires on
its own, so a process that dies mid-run delays the job by at most ``ttl``, never forever.

PostgreSQL serialises takers with ``SELECT … FOR UPDATE`` on the row (and the primary key settles
the race to create it); SQLite serialises all writers anyway.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy.exc
from sqlalchemy import select, update

from pactvault.errors import ConflictError, InvalidInputError
from pactvault.store.db import Database
from pactvault.store.monitor_models import ScheduledJob

__all__ = ["JobLease", "JobState"]


@dataclass(frozen=True)
class JobState:
    name: str
    running: bool
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    last_summary: dict[str, Any] | None


class JobLease:
    def __init__(self, db: Database, name: str, *, ttl: timedelta = timedelta(hours=2)) -> None:
        if not name or len(name) > 64:
            raise InvalidInputError("a job name is 1 to 64 characters")
        if ttl <= timedelta(0):
            raise InvalidInputError("a lease must last a positive time")
        self._db = db
        self.name = name
        self.ttl = ttl

    def try_acquire(self, now: datetime, *, interval: timedelta) -> str | None:
        """The holder token if the job is due (never run, or started ``interval`` ago) and
        nobody holds a live lease; otherwise None."""
        try:
            with self._db.write() as session:
                row = session.execute(
                    select(ScheduledJob).where(ScheduledJob.name == self.name).with_for_update()
                ).scalar_one_or_none()
                if row is None:
                    row = ScheduledJob(name=self.name)
                    session.add(row)
                    session.flush()
                held = (
                    row.holder is not None
                    and row.lease_expires_at is not None
                    and row.lease_expires_at > now
                )
                due = row.last_started_at is None or row.last_started_at + interval <= now
                if held or not due:
                    return None
                token = str(uuid.uuid4())
                row.holder = token
                row.lease_expires_at = now + self.ttl
                row.last_started_at = now
                return token
        except sqlalchemy.exc.IntegrityError:
            return None  # another process created the row (and took the lease) just now

    def renew(self, token: str, now: datetime) -> None:
        """Extend our lease; ConflictError if it expired and someone else holds the job now."""
        with self._db.write() as session:
            renewed = session.execute(
                update(ScheduledJob)
                .where(ScheduledJob.name == self.name, ScheduledJob.holder == token)
                .values(lease_expires_at=now + self.ttl)
            ).rowcount
        if renewed != 1:
            raise ConflictError(f"the lease on job {self.name!r} was lost")

    def release(
        self, token: str, now: datetime, *, outcome: str, summary: dict[str, Any] | None = None
    ) -> bool:
        """Record how the run ended and free the job; False if the lease was no longer ours."""
        with self._db.write() as session:
            released = session.execute(
                update(ScheduledJob)
                .where(ScheduledJob.name == self.name, ScheduledJob.holder == token)
                .values(
                    holder=None,
                    lease_expires_at=None,
                    last_finished_at=now,
                    last_outcome=outcome[:16],
                    last_summary=summary,
                )
            ).rowcount
        return released == 1

    def state(self, now: datetime) -> JobState | None:
        with self._db.read() as session:
            row = session.get(ScheduledJob, self.name)
            if row is None:
                return None
            running = (
                row.holder is not None
                and row.lease_expires_at is not None
                and row.lease_expires_at > now
            )
            return JobState(
                row.name,
                running,
                row.last_started_at,
                row.last_finished_at,
                row.last_outcome,
                row.last_summary,
            )
