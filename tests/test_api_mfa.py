"""Second factors over HTTP: enrolment, the sign-in second step, the organisation requirement.

The services are tested in depth in ``test_mfa_*``; these tests show the routes wire them
correctly: cookies only once the second step passes, replays refused, the enrolment grant good
for enrolling and nothing else, the shorter password allowed only with a second factor.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from identity_kit import FAST, PASSWORD
from pactvault.api.app import create_app
from pactvault.api.deps import CSRF_HEADER, ENROLMENT_HEADER, SESSION_COOKIE
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.identity.mfa import totp
from pactvault.identity.mfa.errors import SECOND_FACTOR_FAILED
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

SYSTEM = Actor(type="system", id="pytest")
OWNER = "owner@acme.test"


@pytest.fixture
def platform(tmp_path, database_url: str) -> Iterator[Platform]:  # type: ignore[no-untyped-def]
    instance, _ = Platform.initialise(
        Settings(home=tmp_path / "data", database_url=database_url),
        mailer=MemoryMailer(),
        password_hasher=PasswordHasher(FAST),
    )
    instance.people.create_organisation(SYSTEM, "Acme", OWNER, NewAccount("Olive", PASSWORD))
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, maintenance_interval=3600)) as c:
        yield c


def login(client: TestClient, email: str = OWNER, password: str = PASSWORD) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def seed_of(setup: dict) -> bytes:  # type: ignore[type-arg]
    secret = setup["secret"]
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def now_code(seed: bytes) -> str:
    return totp.code_at(seed, datetime.now(UTC))


def enrol_totp(client: TestClient, csrf: str) -> tuple[bytes, list[str]]:
    setup = client.post("/api/v1/me/mfa/totp", headers={CSRF_HEADER: csrf})
    assert setup.status_code == 201, setup.text
    assert setup.json()["uri"].startswith("otpauth://totp/")
    seed = seed_of(setup.json())
    confirmed = client.post(
        "/api/v1/me/mfa/totp/confirm", json={"code": now_code(seed)}, headers={CSRF_HEADER: csrf}
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert codes and len(codes) == 10, "the first factor comes with recovery codes"
    return seed, codes


def test_totp_sign_in_sets_the_cookie_only_after_the_second_step(
    client: TestClient, platform: Platform
) -> None:
    first = login(client)
    assert first["status"] == "signed-in"
    seed, recovery = enrol_totp(client, first["csrf_token"])
    assert client.get("/api/v1/me/mfa").json()["totp"] is True
    client.post("/api/v1/auth/logout", headers={CSRF_HEADER: first["csrf_token"]})
    client.cookies.clear()

    step = login(client)
    assert step["status"] == "mfa-required"
    assert "totp" in step["methods"] and "recovery" in step["methods"]
    assert step["csrf_token"] is None and SESSION_COOKIE not in client.cookies
    assert client.get("/api/v1/auth/me").status_code == 401, "no session before the 2nd step"

    wrong = client.post(
        "/api/v1/auth/mfa",
        json={"challenge": step["challenge"], "method": "totp", "response": "12345"},
    )
    assert wrong.status_code == 401 and wrong.json()["detail"] == SECOND_FACTOR_FAILED
    # The enrolment spent this time step's code; the app's next one is inside the window.
    code = totp.code_for_step(seed, totp.time_step(datetime.now(UTC)) + 1)
    done = client.post(
        "/api/v1/auth/mfa",
        json={"challenge": step["challenge"], "method": "totp", "response": code},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "signed-in" and SESSION_COOKIE in client.cookies
    assert client.get("/api/v1/auth/me").json()["user_id"] == done.json()["user_id"]

    # The same code is accepted once only, even in a fresh sign-in.
    client.cookies.clear()
    again = login(client)
    replay = client.post(
        "/api/v1/auth/mfa",
        json={"challenge": again["challenge"], "method": "totp", "response": code},
    )
    assert replay.status_code == 401
    # A recovery code works (once) instead.
    by_recovery = client.post(
        "/api/v1/auth/mfa",
        json={"challenge": again["challenge"], "method": "recovery", "response": recovery[0]},
    )
    assert by_recovery.status_code == 200, by_recovery.text
    # The challenge is spent with the session it opened.
    spent = client.post(
        "/api/v1/auth/mfa",
        json={"challenge": again["challenge"], "method": "recovery", "response": recovery[1]},
    )
    assert spent.status_code == 401


def test_email_code_as_second_step(client: TestClient, platform: Platform) -> None:
    first = login(client)
    csrf = first["csrf_token"]
    channel = client.post(
        "/api/v1/me/mfa/channels", json={"channel": "email"}, headers={CSRF_HEADER: csrf}
    )
    assert channel.status_code == 201, channel.text
    assert channel.json()["destination"] != OWNER, "destinations are shown masked"
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    confirmed = client.post(
        f"/api/v1/me/mfa/channels/{channel.json()['channel_id']}/confirm",
        json={"code": _any_code(mailer)},
        headers={CSRF_HEADER: csrf},
    )
    assert confirmed.status_code == 200, confirmed.text
    client.cookies.clear()

    step = login(client)
    assert step["status"] == "mfa-required" and "email" in step["methods"]
    sent = client.post(
        "/api/v1/auth/mfa/code", json={"challenge": step["challenge"], "channel": "email"}
    )
    assert sent.status_code == 200, sent.text
    done = client.post(
        "/api/v1/auth/mfa",
        json={"challenge": step["challenge"], "method": "email", "response": _any_code(mailer)},
    )
    assert done.status_code == 200, done.text
    assert SESSION_COOKIE in client.cookies


def _any_code(mailer: MemoryMailer) -> str:
    import re

    for message in reversed(mailer.messages):
        found = re.search(r"\b(\d{6})\b", message.body)
        if found:
            return found.group(1)
    raise AssertionError("no code was sent")


def test_organisation_requirement_makes_members_enrol_before_any_session(
    client: TestClient, platform: Platform
) -> None:
    owner = login(client)
    csrf = owner["csrf_token"]
    invited = client.post(
        "/api/v1/org/invitations",
        json={"email": "mia@acme.test", "role": "member"},
        headers={CSRF_HEADER: csrf},
    )
    assert invited.status_code == 201, invited.text
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    token = next(
        dict(m.tags)["Invitation-Token"] for m in mailer.messages if m.to == "mia@acme.test"
    )
    accepted = client.post(
        "/api/v1/org/invitations/accept",
        json={"token": token, "display_name": "Mia", "password": PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text

    # Requiring MFA is the owner's call; an owner without a factor must enrol first.
    enrol_totp(client, csrf)
    policy = client.put(
        "/api/v1/org/mfa-policy", json={"require_mfa": True}, headers={CSRF_HEADER: csrf}
    )
    assert policy.status_code == 200 and policy.json() == {"require_mfa": True}
    client.cookies.clear()

    step = login(client, "mia@acme.test")
    assert step["status"] == "mfa-enrolment-required"
    assert SESSION_COOKIE not in client.cookies
    grant = {ENROLMENT_HEADER: step["enrolment_token"]}
    assert client.get("/api/v1/auth/me", headers=grant).status_code == 401, "grant ≠ session"
    assert client.get("/api/v1/org/members", headers=grant).status_code == 401
    early = client.post("/api/v1/auth/mfa/enrolment/finish", headers=grant)
    assert early.status_code == 422, "finishing needs an enrolled factor"

    status = client.get("/api/v1/me/mfa", headers=grant)
    assert status.status_code == 200 and status.json()["org_requires_mfa"] is True
    setup = client.post("/api/v1/me/mfa/totp", headers=grant)
    assert setup.status_code == 201, setup.text
    seed = seed_of(setup.json())
    confirmed = client.post(
        "/api/v1/me/mfa/totp/confirm", json={"code": now_code(seed)}, headers=grant
    )
    assert confirmed.status_code == 200, confirmed.text
    removal = client.delete("/api/v1/me/mfa/totp", headers=grant)
    assert removal.status_code == 403, "a grant adds factors; removing one needs a session"

    done = client.post("/api/v1/auth/mfa/enrolment/finish", headers=grant)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "signed-in" and SESSION_COOKIE in client.cookies
    reused = client.post("/api/v1/auth/mfa/enrolment/finish", headers=grant)
    assert reused.status_code == 401, "the grant is spent"


def test_shorter_passwords_need_a_second_factor(client: TestClient) -> None:
    first = login(client)
    csrf = first["csrf_token"]
    short = "plum-tree-7"  # 11 characters: fine with MFA, too short for a single factor
    refused = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": short},
        headers={CSRF_HEADER: csrf},
    )
    assert refused.status_code == 422, refused.text
    enrol_totp(client, csrf)
    accepted = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": short},
        headers={CSRF_HEADER: csrf},
    )
    assert accepted.status_code == 204, accepted.text


def test_a_signer_with_an_account_signs_with_a_passkey_bound_to_the_document(
    tmp_path,
    database_url: str,  # type: ignore[no-untyped-def]
) -> None:
    """Passkeys (platform authenticators: fingerprint, face) as the signing step-up: the
    assertion's challenge is derived from the document hash and kept as evidence."""
    import json

    from flows import SENDER, invitation_tokens
    from mfa_kit import ORIGIN, SoftAuthenticator
    from pactvault.contracts.service import SignerSpec
    from pactvault.demo import sample_pdf
    from pactvault.identity.mfa.proof import StepUpProof, verify_passkey_proof

    platform, _ = Platform.initialise(
        Settings(home=tmp_path / "data", database_url=database_url, public_url=ORIGIN),
        mailer=MemoryMailer(),
        password_hasher=PasswordHasher(FAST),
    )
    try:
        made = platform.people.create_organisation(
            SYSTEM, "Acme", OWNER, NewAccount("Olive", PASSWORD)
        )
        platform.people.create_organisation(
            SYSTEM, "Other", "mallory@other.test", NewAccount("Mallory", PASSWORD)
        )
        with TestClient(create_app(platform, maintenance_interval=3600)) as client:
            csrf = login(client)["csrf_token"]
            device = SoftAuthenticator()
            options = client.post("/api/v1/me/mfa/passkeys/options", headers={CSRF_HEADER: csrf})
            assert options.status_code == 200, options.text
            registered = client.post(
                "/api/v1/me/mfa/passkeys",
                json={"credential": device.register(json.dumps(options.json())), "name": "phone"},
                headers={CSRF_HEADER: csrf},
            )
            assert registered.status_code == 201, registered.text

            contract = platform.contracts.create(
                SENDER,
                made.org_id,
                title="Passkey",
                pdf=sample_pdf(),
                signers=[SignerSpec(name="Olive", email=OWNER)],
            )
            platform.contracts.send(SENDER, made.org_id, contract.id)
            mailer = platform.mailer
            assert isinstance(mailer, MemoryMailer)
            token = next(iter(invitation_tokens(mailer, contract.id).values()))
            link = {"Authorization": f"Bearer {token}"}
            view = client.get("/api/v1/signer/contract", headers=link).json()

            # Someone else's account (and passkey) cannot step up on this link.
            client.cookies.clear()
            login(client, "mallory@other.test")
            other = client.post("/api/v1/signer/stepup", json={"method": "passkey"}, headers=link)
            assert other.status_code == 403, other.text
            client.cookies.clear()
            step = login(client)  # the owner has a passkey now: it is the second step too
            assert step["status"] == "mfa-required" and "passkey" in step["methods"]
            back = client.post(
                "/api/v1/auth/mfa",
                json={
                    "challenge": step["challenge"],
                    "method": "passkey",
                    "response": device.assertion(step["passkey_options"]),
                },
            )
            assert back.status_code == 200, back.text

            challenge = client.post(
                "/api/v1/signer/stepup", json={"method": "passkey"}, headers=link
            )
            assert challenge.status_code == 201, challenge.text
            request_options = challenge.json()["passkey_options"]
            assertion = device.assertion(json.dumps(request_options))
            verified = client.post(
                f"/api/v1/signer/stepup/{challenge.json()['challenge_id']}",
                json={"credential": assertion},
                headers=link,
            )
            assert verified.status_code == 200, verified.text
            signed = client.post(
                "/api/v1/signer/sign",
                json={
                    "document_sha256": view["document_sha256"],
                    "consent": True,
                    "stepup_challenge_id": challenge.json()["challenge_id"],
                },
                headers=link,
            )
            assert signed.status_code == 200, signed.text

            with platform.db.read() as s:
                from pactvault.store.mfa_models import Passkey
                from pactvault.store.models import Signature

                stored = s.get(Signature, signed.json()["id"])
                public_key = s.query(Passkey).one().public_key
            assert stored is not None and stored.stepup_proof is not None
            proof = StepUpProof.from_json(stored.stepup_proof)
            assert proof.method == "passkey" and proof.document_sha256 == view["document_sha256"]
            verify_passkey_proof(proof, public_key)  # offline re-verification of the evidence

    finally:
        platform.close()


