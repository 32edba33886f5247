"""Request rate limits shared by every API process, counted in the database.

Each limited key (``login|ip:203.0.113.7``, ``api|user:<id>``) is one row of
``rate_limit_counters`` holding the count of the current fixed window and of the previous one.
A request is counted with ONE statement — ``INSERT … ON CONFLICT (key) DO UPDATE … RETURNING`` —
which rolls the window over when needed and returns the new counts atomically on SQLite and on
PostgreSQL, for all of the request's keys at once. Nothing is counted in process memory, so any
number of processes share the limits and a restart resets nothing.

The decision uses the sliding-window estimate (the previous window's count weighted by how much
of it still overlaps the sliding window, plus the current count): smooth at window edges, two
integers per key. Refused requests are counted too, so a client that keeps hammering stays
limited instead of getting a fresh allowance each window.

Counters are not evidence: they are written without waiting for the disk (SQLite
``synchronous=NORMAL`` in WAL mode, PostgreSQL ``synchronous_commit=off``) on a connection pool
of their own — and, with the embedded SQLite database, in a side file (``ratelimits.db``) so the
per-request write never queues behind a business transaction for SQLite's single write lock
(``counter_url``). A crash may forget the last moment of counts; it cannot corrupt anything.

The failed-login lockouts of ``identity.throttle`` remain what they are — counters of *failures*
per account and per address with exponential back-off, where the account comes from the request
body; this module limits *requests*, by address and by credential, before any route runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, make_url

from pactvault.errors import InvalidInputError
from pactvault.monitor.storage import relaxed_database
from pactvault.store.detection_models import RateLimitCounter

__all__ = ["CounterStore", "Limit", "Verdict", "counter_url", "parse_limit"]

MAX_KEY = 160
TABLE = RateLimitCounter.__tablename__


def counter_url(database_url: str) -> tuple[str, bool]:
    """Where the counters live: PostgreSQL's own table (row locks: counting never waits for
    anything but the same key), or — for the embedded SQLite database, where ONE write lock
    covers the whole file — a side database next to it, so that counting a request never waits
    for a signature or an audit append to commit. Every process on the machine shares that file
    exactly as it shares the main one. Returns (URL, whether the table must be created there).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return database_url, False
    side = Path(url.database).with_name("ratelimits.db")
    return url.set(database=str(side)).render_as_string(hide_password=False), True


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` per ``seconds`` (sliding)."""

    requests: int
    seconds: int

    def __post_init__(self) -> None:
        if self.requests < 1 or not 1 <= self.seconds <= 86400:
            raise InvalidInputError("a rate limit is at least 1 request per 1..86400 seconds")

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds}s"


def parse_limit(text: str) -> Limit:
    """``"30/60"`` (30 requests per 60 seconds) or ``"30/min"``, ``"1000/hour"``."""
    count, _, per = text.strip().partition("/")
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "hour": 3600, "h": 3600}
    try:
        seconds = units[per.strip()] if per.strip() in units else int(per)
        return Limit(int(count), seconds)
    except (ValueError, InvalidInputError):
        raise InvalidInputError(
            f"a rate limit looks like 30/60 (requests per seconds), got {text!r}"
        ) from None


@dataclass(frozen=True)
class Verdict:
    key: str
    limit: Limit
    #: The sliding estimate including this request.
    used: float
    #: Seconds until the current window ends (``RateLimit-Reset``).
    reset: int
    #: Seconds to wait before the next request would be allowed (0 if this one was).
    retry_after: int

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit.requests - math.ceil(self.used))


class CounterStore:
    """The shared counters: ``hit`` counts one request against several keys at once."""

    def __init__(self, url: str, *, create_table: bool = False) -> None:
        self._db = relaxed_database(url)
        engine = self._db.engine
        self._statements: dict[int, str] = {}
        self._pyformat = engine.dialect.paramstyle == "pyformat"
        if create_table:  # a side database of its own (see ``counter_url``)
            RateLimitCounter.__table__.create(engine, checkfirst=True)

    def close(self) -> None:
        self._db.dispose()

    def _upsert(self, rows: int) -> str:
        """The counting statement for ``rows`` keys, in the driver's own parameter style.

        It runs on a raw driver connection: it is on every request's path, and SQLAlchemy's
        execution layer costs three times what the database does here (about 250 µs against
        70 µs per request on SQLite)."""
        statement = self._statements.get(rows)
        if statement is None:
            mark = "%({})s" if self._pyformat else ":{}"
            values = ", ".join(
                "({}, {}, {}, 1, 0)".format(*(mark.format(f"{p}{i}") for p in "ksw"))
                for i in range(rows)
            )
            # Only constants and placeholders are formatted in: the values are bound.
            statement = self._statements[rows] = (
                f"INSERT INTO {TABLE} (key, window_start, window_seconds, count, prev_count) "  # noqa: S608
                f"VALUES {values} ON CONFLICT (key) DO UPDATE SET "
                f"prev_count = CASE WHEN {TABLE}.window_start = excluded.window_start "
                f"THEN {TABLE}.prev_count "
                f"WHEN {TABLE}.window_start = excluded.window_start - excluded.window_seconds "
                f"THEN {TABLE}.count ELSE 0 END, "
                f"count = CASE WHEN {TABLE}.window_start = excluded.window_start "
                f"THEN {TABLE}.count + 1 ELSE 1 END, "
                "window_start = excluded.window_start, "
                "window_seconds = excluded.window_seconds "
                "RETURNING key, window_start, count, prev_count"
            )
        return statement

    def hit(self, keys: Sequence[tuple[str, Limit]], now: float) -> list[Verdict]:
        """Count one request against every ``(key, limit)``; a verdict per key, same order."""
        if not keys:
            return []
        if len({k for k, _ in keys}) != len(keys):
            raise InvalidInputError("rate-limit keys of one request must be distinct")
        params: dict[str, object] = {}
        for i, (key, limit) in enumerate(keys):
            if not key or len(key) > MAX_KEY:
                raise InvalidInputError("a rate-limit key is 1 to 160 characters")
            params[f"k{i}"] = key
            params[f"s{i}"] = int(now) - int(now) % limit.seconds
            params[f"w{i}"] = limit.seconds
        # One statement, committed on its own (SQLite: autocommit; PostgreSQL: commit).
        connection = self._db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._upsert(len(keys)), params)
                returned = {row[0]: row for row in cursor.fetchall()}
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()
        return [_verdict(key, limit, returned[key], now) for key, limit in keys]

    def prune(self, now: float, *, older_than: int = 2 * 86400) -> int:
        """Forget counters whose windows ended long ago (maintenance)."""
        with self._db.write() as session:
            result = session.execute(
                delete(RateLimitCounter).where(
                    RateLimitCounter.window_start < int(now) - older_than
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def forget(self, target: str) -> int:
        """Drop every counter of ``target`` (``ip:…``, ``user:<id>``…) in every route class: an
        administrator who lifts a block means the client may start afresh."""
        with self._db.write() as session:
            result = session.execute(
                delete(RateLimitCounter).where(
                    RateLimitCounter.key.endswith(f"|{target}", autoescape=True)
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _verdict(key: str, limit: Limit, row: Sequence[object], now: float) -> Verdict:
    window = limit.seconds
    start, count, prev = (int(v) for v in row[1:4])  # type: ignore[call-overload]
    elapsed = min(max(now - start, 0.0), window)
    used = prev * (1 - elapsed / window) + count
    reset = max(1, math.ceil(start + window - now))
    if used <= limit.requests:
        return Verdict(key, limit, used, reset, 0)
    return Verdict(key, limit, used, reset, _wait(limit, start, count, prev, now))


def _wait(limit: Limit, start: int, count: int, prev: int, now: float) -> int:
    """Seconds until one more request fits, if none is made meanwhile."""
    window, allowed = limit.seconds, limit.requests - 1
    if count <= allowed and prev > 0:
        # Still in this window: wait for enough of the previous window to slide out.
        due = start + window * (1 - (allowed - count) / prev)
    else:
        # Into the next window, while this window's count slides out.
        due = start + window + window * (1 - allowed / count)
    return max(1, math.ceil(due - now))
