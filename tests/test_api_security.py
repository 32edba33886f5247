"""Security monitoring over HTTP: enforcement before routing, the admin API, step-up, /metrics.

Requests go through the whole application (TestClient, with the client address each test
chooses), against a real platform; responses are put in force by the real services.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from monitor_kit import (
    Member,
    alerts_of,
    count_events,
    make_platform,
    member,
    organisation,
    user_actor,
    write_events,
)
from pactvault.api.app import create_app
from pactvault.audit.journal import Actor
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.monitor.responses import Planned
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent

ATTACKER = ("198.51.100.66", 40000)
ELSEWHERE = ("198.51.100.67", 40000)
METRICS_TOKEN = "m" * 32


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    instance = make_platform(tmp_path / "data", metrics_token=METRICS_TOKEN)
    instance.monitor.engine.start()
    try:
        yield instance
    finally:
        instance.close()


def client(platform: Platform, address: tuple[str, int] = ELSEWHERE) -> TestClient:
    return TestClient(create_app(platform, maintenance_interval=3600), client=address)


@pytest.fixture
def acme(platform: Platform) -> tuple[str, Member]:
    return organisation(platform, "Acme", "owner@acme.test")


def contract(platform: Platform, org: str, creator: str | None = None) -> str:
    made = platform.contracts.create(
        Actor.system(),
        org,
        title="C",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="P", email="p@example.test")],
        created_by_user_id=creator,
    )
    return made.id


def apply(platform: Platform, action: str, target_type: str, target: str, org: str | None = None):  # type: ignore[no-untyped-def]
    return platform.monitor.responses.apply(
        [Planned(action, target_type, target)],
        rule="manual",
        org_id=org,
        minutes=30,
        reason="test",
    )[0]


# -- enforcement before routing -------------------------------------------------------------------


def test_a_blocked_address_is_refused_before_any_route_and_others_are_not(
    platform: Platform, acme: tuple[str, Member]
) -> None:
    _, owner = acme
    apply(platform, "block-ip", "ip", "ip:198.51.100.66")
    with client(platform, ATTACKER) as attacker, client(platform) as other:
        refused = attacker.post(
            "/api/v1/auth/login", json={"email": "owner@acme.test", "password": "x"}
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/blocked")
        assert refused.headers["x-frame-options"] == "DENY"  # hygiene still wraps refusals
        assert "x-request-id" in refused.headers
        # Refused before the route: no login attempt reached the service or the journal.
        assert count_events(platform, "auth.login-failed") == 0
        # Even with a valid session, the address stays blocked ...
        assert attacker.get("/api/v1/auth/me", headers=owner.auth()).status_code == 403
        # ... while everyone else goes on.
        assert other.get("/api/v1/auth/me", headers=owner.auth()).status_code == 200
        # Health probes are never blocked (load balancers, not people).
        assert attacker.get("/healthz").status_code == 200


def test_suspension_of_a_token_is_reversible(platform: Platform, acme: tuple[str, Member]) -> None:
    org, owner = acme
    principal = platform.sessions.authenticate(owner.session_token)
    issued = platform.tokens.create_user_token(principal, "ci", ["contract.read.all"])
    bearer = {"Authorization": f"Bearer {issued.token}"}
    response = apply(platform, "suspend", "token", issued.token_id, org)
    with client(platform) as http:
        refused = http.get("/api/v1/contracts", headers=bearer)
        assert refused.status_code == 403 and refused.json()["type"].endswith("/suspended")
        # The owner's own session is not the token: it goes on.
        assert http.get("/api/v1/contracts", headers=owner.auth()).status_code == 200
        lifted = http.post(
            f"/api/v1/org/security/responses/{response.id}/lift",
            json={"note": "false alarm"},
            headers=owner.auth(),
        )
        assert lifted.status_code == 200 and lifted.json()["lifted_by"].startswith("user:")
        assert http.get("/api/v1/contracts", headers=bearer).status_code == 200
        again = http.post(
            f"/api/v1/org/security/responses/{response.id}/lift", headers=owner.auth()
        )
        assert again.status_code == 409
    assert count_events(platform, "monitor.response-lifted") == 1


def test_rate_limits_answer_429_with_retry_after_and_ratelimit_headers(tmp_path: Path) -> None:
    platform = make_platform(tmp_path / "data", rate_limits=("public.ip=3/60",))
    try:
        with client(platform, ATTACKER) as attacker, client(platform) as other:
            answers = [attacker.get("/ledger/checkpoint") for _ in range(4)]
            assert [a.status_code for a in answers[:3]] == [200, 200, 200]
            assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
            assert answers[0].headers["ratelimit-limit"] == "3"
            assert answers[0].headers["ratelimit-policy"] == "3;w=60"
            limited = answers[3]
            assert limited.status_code == 429
            assert limited.json()["type"].endswith("/rate-limited")
            assert 1 <= int(limited.headers["retry-after"]) <= 120
            assert limited.headers["ratelimit-remaining"] == "0"
            # Another address has its own allowance.
            assert other.get("/ledger/checkpoint").status_code == 200
            metrics = client(platform, ("127.0.0.1", 1)).get("/metrics").text
        assert (
            'pactvault_monitor_refusals_total{reason="rate-limited",route_class="public"} 1.0'
            in metrics
        )
    finally:
        platform.close()


def test_the_guard_fails_closed(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_facts: object) -> None:
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(platform.monitor.guard, "check", broken)
    with client(platform) as http:
        answer = http.get("/ledger/checkpoint")
    assert answer.status_code == 503
    assert answer.json()["type"].endswith("/monitor-unavailable")


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    body = {"email": "nobody@acme.test", "password": "wrong-wrong-wrong"}
    for trusted, expected in (((), "127.0.0.1"), (("127.0.0.1",), "203.0.113.201")):
        platform = make_platform(tmp_path / f"data{len(trusted)}", trusted_proxies=trusted)
        try:
            with client(platform, ("127.0.0.1", 9)) as http:
                http.post(
                    "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": "203.0.113.201"}
                )
            with platform.db.read() as s:
                ips = (
                    s.execute(select(AuditEvent.ip).where(AuditEvent.action == "auth.login-failed"))
                    .scalars()
                    .all()
                )
            assert ips == [expected]
        finally:
            platform.close()


# -- step-up ---------------------------------------------------------------------------------------


def test_step_up_holds_back_sensitive_actions_until_a_factor_is_proven(
    platform: Platform, acme: tuple[str, Member]
) -> None:
    org, owner = acme
    doc = contract(platform, org)
    with platform.db.write() as s:
        setup = platform.mfa.totp.begin(s, owner.user_id, owner.email)
        platform.mfa.totp.activate(s, owner.user_id)
    apply(platform, "step-up", "user", owner.user_id, org)
    auth = {"headers": owner.auth()}
    with client(platform) as http:
        assert http.get("/api/v1/me/security/step-up", **auth).json()["required"] is True
        held = http.get(f"/api/v1/contracts/{doc}/document", **auth)
        assert held.status_code == 403 and held.json()["type"].endswith("/step-up-required")
        assert (
            http.post(
                "/api/v1/tokens", json={"name": "x", "scopes": ["contract.read.all"]}, **auth
            ).status_code
            == 403
        )
        # Reading metadata is not sensitive.
        assert http.get(f"/api/v1/contracts/{doc}", **auth).status_code == 200
        wrong = http.post(
            "/api/v1/me/security/step-up", json={"method": "totp", "code": "000000"}, **auth
        )
        assert wrong.status_code == 401
        code = pyotp.TOTP(setup.secret).now()
        done = http.post(
            "/api/v1/me/security/step-up", json={"method": "totp", "code": code}, **auth
        )
        assert done.status_code == 200 and done.json() == {"lifted": 1}
        assert http.get(f"/api/v1/contracts/{doc}/document", **auth).status_code == 200
        assert (
            http.post(
                "/api/v1/me/security/step-up", json={"method": "totp", "code": code}, **auth
            ).status_code
            == 409
        )
    # The wrong guess was audited as a second-factor failure (what otp-failures counts).
    with platform.db.read() as s:
        failed = s.execute(select(AuditEvent).where(AuditEvent.action == "mfa.failed")).scalars()
        assert [e.details["stage"] for e in failed] == ["monitor-stepup"]
    assert count_events(platform, "monitor.step-up-verified") == 1


def test_step_up_by_email_code(platform: Platform, acme: tuple[str, Member]) -> None:
    org, owner = acme
    apply(platform, "step-up", "user", owner.user_id, org)
    auth = {"headers": owner.auth()}
    with client(platform) as http:
        sent = http.post("/api/v1/me/security/step-up/code", json={"channel": "email"}, **auth)
        assert sent.status_code == 201 and "@" in sent.json()["destination"]
        message = platform.mailer.messages[-1]  # type: ignore[attr-defined]
        code = re.search(r"code is (\d{6})", message.body).group(1)  # type: ignore[union-attr]
        assert http.post(
            "/api/v1/me/security/step-up", json={"method": "email", "code": code}, **auth
        ).json() == {"lifted": 1}


# -- the admin API ---------------------------------------------------------------------------------


def test_rules_are_read_by_alert_readers_and_tuned_by_alert_managers(
    platform: Platform, acme: tuple[str, Member]
) -> None:
    _, owner = acme
    auditor = member(platform, owner, "auditor@acme.test", "auditor")
    plain = member(platform, owner, "plain@acme.test", "member")
    with client(platform) as http:
        rules = http.get("/api/v1/org/security/rules", headers=auditor.auth()).json()
        by_name = {r["name"]: r for r in rules}
        assert by_name["mass-download"]["threshold"] == 50
        assert by_name["mass-download"]["actions"] == ["suspend"]
        assert by_name["password-spraying"]["scope"] == "platform"
        assert http.get("/api/v1/org/security/rules", headers=plain.auth()).status_code == 403
        change = {"threshold": 200, "actions": ["slow-down"], "action_minutes": 15}
        assert (
            http.put(
                "/api/v1/org/security/rules/mass-download", json=change, headers=auditor.auth()
            ).status_code
            == 403
        )
        changed = http.put(
            "/api/v1/org/security/rules/mass-download", json=change, headers=owner.auth()
        )
        assert changed.status_code == 200
        assert changed.json()["source"] == "organisation"
        assert changed.json()["threshold"] == 200 and changed.json()["actions"] == ["slow-down"]
        bad = http.put(
            "/api/v1/org/security/rules/password-spraying",
            json={"threshold": 1},
            headers=owner.auth(),
        )
        assert bad.status_code == 404  # platform rules are the operator's
        impossible = http.put(
            "/api/v1/org/security/rules/integrity-failure",
            json={"actions": ["suspend"]},
            headers=owner.auth(),
        )
        assert impossible.status_code == 404
        unknown_action = http.put(
            "/api/v1/org/security/rules/mass-download",
            json={"actions": ["delete-everything"]},
            headers=owner.auth(),
        )
        assert unknown_action.status_code == 422
        reset = http.delete("/api/v1/org/security/rules/mass-download", headers=owner.auth())
        assert reset.json()["source"] == "default" and reset.json()["threshold"] == 50
    assert count_events(platform, "monitor.rule-changed") == 2


def test_responses_are_listed_per_organisation(platform: Platform) -> None:
    org_a, owner_a = organisation(platform, "A", "owner@a.test")
    org_b, owner_b = organisation(platform, "B", "owner@b.test")
    thief = member(platform, owner_b, "thief@b.test", "admin")
    write_events(
        platform,
        [
            {
                "actor": user_actor(thief.user_id, org_b, "198.51.100.9"),
                "action": "document.download",
                "object_type": "contract",
                "object_id": f"c{i}",
                "org_id": org_b,
            }
            for i in range(51)
        ],
    )
    platform.monitor.run_due()
    (alert,) = alerts_of(platform, "monitor.mass-download")
    with client(platform) as http:
        mine = http.get("/api/v1/org/security/responses", headers=owner_b.auth()).json()
        assert mine["total"] == 1
        (response,) = mine["items"]
        assert response["action"] == "suspend" and response["alert_id"] == alert.id
        assert response["target"] == thief.user_id
        # The suspended member is refused; their administrator is not.
        assert http.get("/api/v1/auth/me", headers=thief.auth()).status_code == 403
        theirs = http.get("/api/v1/org/security/responses", headers=owner_a.auth()).json()
        assert theirs["total"] == 0
        foreign = http.post(
            f"/api/v1/org/security/responses/{response['id']}/lift", headers=owner_a.auth()
        )
        assert foreign.status_code == 404
        assert (
            foreign.json()["detail"]
            == http.post(
                "/api/v1/org/security/responses/no-such-id/lift",
                headers=owner_a.auth(),
            ).json()["detail"]
        )
    assert org_a != org_b


# -- /metrics --------------------------------------------------------------------------------------


def test_metrics_are_for_loopback_or_the_token_only(platform: Platform) -> None:
    with client(platform, ("127.0.0.1", 5)) as local, client(platform, ATTACKER) as remote:
        assert local.get("/metrics").status_code == 200
        proxied = local.get("/metrics", headers={"X-Forwarded-For": "203.0.113.1"})
        assert proxied.status_code == 403  # a local reverse proxy must not open it to all
        assert remote.get("/metrics").status_code == 403
        wrong = remote.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
        assert wrong.status_code == 403
        right = remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200
        assert right.headers["content-type"].startswith("text/plain")


def test_metrics_content_is_aggregate_and_bounded(
    platform: Platform, acme: tuple[str, Member]
) -> None:
    org, owner = acme
    ids = [contract(platform, org) for _ in range(12)]
    platform.alerts.raise_alert(
        "integrity.blob-missing",
        severity="critical",
        title="x",
        details={"contract_id": ids[0], "version": 1},
        org_id=org,
    )
    with client(platform) as http:
        for contract_id in ids:
            assert (
                http.get(f"/api/v1/contracts/{contract_id}", headers=owner.auth()).status_code
                == 200
            )
        http.get("/api/v1/contracts/does-not-exist", headers=owner.auth())
        for n in range(5):
            http.get(f"/no/such/page/{n}")
    with client(platform, ("127.0.0.1", 5)) as local:
        text = local.get("/metrics").text
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    requests = [s for s in series if s.startswith("pactvault_http_requests_total")]
    assert any(
        'route="/api/v1/contracts/{contract_id}"' in s
        and 'status="200"' in s
        and s.endswith(" 12.0")
        for s in requests
    )
    # Raw paths, ids and tenants never become labels: one series per template and status.
    for forbidden in [*ids, org, owner.user_id, "owner@acme.test", "does-not-exist", "/no/such"]:
        assert forbidden not in text
    assert any('route="unmatched"' in s and 'status="404"' in s for s in requests)
    routes = {re.search(r'route="([^"]*)"', s).group(1) for s in requests}  # type: ignore[union-attr]
    assert len(routes) <= 4
    values = dict(line.rsplit(" ", 1) for line in series if "{" not in line)
    assert values["pactvault_signatures_total"] == "0.0"
    assert values["pactvault_metrics_database_up"] == "1.0"
    assert values["pactvault_ledger_size"] != "0.0"  # contract creation leaves evidence
    assert 'pactvault_alerts_open{severity="critical"} 1.0' in text
    assert 'pactvault_alerts_raised_total{severity="warning"} 0.0' in text
    assert 'pactvault_monitor_responses_active{action="block-ip"} 0.0' in text
    assert "pactvault_http_request_duration_seconds_bucket" in text
    assert "pactvault_alert_deliveries_pending 0.0" in text
    assert "pactvault_witness_requests_pending 0.0" in text
