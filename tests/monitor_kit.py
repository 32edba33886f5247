"""Shared building blocks for the security monitoring tests (no tests here).

A real platform (cheap password hashing), organisations with signed-in members, journal
entries written exactly as the services write them (``audit.journal.record``), and a real
uvicorn server on loopback for the attack replays, with the lifespan on so the detection loop
runs as in production.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import func, select

from identity_kit import FAST, PASSWORD
from pactvault.api.app import create_app
from pactvault.audit.journal import Actor, record
from pactvault.config import Settings
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent
from pactvault.store.monitor_models import Alert

SYSTEM = Actor(type="system", id="pytest")


def make_platform(home: Path, database_url: str | None = None, **settings: Any) -> Platform:
    platform, _ = Platform.initialise(
        Settings(home=home, database_url=database_url, **settings),
        mailer=MemoryMailer(),
        password_hasher=PasswordHasher(FAST),
    )
    return platform


@dataclass
class Member:
    user_id: str
    email: str
    session_token: str
    csrf: str

    def auth(self) -> dict[str, str]:
        """Request headers of this member's browser session (cookie and CSRF token)."""
        return {"Cookie": f"pv_session={self.session_token}", "X-CSRF-Token": self.csrf}


def invitation_token(mailer: MemoryMailer, email: str) -> str:
    for message in reversed(mailer.messages):
        tags = dict(message.tags)
        if message.to == email and "Invitation-Token" in tags:
            return tags["Invitation-Token"]
    raise AssertionError(f"no invitation for {email}")


def sign_in(platform: Platform, email: str, ip: str = "203.0.113.10") -> Member:
    issued = platform.login.login(email, PASSWORD, Actor(type="anonymous", ip=ip))
    return Member(issued.user_id, email, issued.token, issued.csrf_token)


def organisation(platform: Platform, name: str, owner_email: str) -> tuple[str, Member]:
    created = platform.people.create_organisation(
        SYSTEM, name, owner_email, NewAccount("Owner", PASSWORD)
    )
    return created.org_id, sign_in(platform, owner_email)


def member(platform: Platform, owner: Member, email: str, role: str = "member") -> Member:
    inviter = platform.sessions.authenticate(owner.session_token)
    platform.people.invite(inviter, email, role)
    assert isinstance(platform.mailer, MemoryMailer)
    platform.people.accept_invitation(
        invitation_token(platform.mailer, email),
        Actor(type="anonymous", ip="203.0.113.10"),
        account=NewAccount(email.split("@")[0].title(), PASSWORD),
    )
    return sign_in(platform, email)


def write_events(platform: Platform, events: list[dict[str, Any]]) -> None:
    """Append journal entries as the services would (actor, action, object, time)."""
    with platform.db.write() as session:
        for e in events:
            e = dict(e)
            actor = e.pop("actor")
            action = e.pop("action")
            record(session, actor, action, **e)


def user_actor(user_id: str, org_id: str, ip: str) -> Actor:
    return Actor(type="user", id=user_id, org_id=org_id, ip=ip)


def alerts_of(platform: Platform, kind: str) -> list[Alert]:
    with platform.db.read() as s:
        return list(
            s.execute(select(Alert).where(Alert.kind == kind).order_by(Alert.created_at)).scalars()
        )


def count_events(platform: Platform, action: str, **where: Any) -> int:
    with platform.db.read() as s:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        for column, value in where.items():
            query = query.where(getattr(AuditEvent, column) == value)
        return int(s.execute(query).scalar_one())


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, every: float = 0.1) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@contextmanager
def live_server(platform: Platform) -> Iterator[str]:
    """The real application on a loopback port, lifespan on (the detection loop runs), the
    maintenance loop slowed down so it does not interfere. Yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(platform, maintenance_interval=3600),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        # As `pactvault run`: X-Forwarded-For only from PACTVAULT_TRUSTED_PROXIES.
        proxy_headers=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
