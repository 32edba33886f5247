"""Alerts by email: an organisation's alert reaches the members who may read alerts (and nobody
else), a platform-wide one the operator's addresses; addresses are looked up when sending, never
stored in the delivery log; failures are retried, then given up, and both are audited."""

from __future__ import annotations

from sqlalchemy import select

from identity_kit import CLIENT, PASSWORD
from pactvault.audit.journal import Actor
from pactvault.identity.people import NewAccount
from pactvault.monitor.alerts import AlertService
from pactvault.notify import MemoryMailer, Message
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent
from pactvault.store.monitor_models import AlertDelivery

SYSTEM = Actor(type="system", id="pytest-alert-mail")


def _org(platform: Platform, tag: str) -> tuple[str, dict[str, str]]:
    """An organisation with an owner, an auditor and a plain member: their user ids by role."""
    owner = f"owner@{tag}.test"
    platform.people.create_organisation(SYSTEM, f"{tag} Ltd", owner, NewAccount("Olive", PASSWORD))
    issued = platform.login.login(owner, PASSWORD, CLIENT)
    principal = platform.sessions.authenticate(issued.token)  # type: ignore[union-attr]
    ids = {"owner": str(principal.user_id)}
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    for role in ("auditor", "member"):
        email = f"{role}@{tag}.test"
        platform.people.invite(principal, email, role)
        token = next(
            dict(m.tags)["Invitation-Token"] for m in reversed(mailer.messages) if m.to == email
        )
        info = platform.people.accept_invitation(token, CLIENT, account=NewAccount(role, PASSWORD))
        ids[role] = info.user_id
    return principal.org_id, ids


def _alert_mails(mailer: MemoryMailer, alert_id: str) -> list[Message]:
    return [m for m in mailer.messages if dict(m.tags).get("Alert-Id") == alert_id]


def _raise(service: AlertService, org_id: str | None, severity: str = "critical") -> str:
    raised = service.raise_alert(
        "monitor.mass-download",
        severity=severity,
        title="50 documents downloaded in 10 minutes",
        details={"user_id": "u-1", "count": 51},
        org_id=org_id,
    )
    return raised.alert.id


def test_an_organisation_alert_is_mailed_to_its_alert_readers_only(platform: Platform) -> None:
    org_id, ids = _org(platform, "mailalert")
    other_org, _ = _org(platform, "bystander")
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    alert_id = _raise(platform.alerts, org_id)

    with platform.db.read() as s:
        deliveries = s.execute(
            select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)
        ).scalars()
        endpoints = sorted(d.endpoint for d in deliveries if d.channel == "email")
    # Owners and auditors hold alert.read; a plain member does not. No address in the log.
    assert endpoints == sorted([f"user:{ids['owner']}", f"user:{ids['auditor']}"])

    stats = platform.alerts.deliver_pending()
    assert stats.delivered == 2 and stats.failed == 0
    sent = _alert_mails(mailer, alert_id)
    assert sorted(m.to for m in sent) == ["auditor@mailalert.test", "owner@mailalert.test"]
    message = sent[0]
    assert "50 documents downloaded" in message.subject
    assert "安全告警" in message.body and "Security alert" not in message.body.split("\n")[0]
    assert "monitor.mass-download" in message.body
    assert f"/organisation/alerts/{alert_id}" in message.body
    assert not any(m.to.endswith("@bystander.test") for m in sent)
    assert other_org != org_id
    with platform.db.read() as s:
        delivered = s.execute(
            select(AuditEvent).where(
                AuditEvent.action == "alert.delivered", AuditEvent.object_id == alert_id
            )
        ).scalars()
        assert len(list(delivered)) == 2
    # Nothing is sent twice.
    assert platform.alerts.deliver_pending().delivered == 0
    assert len(_alert_mails(mailer, alert_id)) == 2


def test_below_the_email_severity_nothing_is_mailed(platform: Platform) -> None:
    org_id, _ = _org(platform, "quietalert")
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    alert_id = _raise(platform.alerts, org_id, severity="info")
    platform.alerts.deliver_pending()
    assert _alert_mails(mailer, alert_id) == []


def test_a_member_who_lost_the_permission_is_not_written_to(platform: Platform) -> None:
    org_id, ids = _org(platform, "leaver")
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    alert_id = _raise(platform.alerts, org_id)
    owner = platform.sessions.authenticate(
        platform.login.login("owner@leaver.test", PASSWORD, CLIENT).token  # type: ignore[union-attr]
    )
    platform.people.change_role(owner, ids["auditor"], "member")
    stats = platform.alerts.deliver_pending()
    assert (stats.delivered, stats.failed) == (1, 1)
    assert [m.to for m in _alert_mails(mailer, alert_id)] == ["owner@leaver.test"]
    with platform.db.read() as s:
        failed = s.execute(
            select(AlertDelivery).where(
                AlertDelivery.alert_id == alert_id, AlertDelivery.status == "failed"
            )
        ).scalar_one()
    assert failed.endpoint == f"user:{ids['auditor']}"
    assert failed.last_error == "recipient may no longer be told"


class _BrokenMailer:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: Message) -> None:
        self.calls += 1
        raise ConnectionRefusedError("smtp down")


def test_platform_alerts_go_to_the_operator_and_mail_failures_are_retried(
    platform: Platform,
) -> None:
    broken = _BrokenMailer()
    service = AlertService(
        platform.db,
        platform.access,
        mailer=broken,
        operator_emails=["ops@example.test", "oncall@example.test"],
        max_attempts=2,
    )
    alert_id = _raise(service, None)
    first = service.deliver_pending()
    assert (first.retrying, first.delivered) == (2, 0)
    with platform.db.read() as s:
        rows = list(
            s.execute(select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)).scalars()
        )
    assert sorted(r.endpoint for r in rows) == ["operator:0", "operator:1"]
    assert all(r.last_error == "mail not sent: ConnectionRefusedError" for r in rows)
    later = max(r.next_attempt_at for r in rows)
    second = service.deliver_pending(later)
    assert second.failed == 2 and broken.calls == 4

    working = MemoryMailer()
    healthy = AlertService(
        platform.db, platform.access, mailer=working, operator_emails=["ops@example.test"]
    )
    other = healthy.raise_alert(
        "ledger.fork", severity="critical", title="fork", details={"size": 7}
    ).alert.id
    assert healthy.deliver_pending().delivered == 1
    assert [m.to for m in _alert_mails(working, other)] == ["ops@example.test"]
    assert "pactvault alerts show" in working.messages[0].body
