"""Failed-login throttling per account and per client address, shared through the database.

Counters are rows (``login_throttles``) locked for the length of the login's bookkeeping
transaction, so any number of API processes count the same attempts; nothing lives in process
memory. Each attempt is *reserved* (counted as a failure) before the password is checked and
released on success: a burst of parallel guesses therefore cannot exceed the limit.

After ``max_failures`` consecutive failures a key is locked for ``base_lockout``, doubling with
each further lockout up to ``max_lockout`` (exponential back-off). A success clears the account's
counters; an administrator can clear them too. Account keys are digests of the normalised email
and exist for unknown emails as well, so a lockout says nothing about whether an account exists.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pactvault.store.identity_models import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    account_max_failures: int = 5
    ip_max_failures: int = 50
    base_lockout: timedelta = timedelta(minutes=1)
    max_lockout: timedelta = timedelta(hours=1)
    #: Failures further apart than this do not add up.
    failure_window: timedelta = timedelta(minutes=15)
    #: After this long without failures, the back-off starts again from ``base_lockout``.
    lockout_memory: timedelta = timedelta(hours=24)


def account_key(normalised_email: str) -> str:
    return "acct:" + hashlib.sha256(normalised_email.encode("utf-8")).hexdigest()


def ip_key(ip: str | None) -> str:
    """One key per IPv4 address, per /64 for IPv6 (one subscriber usually holds a whole /64)."""
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "ip:" + str(address.ipv4_mapped)
        return "ip:" + str(ipaddress.ip_network(f"{address}/64", strict=False))
    return "ip:" + str(address)


class LoginThrottler:
    def __init__(self, policy: ThrottlePolicy, clock: Callable[[], datetime]) -> None:
        self.policy = policy
        self._clock = clock

    def _row(self, session: Session, key: str) -> LoginThrottle:
        """The key's row, created if missing (race-free on both databases) and locked."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(LoginThrottle)
            .values(key=key, failures=0, lockouts=0)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return session.execute(
            select(LoginThrottle)
            .where(LoginThrottle.key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()

    def reserve(self, session: Session, limits: list[tuple[str, int]]) -> int | None:
        """Count one attempt against every ``(key, max_failures)``; seconds to wait if locked.

        A locked key refuses the attempt without counting it (and without any password work).
        """
        now = self._clock()
        rows = [(self._row(session, key), limit) for key, limit in limits]
        waits = [
            math.ceil((row.locked_until - now).total_seconds())
            for row, _ in rows
            if row.locked_until is not None and row.locked_until > now
        ]
        if waits:
            return max(1, *waits)
        for row, limit in rows:
            if row.last_failure_at is not None:
                quiet = now - row.last_failure_at
                if quiet > self.policy.failure_window:
                    row.failures = 0
                if quiet > self.policy.lockout_memory:
                    row.lockouts = 0
            row.failures += 1
            row.last_failure_at = now
            if row.failures >= limit:
                row.lockouts += 1
                factor = 2 ** min(row.lockouts - 1, 30)
                row.locked_until = now + min(
                    self.policy.base_lockout * factor, self.policy.max_lockout
                )
                row.failures = 0
        session.flush()
        return None

    def succeeded(self, session: Session, account: str, ip: str) -> None:
        """Release the reservation: the account starts afresh, the address gets one back."""
        row = self._row(session, account)
        row.failures = 0
        row.lockouts = 0
        row.locked_until = None
        ip_row = self._row(session, ip)
        ip_row.failures = max(0, ip_row.failures - 1)
        session.flush()

    def clear(self, session: Session, key: str) -> bool:
        """Unlock a key (administrator action); True if it was locked."""
        row = self._row(session, key)
        was_locked = row.locked_until is not None and row.locked_until > self._clock()
        row.failures = 0
        row.lockouts = 0
        row.locked_until = None
        session.flush()
        return was_locked

    def prune(self, session: Session) -> int:
        """Delete counters that no longer matter (maintenance job)."""
        now = self._clock()
        result = session.execute(
            delete(LoginThrottle).where(
                (LoginThrottle.locked_until.is_(None) | (LoginThrottle.locked_until < now))
                & (
                    LoginThrottle.last_failure_at.is_(None)
                    | (LoginThrottle.last_failure_at < now - self.policy.lockout_memory)
                )
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
