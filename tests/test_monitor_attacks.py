"""Scripted attacks replayed against a real server on loopback, the detection loop running.

Each attacker speaks from its own loopback address (127.0.0.x: the kernel routes all of
127.0.0.0/8 to the loopback interface), so the server sees distinct clients by their TCP peer —
no ``X-Forwarded-For``, which the server does not trust by default. Legitimate users speak from
127.0.0.1. Every scenario checks that:

- the expected alert is raised within seconds of the attack crossing the rule's threshold;
- the configured automatic action takes effect (403 / 429) for the attacker;
- legitimate users of other accounts are unaffected, during and after the attack;
- nothing is lost: every attempt that reached a service is in the audit journal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from flows import invitation_tokens, last_code
from identity_kit import PASSWORD
from monitor_kit import (
    alerts_of,
    live_server,
    make_platform,
    member,
    organisation,
    wait_for,
)
from pactvault.audit.journal import Actor
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.detection_models import Response
from pactvault.store.models import AuditEvent

#: How soon after the threshold is crossed the alert must exist (the loop runs every second).
WITHIN = 5.0


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    instance = make_platform(tmp_path / "data")
    try:
        yield instance
    finally:
        instance.close()


def http_from(address: str, base: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (a loopback address of its own)."""
    return httpx.Client(
        base_url=base,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=30,
    )


def journal(platform: Platform, actions: tuple[str, ...], ip: str) -> int:
    with platform.db.read() as s:
        return len(
            s.execute(
                select(AuditEvent.seq).where(AuditEvent.action.in_(actions), AuditEvent.ip == ip)
            ).all()
        )


def in_force(platform: Platform, action: str, target: str) -> list[Response]:
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


