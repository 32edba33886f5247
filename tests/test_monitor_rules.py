"""Detection rules, one by one, on journal entries written as the services write them.

Each test appends entries to the real audit journal (SQLite and PostgreSQL), runs the engine as
the maintenance loop does (``monitor.run_due``), and checks the alert raised (or not), the
automatic response put in force, and what enforcement then sees. Times are the entries' own
(``occurred_at``), so windows are exact and no test sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor_kit import (
    alerts_of,
    count_events,
    make_platform,
    member,
    organisation,
    user_actor,
    write_events,
)
from pactvault.audit.journal import Actor
from pactvault.monitor.lease import JobLease
from pactvault.monitor.rules.observe import JournalEvent, observe
from pactvault.monitor.rules.settings import RuleChange
from pactvault.platform import Platform
from pactvault.store.detection_models import Observation, Response
from pactvault.store.identity_models import UserSession

NOW = datetime.now(UTC).replace(microsecond=0)
OPERATOR = Actor(type="operator-cli", id="pytest")


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    instance = make_platform(tmp_path / "data", database_url)
    instance.monitor.engine.start()
    try:
        yield instance
    finally:
        instance.close()


def downloads(
    user_id: str,
    org_id: str,
    ip: str,
    count: int,
    *,
    start: int = 0,
    at: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
) -> list[dict]:
    base = at or NOW
    return [
        {
            "actor": user_actor(user_id, org_id, ip),
            "action": "document.download",
            "object_type": "contract",
            "object_id": f"contract-{start + i}",
            "org_id": org_id,
            "occurred_at": base + step * i,
        }
        for i in range(count)
    ]


def failed_login(ip: str, account: str, when: datetime) -> dict:
    return {
        "actor": Actor(type="anonymous", ip=ip),
        "action": "auth.login-failed",
        "details": {"account": account, "reason": "wrong-password"},
        "occurred_at": when,
    }


def active(platform: Platform, action: str, target: str) -> list[Response]:
    with platform.db.read() as s:
        return list(
            s.execute(
                select(Response).where(
                    Response.action == action,
                    Response.target == target,
                    Response.lifted_at.is_(None),
                )
            ).scalars()
        )


# -- observe (pure) -------------------------------------------------------------------------------


def test_observe_maps_journal_actions_to_rule_keys() -> None:
    download = JournalEvent(
        1, NOW, "document.download", "user", "u1", "org", "contract", "c1", "198.51.100.4"
    )
    assert [(o.rule, o.key, o.item) for o in observe(download)] == [
        ("mass-download", "user:u1", "c1")
    ]
    by_token = JournalEvent(2, NOW, "contract.void", "api-token", "t1", "org", "contract", "c2")
    assert [(o.rule, o.key) for o in observe(by_token)] == [("repeated-voids", "token:t1")]
    failed = JournalEvent(
        3, NOW, "auth.login-failed", "anonymous", ip="2001:db8::1", details={"account": "abcd"}
    )
    assert sorted((o.rule, o.key, o.item) for o in observe(failed)) == [
        ("failed-logins-account", "acct:abcd", "3"),
        ("failed-logins-ip", "ip:2001:db8::/64", "3"),
        ("password-spraying", "ip:2001:db8::/64", "abcd"),
    ]
    otp = JournalEvent(4, NOW, "stepup.failed", "signer", "s1", "org", ip="198.51.100.9")
    assert sorted(o.key for o in observe(otp)) == ["ip:198.51.100.9", "signer:s1"]
    # A signer reading their own document is not a download by a member.
    assert observe(JournalEvent(5, NOW, "document.view", "signer", "s1", "org", "contract")) == []
    # Personal tokens are not privilege changes (they never exceed their owner); org tokens are.
    personal = JournalEvent(
        6, NOW, "token.create", "user", "u1", "org", "api-token", "t9", details={"owner": "u1"}
    )
    org_token = JournalEvent(7, NOW, "token.create", "api-token", "t1", "org", "api-token", "t8")
    assert observe(personal) == []
    assert [o.key for o in observe(org_token)] == ["api-token:t8"]
    # The monitor's own entries are not observed (no feedback loop) ...
    assert observe(JournalEvent(8, NOW, "monitor.response-applied", "system", "x")) == []
    # ... except integrity alerts, which the link rule follows.
    raised = JournalEvent(
        9,
        NOW,
        "alert.raised",
        "system",
        "x",
        None,
        "alert",
        "a1",
        details={"kind": "integrity.blob-missing"},
    )
    assert [(o.rule, o.item) for o in observe(raised)] == [("integrity-failure", "a1")]


# -- count rules ----------------------------------------------------------------------------------


def test_mass_download_alerts_and_suspends_the_user_only(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    thief = member(platform, owner, "thief@acme.test", "admin")
    honest = member(platform, owner, "honest@acme.test", "admin")
    write_events(platform, downloads(thief.user_id, org, "198.51.100.7", 50))
    report = platform.monitor.run_due()
    assert report is not None and report.events >= 50
    assert alerts_of(platform, "monitor.mass-download") == []  # 50 is the limit, not over it
    write_events(platform, downloads(thief.user_id, org, "198.51.100.7", 1, start=50))
    write_events(platform, downloads(honest.user_id, org, "198.51.100.8", 3))
    report = platform.monitor.run_due()
    assert report is not None
    assert [(d.rule, d.key) for d in report.detections] == [
        ("mass-download", f"user:{thief.user_id}")
    ]
    (alert,) = alerts_of(platform, "monitor.mass-download")
    assert alert.org_id == org and alert.severity == "critical"
    assert alert.details["count"] == 51 and alert.details["ip"] == "198.51.100.7"
    (suspension,) = active(platform, "suspend", thief.user_id)
    assert suspension.alert_id == alert.id and suspension.org_id == org
    # The thief's sessions are revoked at once; the honest member's are not.
    with platform.db.read() as s:
        sessions = {
            r.user_id: r.revoked_at
            for r in s.execute(
                select(UserSession).where(UserSession.user_id.in_([thief.user_id, honest.user_id]))
            ).scalars()
        }
    assert sessions[thief.user_id] is not None and sessions[honest.user_id] is None
    blocked = platform.monitor.guard.active()
    assert f"user:{thief.user_id}" in blocked.suspended
    assert f"user:{honest.user_id}" not in blocked.suspended
    assert count_events(platform, "monitor.response-applied") == 1


def test_windows_count_distinct_items_by_the_entries_own_time(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    # 60 downloads spread over an hour: never more than 50 within 10 minutes.
    write_events(
        platform,
        downloads(
            owner.user_id,
            org,
            "198.51.100.7",
            60,
            at=NOW - timedelta(hours=1),
            step=timedelta(minutes=1),
        ),
    )
    # The same document 80 times is one document.
    write_events(
        platform,
        [
            {**e, "object_id": "contract-same"}
            for e in downloads(owner.user_id, org, "198.51.100.7", 80)
        ],
    )
    platform.monitor.run_due()
    assert alerts_of(platform, "monitor.mass-download") == []


def test_organisation_thresholds_and_switches_apply(platform: Platform) -> None:
    org_a, owner_a = organisation(platform, "A", "owner@a.test")
    org_b, owner_b = organisation(platform, "B", "owner@b.test")
    admin_a = platform.sessions.authenticate(owner_a.session_token)
    platform.monitor.rules.change(admin_a, "mass-download", RuleChange(threshold=5, actions=()))
    admin_b = platform.sessions.authenticate(owner_b.session_token)
    platform.monitor.rules.change(admin_b, "mass-download", RuleChange(enabled=False))
    write_events(platform, downloads(owner_a.user_id, org_a, "198.51.100.1", 6))
    write_events(platform, downloads(owner_b.user_id, org_b, "198.51.100.2", 120))
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.mass-download")
    assert alert.org_id == org_a and alert.details["threshold"] == 5
    assert active(platform, "suspend", owner_a.user_id) == []  # actions=() : alert only
    # Each change was audited, and is itself a privilege change.
    assert count_events(platform, "monitor.rule-changed") == 2
    assert {a.org_id for a in alerts_of(platform, "monitor.privilege-change")} == {org_a, org_b}


def test_repeated_voids_and_edits(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    actor = user_actor(owner.user_id, org, "198.51.100.3")
    write_events(
        platform,
        [
            {
                "actor": actor,
                "action": "contract.void",
                "object_type": "contract",
                "object_id": f"v{i}",
                "org_id": org,
                "occurred_at": NOW,
            }
            for i in range(11)
        ]
        + [
            {
                "actor": actor,
                "action": "approval.rule.update",
                "object_type": "approval-rule",
                "object_id": "r1",
                "org_id": org,
                "occurred_at": NOW,
            }
            for _ in range(21)
        ],
    )
    platform.monitor.run_due()
    assert len(alerts_of(platform, "monitor.repeated-voids")) == 1
    assert len(alerts_of(platform, "monitor.repeated-edits")) == 1


def test_failed_logins_per_account_per_address_and_spraying(platform: Platform) -> None:
    spray = [failed_login("198.51.100.20", f"acct{i:04d}", NOW) for i in range(21)]
    brute = [failed_login(f"198.51.100.{30 + i % 5}", "victim", NOW) for i in range(11)]
    write_events(platform, spray + brute)
    platform.monitor.run_due()
    (spraying,) = alerts_of(platform, "monitor.password-spraying")
    assert spraying.org_id is None and spraying.details["key"] == "ip:198.51.100.20"
    (account,) = alerts_of(platform, "monitor.failed-logins-account")
    assert account.details["key"] == "acct:victim"
    # 21 failures from one address is not yet "many" (30), but spraying blocks it.
    assert alerts_of(platform, "monitor.failed-logins-ip") == []
    (block,) = active(platform, "block-ip", "ip:198.51.100.20")
    assert block.alert_id == spraying.id and block.org_id is None
    assert "ip:198.51.100.20" in platform.monitor.guard.active().blocked_ips
    # The brute-forced account's addresses are not blocked (alert only by default).
    assert active(platform, "block-ip", "ip:198.51.100.30") == []


def test_otp_failures_block_the_guessing_address(platform: Platform) -> None:
    org, _ = organisation(platform, "Acme", "owner@acme.test")
    signer = Actor(type="signer", id="signer-1", org_id=org, ip="198.51.100.40")
    write_events(
        platform,
        [
            {
                "actor": signer,
                "action": "stepup.failed" if i < 5 else "stepup.throttled",
                "object_type": "stepup",
                "object_id": "ch1",
                "org_id": org,
                "occurred_at": NOW,
            }
            for i in range(11)
        ],
    )
    platform.monitor.run_due()
    found = alerts_of(platform, "monitor.otp-failures")
    assert {a.details["key"] for a in found} == {"signer:signer-1", "ip:198.51.100.40"}
    assert all(a.org_id == org for a in found)
    assert len(active(platform, "block-ip", "ip:198.51.100.40")) == 1


def test_privilege_changes_alert_on_every_change(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    someone = member(platform, owner, "someone@acme.test")
    principal = platform.sessions.authenticate(owner.session_token)
    platform.people.change_role(principal, someone.user_id, "admin")
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.privilege-change")
    assert alert.org_id == org and alert.details["key"] == f"user:{someone.user_id}"
    platform.people.set_clearance(principal, someone.user_id, "secret")
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.privilege-change")  # the same object: one alert
    assert alert.count == 2


# -- stateful rules -------------------------------------------------------------------------------


def _confidential_contract(platform: Platform, org: str) -> str:
    from pactvault.contracts.service import SignerSpec
    from pactvault.demo import sample_pdf
    from pactvault.store.models import Contract

    contract = platform.contracts.create(
        Actor.system(),
        org,
        title="Secret",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="P", email="p@example.test")],
    )
    with platform.db.write() as s:
        row = s.get(Contract, contract.id)
        assert row is not None
        row.classification = "confidential"
    return contract.id


def test_new_network_on_confidential_access_requires_step_up(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    secret = _confidential_contract(platform, org)
    home = user_actor(owner.user_id, org, "198.51.100.50")
    # History: weeks of activity from the office network.
    write_events(
        platform, [{"actor": home, "action": "auth.login", "occurred_at": NOW - timedelta(days=20)}]
    )
    platform.monitor.run_due()
    # From the office (another address of the same /24): nothing.
    write_events(
        platform,
        [
            {
                "actor": user_actor(owner.user_id, org, "198.51.100.77"),
                "action": "document.download",
                "object_type": "contract",
                "object_id": secret,
                "org_id": org,
                "occurred_at": NOW,
            }
        ],
    )
    platform.monitor.run_due()
    assert alerts_of(platform, "monitor.new-network") == []
    # A sign-in and a download from a network never seen before.
    away = user_actor(owner.user_id, org, "203.0.113.99")
    write_events(
        platform,
        [
            {"actor": away, "action": "auth.login", "occurred_at": NOW + timedelta(minutes=1)},
            {
                "actor": away,
                "action": "document.download",
                "object_type": "contract",
                "object_id": secret,
                "org_id": org,
                "occurred_at": NOW + timedelta(minutes=2),
            },
        ],
    )
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.new-network")
    assert alert.details["network"] == "203.0.113.0/24"
    assert len(active(platform, "step-up", owner.user_id)) == 1
    assert f"user:{owner.user_id}" in platform.monitor.guard.active().step_up


def test_a_new_account_has_no_history_to_differ_from(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    secret = _confidential_contract(platform, org)
    write_events(
        platform,
        [
            {
                "actor": user_actor(owner.user_id, org, "203.0.113.5"),
                "action": "document.download",
                "object_type": "contract",
                "object_id": secret,
                "org_id": org,
                "occurred_at": NOW,
            }
        ],
    )
    platform.monitor.run_due()
    assert alerts_of(platform, "monitor.new-network") == []


def test_unusual_hours_on_confidential_access(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    secret = _confidential_contract(platform, org)
    day = NOW.replace(hour=0, minute=0, second=0) - timedelta(days=30)
    office = user_actor(owner.user_id, org, "198.51.100.60")
    history = [
        {
            "actor": office,
            "action": "auth.login",
            "occurred_at": day + timedelta(days=d, hours=9 + d % 8),
        }
        for d in range(60)
    ]
    write_events(platform, history)
    platform.monitor.run_due()
    read = {
        "actor": office,
        "action": "document.download",
        "object_type": "contract",
        "object_id": secret,
        "org_id": org,
    }
    write_events(platform, [{**read, "occurred_at": day + timedelta(days=40, hours=11)}])
    platform.monitor.run_due()
    assert alerts_of(platform, "monitor.unusual-hours") == []
    write_events(platform, [{**read, "occurred_at": day + timedelta(days=40, hours=3)}])
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.unusual-hours")
    assert alert.details["hour_utc"] == 3


def test_token_used_from_a_new_network(platform: Platform) -> None:
    org, _ = organisation(platform, "Acme", "owner@acme.test")
    token = Actor(type="api-token", id="tok-1", org_id=org, ip="198.51.100.90")
    write_events(
        platform,
        [
            {
                "actor": token,
                "action": "contract.create",
                "object_type": "contract",
                "object_id": "c1",
                "org_id": org,
                "occurred_at": NOW - timedelta(days=3),
            }
        ],
    )
    platform.monitor.run_due()
    elsewhere = Actor(type="api-token", id="tok-1", org_id=org, ip="2001:db8:77::5")
    write_events(
        platform,
        [
            {
                "actor": elsewhere,
                "action": "contract.create",
                "object_type": "contract",
                "object_id": "c2",
                "org_id": org,
                "occurred_at": NOW,
            }
        ],
    )
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.token-new-network")
    assert alert.details["network"] == "2001:db8:77::/48" and alert.org_id == org


def test_integrity_alerts_are_linked_not_duplicated(platform: Platform) -> None:
    raised = platform.alerts.raise_alert(
        "integrity.blob-missing",
        severity="critical",
        title="gone",
        details={"contract_id": "c1", "version": 1},
    )
    platform.monitor.rules.operator_change(OPERATOR, "integrity-failure", RuleChange(actions=()))
    report = platform.monitor.run_due()
    assert report is not None
    (detection,) = [d for d in report.detections if d.rule == "integrity-failure"]
    assert detection.linked_alert_id == raised.alert.id
    assert alerts_of(platform, "monitor.integrity-failure") == []


# -- the engine -----------------------------------------------------------------------------------


def test_a_rerun_batch_loses_nothing_and_doubles_nothing(platform: Platform) -> None:
    """A crash after acting but before the cursor moved: the batch is read again."""
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    write_events(platform, downloads(owner.user_id, org, "198.51.100.7", 51))
    engine = platform.monitor.engine
    cursor, _ = engine.lag()
    platform.monitor.run_due()
    from pactvault.store.detection_models import MonitorCursor

    with platform.db.write() as s:
        row = s.get(MonitorCursor, "detection")
        assert row is not None
        row.last_seq = cursor  # as if the cursor update had never committed
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.mass-download")
    assert alert.count == 2  # seen again, still one problem
    assert len(active(platform, "suspend", owner.user_id)) == 1  # extended, not doubled
    with platform.db.read() as s:
        rows = s.execute(select(Observation).where(Observation.rule == "mass-download")).all()
    assert len(rows) == 51


def test_detection_starts_at_the_journal_head(tmp_path: Path, database_url: str) -> None:
    instance = make_platform(tmp_path / "data", database_url)
    try:
        org, owner = organisation(instance, "Acme", "owner@acme.test")
        write_events(instance, downloads(owner.user_id, org, "198.51.100.7", 60))
        assert instance.monitor.run_due() is None  # the cursor is created at the head
        assert alerts_of(instance, "monitor.mass-download") == []
        cursor, head = instance.monitor.engine.lag()
        assert cursor == head
    finally:
        instance.close()


def test_one_process_reads_at_a_time(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    write_events(platform, downloads(owner.user_id, org, "198.51.100.7", 51))
    other = JobLease(platform.db, "monitor.detection", ttl=timedelta(minutes=1))
    token = other.try_acquire(datetime.now(UTC), interval=timedelta(0))
    assert token is not None
    assert platform.monitor.run_due() is None  # another process holds the lease
    other.release(token, datetime.now(UTC), outcome="ok")
    assert platform.monitor.run_due() is not None
    assert len(alerts_of(platform, "monitor.mass-download")) == 1


def test_disabled_monitoring_reads_nothing(tmp_path: Path) -> None:
    instance = make_platform(tmp_path / "data", monitor_enabled=False)
    try:
        instance.monitor.engine.start()
        org, owner = organisation(instance, "Acme", "owner@acme.test")
        write_events(instance, downloads(owner.user_id, org, "198.51.100.7", 60))
        assert instance.monitor.run_due() is None
    finally:
        instance.close()


def test_old_observations_are_pruned(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    write_events(
        platform, downloads(owner.user_id, org, "198.51.100.7", 3, at=NOW - timedelta(days=3))
    )
    write_events(platform, downloads(owner.user_id, org, "198.51.100.7", 2, start=10))
    platform.monitor.run_due()
    assert platform.monitor.engine.prune() == 3
    with platform.db.read() as s:
        assert len(s.execute(select(Observation)).all()) == 2


def test_an_alert_that_fails_to_raise_is_retried_not_lost(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    write_events(platform, downloads(owner.user_id, org, "198.51.100.7", 51))
    cursor, _ = platform.monitor.engine.lag()
    real = platform.alerts.raise_alert
    failures = []

    def once_unavailable(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(1)
            raise RuntimeError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(platform.alerts, "raise_alert", once_unavailable)
    platform.monitor.run_due()
    assert alerts_of(platform, "monitor.mass-download") == []
    assert platform.monitor.engine.lag()[0] == cursor  # the batch will be read again
    platform.monitor.run_due()
    assert len(alerts_of(platform, "monitor.mass-download")) == 1
    assert len(active(platform, "suspend", owner.user_id)) == 1
