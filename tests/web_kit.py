"""Building blocks for the page tests (no tests here): an instance, a browser-like client.

``Visitor`` wraps a ``TestClient`` the way a browser uses the pages: it reads the CSRF token from
the page it is on and sends it back with the form, keeps cookies, and does not follow redirects
unless asked (the tests look at them).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from identity_kit import FAST, PASSWORD
from pactvault.api.app import create_app
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.identity.mfa import totp
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

SYSTEM = Actor(type="system", id="pytest-web")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Instance:
    platform: Platform
    mailer: MemoryMailer
    home: Path
    setup_token: str | None
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1, 10_000)))

    def organisation(self, email: str | None = None, name: str = "Acme 公司") -> str:
        """A new organisation whose owner (``email``) has the shared test password."""
        email = email or f"owner{next(self.counter)}@acme.test"
        self.platform.people.create_organisation(SYSTEM, name, email, NewAccount("Olive", PASSWORD))
        return email

    def invitation_token(self, email: str) -> str:
        for message in reversed(self.mailer.messages):
            tags = dict(message.tags)
            if message.to == email and "Invitation-Token" in tags:
                return tags["Invitation-Token"]
        raise AssertionError(f"no invitation mailed to {email}")

    def last_code(self, to: str) -> str:
        for message in reversed(self.mailer.messages):
            found = re.search(r"\b(\d{6,8})\b", message.body)
            if message.to == to and found:
                return found.group(1)
        raise AssertionError(f"no code mailed to {to}")

    def signed_pdf(self, *names: str) -> bytes:
        """A contract signed by each of ``names`` (the sample flow), as the final PDF."""
        from flows import SENDER, sent_contract, sign_as
        from pactvault.contracts.service import SignerSpec

        signers = [
            SignerSpec(name=n, email=f"signer{i}@example.test", routing_order=i + 1)
            for i, n in enumerate(names or ("Zhang San 张三",))
        ]
        org_id, contract_id, tokens = sent_contract(self.platform, self.mailer, signers)
        for signer in sorted(
            self.platform.contracts.get(org_id, contract_id).signers, key=lambda s: s.routing_order
        ):
            tokens = {**tokens, **_invitations(self.mailer, contract_id)}
            sign_as(self.platform, tokens[signer.id])
        return self.platform.contracts.download(SENDER, org_id, contract_id)[1]

    def events(self, action: str) -> list[dict[str, object]]:
        from sqlalchemy import select

        from pactvault.store.models import AuditEvent

        with self.platform.db.read() as s:
            rows = s.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars()
            return [dict(r.details or {}) for r in rows]


def _invitations(mailer: MemoryMailer, contract_id: str) -> dict[str, str]:
    from flows import invitation_tokens

    return invitation_tokens(mailer, contract_id)


@contextmanager
def instance(tmp_path: Path, **settings: object) -> Iterator[Instance]:
    mailer = MemoryMailer()
    home = tmp_path / "data"
    values: dict[str, object] = {
        "home": home,
        "public_url": "http://localhost:8000",
        "max_upload_bytes": 5 * 1024 * 1024,
        **settings,
    }
    platform, init = Platform.initialise(
        Settings(**values),  # type: ignore[arg-type]
        mailer=mailer,
        password_hasher=PasswordHasher(FAST),
    )
    try:
        yield Instance(platform, mailer, home, init.setup_token)
    finally:
        platform.close()


class Visitor:
    """One browser: cookies, the page it is on, forms sent with that page's CSRF token."""

    def __init__(self, client: TestClient, language: str = "en") -> None:
        self.client = client
        self.language = language
        self.page = ""

    def headers(self) -> dict[str, str]:
        return {"Accept-Language": self.language}

    def _seen(self, response: httpx.Response) -> httpx.Response:
        """Every page a test sees is checked for untranslated keys and its language."""
        if response.headers.get("content-type", "").startswith("text/html"):
            self.page = response.text
            assert "[[" not in self.page, f"untranslated key on {response.url}: {self.page}"
            expected = "zh-CN" if self.language.startswith("zh") else "en"
            assert f'<html lang="{expected}">' in self.page or not self.page.startswith("<!"), (
                f"{response.url} is not in {expected}"
            )
        return response

    def get(self, path: str, *, follow: bool = False) -> httpx.Response:
        return self._seen(self.client.get(path, headers=self.headers(), follow_redirects=follow))

    def csrf(self) -> str:
        found = CSRF.search(self.page)
        assert found, "the current page has no form with a CSRF token"
        return unescape(found.group(1))

    def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        follow: bool = False,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: object,
    ) -> httpx.Response:
        form = {"csrf_token": self.csrf() if csrf is None else csrf, **(data or {})}
        if csrf == "":
            form.pop("csrf_token")
        return self._seen(
            self.client.post(
                path,
                data=form,
                headers={**self.headers(), **(headers or {})},
                follow_redirects=follow,
                **kwargs,  # type: ignore[arg-type]
            )
        )

    def sign_in(self, email: str, password: str = PASSWORD, next_path: str = "") -> httpx.Response:
        self.get("/sign-in")
        return self.post("/sign-in", {"email": email, "password": password, "next": next_path})


def totp_secret(page: str) -> bytes:
    """The authenticator key shown for manual entry, as the app would store it."""
    found = re.search(r'data-totp-secret="([A-Z2-7]+)"', page)
    assert found, "no authenticator key on the page"
    text = found.group(1)
    return base64.b32decode(text + "=" * (-len(text) % 8))


def totp_code(secret: bytes, *, steps_ahead: int = 0) -> str:
    """A code for now (or a later step within the accepted window: each step works once)."""
    step = totp.time_step(datetime.now(UTC)) + steps_ahead
    return totp.code_for_step(secret, step)


def visitor(platform: Platform, language: str = "en") -> Iterator[Visitor]:
    with TestClient(create_app(platform, maintenance_interval=3600)) as client:
        yield Visitor(client, language)
