"""Which backups to keep: hourly, daily and monthly tiers (grandfather-father-son), pure logic.

A backup is kept when it is the newest backup of its UTC hour and that hour lies within the last
``hourly`` hours, or the newest of its UTC day within the last ``daily`` days, or the newest of
its month within the last ``monthly`` months. The newest backup is always kept.

The windows are measured back from the **newest backup**, not from the wall clock: if backups
stop (a broken destination, an instance switched off), pruning never eats into the last good
history while nothing new replaces it.

Default ``hourly=48,daily=30,monthly=12`` (``PACTVAULT_BACKUP_RETENTION``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pactvault.errors import InvalidInputError

__all__ = ["RetentionPolicy", "select_kept"]


@dataclass(frozen=True)
class RetentionPolicy:
    hourly: int = 48
    daily: int = 30
    monthly: int = 12

    @classmethod
    def parse(cls, text: str | None) -> RetentionPolicy:
        """``"hourly=48,daily=30,monthly=12"``; omitted tiers keep their defaults."""
        values: dict[str, int] = {}
        for part in (text or "").replace(";", ",").split(","):
            if not part.strip():
                continue
            name, _, raw = part.partition("=")
            name = name.strip().lower()
            if name not in ("hourly", "daily", "monthly") or not raw.strip().isdigit():
                raise InvalidInputError(
                    "PACTVAULT_BACKUP_RETENTION is like 'hourly=48,daily=30,monthly=12'"
                )
            values[name] = int(raw.strip())
        return cls(**values)

    def describe(self) -> str:
        return f"hourly={self.hourly},daily={self.daily},monthly={self.monthly}"


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def select_kept(created: Sequence[tuple[str, datetime]], policy: RetentionPolicy) -> set[str]:
    """The ids to keep among ``(backup id, snapshot time)`` pairs."""
    if not created:
        return set()
    ordered = sorted(created, key=lambda item: (item[1], item[0]), reverse=True)
    newest = ordered[0][1].astimezone(UTC)
    kept = {ordered[0][0]}
    seen_hours: set[tuple[int, int, int, int]] = set()
    seen_days: set[tuple[int, int, int]] = set()
    seen_months: set[int] = set()
    hour_floor = newest.replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=max(policy.hourly - 1, 0)
    )
    day_floor = newest.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=max(policy.daily - 1, 0)
    )
    month_floor = _month_index(newest) - (policy.monthly - 1)
    for backup_id, moment in ordered:  # newest first: the first seen in a bucket is its newest
        at = moment.astimezone(UTC)
        hour = (at.year, at.month, at.day, at.hour)
        day = (at.year, at.month, at.day)
        month = _month_index(at)
        if policy.hourly and at >= hour_floor and hour not in seen_hours:
            kept.add(backup_id)
        if policy.daily and at >= day_floor and day not in seen_days:
            kept.add(backup_id)
        if policy.monthly and month >= month_floor and month not in seen_months:
            kept.add(backup_id)
        seen_hours.add(hour)
        seen_days.add(day)
        seen_months.add(month)
    return kept
