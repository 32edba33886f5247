"""Shared building blocks for the identity and access tests (no tests here).

Services are built directly on a migrated database (both SQLite and PostgreSQL through the
``database_url`` fixture) with a controllable clock and cheap argon2 parameters; the tests that
are about the production parameters use ``DEFAULT_PARAMETERS`` explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from pactvault.access.decision import AccessControl
from pactvault.access.roles import RoleService
from pactvault.audit.journal import Actor
from pactvault.identity.login import LoginService
from pactvault.identity.passwords import HashParameters, PasswordHasher, PasswordPolicy
from pactvault.identity.people import NewAccount, PeopleService
from pactvault.identity.principal import Principal
from pactvault.identity.sessions import SessionService
from pactvault.identity.throttle import ThrottlePolicy
from pactvault.identity.tokens import TokenService
from pactvault.notify import MemoryMailer
from pactvault.store import migrate
from pactvault.store.db import Database
from pactvault.store.models import AuditEvent

FAST = HashParameters(time_cost=1, memory_cost=8 * 1024, parallelism=1)
CSRF_KEY = b"k" * 32
CLIENT = Actor(type="anonymous", ip="203.0.113.5", user_agent="pytest-browser")
SYSTEM = Actor(type="system", id="pytest")
PASSWORD = "violet-anchor-meadow-42-quartz"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Kit:
    db: Database
    clock: Clock
    access: AccessControl
    hasher: PasswordHasher
    policy: PasswordPolicy
    mailer: MemoryMailer
    people: PeopleService
    sessions: SessionService
    login: LoginService
    roles: RoleService
    tokens: TokenService
    #: Session tokens issued by ``sign_in``, by session id (a Principal never carries its token).
    session_tokens: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.db.dispose()

    # -- helpers --------------------------------------------------------------------------------

    def organisation(self, name: str = "Acme", email: str = "owner@acme.test") -> Principal:
        """A new organisation and its signed-in owner."""
        self.people.create_organisation(SYSTEM, name, email, NewAccount("Olive Owner", PASSWORD))
        return self.sign_in(email)

    def sign_in(self, email: str, password: str = PASSWORD, **kwargs: object) -> Principal:
        issued = self.login.login(email, password, CLIENT, **kwargs)  # type: ignore[arg-type]
        self.session_tokens[issued.session_id] = issued.token
        return self.sessions.authenticate(issued.token)

    def invitation_token(self, email: str) -> str:
        for message in reversed(self.mailer.messages):
            tags = dict(message.tags)
            if message.to == email and "Invitation-Token" in tags:
                return tags["Invitation-Token"]
        raise AssertionError(f"no invitation mailed to {email}")

    def member(self, inviter: Principal, email: str, role: str) -> Principal:
        """Invite ``email`` with ``role``, accept as a new account, sign in."""
        self.people.invite(inviter, email, role)
        self.people.accept_invitation(
            self.invitation_token(email),
            CLIENT,
            account=NewAccount(email.split("@")[0].title(), PASSWORD),
        )
        return self.sign_in(email)

    def events(self, action: str) -> list[AuditEvent]:
        with self.db.read() as s:
            return list(
                s.execute(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
                ).scalars()
            )


def make_kit(
    database_url: str,
    *,
    parameters: HashParameters = FAST,
    throttle: ThrottlePolicy | None = None,
    clock: Clock | None = None,
    migrate_db: bool = True,
) -> Kit:
    db = Database.from_url(database_url)
    if migrate_db:
        migrate.upgrade(db.engine)
    clock = clock or Clock()
    access = AccessControl(db)
    hasher = PasswordHasher(parameters)
    policy = PasswordPolicy()
    mailer = MemoryMailer()
    sessions = SessionService(db, access, csrf_key=CSRF_KEY, clock=clock)
    return Kit(
        db=db,
        clock=clock,
        access=access,
        hasher=hasher,
        policy=policy,
        mailer=mailer,
        people=PeopleService(db, access, hasher, policy, mailer, clock=clock),
        sessions=sessions,
        login=LoginService(db, access, sessions, hasher, policy, throttle=throttle, clock=clock),
        roles=RoleService(db, access),
        tokens=TokenService(db),
    )
