"""The authorisation matrix, generated from the route table.

Every API route × every built-in role × own / others' / another tenant's object is called over
HTTP with a real signed-in session, and the answer is compared with what the permission table
says: allowed (the request reaches the service: anything but 401/403/404), denied (403) or hidden
(404, exactly like a missing id). The expectation is computed here from ``BUILTIN_ROLES`` and each
route's declared ``Rule``; a route without a rule, or without a case in ``CASES``, fails the test.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from identity_kit import FAST, PASSWORD
from matrix_workflows import (
    START,
    new_rule_body,
    on_approval_request,
    on_approval_to_decide,
    on_draft_to_approve,
    on_evidence,
    on_rule,
    on_verification,
    on_waiting_verification,
)
from pactvault.access.permissions import BUILTIN_ROLES
from pactvault.api.app import ROUTERS, create_app
from pactvault.api.deps import CSRF_HEADER, SESSION_COOKIE, Rule, rule_of
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.identity.errors import LOGIN_FAILED
from pactvault.identity.mfa import channels as mfa_channels
from pactvault.identity.mfa.errors import SECOND_FACTOR_FAILED
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.base import utcnow
from pactvault.store.mfa_models import Passkey
from pactvault.store.models import AuditEvent

ROLES = tuple(BUILTIN_ROLES)
RELATIONS = ("own", "other", "foreign")
SYSTEM = Actor(type="system", id="pytest")
CLIENT = Actor(type="anonymous", ip="203.0.113.9", user_agent="pytest-matrix")


@dataclass
class Session:
    user_id: str
    email: str
    token: str
    csrf: str

    def headers(self) -> dict[str, str]:
        return {CSRF_HEADER: self.csrf, "Cookie": f"{SESSION_COOKIE}={self.token}"}


@dataclass
class World:
    platform: Platform
    client: TestClient
    mailer: MemoryMailer
    org_a: str
    org_b: str
    sessions: dict[str, Session]  # role → signed-in member of org A
    owner_b: Session
    counter: Iterator[int] = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def principal(self, role: str):  # type: ignore[no-untyped-def]
        return self.platform.sessions.authenticate(self.sessions[role].token)

    def contract(self, org_id: str, signer_email: str, creator: str | None = None) -> str:
        contract = self.platform.contracts.create(
            SYSTEM,
            org_id,
            title="Matrix",
            pdf=sample_pdf(),
            signers=[SignerSpec(name="Party", email=signer_email)],
            created_by_user_id=creator,
        )
        return contract.id

    def member(self, role: str = "member") -> str:
        email = f"{self.fresh('target')}@a.test"
        owner = self.principal("owner")
        self.platform.people.invite(owner, email, role)
        token = _invitation_token(self.mailer, email)
        info = self.platform.people.accept_invitation(
            token, CLIENT, account=NewAccount("Target", PASSWORD)
        )
        return info.user_id


def _invitation_token(mailer: MemoryMailer, email: str) -> str:
    for message in reversed(mailer.messages):
        tags = dict(message.tags)
        if message.to == email and "Invitation-Token" in tags:
            return tags["Invitation-Token"]
    raise AssertionError(f"no invitation for {email}")


def _sign_in(platform: Platform, email: str) -> Session:
    issued = platform.login.login(email, PASSWORD, CLIENT)
    return Session(issued.user_id, email, issued.token, issued.csrf_token)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home: Path = tmp_path_factory.mktemp("matrix") / "data"
    mailer = MemoryMailer()
    platform, _ = Platform.initialise(
        # A localhost public URL: passkeys are available (WebAuthn refuses bare IP addresses).
        Settings(home=home, max_upload_bytes=5 * 1024 * 1024, public_url="http://localhost:8000"),
        mailer=mailer,
        password_hasher=PasswordHasher(FAST),
    )
    people = platform.people
    a = people.create_organisation(SYSTEM, "Org A", "owner@a.test", NewAccount("Owner", PASSWORD))
    b = people.create_organisation(SYSTEM, "Org B", "owner@b.test", NewAccount("Owner", PASSWORD))
    sessions = {"owner": _sign_in(platform, "owner@a.test")}
    owner = platform.sessions.authenticate(sessions["owner"].token)
    for role in ROLES:
        if role == "owner":
            continue
        email = f"{role}@a.test"
        people.invite(owner, email, role)
        people.accept_invitation(
            _invitation_token(mailer, email), CLIENT, account=NewAccount(role.title(), PASSWORD)
        )
        sessions[role] = _sign_in(platform, email)
    with TestClient(create_app(platform, maintenance_interval=3600)) as client:
        yield World(
            platform,
            client,
            mailer,
            a.org_id,
            b.org_id,
            sessions,
            _sign_in(platform, "owner@b.test"),
        )
    platform.close()


# -- how to call each route, per kind of object -------------------------------------------------

#: Builds the path parameters and body for one call: (world, role, relation) → (params, kwargs).
Builder = Callable[[World, str, str], tuple[dict[str, str], dict[str, object]]]


def contract_params(w: World, role: str, relation: str) -> dict[str, str]:
    me = w.sessions[role]
    if relation == "own":  # created by the caller, who also signs it
        return {"contract_id": w.contract(w.org_a, me.email, creator=me.user_id)}
    if relation == "other":
        return {"contract_id": w.contract(w.org_a, "stranger@elsewhere.test")}
    return {"contract_id": w.contract(w.org_b, "stranger@elsewhere.test")}


def on_contract(body: dict[str, object] | None = None) -> Builder:
    return lambda w, role, rel: (contract_params(w, role, rel), {"json": body} if body else {})


def on_member(body: dict[str, object] | None = None) -> Builder:
    def build(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
        user = w.owner_b.user_id if relation == "foreign" else w.member()
        return {"user_id": user}, ({"json": body} if body else {})

    return build


def on_invitation(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
    if relation == "foreign":
        owner_b = w.platform.sessions.authenticate(w.owner_b.token)
        info = w.platform.people.invite(owner_b, f"{w.fresh('inv')}@b.test", "member")
    else:
        info = w.platform.people.invite(w.principal("owner"), f"{w.fresh('inv')}@a.test", "member")
    return {"invitation_id": info.id}, {}


def on_role(body: dict[str, object] | None = None) -> Builder:
    def build(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
        key = w.fresh("custom-")
        who = w.platform.sessions.authenticate(w.owner_b.token) if relation == "foreign" else (
            w.principal("owner")
        )
        w.platform.roles.create_role(who, key, "Custom", ["contract.read.own"])
        return {"key": key}, ({"json": body} if body else {})

    return build


def on_session(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
    email = w.owner_b.email if relation == "foreign" else w.sessions[role].email
    if relation == "other":
        email = w.sessions["owner" if role != "owner" else "admin"].email
    spare = w.platform.login.login(email, PASSWORD, CLIENT)
    return {"session_id": spare.session_id}, {}


def on_token(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
    holder = {"own": w.sessions[role], "foreign": w.owner_b}.get(
        relation, w.sessions["owner" if role != "owner" else "admin"]
    )
    who = w.platform.sessions.authenticate(holder.token)
    held = sorted(who.permissions) or ["contract.read.own"]
    issued = w.platform.tokens.create_user_token(who, "matrix", held[:1])
    return {"token_id": issued.token_id}, {}


def on_alert(body: dict[str, object] | None = None) -> Builder:
    """A fresh alert (its own subject, so a new problem each call): org A's for own and other,
    org B's for foreign."""

    def build(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
        raised = w.platform.alerts.raise_alert(
            "integrity.blob-missing",
            severity="critical",
            title="Matrix",
            details={"contract_id": w.fresh("matrix-"), "version": 1},
            org_id=w.org_b if relation == "foreign" else w.org_a,
        )
        return {"alert_id": raised.alert.id}, ({"json": body} if body else {})

    return build


def on_monitor_rule(body: dict[str, object] | None = None) -> Builder:
    """An organisation-level detection rule for own/other; for foreign, a platform-wide rule:
    the operator's, which an organisation's administrator cannot see or tune (404)."""

    def build(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
        rule = "password-spraying" if relation == "foreign" else "mass-download"
        return {"rule": rule}, ({"json": body} if body else {})

    return build


def on_monitor_response(
    w: World, role: str, relation: str
) -> tuple[dict[str, str], dict[str, object]]:
    """A fresh automatic response (a slow-down of a made-up user): org A's, or org B's."""
    from pactvault.monitor.responses import Planned

    (made,) = w.platform.monitor.responses.apply(
        [Planned("slow-down", "user", w.fresh("nobody-"))],
        rule="manual",
        org_id=w.org_b if relation == "foreign" else w.org_a,
        minutes=30,
        reason="matrix",
    )
    return {"response_id": made.id}, {}


def _mfa_target(w: World, role: str, relation: str) -> str:
    """Whose factor a call names: the caller, another member of org A, a member of org B.

    Never an account the matrix signs in again (owners, the role sessions): a factor left on
    one would turn its later sign-ins into second-step challenges.
    """
    if relation == "own":
        return w.sessions[role].user_id
    if relation == "other":
        return w.member()
    owner_b = w.platform.sessions.authenticate(w.owner_b.token)
    email = f"{w.fresh('b-member')}@b.test"
    w.platform.people.invite(owner_b, email, "member")
    token = _invitation_token(w.mailer, email)
    info = w.platform.people.accept_invitation(token, CLIENT, account=NewAccount("B", PASSWORD))
    return info.user_id


def on_channel(body: dict[str, object] | None = None) -> Builder:
    """A *pending* email channel (not yet a factor) of the target account."""

    def build(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
        user_id = _mfa_target(w, role, relation)
        with w.platform.db.write() as s:
            row = mfa_channels.begin(s, user_id, "email", f"{user_id}@mfa.test", utcnow())
            channel_id = row.id
        return {"channel_id": channel_id}, ({"json": body} if body else {})

    return build


def on_passkey(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
    user_id = _mfa_target(w, role, relation)
    credential = secrets.token_bytes(32)
    with w.platform.db.write() as s:
        row = Passkey(
            user_id=user_id,
            credential_id=credential,
            credential_id_sha256=hashlib.sha256(credential).hexdigest(),
            public_key=b"matrix",
            aaguid="00000000-0000-0000-0000-000000000000",
            attestation_format="none",
            device_type="single_device",
            name="matrix",
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        passkey_id = row.id
    return {"passkey_id": passkey_id}, {}


def with_active_totp(
    w: World, role: str, relation: str
) -> tuple[dict[str, str], dict[str, object]]:
    """The caller gets an authenticator app, which the (allowed) call then removes."""
    user_id = w.sessions[role].user_id
    with w.platform.db.write() as s:
        w.platform.mfa.totp.begin(s, user_id, w.sessions[role].email)
        w.platform.mfa.totp.activate(s, user_id)
    return {}, {}


def no_object(kwargs: dict[str, object] | Callable[[World], dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    def build(w: World, role: str, relation: str) -> tuple[dict[str, str], dict[str, object]]:
        made = kwargs(w) if callable(kwargs) else kwargs
        return {}, dict(made or {})

    return build


def new_contract_upload(w: World) -> dict[str, object]:
    meta = {"title": "Upload", "signers": [{"name": "P", "email": "p@example.test"}]}
    return {
        "files": {"file": ("c.pdf", sample_pdf(), "application/pdf")},
        "data": {"metadata": json.dumps(meta)},
    }


#: One entry per (method, path) of every route that needs a signed-in caller.
CASES: dict[tuple[str, str], Builder] = {
    ("POST", "/api/v1/contracts"): no_object(new_contract_upload),
    ("GET", "/api/v1/contracts"): no_object(),
    ("GET", "/api/v1/contracts/{contract_id}"): on_contract(),
    ("POST", "/api/v1/contracts/{contract_id}/send"): on_contract(),
    ("POST", "/api/v1/contracts/{contract_id}/void"): on_contract({"reason": "matrix"}),
    ("POST", "/api/v1/contracts/{contract_id}/remind"): on_contract(),
    ("GET", "/api/v1/contracts/{contract_id}/document"): on_contract(),
    ("GET", "/api/v1/contracts/{contract_id}/audit"): on_contract(),
    ("GET", "/api/v1/org/members"): no_object(),
    ("GET", "/api/v1/org/members/{user_id}"): on_member(),
    ("PATCH", "/api/v1/org/members/{user_id}"): on_member({"role": "auditor"}),
    ("DELETE", "/api/v1/org/members/{user_id}"): on_member(),
    ("POST", "/api/v1/org/members/{user_id}/unlock"): on_member(),
    ("POST", "/api/v1/org/invitations"): no_object(
        lambda w: {"json": {"email": f"{w.fresh('new')}@a.test", "role": "member"}}
    ),
    ("GET", "/api/v1/org/invitations"): no_object(),
    ("DELETE", "/api/v1/org/invitations/{invitation_id}"): on_invitation,
    ("GET", "/api/v1/org/roles"): no_object(),
    ("POST", "/api/v1/org/roles"): no_object(
        lambda w: {
            "json": {"key": w.fresh("made-"), "name": "Made", "permissions": ["member.read"]}
        }
    ),
    ("PATCH", "/api/v1/org/roles/{key}"): on_role({"permissions": ["member.read"]}),
    ("DELETE", "/api/v1/org/roles/{key}"): on_role(),
    ("GET", "/api/v1/org/audit"): no_object(),
    ("GET", "/api/v1/org/alerts"): no_object(),
    ("GET", "/api/v1/org/alerts/{alert_id}"): on_alert(),
    ("POST", "/api/v1/org/alerts/{alert_id}/acknowledge"): on_alert({"note": "matrix"}),
    ("POST", "/api/v1/org/alerts/{alert_id}/resolve"): on_alert(),
    ("GET", "/api/v1/auth/me"): no_object(),
    ("GET", "/api/v1/auth/sessions"): no_object(),
    ("DELETE", "/api/v1/auth/sessions/{session_id}"): on_session,
    ("POST", "/api/v1/auth/sessions/revoke-all"): no_object(),
    ("POST", "/api/v1/auth/password"): no_object(
        {"json": {"current_password": "not-the-password", "new_password": "x" * 20}}
    ),
    ("POST", "/api/v1/auth/logout"): no_object(),
    ("POST", "/api/v1/auth/reauthenticate"): no_object({"json": {"password": PASSWORD}}),
    ("GET", "/api/v1/tokens"): no_object(),
    ("POST", "/api/v1/tokens"): no_object(
        {"json": {"name": "matrix", "scopes": ["contract.read.own"]}}
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): on_token,
    # Approvals and real-name verification (builders and their own/other in matrix_workflows).
    ("GET", "/api/v1/org/approval-rules"): no_object(),
    ("POST", "/api/v1/org/approval-rules"): no_object(new_rule_body),
    ("GET", "/api/v1/org/approval-rules/{rule_id}"): on_rule(),
    ("PATCH", "/api/v1/org/approval-rules/{rule_id}"): on_rule({"enabled": False}),
    ("DELETE", "/api/v1/org/approval-rules/{rule_id}"): on_rule(),
    ("GET", "/api/v1/org/approval-rules/{rule_id}/versions"): on_rule(),
    ("POST", "/api/v1/contracts/{contract_id}/approvals"): on_draft_to_approve,
    ("GET", "/api/v1/contracts/{contract_id}/approvals"): on_contract(),
    ("GET", "/api/v1/approvals"): no_object(),
    ("GET", "/api/v1/approvals/{request_id}"): on_approval_request,
    ("POST", "/api/v1/approvals/{request_id}/withdraw"): on_approval_request,
    ("POST", "/api/v1/approvals/{request_id}/decision"): on_approval_to_decide,
    ("POST", "/api/v1/me/verification"): no_object(START),
    ("GET", "/api/v1/me/verification"): no_object(),
    ("POST", "/api/v1/me/verification/{verification_id}/documents"): on_waiting_verification,
    ("GET", "/api/v1/org/verifications"): no_object(),
    ("GET", "/api/v1/org/verifications/{verification_id}"): on_verification(),
    ("GET", "/api/v1/org/verifications/{verification_id}/documents/{evidence_id}"): on_evidence,
    ("POST", "/api/v1/org/verifications/{verification_id}/review"): on_verification(
        {"decision": "approve", "reason": "matrix"}
    ),
    ("GET", "/api/v1/me/mfa"): no_object(),
    ("POST", "/api/v1/me/mfa/totp"): no_object(),
    ("POST", "/api/v1/me/mfa/totp/confirm"): no_object({"json": {"code": "000000"}}),
    ("DELETE", "/api/v1/me/mfa/totp"): with_active_totp,
    ("POST", "/api/v1/me/mfa/recovery-codes"): no_object(),
    ("POST", "/api/v1/me/mfa/passkeys/options"): no_object(),
    ("POST", "/api/v1/me/mfa/passkeys"): no_object({"json": {"credential": {"id": "x"}}}),
    ("DELETE", "/api/v1/me/mfa/passkeys/{passkey_id}"): on_passkey,
    ("POST", "/api/v1/me/mfa/channels"): no_object({"json": {"channel": "email"}}),
    ("POST", "/api/v1/me/mfa/channels/{channel_id}/confirm"): on_channel({"code": "000000"}),
    ("DELETE", "/api/v1/me/mfa/channels/{channel_id}"): on_channel(),
    ("GET", "/api/v1/org/signing-policy"): no_object(),
    ("PUT", "/api/v1/org/signing-policy"): no_object(
        {"json": {"min_signer_assurance": "basic"}}
    ),
    ("GET", "/api/v1/org/mfa-policy"): no_object(),
    # Security monitoring: detection rules, automatic responses, the member's step-up check.
    ("GET", "/api/v1/org/security/rules"): no_object(),
    ("PUT", "/api/v1/org/security/rules/{rule}"): on_monitor_rule({"threshold": 60}),
    ("DELETE", "/api/v1/org/security/rules/{rule}"): on_monitor_rule(),
    ("GET", "/api/v1/org/security/responses"): no_object(),
    ("POST", "/api/v1/org/security/responses/{response_id}/lift"): on_monitor_response,
    ("GET", "/api/v1/me/security/step-up"): no_object(),
    ("POST", "/api/v1/me/security/step-up/code"): no_object({"json": {"channel": "email"}}),
    ("POST", "/api/v1/me/security/step-up"): no_object(
        {"json": {"method": "totp", "code": "000000"}}
    ),
    ("PUT", "/api/v1/org/mfa-policy"): no_object({"json": {"require_mfa": False}}),
}

#: Routes that end the caller's session(s): they run on a throwaway session of the same member.
SESSION_ENDERS = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/sessions/revoke-all")}

#: Routes whose answer to an allowed call may legitimately be 401: they check a password or a
#: second factor (the matrix sends a wrong one), and say exactly that.
CREDENTIAL_CHECKS = {
    ("POST", "/api/v1/auth/password"): LOGIN_FAILED,
    ("POST", "/api/v1/me/mfa/totp/confirm"): SECOND_FACTOR_FAILED,
    ("POST", "/api/v1/me/mfa/channels/{channel_id}/confirm"): SECOND_FACTOR_FAILED,
}


def api_routes() -> list[tuple[str, str, Rule | None]]:
    """(method, path, rule) of every API route; ``None`` when it has no rule or several."""
    routes = []
    for route in (r for module in ROUTERS for r in module.router.routes):
        assert isinstance(route, APIRoute), f"unexpected route type {route!r}"
        rules = [r for d in _dependencies(route.dependant) if (r := rule_of(d)) is not None]
        for method in sorted(route.methods - {"HEAD"}):
            routes.append((method, route.path_format, rules[0] if len(rules) == 1 else None))
    return routes


def _dependencies(dependant) -> Iterator[object]:  # type: ignore[no-untyped-def]
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependencies(sub)


def expected(rule: Rule, role: str, relation: str, has_object: bool) -> str:
    """What the permission table says. A caller who lacks a permission in every reach is refused
    (403) whatever the id, which reveals nothing; one who holds it sees another tenant's object
    exactly like a missing one (404)."""
    held = BUILTIN_ROLES[role]
    if rule.kind in ("authenticated", "enrolling"):  # one's own; others' with a manager permission
        if has_object and relation == "foreign":
            return "hidden"
        if relation == "own" or not has_object or set(rule.permissions) & held:
            return "allowed"
        return "hidden"
    reachable = [
        p for p in rule.permissions if {p, f"{p}.all", f"{p}.own"} & held
    ]
    if not reachable:
        return "denied"
    if has_object and relation == "foreign":
        return "hidden"
    for permission in reachable:
        if permission in held or f"{permission}.all" in held:
            return "allowed"
        if relation == "own" or not has_object:
            return "allowed"
    return "denied"


def outcome(status: int, body: dict[str, object], key: tuple[str, str]) -> str:
    if status == 403:
        return "denied"
    if status == 404:
        return "hidden"
    if status == 401 and body.get("detail") != CREDENTIAL_CHECKS.get(key, object()):
        return "unauthenticated"
    return "allowed"


# -- the tests --------------------------------------------------------------------------------


def test_every_route_declares_exactly_one_access_rule() -> None:
    missing = [f"{m} {p}" for m, p, rule in api_routes() if rule is None]
    assert not missing, f"routes without an access rule: {missing}"


def test_every_signed_in_route_has_a_matrix_case() -> None:
    needed = {
        (m, p) for m, p, rule in api_routes() if rule and rule.kind not in ("public", "signer")
    }
    assert needed - set(CASES) == set(), f"routes without a matrix case: {needed - set(CASES)}"
    assert set(CASES) - needed == set(), f"stale matrix cases: {set(CASES) - needed}"


def _cases() -> list[tuple[str, str, str, str]]:
    out = []
    for method, path, rule in api_routes():
        if rule is None or rule.kind in ("public", "signer"):
            continue
        has_object = "{" in path
        for role in ROLES:
            for relation in RELATIONS if has_object else ("own",):
                out.append((method, path, role, relation))
    return out


@pytest.mark.parametrize(("method", "path", "role", "relation"), _cases())
def test_authorisation_matrix(
    world: World, method: str, path: str, role: str, relation: str
) -> None:
    rule = {(m, p): r for m, p, r in api_routes()}[(method, path)]
    assert rule is not None
    params, kwargs = CASES[(method, path)](world, role, relation)
    session = world.sessions[role]
    if (method, path) in SESSION_ENDERS:
        # These end sessions: use a throwaway session of the same member.
        session = _sign_in(world.platform, session.email)
    denials_before = _denials(world)
    response = world.client.request(
        method, path.format(**params), headers=session.headers(), **kwargs
    )
    if (method, path) in SESSION_ENDERS:  # signing out everywhere ended the member's session too
        world.sessions[role] = _sign_in(world.platform, session.email)
    is_json = response.headers.get("content-type", "").endswith("json")
    body = response.json() if response.content and is_json else {}
    want = expected(rule, role, relation, bool(params))
    got = outcome(response.status_code, body, (method, path))
    assert got == want, (
        f"{method} {path} as {role} on {relation} object: expected {want}, "
        f"got {response.status_code} {body}"
    )
    if want == "hidden" and relation == "foreign":
        assert body["detail"].endswith("not found")
    if want in ("denied", "hidden"):
        assert _denials(world) > denials_before, "the refusal was not audited"


def _denials(w: World) -> int:
    with w.platform.db.read() as s:
        return s.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "access.denied")
        ).scalar_one()


@pytest.mark.parametrize(("method", "path"), sorted(CASES))
def test_signed_in_routes_refuse_anonymous_callers(world: World, method: str, path: str) -> None:
    url = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)  # ids are UUIDs
    response = world.client.request(method, url)
    assert response.status_code == 401, f"{method} {path}: {response.status_code}"
