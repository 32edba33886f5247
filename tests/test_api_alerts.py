"""Alerts over the API, on SQLite and PostgreSQL: damage found by the integrity auditor shows up
for the damaged organisation's administrators only; filters and pages; acknowledging and
resolving (audited, and a second resolve is a conflict); each alert's webhook delivery log,
never with the webhook's URL or secret."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts_kit import Receiver, audit_events, draft_contract, flip_a_byte
from identity_kit import FAST, PASSWORD
from pactvault.api.app import create_app
from pactvault.api.deps import CSRF_HEADER, SESSION_COOKIE
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.monitor.webhooks import new_webhook_secret, verify_webhook
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

SYSTEM = Actor(type="system", id="pytest")
CLIENT = Actor(type="anonymous", ip="203.0.113.9", user_agent="pytest-alerts")
ALERTS = "/api/v1/org/alerts"


@dataclass
class World:
    platform: Platform
    client: TestClient
    receiver: Receiver
    secret: str
    org_a: str
    org_b: str
    #: role → request headers of a signed-in member of org A ("owner_b": org B's owner)
    headers: dict[str, dict[str, str]]
    user_ids: dict[str, str]

    def get(self, who: str, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self.headers[who], **kwargs)  # type: ignore[arg-type]

    def post(self, who: str, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        return self.client.post(path, headers=self.headers[who], **kwargs)  # type: ignore[arg-type]

    def raise_alert(self, org_id: str | None, kind: str = "integrity.blob-missing", **kw):  # type: ignore[no-untyped-def]
        subject = kw.pop("subject", None) or {"contract_id": kind + str(time.perf_counter_ns())}
        return self.platform.alerts.raise_alert(
            kind,
            severity=kw.pop("severity", "critical"),
            title=kw.pop("title", f"{kind} found"),
            details=subject,
            org_id=org_id,
        ).alert


def _invitation_token(mailer: MemoryMailer, email: str) -> str:
    for message in reversed(mailer.messages):
        tags = dict(message.tags)
        if message.to == email and "Invitation-Token" in tags:
            return tags["Invitation-Token"]
    raise AssertionError(f"no invitation for {email}")


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    receiver = Receiver()
    secret = new_webhook_secret()
    mailer = MemoryMailer()
    platform, _ = Platform.initialise(
        Settings(
            home=tmp_path / "data",
            database_url=database_url,
            alert_webhook_url=receiver.url,
            alert_webhook_secret=secret,
        ),
        mailer=mailer,
        password_hasher=PasswordHasher(FAST),
    )
    people = platform.people
    a = people.create_organisation(SYSTEM, "Org A", "owner@a.test", NewAccount("Owner", PASSWORD))
    b = people.create_organisation(SYSTEM, "Org B", "owner@b.test", NewAccount("Owner", PASSWORD))
    headers: dict[str, dict[str, str]] = {}
    user_ids: dict[str, str] = {}

    def sign_in(name: str, email: str) -> None:
        issued = platform.login.login(email, PASSWORD, CLIENT)
        headers[name] = {
            CSRF_HEADER: issued.csrf_token,
            "Cookie": f"{SESSION_COOKIE}={issued.token}",
        }
        user_ids[name] = issued.user_id

    sign_in("owner", "owner@a.test")
    owner = platform.sessions.authenticate(headers["owner"]["Cookie"].split("=", 1)[1])
    for role in ("admin", "auditor", "member"):
        email = f"{role}@a.test"
        people.invite(owner, email, role)
        people.accept_invitation(
            _invitation_token(mailer, email), CLIENT, account=NewAccount(role.title(), PASSWORD)
        )
        sign_in(role, email)
    sign_in("owner_b", "owner@b.test")
    # No lifespan (no ``with``): the background maintenance and integrity jobs stay off, so
    # only what a test does raises or delivers anything.
    client = TestClient(create_app(platform, maintenance_interval=3600))
    try:
        yield World(platform, client, receiver, secret, a.org_id, b.org_id, headers, user_ids)
    finally:
        client.close()
        platform.close()
        receiver.close()


def ids(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# -- a real cause, the right audience ----------------------------------------------------------


def test_a_flipped_blob_byte_is_an_alert_for_that_organisation_only(world: World) -> None:
    damaged = draft_contract(world.platform, world.org_a)
    draft_contract(world.platform, world.org_b)  # B's documents are intact
    flip_a_byte(world.platform, damaged)
    report = world.platform.integrity.run()
    assert report.findings_total == 1

    listing = world.get("admin", ALERTS)
    assert listing.status_code == 200, listing.text
    page = listing.json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
    (alert,) = page["items"]
    assert alert["kind"] == "integrity.decrypt-failed" and alert["severity"] == "critical"
    assert alert["status"] == "open" and alert["count"] == 1
    assert alert["details"]["contract_id"] == damaged and alert["details"]["version"] == 1
    assert (
        alert["details"]["expected_ciphertext_sha256"]
        != alert["details"]["found_ciphertext_sha256"]
    )
    assert ids(world.get("auditor", ALERTS)) == [alert["id"]]  # auditors read alerts too
    assert ids(world.get("owner_b", ALERTS)) == []  # the other tenant sees nothing

    detail = world.get("admin", f"{ALERTS}/{alert['id']}")
    assert detail.status_code == 200
    assert detail.json()["details"] == alert["details"]

    # Detected again by the next run: the same alert, counted, not a second one.
    world.platform.integrity.run()
    (again,) = world.get("admin", ALERTS).json()["items"]
    assert again["id"] == alert["id"] and again["count"] == 2


def test_another_tenants_and_platform_wide_alerts_answer_like_missing_ids(world: World) -> None:
    theirs = world.raise_alert(world.org_b)
    platform_wide = world.raise_alert(None, "integrity.audit-chain", subject={"seq": 7})
    missing = "00000000-0000-4000-8000-000000000000"
    denied_before = len(audit_events(world.platform, "access.denied"))
    answers = []
    for alert_id in (theirs.id, platform_wide.id, missing):
        for method, path in (
            ("GET", f"{ALERTS}/{alert_id}"),
            ("POST", f"{ALERTS}/{alert_id}/acknowledge"),
            ("POST", f"{ALERTS}/{alert_id}/resolve"),
        ):
            response = world.client.request(method, path, headers=world.headers["admin"])
            assert response.status_code == 404, response.text
            body = response.json()
            answers.append((method, path.replace(alert_id, "ID"), body["detail"], body["type"]))
    # Word for word the same answer for a foreign, a platform-wide and a missing id.
    assert len(set(answers)) == 3 and all(a[2] == "alert not found" for a in answers)
    denials = audit_events(world.platform, "access.denied")[denied_before:]
    assert len(denials) == 9
    assert {(d.details["status"], d.details["reason"]) for d in denials} == {
        (404, "alert not found")
    }
    assert all(d.actor_id == world.user_ids["admin"] and d.ip == "testclient" for d in denials)
    # Nothing was changed by the attempts.
    assert world.platform.alerts.operator_get(theirs.id).alert.status == "open"
    assert world.platform.alerts.operator_get(platform_wide.id).alert.status == "open"
    assert theirs.id not in ids(world.get("admin", ALERTS))
    assert platform_wide.id not in ids(world.get("admin", ALERTS))


def test_members_without_alert_permissions_are_refused_and_audited(world: World) -> None:
    alert = world.raise_alert(world.org_a)
    before = len(audit_events(world.platform, "access.denied"))
    assert world.get("member", ALERTS).status_code == 403
    assert world.get("member", f"{ALERTS}/{alert.id}").status_code == 403
    refused = world.post("auditor", f"{ALERTS}/{alert.id}/acknowledge", json={"note": "x"})
    assert refused.status_code == 403
    assert len(audit_events(world.platform, "access.denied")) == before + 3
    assert world.platform.alerts.operator_get(alert.id).alert.status == "open"
    anonymous = world.client.get(ALERTS)
    assert anonymous.status_code == 401


# -- filters and pages -------------------------------------------------------------------------


def test_filters_and_pages(world: World) -> None:
    blob = world.raise_alert(world.org_a, "integrity.blob-missing")
    leaf = world.raise_alert(world.org_a, "integrity.decrypt-failed", severity="warning")
    info = world.raise_alert(world.org_a, "monitor.login-burst", severity="info")
    handled = world.raise_alert(world.org_a, "integrity.ciphertext-mismatch", severity="warning")
    world.raise_alert(world.org_b, "integrity.blob-missing")  # never in A's listings
    world.platform.alerts.operator_acknowledge(SYSTEM, leaf.id, org_id=world.org_a)
    world.platform.alerts.operator_resolve(SYSTEM, handled.id, org_id=world.org_a)

    newest_first = [handled.id, info.id, leaf.id, blob.id]
    assert ids(world.get("admin", ALERTS)) == newest_first
    assert ids(world.get("admin", ALERTS, params={"status": "open"})) == [info.id, blob.id]
    unresolved = world.get("admin", ALERTS, params={"status": ["open", "acknowledged"]})
    assert ids(unresolved) == [info.id, leaf.id, blob.id]
    assert ids(world.get("admin", ALERTS, params={"severity": "warning"})) == [handled.id, leaf.id]
    assert ids(world.get("admin", ALERTS, params={"kind": "integrity.blob-missing"})) == [blob.id]
    assert ids(world.get("admin", ALERTS, params={"kind": "integrity.*"})) == [
        handled.id,
        leaf.id,
        blob.id,
    ]
    both = world.get("admin", ALERTS, params={"kind": "integrity.*", "status": "open"})
    assert ids(both) == [blob.id]

    page = world.get("admin", ALERTS, params={"limit": 2, "offset": 1}).json()
    assert [i["id"] for i in page["items"]] == newest_first[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    filtered = world.get("admin", ALERTS, params={"severity": "warning", "limit": 1}).json()
    assert filtered["total"] == 2 and len(filtered["items"]) == 1

    # ``since`` keeps alerts raised, or seen again, from that moment on.
    cut = datetime.now(UTC)
    later = world.raise_alert(world.org_a, "integrity.blob-missing")
    assert ids(world.get("admin", ALERTS, params={"since": cut.isoformat()})) == [later.id]
    world.raise_alert(world.org_a, "integrity.blob-missing", subject=blob.details)  # again
    assert ids(world.get("admin", ALERTS, params={"since": cut.isoformat()})) == [
        later.id,
        blob.id,
    ]
    future = (cut + timedelta(days=1)).isoformat()
    assert ids(world.get("admin", ALERTS, params={"since": future})) == []


BAD_FILTERS: list[dict[str, object]] = [
    {"status": "closed"},
    {"status": ["open", "bogus"]},
    {"severity": "urgent"},
    {"kind": "Integrity Blob"},
    {"kind": "integrity.%"},
    {"kind": "*"},
    {"since": "2030-01-01T00:00:00"},  # no time zone: ambiguous, refused
    {"since": "yesterday"},
    {"limit": 0},
    {"limit": 201},
    {"offset": -1},
]


def test_bad_filters_are_refused_clearly(world: World) -> None:
    world.raise_alert(world.org_a)
    for params in BAD_FILTERS:
        response = world.get("admin", ALERTS, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"], params


# -- handling ----------------------------------------------------------------------------------


def test_acknowledge_then_resolve_is_audited_and_a_second_resolve_conflicts(world: World) -> None:
    damaged = draft_contract(world.platform, world.org_a)
    flip_a_byte(world.platform, damaged)
    world.platform.integrity.run()
    (alert,) = world.get("admin", ALERTS).json()["items"]
    path = f"{ALERTS}/{alert['id']}"

    acked = world.post("admin", f"{path}/acknowledge", json={"note": "restoring from backup"})
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["status"] == "acknowledged" and body["note"] == "restoring from backup"
    assert body["acknowledged_by"] == f"user:{world.user_ids['admin']}"
    assert body["acknowledged_at"] is not None and body["resolved_at"] is None
    assert world.post("admin", f"{path}/acknowledge").status_code == 409

    resolved = world.post("owner", f"{path}/resolve", json={"note": "restored, re-audited"})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"] == f"user:{world.user_ids['owner']}"
    again = world.post("owner", f"{path}/resolve")
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["detail"] == "the alert is already resolved"
    assert world.post("admin", f"{path}/acknowledge").status_code == 409

    (ack_event,) = audit_events(world.platform, "alert.acknowledge")
    (resolve_event,) = audit_events(world.platform, "alert.resolve")
    assert ack_event.object_id == resolve_event.object_id == alert["id"]
    assert ack_event.org_id == resolve_event.org_id == world.org_a
    assert (ack_event.actor_type, ack_event.actor_id) == ("user", world.user_ids["admin"])
    assert ack_event.ip == "testclient"
    assert ack_event.details == {
        "kind": "integrity.decrypt-failed",
        "note": "restoring from backup",
    }
    assert resolve_event.actor_id == world.user_ids["owner"]
    assert resolve_event.details["note"] == "restored, re-audited"

    # Still damaged: the next audit opens a new alert for the same problem.
    world.platform.integrity.run()
    listed = world.get("admin", ALERTS, params={"status": "open"}).json()["items"]
    assert len(listed) == 1 and listed[0]["id"] != alert["id"]


def test_notes_are_optional_and_bounded(world: World) -> None:
    alert = world.raise_alert(world.org_a)
    path = f"{ALERTS}/{alert.id}"
    too_long = world.post("admin", f"{path}/acknowledge", json={"note": "x" * 2001})
    assert too_long.status_code == 422
    unknown_field = world.post("admin", f"{path}/acknowledge", json={"status": "resolved"})
    assert unknown_field.status_code == 422
    assert world.platform.alerts.operator_get(alert.id).alert.status == "open"  # unchanged
    assert audit_events(world.platform, "alert.acknowledge") == []
    plain = world.post("admin", f"{path}/resolve")  # no body at all
    assert plain.status_code == 200 and plain.json()["note"] is None


def test_session_callers_need_the_csrf_token_to_handle_alerts(world: World) -> None:
    alert = world.raise_alert(world.org_a)
    cookie_only = {"Cookie": world.headers["admin"]["Cookie"]}
    response = world.client.post(f"{ALERTS}/{alert.id}/resolve", headers=cookie_only)
    assert response.status_code == 403
    assert world.platform.alerts.operator_get(alert.id).alert.status == "open"


# -- the delivery log --------------------------------------------------------------------------


def _webhooks(deliveries: list[dict[str, object]]) -> list[dict[str, object]]:
    return [d for d in deliveries if d["channel"] == "webhook"]


def test_the_detail_shows_each_webhook_delivery_and_never_its_url_or_secret(
    world: World,
) -> None:
    damaged = draft_contract(world.platform, world.org_a)
    flip_a_byte(world.platform, damaged)
    world.platform.integrity.run()
    (alert,) = world.get("admin", ALERTS).json()["items"]
    path = f"{ALERTS}/{alert['id']}"

    queued = world.get("admin", path).json()
    (delivery,) = _webhooks(queued["deliveries"])
    assert delivery["endpoint"] == "default" and delivery["channel"] == "webhook"
    # The administrators who may read alerts are told by email too, named by user id only.
    mails = [d for d in queued["deliveries"] if d["channel"] == "email"]
    assert mails and all(d["endpoint"].startswith("user:") for d in mails)
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["next_attempt_at"] is not None and delivery["last_error"] is None

    world.receiver.statuses = [503]
    assert world.platform.alerts.deliver_pending().retrying == 1
    (failed_once,) = _webhooks(world.get("admin", path).json()["deliveries"])
    assert failed_once["status"] == "pending" and failed_once["attempts"] == 1
    assert (failed_once["last_status_code"], failed_once["last_error"]) == (503, "HTTP 503")
    next_try = datetime.fromisoformat(failed_once["next_attempt_at"])
    assert next_try > datetime.fromisoformat(failed_once["last_attempt_at"])

    assert world.platform.alerts.deliver_pending(next_try).delivered == 1
    (done,) = _webhooks(world.get("admin", path).json()["deliveries"])
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert done["next_attempt_at"] is None and done["delivered_at"] is not None
    assert done["id"] == delivery["id"]
    # What the receiver got is the alert, signed; its webhook-id is the delivery's id.
    headers, body = world.receiver.requests[-1]
    assert headers["webhook-id"] == delivery["id"]
    assert verify_webhook(world.secret, headers, body, now=int(time.time()))

    key = world.secret.removeprefix("whsec_")
    for response in (world.get("admin", path), world.get("admin", ALERTS)):
        text = response.text
        assert world.secret not in text and key not in text and "whsec_" not in text
        assert world.receiver.url not in text and "127.0.0.1" not in text
        assert "payload" not in text and headers["webhook-signature"] not in text


def test_an_alert_raised_without_webhooks_has_an_empty_delivery_log(world: World) -> None:
    from pactvault.monitor.alerts import AlertService

    quiet = AlertService(world.platform.db, world.platform.access)  # nothing configured
    alert = quiet.raise_alert(
        "integrity.blob-missing",
        severity="critical",
        title="x",
        details={"v": 1},
        org_id=world.org_a,
    ).alert
    assert world.get("admin", f"{ALERTS}/{alert.id}").json()["deliveries"] == []
