"""Enrolment grants: the restricted outcome of a login that must set up MFA first.

When an organisation requires MFA and a member has no second factor, a correct password does
not open a session. It yields an enrolment grant instead: a random token (stored as its SHA-256)
valid for 15 minutes that the MFA service accepts for *enrolling* a factor and nothing else. Once
a factor has been enrolled under it, ``LoginService.finish_enrolment`` spends the grant and
opens the real session. A grant cannot read contracts, list members or remove factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pactvault.audit.journal import Actor
from pactvault.errors import AuthenticationError
from pactvault.store.mfa_models import EnrolmentGrant
from pactvault.tokens import digests_equal, new_token, token_digest

ENROLMENT_PREFIX = "pvenrol_"
GRANT_LIFETIME = timedelta(minutes=15)
INVALID_GRANT = "this set-up link has expired; please sign in again"


@dataclass(frozen=True)
class Enrollee:
    """Who holds a live enrolment grant: may enrol a second factor for this account only."""

    grant_id: str
    user_id: str
    org_id: str
    created_at: datetime
    expires_at: datetime

    def actor(self, ip: str | None = None, user_agent: str | None = None) -> Actor:
        return Actor(type="user", id=self.user_id, org_id=self.org_id, ip=ip, user_agent=user_agent)


def issue(session: Session, user_id: str, org_id: str, now: datetime) -> tuple[str, Enrollee]:
    token, digest = new_token(ENROLMENT_PREFIX)
    row = EnrolmentGrant(
        token_sha256=digest,
        user_id=user_id,
        org_id=org_id,
        created_at=now,
        expires_at=now + GRANT_LIFETIME,
    )
    session.add(row)
    session.flush()
    return token, Enrollee(row.id, user_id, org_id, row.created_at, row.expires_at)


def _row(session: Session, token: str | None) -> EnrolmentGrant | None:
    if not token or not token.startswith(ENROLMENT_PREFIX) or len(token) > 100:
        return None
    digest = token_digest(token)
    row = session.execute(
        select(EnrolmentGrant).where(EnrolmentGrant.token_sha256 == digest)
    ).scalar_one_or_none()
    if row is None or not digests_equal(row.token_sha256, digest):
        return None
    return row


def authenticate(session: Session, token: str | None, now: datetime) -> Enrollee:
    row = _row(session, token)
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise AuthenticationError(INVALID_GRANT)
    return Enrollee(row.id, row.user_id, row.org_id, row.created_at, row.expires_at)


def still_open(session: Session, enrollee: Enrollee, now: datetime) -> bool:
    row = session.get(EnrolmentGrant, enrollee.grant_id)
    return row is not None and row.used_at is None and row.expires_at > now


def spend(session: Session, token: str | None, now: datetime) -> EnrolmentGrant | None:
    """Mark the grant used (once, also across processes); ``None`` if it is not open."""
    row = _row(session, token)
    if row is None:
        return None
    spent = session.execute(
        update(EnrolmentGrant)
        .where(
            EnrolmentGrant.id == row.id,
            EnrolmentGrant.used_at.is_(None),
            EnrolmentGrant.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return row if spent.rowcount == 1 else None  # type: ignore[attr-defined]
