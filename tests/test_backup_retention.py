"""Retention: which backups the hourly/daily/monthly policy keeps, and pruning that never takes
an object a kept backup still needs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts_kit import draft_contract
from flows import make_org
from pactvault.backup import manifest as layout
from pactvault.backup.retention import RetentionPolicy, select_kept
from pactvault.backup.service import BackupService
from pactvault.config import Settings
from pactvault.errors import InvalidInputError
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

NOON = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _series(end: datetime, hours: int) -> list[tuple[str, datetime]]:
    return [(f"b{i:05d}", end - timedelta(hours=i)) for i in range(hours)]


def test_default_policy_keeps_one_per_hour_day_and_month() -> None:
    backups = _series(NOON, 24 * 120)  # hourly backups for 120 days
    kept = select_kept(backups, RetentionPolicy())
    times = {i: t for i, t in backups}
    kept_times = sorted((times[i] for i in kept), reverse=True)
    # The last 48 hours: every hour.
    assert [t for t in kept_times if t > NOON - timedelta(hours=48)] == [
        NOON - timedelta(hours=h) for h in range(48)
    ]
    # The last 30 days: at least one a day, exactly the newest of that day.
    for day in range(30):
        date = (NOON - timedelta(days=day)).date()
        of_day = [t for t in kept_times if t.date() == date]
        assert of_day and max(of_day) == max(t for _, t in backups if t.date() == date)
    # Older than that: one a month (the newest of the month).
    older = [t for t in kept_times if t < NOON - timedelta(days=30)]
    assert len({(t.year, t.month) for t in older}) == len(older)
    # 48 hourly (spanning June 13-15), 27 more days back to May 17, then Apr, Mar, Feb.
    assert len(older) == 3
    assert len(kept) == 48 + 27 + len(older)


def test_windows_count_back_from_the_newest_backup_not_from_today() -> None:
    """Backups that stopped a year ago keep exactly what they kept when they stopped."""
    recent = _series(NOON, 24 * 5)
    stopped = [(i, t - timedelta(days=400)) for i, t in recent]
    assert select_kept(stopped, RetentionPolicy()) == select_kept(recent, RetentionPolicy())
    assert len(select_kept(stopped, RetentionPolicy())) == 48 + 3
    assert select_kept([], RetentionPolicy()) == set()
    # Whatever the policy, the newest backup stays.
    assert select_kept(stopped, RetentionPolicy(0, 0, 0)) == {recent[0][0]}


def test_the_policy_is_configured_as_text() -> None:
    assert RetentionPolicy.parse(None) == RetentionPolicy(48, 30, 12)
    assert RetentionPolicy.parse("daily=7, monthly=24") == RetentionPolicy(48, 7, 24)
    for bad in ("weekly=4", "hourly=-1", "daily"):
        with pytest.raises(InvalidInputError):
            RetentionPolicy.parse(bad)


def _at(service: BackupService, moment: datetime) -> str:
    service.clock = lambda: moment
    result = service.run()
    assert result.complete
    return result.backup_id


def _age(path: Path, moment: datetime) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()))


def test_pruning_keeps_what_the_policy_and_kept_backups_need(
    tmp_path: Path, mailer: MemoryMailer
) -> None:
    vault = tmp_path / "vault"
    settings = Settings(
        home=tmp_path / "data",
        backup_destinations=(str(vault),),
        backup_retention="hourly=2,daily=3,monthly=0",
    )
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        org_id = make_org(platform)
        for _ in range(3):
            draft_contract(platform, org_id)
        service = platform.backups
        offsets = [timedelta(days=40), timedelta(days=10), timedelta(days=3), timedelta(days=1)]
        offsets += [timedelta(hours=2), timedelta(hours=1), timedelta(0)]
        ids = {offset: _at(service, NOON - offset) for offset in offsets}
        expected = {ids[timedelta(0)], ids[timedelta(hours=1)], ids[timedelta(days=1)]}

        # Leftovers: an object no backup lists and an unfinished backup, both old — and both
        # young (a backup running right now elsewhere could have just written them).
        orphan_old = vault / layout.object_name("a" * 64)
        orphan_new = vault / layout.object_name("b" * 64)
        partial_old = vault / layout.database_name("20260601T000000Z-00000000")
        partial_new = vault / layout.database_name("20260615T115900Z-11111111")
        for path in (orphan_old, orphan_new, partial_old, partial_new):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"leftover")
        _age(orphan_old, NOON - timedelta(days=2))
        _age(partial_old, NOON - timedelta(days=2))
        _age(orphan_new, NOON - timedelta(hours=1))
        _age(partial_new, NOON - timedelta(hours=1))

        dry = service.prune(dry_run=True)
        assert set(dry.destinations[0].deleted) == set(ids.values()) - expected
        assert len(service.list()) == len(offsets)  # a dry run deletes nothing

        report = service.prune()
        outcome = report.destinations[0]
        assert report.ok and set(outcome.kept) == expected
        assert outcome.objects_deleted == 1 and outcome.partial_deleted == 1
        assert {b.backup_id for b in service.list()} == expected
        assert not orphan_old.exists() and not partial_old.exists()
        assert orphan_new.exists() and partial_new.exists()
        # Everything every kept backup needs is still there, intact.
        check = service.verify(all_backups=True)
        assert check.ok and set(check.restorable) == expected
    finally:
        platform.close()


def test_pruning_deletes_nothing_where_a_kept_manifest_cannot_be_verified(
    tmp_path: Path, mailer: MemoryMailer
) -> None:
    vault = tmp_path / "vault"
    settings = Settings(
        home=tmp_path / "data",
        backup_destinations=(str(vault),),
        backup_retention="hourly=1,daily=0,monthly=0",
    )
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        service = platform.backups
        old = _at(service, NOON - timedelta(days=5))
        new = _at(service, NOON)
        manifest = vault / layout.manifest_name(new)
        manifest.write_bytes(
            manifest.read_bytes().replace(b'"missing_blobs":0', b'"missing_blobs":1')
        )
        report = service.prune()
        assert not report.ok and "signature" in (report.destinations[0].error or "")
        assert {b.backup_id for b in service.list()} == {old, new}
    finally:
        platform.close()