def test_credential_stuffing_across_50_accounts(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    victims = [member(platform, owner, f"user{i:02d}@acme.test") for i in range(50)]
    with (
        live_server(platform) as base,
        http_from("127.0.0.7", base) as attacker,
        http_from("127.0.0.1", base) as legit,
    ):
        statuses: list[int] = []
        crossed_at = None
        for n, victim in enumerate(victims):
            answer = attacker.post(
                "/api/v1/auth/login", json={"email": victim.email, "password": f"Summer{n}!"}
            )
            statuses.append(answer.status_code)
            if statuses.count(401) == 21 and crossed_at is None:
                crossed_at = time.monotonic()  # the 21st account: over the spraying threshold
            # A colleague signs in while the attack is under way.
            if n % 10 == 0:
                assert (
                    legit.post(
                        "/api/v1/auth/login",
                        json={"email": "owner@acme.test", "password": PASSWORD},
                    ).status_code
                    == 200
                )
        assert crossed_at is not None
        (alert,) = wait_for(lambda: alerts_of(platform, "monitor.password-spraying"), WITHIN)
        assert time.monotonic() - crossed_at < WITHIN + 1
        assert alert.severity == "critical" and alert.details["key"] == "ip:127.0.0.7"
        # The configured action: the address is blocked (403) — once the block is in force,
        # every further attempt is refused before reaching the sign-in service.
        blocked = wait_for(
            lambda: (
                attacker.post(
                    "/api/v1/auth/login", json={"email": victims[0].email, "password": "x" * 12}
                ).status_code
                == 403
            ),
            WITHIN,
        )
        assert blocked
        assert in_force(platform, "block-ip", "ip:127.0.0.7")
        # Before the block, the shared per-address limit answered 429 past 30 attempts a minute.
        assert set(statuses) <= {401, 429, 403}
        assert statuses[:21] == [401] * 21
        # Legitimate users, including the attacked accounts, are unaffected.
        assert (
            legit.post(
                "/api/v1/auth/login", json={"email": victims[5].email, "password": PASSWORD}
            ).status_code
            == 200
        )
        me = legit.get("/api/v1/auth/me", headers=victims[6].auth())
        assert me.status_code == 200
    # Nothing lost: every attempt the service answered is in the journal.
    assert journal(platform, ("auth.login-failed",), "127.0.0.7") == statuses.count(401)
    assert org


def test_a_user_downloading_200_contracts_in_a_minute(platform: Platform) -> None:
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    thief = member(platform, owner, "thief@acme.test", "admin")
    colleague = member(platform, owner, "colleague@acme.test", "admin")
    contracts = [
        platform.contracts.create(
            Actor.system(),
            org,
            title=f"C{i}",
            pdf=sample_pdf(),
            signers=[SignerSpec(name="P", email="p@example.test")],
        ).id
        for i in range(200)
    ]
    with live_server(platform) as base, http_from("127.0.0.8", base) as office:
        started = time.monotonic()
        statuses = []
        crossed_at = None
        for contract_id in contracts:
            answer = office.get(f"/api/v1/contracts/{contract_id}/document", headers=thief.auth())
            statuses.append(answer.status_code)
            if statuses.count(200) == 51 and crossed_at is None:
                crossed_at = time.monotonic()
        assert time.monotonic() - started < 60  # 200 downloads asked for within a minute
        assert crossed_at is not None
        (alert,) = wait_for(lambda: alerts_of(platform, "monitor.mass-download"), WITHIN)
        assert time.monotonic() - crossed_at < WITHIN + 1
        assert alert.org_id == org and alert.details["key"] == f"user:{thief.user_id}"
        # The configured action (suspend) took effect during the run: the rest was refused.
        served = statuses.count(200)
        assert 51 <= served < 200
        # Refused for good from the first refusal on: 403 from the guard, or 401 for a request
        # that passed the guard just before it learnt of the suspension, whose session the
        # suspension had already revoked.
        first = next(i for i, status in enumerate(statuses) if status != 200)
        assert first == served and set(statuses[first:]) <= {401, 403}
        assert statuses[-1] == 403
        # A colleague on the same office address goes on downloading.
        for contract_id in contracts[:5]:
            ok = office.get(f"/api/v1/contracts/{contract_id}/document", headers=colleague.auth())
            assert ok.status_code == 200 and ok.content.startswith(b"%PDF")
        # The thief's session was revoked; after an administrator lifts the suspension they can
        # sign in again (nothing was destroyed).
        (suspension,) = in_force(platform, "suspend", thief.user_id)
        lifted = office.post(
            f"/api/v1/org/security/responses/{suspension.id}/lift", headers=owner.auth()
        )
        assert lifted.status_code == 200
        assert office.get("/api/v1/auth/me", headers=thief.auth()).status_code == 401
        again = office.post(
            "/api/v1/auth/login", json={"email": "thief@acme.test", "password": PASSWORD}
        )
        assert again.status_code == 200
    # Nothing lost: every document served is in the journal, and only those.
    assert journal(platform, ("document.download",), "127.0.0.8") == served + 5


def test_otp_brute_force_on_a_signing_step_up(platform: Platform) -> None:
    org, _ = organisation(platform, "Acme", "owner@acme.test")
    assert isinstance(platform.mailer, MemoryMailer)
    made = platform.contracts.create(
        Actor.system(),
        org,
        title="Lease",
        pdf=sample_pdf(),
        signers=[
            SignerSpec(name="Victim", email="victim@example.test"),
            SignerSpec(name="Other", email="other@example.test", routing_order=1),
        ],
    )
    platform.contracts.send(Actor.system(), org, made.id)
    tokens = invitation_tokens(platform.mailer, made.id)
    signer_ids = {s.email: s.id for s in platform.contracts.get(org, made.id).signers}
    stolen = tokens[signer_ids["victim@example.test"]]
    honest = tokens[signer_ids["other@example.test"]]
    with (
        live_server(platform) as base,
        http_from("127.0.0.9", base) as attacker,
        http_from("127.0.0.1", base) as legit,
    ):
        as_attacker = {"Authorization": f"Bearer {stolen}"}
        challenge = attacker.post(
            "/api/v1/signer/stepup", json={"method": "email"}, headers=as_attacker
        )
        assert challenge.status_code == 201
        challenge_id = challenge.json()["challenge_id"]
        answers = []
        crossed_at = None
        for n in range(40):
            answer = attacker.post(
                f"/api/v1/signer/stepup/{challenge_id}",
                json={"code": f"{n:06d}"},
                headers=as_attacker,
            )
            answers.append(answer)
            if answer.status_code == 403:
                break
            if len([a for a in answers if _service_refusal(a)]) == 11 and crossed_at is None:
                crossed_at = time.monotonic()
            time.sleep(0.05)
        assert crossed_at is not None
        found = wait_for(lambda: alerts_of(platform, "monitor.otp-failures"), WITHIN)
        assert time.monotonic() - crossed_at < WITHIN + 1
        assert {a.details["key"] for a in found} >= {"ip:127.0.0.9"}
        assert all(a.org_id == org for a in found)
        # The address is blocked: even opening the link is refused now.
        wait_for(
            lambda: attacker.get("/api/v1/signer/contract", headers=as_attacker).status_code == 403,
            WITHIN,
        )
        # The other signer, elsewhere, signs normally: open, step up by email code, sign.
        as_honest = {"Authorization": f"Bearer {honest}"}
        view = legit.get("/api/v1/signer/contract", headers=as_honest)
        assert view.status_code == 200
        started = legit.post("/api/v1/signer/stepup", json={"method": "email"}, headers=as_honest)
        assert started.status_code == 201
        verified = legit.post(
            f"/api/v1/signer/stepup/{started.json()['challenge_id']}",
            json={"code": last_code(platform.mailer)},
            headers=as_honest,
        )
        assert verified.status_code == 200
        signed = legit.post(
            "/api/v1/signer/sign",
            headers=as_honest,
            json={
                "document_sha256": view.json()["document_sha256"],
                "consent": True,
                "stepup_challenge_id": started.json()["challenge_id"],
            },
        )
        assert signed.status_code == 200, signed.text
    # Nothing lost: each wrong or locked-out guess the service answered is in the journal.
    refused = [a for a in answers if _service_refusal(a)]
    assert journal(platform, ("stepup.failed", "stepup.throttled"), "127.0.0.9") == len(refused)


def _service_refusal(answer: httpx.Response) -> bool:
    """A guess the step-up service itself answered (wrong, burned or locked out), as opposed
    to one the request guard refused before it reached the service."""
    if answer.status_code not in (401, 429):
        return False
    return not answer.json()["type"].endswith("/rate-limited")
