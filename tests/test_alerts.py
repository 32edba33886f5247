"""The alert store: de-duplication, who sees what, handling, audit, and signed webhook delivery
to a real HTTP server on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from pactvault.access.decision import AccessControl
from pactvault.audit.journal import Actor, verify_chain
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from pactvault.identity.principal import Principal
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.webhooks import WebhookEndpoint, new_webhook_secret, verify_webhook
from pactvault.store import migrate
from pactvault.store.db import Database
from pactvault.store.models import AuditEvent, Base
from pactvault.store.monitor_models import Alert, AlertDelivery

ORG_A, ORG_B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
ADMIN_A = Principal(
    org_id=ORG_A,
    user_id="admin-a",
    session_id="session-a",
    role="admin",
    permissions=frozenset({"alert.read", "alert.manage"}),
)
ADMIN_B = Principal(
    org_id=ORG_B,
    user_id="admin-b",
    role="admin",
    permissions=frozenset({"alert.read", "alert.manage"}),
)
MEMBER_A = Principal(org_id=ORG_A, user_id="member-a", role="member", permissions=frozenset())
OPERATOR = Actor(type="operator-cli", id="pytest")
MONITOR_TABLES = {"alerts", "alert_deliveries", "scheduled_jobs"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    migrate.upgrade(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def events(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as session:
        return list(
            session.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).scalars()
        )


def blob_alert(service: AlertService, org_id: str | None = ORG_A, version: int = 2, **kw: object):  # type: ignore[no-untyped-def]
    subject = {"contract_id": "c0ffee00-0000-4000-8000-000000000001", "version": version}
    return service.raise_alert(
        "integrity.blob-mismatch",
        severity="critical",
        title=f"revision {version} differs",
        details={**subject, "expected_sha256": "a" * 64, "found_sha256": kw.pop("found", "b" * 64)},
        subject=subject,
        org_id=org_id,
        **kw,  # type: ignore[arg-type]
    )


# -- the store ---------------------------------------------------------------------------------


def test_migration_builds_exactly_the_monitor_tables(db: Database) -> None:
    with db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in drift if any(t in repr(d) for t in MONITOR_TABLES)]
    assert ours == []


def test_the_same_open_problem_is_one_alert_with_a_count(db: Database) -> None:
    clock = Clock()
    service = AlertService(db, AccessControl(db), clock=clock)
    first = blob_alert(service)
    clock.now += timedelta(days=1)
    again = blob_alert(service, found="c" * 64)
    other = blob_alert(service, version=3)
    assert first.created and not again.created and other.created
    assert again.alert.id == first.alert.id
    with db.read() as session:
        stored = session.get(Alert, first.alert.id)
        assert stored is not None
        assert stored.count == 2 and stored.status == "open"
        assert stored.last_seen_at == clock.now and stored.created_at < stored.last_seen_at
        assert stored.details["found_sha256"] == "c" * 64  # the latest evidence
        assert session.execute(select(Alert)).scalars().all().__len__() == 2
    raised = events(db, "alert.raised")
    assert [e.object_id for e in raised] == [first.alert.id, other.alert.id]
    assert raised[0].details["details"]["found_sha256"] == "b" * 64  # the first evidence, kept
    assert raised[0].org_id == ORG_A
    (repeated,) = events(db, "alert.repeated")
    assert repeated.details["count"] == 2
    assert repeated.details["details"]["found_sha256"] == "c" * 64  # changed evidence, kept
    with db.read() as session:
        assert verify_chain(session).ok


def test_alert_input_is_validated(db: Database) -> None:
    service = AlertService(db, AccessControl(db))
    for kwargs in (
        {"kind": "Integrity blob", "severity": "critical", "title": "x"},
        {"kind": "integrity.x", "severity": "urgent", "title": "x"},
        {"kind": "integrity.x", "severity": "info", "title": " "},
    ):
        with pytest.raises(InvalidInputError):
            service.raise_alert(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="too large"):
        service.raise_alert(
            "integrity.x", severity="info", title="x", details={"blob": "0" * 20_000}
        )


def test_concurrent_detections_of_one_problem_make_one_alert(db: Database) -> None:
    """Several processes find the same problem at once: the unique open fingerprint holds."""
    service = AlertService(db, AccessControl(db))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def detect() -> None:
        try:
            barrier.wait()
            blob_alert(service)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=detect) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.read() as session:
        alerts = session.execute(select(Alert)).scalars().all()
    assert len(alerts) == 1 and alerts[0].count == 4


# -- who sees and handles what -----------------------------------------------------------------


def test_admins_see_their_organisations_alerts_and_operators_see_all(db: Database) -> None:
    service = AlertService(db, AccessControl(db))
    mine = blob_alert(service, org_id=ORG_A).alert
    theirs = blob_alert(service, org_id=ORG_B).alert
    platform_wide = service.raise_alert(
        "integrity.audit-chain", severity="critical", title="entry 5 missing", details={"seq": 5}
    ).alert
    assert [a.id for a in service.list_alerts(ADMIN_A)] == [mine.id]
    assert [a.id for a in service.list_alerts(ADMIN_B)] == [theirs.id]
    assert {a.id for a in service.operator_alerts()} == {mine.id, theirs.id, platform_wide.id}
    assert [a.id for a in service.operator_alerts(status="open", limit=1)] != []
    with pytest.raises(PermissionDeniedError):
        service.list_alerts(MEMBER_A)
    denied = events(db, "access.denied")
    assert denied and denied[-1].details["action"] == "alert.read"
    with pytest.raises(InvalidInputError):
        service.list_alerts(ADMIN_A, status="closed")


def test_acknowledge_and_resolve_are_audited_and_resolution_reopens_on_recurrence(
    db: Database,
) -> None:
    clock = Clock()
    service = AlertService(db, AccessControl(db), clock=clock)
    alert = blob_alert(service).alert
    acknowledged = service.acknowledge(ADMIN_A, alert.id, note="looking into it")
    assert acknowledged.status == "acknowledged" and acknowledged.acknowledged_by == "user:admin-a"
    assert not blob_alert(service).created  # still the same open problem
    with pytest.raises(ConflictError):
        service.acknowledge(ADMIN_A, alert.id)
    resolved = service.resolve(ADMIN_A, alert.id, note="restored from backup")
    assert resolved.status == "resolved" and resolved.resolved_at == clock.now
    assert resolved.note == "restored from backup"
    with pytest.raises(ConflictError):
        service.resolve(ADMIN_A, alert.id)
    recurred = blob_alert(service)
    assert recurred.created and recurred.alert.id != alert.id
    assert [e.details["note"] for e in events(db, "alert.acknowledge")] == ["looking into it"]
    assert [e.object_id for e in events(db, "alert.resolve")] == [alert.id]
    assert service.list_alerts(ADMIN_A, status="resolved")[0].id == alert.id


def test_other_organisations_and_platform_alerts_look_missing(db: Database) -> None:
    service = AlertService(db, AccessControl(db))
    theirs = blob_alert(service, org_id=ORG_B).alert
    platform_wide = service.raise_alert(
        "integrity.ledger-leaf", severity="critical", title="leaf 3", details={"leaf_index": 3}
    ).alert
    before = len(events(db, "access.denied"))
    for alert_id in (theirs.id, platform_wide.id, "no-such-alert"):
        with pytest.raises(NotFoundError, match="alert not found"):
            service.acknowledge(ADMIN_A, alert_id)
    with pytest.raises(PermissionDeniedError):
        service.resolve(MEMBER_A, theirs.id)
    assert len(events(db, "access.denied")) == before + 4
    # The instance operator handles platform-wide alerts from the CLI.
    assert service.operator_resolve(OPERATOR, platform_wide.id).status == "resolved"
    assert events(db, "alert.resolve")[-1].actor_type == "operator-cli"


# -- webhooks ----------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server on loopback that records what it receives."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pactvault"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def deliveries(db: Database) -> list[AlertDelivery]:
    with db.read() as session:
        return list(session.execute(select(AlertDelivery)).scalars())


def test_webhook_is_queued_at_raise_and_delivered_signed(db: Database, receiver: Receiver) -> None:
    clock = Clock()
    secret = new_webhook_secret()
    endpoint = WebhookEndpoint("ops", receiver.url, secret)
    service = AlertService(db, AccessControl(db), [endpoint], clock=clock)
    alert = blob_alert(service).alert
    assert receiver.requests == []  # raising never waits on the network
    assert [d.status for d in deliveries(db)] == ["pending"]
    assert not blob_alert(service).created  # a repeat notifies nobody again
    assert len(deliveries(db)) == 1

    stats = service.deliver_pending()
    assert (stats.delivered, stats.retrying, stats.failed) == (1, 0, 0)
    ((headers, body),) = receiver.requests
    assert verify_webhook(secret, headers, body, now=int(time.time()))
    assert not verify_webhook(secret, headers, body + b" ", now=int(time.time()))
    assert not verify_webhook(new_webhook_secret(), headers, body, now=int(time.time()))
    assert not verify_webhook(secret, headers, body, now=int(time.time()) + 3600)  # replayed late
    payload = json.loads(body)
    assert payload["type"] == "alert.raised"
    assert payload["alert"]["id"] == alert.id and payload["alert"]["kind"] == alert.kind
    assert payload["alert"]["details"]["found_sha256"] == "b" * 64
    (row,) = deliveries(db)
    assert headers["webhook-id"] == row.id
    assert row.status == "delivered" and row.attempts == 1 and row.last_status_code == 204
    assert [e.object_id for e in events(db, "alert.delivered")] == [alert.id]
    assert service.deliver_pending().delivered == 0 and len(receiver.requests) == 1
    service.close()


def test_failed_deliveries_back_off_then_succeed_or_give_up(db: Database) -> None:
    clock = Clock()
    flaky = Receiver(statuses=[500, 503])
    try:
        endpoint = WebhookEndpoint("ops", flaky.url, new_webhook_secret())
        service = AlertService(db, AccessControl(db), [endpoint], clock=clock, max_attempts=3)
        blob_alert(service)
        assert service.deliver_pending().retrying == 1
        (row,) = deliveries(db)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.next_attempt_at == clock.now + timedelta(seconds=30)
        assert service.deliver_pending().retrying == 0 and len(flaky.requests) == 1  # not due
        clock.now += timedelta(seconds=30)
        assert service.deliver_pending().retrying == 1
        assert deliveries(db)[0].next_attempt_at == clock.now + timedelta(seconds=60)
        clock.now += timedelta(minutes=1)
        assert service.deliver_pending().delivered == 1
        assert len(flaky.requests) == 3
        assert len({h["webhook-id"] for h, _ in flaky.requests}) == 1  # one id for every retry
        service.close()
    finally:
        flaky.close()

    refusing = Receiver(statuses=[500, 500])
    try:
        endpoint = WebhookEndpoint("ops", refusing.url, new_webhook_secret())
        service = AlertService(db, AccessControl(db), [endpoint], clock=clock, max_attempts=2)
        blob_alert(service, version=7)
        service.deliver_pending()
        clock.now += timedelta(hours=1)
        assert service.deliver_pending().failed == 1
        failed = [d for d in deliveries(db) if d.status == "failed"]
        assert len(failed) == 1 and failed[0].attempts == 2 and failed[0].last_error == "HTTP 500"
        (gave_up,) = events(db, "alert.delivery-failed")
        assert gave_up.details["attempts"] == 2 and gave_up.details["status_code"] == 500
        service.close()
    finally:
        refusing.close()


def test_unreachable_endpoint_is_retried_later(db: Database) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = WebhookEndpoint("ops", f"http://127.0.0.1:{port}/", new_webhook_secret())
    service = AlertService(db, AccessControl(db), [endpoint])
    blob_alert(service)
    assert service.deliver_pending().retrying == 1
    (row,) = deliveries(db)
    assert row.status == "pending" and row.last_error == "ConnectError"
    assert row.last_status_code is None
    service.close()


def test_deliveries_for_an_endpoint_no_longer_configured_fail_closed(
    db: Database, receiver: Receiver
) -> None:
    old = AlertService(
        db, AccessControl(db), [WebhookEndpoint("old", receiver.url, new_webhook_secret())]
    )
    blob_alert(old)
    new = AlertService(
        db, AccessControl(db), [WebhookEndpoint("ops", receiver.url, new_webhook_secret())]
    )
    assert new.deliver_pending().failed == 1
    assert receiver.requests == []
    assert deliveries(db)[0].last_error == "endpoint no longer configured"


@pytest.mark.parametrize(
    "url,secret,problem",
    [
        ("http://alerts.example.com/hook", None, "https"),
        ("https://user:pw@alerts.example.com/hook", None, "credentials"),
        ("ftp://127.0.0.1/hook", None, "https"),
        ("https://alerts.example.com/hook", "hunter2", "whsec_"),
        ("https://alerts.example.com/hook", "whsec_c2hvcnQ=", "random bytes"),
        ("https://alerts.example.com/hook", "whsec_not base64!", "base64"),
    ],
)
def test_webhook_configuration_is_refused_when_unsafe(
    url: str, secret: str | None, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        WebhookEndpoint("ops", url, secret or new_webhook_secret())


def test_webhook_names_must_be_unique(db: Database) -> None:
    endpoint = WebhookEndpoint("ops", "https://alerts.example.com/hook", new_webhook_secret())
    with pytest.raises(InvalidInputError, match="unique"):
        AlertService(db, AccessControl(db), [endpoint, endpoint])
    assert "whsec" not in repr(endpoint)  # the secret stays out of logs
