"""Server-side sign-in sessions: random ids stored hashed, absolute and idle expiry.

The browser holds only the session token (256 random bits); the database holds its SHA-256, so a
database leak does not let anyone ride a session. A session is bound to one user and one
organisation, carries the client's IP and user agent for the "your sessions" list, and ends at
whichever comes first: its absolute lifetime, ``idle`` without use, revocation, the user's
account being disabled, or their membership ending.

Cookie attributes and CSRF checks belong to the web layer; ``csrf_token`` gives it a token bound
to the session (HMAC-SHA256 of the session id under a server key), so no CSRF state is stored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, require
from pactvault.audit.journal import Actor, record
from pactvault.errors import AuthenticationError, InvalidInputError, NotFoundError
from pactvault.identity.members import active_member
from pactvault.identity.principal import Principal
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import Membership, UserSession
from pactvault.tokens import digests_equal, new_token, token_digest

SESSION_PREFIX = "pvsess_"
CSRF_CONTEXT = b"pactvault csrf v1\x00"


@dataclass(frozen=True)
class SessionPolicy:
    absolute: timedelta = timedelta(hours=12)
    idle: timedelta = timedelta(minutes=30)
    #: ``last_seen_at`` is written at most this often (one write per request would be wasteful).
    touch_interval: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedSession:
    token: str  # for the cookie; shown once, never stored
    session_id: str
    user_id: str
    org_id: str
    expires_at: datetime
    csrf_token: str


@dataclass(frozen=True)
class SessionInfo:
    id: str
    org_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionService:
    def __init__(
        self,
        db: Database,
        access: AccessControl,
        *,
        csrf_key: bytes,
        policy: SessionPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if len(csrf_key) < 32:
            raise ValueError("the CSRF key must be at least 32 random bytes")
        self._db = db
        self._access = access
        self._csrf_key = csrf_key
        self.policy = policy or SessionPolicy()
        self._clock = clock

    # -- lifecycle --------------------------------------------------------------------------

    def create(self, session: Session, user_id: str, org_id: str, client: Actor) -> IssuedSession:
        """Start a session inside the caller's transaction (the login's)."""
        now = self._clock()
        token, digest = new_token(SESSION_PREFIX)
        row = UserSession(
            token_sha256=digest,
            user_id=user_id,
            org_id=org_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.policy.absolute,
            ip=(client.ip or None) and client.ip[:64],
            user_agent=(client.user_agent or None) and client.user_agent[:400],
        )
        session.add(row)
        session.flush()
        return IssuedSession(
            token, row.id, user_id, org_id, row.expires_at, self.csrf_token(row.id)
        )

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a live session, or ``AuthenticationError`` (one message for all)."""
        failure = AuthenticationError("your session has ended; please sign in again")
        if not token or not token.startswith(SESSION_PREFIX) or len(token) > 100:
            raise failure
        digest = token_digest(token)
        now = self._clock()
        with self._db.read() as s:
            row = s.execute(
                select(UserSession).where(UserSession.token_sha256 == digest)
            ).scalar_one_or_none()
            if row is None or not digests_equal(row.token_sha256, digest):
                raise failure
            if not self._live(row, now):
                raise failure
            member = active_member(s, row.user_id, row.org_id)
        if member is None:
            raise failure
        if now - row.last_seen_at >= self.policy.touch_interval:
            with self._db.write() as s:
                s.execute(
                    update(UserSession)
                    .where(UserSession.id == row.id, UserSession.revoked_at.is_(None))
                    .values(last_seen_at=now)
                )
        return Principal(
            org_id=row.org_id,
            user_id=row.user_id,
            session_id=row.id,
            role=member.role,
            permissions=member.permissions,
            clearance=member.clearance,
            authenticated_at=max(row.created_at, row.reauthenticated_at or row.created_at),
        )

    def mark_reauthenticated(self, s: Session, session_id: str, now: datetime) -> None:
        """Record, in the caller's transaction, that the session just proved the password."""
        s.execute(
            update(UserSession)
            .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
            .values(reauthenticated_at=now)
        )

    def _live(self, row: UserSession, now: datetime) -> bool:
        return (
            row.revoked_at is None
            and row.expires_at > now
            and now - row.last_seen_at < self.policy.idle
        )

    # -- the user's own sessions ------------------------------------------------------------

    def list_sessions(self, principal: Principal) -> list[SessionInfo]:
        """The caller's live sessions in every organisation, newest first."""
        user_id = self._user(principal)
        now = self._clock()
        with self._db.read() as s:
            rows = s.execute(
                select(UserSession)
                .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
                .order_by(UserSession.created_at.desc())
            ).scalars()
            return [
                SessionInfo(
                    r.id,
                    r.org_id,
                    r.created_at,
                    r.last_seen_at,
                    r.expires_at,
                    r.ip,
                    r.user_agent,
                    r.id == principal.session_id,
                )
                for r in rows
                if self._live(r, now)
            ]

    def revoke_session(
        self, principal: Principal, session_id: str, actor: Actor | None = None
    ) -> None:
        """End one of the caller's own sessions; anyone else's id answers as not found."""
        user_id = self._user(principal)
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor, "session.revoke", object_type="session", object_id=session_id
            ),
            self._db.write() as s,
        ):
            row = s.get(UserSession, session_id)
            if row is None or row.user_id != user_id:
                raise NotFoundError("session not found")
            row.revoked_at = row.revoked_at or self._clock()
            record(s, actor, "session.revoke", object_type="session", object_id=session_id)

    def sign_out_everywhere(
        self, principal: Principal, actor: Actor | None = None, *, keep_current: bool = False
    ) -> int:
        """End all of the caller's sessions in every organisation; returns how many."""
        user_id = self._user(principal)
        actor = actor or principal.actor()
        with self._db.write() as s:
            count = self._revoke_all(
                s, user_id, None, principal.session_id if keep_current else None
            )
            record(
                s,
                actor,
                "session.sign-out-everywhere",
                object_type="user",
                object_id=user_id,
                details={"revoked": count, "kept_current": keep_current},
            )
            return count

    def revoke_member_sessions(
        self, principal: Principal, user_id: str, actor: Actor | None = None
    ) -> int:
        """An administrator ends a member's sessions in this organisation."""
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor, "session.revoke-member", object_type="user", object_id=user_id
            ),
            self._db.write() as s,
        ):
            require(principal, "member.manage")
            is_member = s.execute(
                select(Membership.id).where(
                    Membership.org_id == principal.org_id, Membership.user_id == user_id
                )
            ).first()
            if is_member is None:
                raise NotFoundError("member not found")
            count = self._revoke_all(s, user_id, principal.org_id, None)
            record(
                s,
                actor,
                "session.revoke-member",
                object_type="user",
                object_id=user_id,
                details={"revoked": count},
            )
            return count

    def revoke_all_for_user(self, session: Session, user_id: str, keep: str | None = None) -> int:
        """In the caller's transaction (password change, account disabled)."""
        return self._revoke_all(session, user_id, None, keep)

    def _revoke_all(self, s: Session, user_id: str, org_id: str | None, keep: str | None) -> int:
        query = update(UserSession).where(
            UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
        )
        if org_id is not None:
            query = query.where(UserSession.org_id == org_id)
        if keep is not None:
            query = query.where(UserSession.id != keep)
        result = s.execute(query.values(revoked_at=self._clock()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    @staticmethod
    def _user(principal: Principal) -> str:
        if principal.user_id is None or principal.session_id is None:
            raise InvalidInputError("this needs a signed-in user, not an API token")
        return principal.user_id

    # -- CSRF ---------------------------------------------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        """A per-session CSRF token: HMAC-SHA256(server key, session id), hex."""
        return hmac.new(
            self._csrf_key, CSRF_CONTEXT + session_id.encode("utf-8"), hashlib.sha256
        ).hexdigest()

    def verify_csrf(self, session_id: str, token: str | None) -> bool:
        if not token or len(token) != 64:
            return False
        return hmac.compare_digest(self.csrf_token(session_id), token)