def test_factor_and_token_changes_need_a_recent_password(
    client: TestClient, platform: Platform
) -> None:
    """A session cookie stolen an hour ago must not add the thief's own factor or token."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from pactvault.store.identity_models import UserSession
    from pactvault.store.models import AuditEvent

    signed_in = login(client)
    csrf = {CSRF_HEADER: signed_in["csrf_token"]}
    with platform.db.write() as s:
        s.execute(
            update(UserSession)
            .where(UserSession.id == signed_in["session_id"])
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    for method, path, body in (
        ("POST", "/api/v1/me/mfa/totp", None),
        ("POST", "/api/v1/me/mfa/channels", {"channel": "email"}),
        ("POST", "/api/v1/tokens", {"name": "late", "scopes": ["contract.read.own"]}),
    ):
        refused = client.request(method, path, json=body, headers=csrf)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["type"].endswith("/reauthentication-required")
    with platform.db.read() as s:
        denials = (
            s.execute(select(AuditEvent).where(AuditEvent.action == "access.denied"))
            .scalars()
            .all()
        )
    assert len(denials) >= 3, "every refusal is audited"

    wrong = client.post("/api/v1/auth/reauthenticate", json={"password": "nope"}, headers=csrf)
    assert wrong.status_code == 401
    again = client.post("/api/v1/auth/reauthenticate", json={"password": PASSWORD}, headers=csrf)
    assert again.status_code == 204, again.text
    assert client.post("/api/v1/me/mfa/totp", headers=csrf).status_code == 201
    token = client.post(
        "/api/v1/tokens", json={"name": "now", "scopes": ["contract.read.own"]}, headers=csrf
    )
    assert token.status_code == 201, token.text


def test_confirming_the_password_is_throttled_like_a_sign_in(client: TestClient) -> None:
    csrf = {CSRF_HEADER: login(client)["csrf_token"]}
    answers = [
        client.post("/api/v1/auth/reauthenticate", json={"password": f"guess-{i}"}, headers=csrf)
        for i in range(12)
    ]
    statuses = [a.status_code for a in answers]
    assert statuses[0] == 401 and 429 in statuses, statuses
    throttled = answers[statuses.index(429)]
    assert int(throttled.headers["Retry-After"]) > 0
    # Changing the password is the same oracle, throttled the same way.
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": "guess", "new_password": "x" * 20},
        headers=csrf,
    )
    assert changed.status_code == 429
