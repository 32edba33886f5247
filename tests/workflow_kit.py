"""Shared building blocks for the approval and verification API tests (no tests here).

A real platform and app over HTTP; people are signed in through the login service and call the
API with their session cookie and CSRF header, exactly as a browser would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image
from sqlalchemy import func, select

from identity_kit import PASSWORD
from pactvault.api.deps import CSRF_HEADER, SESSION_COOKIE
from pactvault.audit.journal import Actor
from pactvault.demo import sample_pdf
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent

SYSTEM = Actor(type="system", id="pytest")
BROWSER = Actor(type="anonymous", ip="203.0.113.20", user_agent="pytest-browser")
NAME = "张三明"
ID_NUMBER = "110105199003071239"
PHONE = "13812345678"


@dataclass
class Person:
    """A signed-in member calling the API through ``client``."""

    client: TestClient
    platform: Platform
    email: str
    user_id: str
    token: str = field(repr=False)
    csrf: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {CSRF_HEADER: self.csrf, "Cookie": f"{SESSION_COOKIE}={self.token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Response:
        return self.client.request(method, path, headers=self.headers(), **kwargs)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.call("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Response:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        return self.call("DELETE", path, **kwargs)

    @property
    def principal(self):  # type: ignore[no-untyped-def]
        return self.platform.sessions.authenticate(self.token)


def sign_in(client: TestClient, platform: Platform, email: str) -> Person:
    issued = platform.login.login(email, PASSWORD, BROWSER)
    return Person(client, platform, email, issued.user_id, issued.token, issued.csrf_token)


def organisation(client: TestClient, platform: Platform, name: str, email: str) -> Person:
    platform.people.create_organisation(SYSTEM, name, email, NewAccount("Owner", PASSWORD))
    return sign_in(client, platform, email)


def member(owner: Person, email: str, role: str, clearance: str | None = None) -> Person:
    """Invite ``email`` with ``role`` (and ``clearance``), accept, sign in."""
    platform = owner.platform
    platform.people.invite(owner.principal, email, role)
    mailer = platform.mailer
    assert isinstance(mailer, MemoryMailer)
    token = next(
        dict(m.tags)["Invitation-Token"] for m in reversed(mailer.messages) if m.to == email
    )
    info = platform.people.accept_invitation(
        token, BROWSER, account=NewAccount(email.split("@")[0].title(), PASSWORD)
    )
    if clearance is not None:
        platform.people.set_clearance(owner.principal, info.user_id, clearance)
    return sign_in(owner.client, platform, email)


def upload_contract(
    person: Person,
    *,
    amount_minor: int | None = None,
    currency: str | None = None,
    classification: str = "internal",
    signer_email: str = "buyer@example.test",
) -> str:
    meta: dict[str, Any] = {
        "title": "Supply agreement",
        "signers": [{"name": "Buyer", "email": signer_email}],
        "classification": classification,
    }
    if amount_minor is not None:
        meta |= {"amount_minor": amount_minor, "currency": currency}
    response = person.post(
        "/api/v1/contracts",
        files={"file": ("c.pdf", sample_pdf(), "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def image(kind: str = "PNG", size: tuple[int, int] = (64, 40)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(out, kind)
    return out.getvalue()


def events(platform: Platform, action: str) -> list[AuditEvent]:
    with platform.db.read() as s:
        return list(
            s.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).scalars()
        )


def denials(platform: Platform) -> int:
    with platform.db.read() as s:
        return s.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "access.denied")
        ).scalar_one()


def journal_text(platform: Platform) -> str:
    with platform.db.read() as s:
        return str([(e.action, e.details) for e in s.execute(select(AuditEvent)).scalars()])
