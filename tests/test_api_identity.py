"""Accounts over HTTP: session cookies, CSRF, throttling, reach of listings and classification."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from identity_kit import FAST, PASSWORD
from pactvault.api.app import create_app
from pactvault.api.deps import CSRF_HEADER, SESSION_COOKIE
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.demo import sample_pdf
from pactvault.identity.errors import LOGIN_FAILED
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.identity.throttle import ThrottlePolicy
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent

SYSTEM = Actor(type="system", id="pytest")


@pytest.fixture
def platform(tmp_path, database_url: str) -> Iterator[Platform]:  # type: ignore[no-untyped-def]
    mailer = MemoryMailer()
    instance, _ = Platform.initialise(
        Settings(home=tmp_path / "data", database_url=database_url),
        mailer=mailer,
        password_hasher=PasswordHasher(FAST),
    )
    instance.people.create_organisation(
        SYSTEM, "Acme", "owner@acme.test", NewAccount("Olive", PASSWORD)
    )
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, maintenance_interval=3600)) as c:
        yield c


def login(client: TestClient, email: str = "owner@acme.test", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def invite_member(client: TestClient, platform: Platform, csrf: str, email: str, role: str) -> None:
    response = client.post(
        "/api/v1/org/invitations", json={"email": email, "role": role}, headers={CSRF_HEADER: csrf}
    )
    assert response.status_code == 201, response.text
    token = next(
        dict(m.tags)["Invitation-Token"]
        for m in reversed(platform.mailer.messages)  # type: ignore[attr-defined]
        if m.to == email
    )
    accepted = client.post(
        "/api/v1/org/invitations/accept",
        json={"token": token, "display_name": "New Member", "password": PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text
    assert "token" not in response.json()  # the inviter never sees the invitation token


def actions(platform: Platform, action: str) -> list[AuditEvent]:
    with platform.db.read() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_login_sets_a_hardened_cookie_and_never_returns_the_token(client: TestClient) -> None:
    response = login(client)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=pvsess_")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token not in response.text
    assert response.json()["csrf_token"]
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["role"] == "owner"
    assert me.json()["clearance"] == "secret"


def test_unsafe_requests_need_the_csrf_token_and_refusals_are_audited(
    client: TestClient, platform: Platform
) -> None:
    csrf = login(client).json()["csrf_token"]
    body = {"email": "new@acme.test", "role": "member"}
    before = len(actions(platform, "access.denied"))
    assert client.post("/api/v1/org/invitations", json=body).status_code == 403
    forged = {CSRF_HEADER: csrf[:-2] + "xx"}
    wrong = client.post("/api/v1/org/invitations", json=body, headers=forged)
    assert wrong.status_code == 403
    assert len(actions(platform, "access.denied")) == before + 2
    assert not actions(platform, "invitation.create")  # the refused requests changed nothing
    ok = client.post("/api/v1/org/invitations", json=body, headers={CSRF_HEADER: csrf})
    assert ok.status_code == 201


def test_a_tampered_session_cookie_is_refused_and_audited(
    client: TestClient, platform: Platform
) -> None:
    login(client)
    good = client.cookies.get(SESSION_COOKIE)
    assert good
    client.cookies.set(SESSION_COOKIE, good[:-1] + ("A" if good[-1] != "A" else "B"))
    before = len(actions(platform, "access.denied"))
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert len(actions(platform, "access.denied")) == before + 1


def test_login_failures_look_the_same_and_throttling_answers_429_with_retry_after(
    platform: Platform, client: TestClient
) -> None:
    platform.login.throttle_policy = ThrottlePolicy(account_max_failures=3)
    platform.login._throttler.policy = platform.login.throttle_policy
    unknown = login(client, "nobody@acme.test", "whatever-password")
    wrong = login(client, "owner@acme.test", "whatever-password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"] == LOGIN_FAILED
    for _ in range(ThrottlePolicy().account_max_failures):
        login(client, "owner@acme.test", "still-wrong-password")
    throttled = login(client)  # even the right password waits during a lockout
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1


def test_logout_ends_the_session_and_clears_the_cookie(client: TestClient) -> None:
    csrf = login(client).json()["csrf_token"]
    response = client.post("/api/v1/auth/logout", headers={CSRF_HEADER: csrf})
    assert response.status_code == 204
    assert f"{SESSION_COOKIE}=" in response.headers["set-cookie"]
    assert client.get("/api/v1/auth/me").status_code == 401


def test_sessions_list_and_sign_out_everywhere(client: TestClient, platform: Platform) -> None:
    other = platform.login.login("owner@acme.test", PASSWORD, SYSTEM)
    csrf = login(client).json()["csrf_token"]
    listed = client.get("/api/v1/auth/sessions").json()
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    revoked = client.post("/api/v1/auth/sessions/revoke-all", headers={CSRF_HEADER: csrf})
    assert revoked.json() == {"revoked": 1}
    with pytest.raises(Exception, match="session has ended"):
        platform.sessions.authenticate(other.token)
    assert client.get("/api/v1/auth/me").status_code == 200  # this one stays


def _upload(client: TestClient, csrf: str, signer: str, classification: str = "internal"):  # type: ignore[no-untyped-def]
    meta = {
        "title": "Lease",
        "signers": [{"name": "Party", "email": signer}],
        "classification": classification,
    }
    return client.post(
        "/api/v1/contracts",
        files={"file": ("c.pdf", sample_pdf(), "application/pdf")},
        data={"metadata": json.dumps(meta)},
        headers={CSRF_HEADER: csrf},
    )


def test_members_list_only_what_they_created_or_sign(
    client: TestClient, platform: Platform
) -> None:
    csrf = login(client).json()["csrf_token"]
    invite_member(client, platform, csrf, "mia@acme.test", "member")
    mine = _upload(client, csrf, "mia@acme.test").json()["id"]
    _upload(client, csrf, "someone@else.test")
    assert client.get("/api/v1/contracts").json()["total"] == 2  # the owner sees all

    csrf = login(client, "mia@acme.test").json()["csrf_token"]
    listed = client.get("/api/v1/contracts").json()
    assert [c["id"] for c in listed["items"]] == [mine] and listed["total"] == 1
    assert client.get(f"/api/v1/contracts/{mine}").status_code == 200


def test_classification_above_clearance_is_refused_unless_party(
    client: TestClient, platform: Platform
) -> None:
    csrf = login(client).json()["csrf_token"]
    invite_member(client, platform, csrf, "ada@acme.test", "admin")
    secret = _upload(client, csrf, "someone@else.test", "secret").json()["id"]
    ada = next(m for m in client.get("/api/v1/org/members").json() if m["email"] == "ada@acme.test")
    assert ada["clearance"] == "internal"

    csrf_ada = login(client, "ada@acme.test").json()["csrf_token"]
    response = client.get(f"/api/v1/contracts/{secret}")
    assert response.status_code == 403 and "clearance" in response.json()["detail"]
    assert _upload(client, csrf_ada, "x@y.test", "confidential").status_code == 403

    csrf = login(client).json()["csrf_token"]
    raised = client.patch(
        f"/api/v1/org/members/{ada['user_id']}",
        json={"clearance": "secret"},
        headers={CSRF_HEADER: csrf},
    )
    assert raised.status_code == 200 and raised.json()["clearance"] == "secret"
    login(client, "ada@acme.test")
    assert client.get(f"/api/v1/contracts/{secret}").status_code == 200
    assert actions(platform, "member.set-clearance")


def test_nobody_grants_a_clearance_above_their_own(client: TestClient, platform: Platform) -> None:
    csrf = login(client).json()["csrf_token"]
    invite_member(client, platform, csrf, "ada@acme.test", "admin")
    invite_member(client, platform, csrf, "bo@acme.test", "member")
    bo = next(m for m in client.get("/api/v1/org/members").json() if m["email"] == "bo@acme.test")
    csrf = login(client, "ada@acme.test").json()["csrf_token"]
    response = client.patch(
        f"/api/v1/org/members/{bo['user_id']}",
        json={"clearance": "secret"},
        headers={CSRF_HEADER: csrf},
    )
    assert response.status_code == 403


def test_audit_journal_since_needs_a_time_zone(client: TestClient) -> None:
    assert login(client).status_code == 200
    naive = client.get("/api/v1/org/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.text
    aware = client.get("/api/v1/org/audit", params={"since": "2026-01-01T00:00:00Z"})
    assert aware.status_code == 200 and aware.json(), "the sign-in itself is in the journal"
