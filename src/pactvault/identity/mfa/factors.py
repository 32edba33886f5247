"""Which second factors a user has, and which organisations insist on one (read-only queries).

No keys are needed to answer these, so the password step of a login can decide whether a second
step is due even before (or without) the verifying services.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.store.identity_models import Membership
from pactvault.store.mfa_models import (
    MfaOrgPolicy,
    OtpChannel,
    Passkey,
    RecoveryCode,
    TotpFactor,
)

#: Factors that count as "a second factor" (recovery codes are only a backup for them).
PRIMARY_METHODS = ("passkey", "totp", "sms", "email")
METHODS = (*PRIMARY_METHODS, "recovery")


def primary_methods(session: Session, user_id: str) -> list[str]:
    found = []
    if session.execute(
        select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
    ).scalar_one():
        found.append("passkey")
    if session.execute(
        select(TotpFactor.id).where(TotpFactor.user_id == user_id, TotpFactor.state == "active")
    ).first():
        found.append("totp")
    channels = set(
        session.execute(
            select(OtpChannel.channel).where(
                OtpChannel.user_id == user_id, OtpChannel.confirmed_at.is_not(None)
            )
        ).scalars()
    )
    found.extend(c for c in ("sms", "email") if c in channels)
    return found


def active_methods(session: Session, user_id: str) -> list[str]:
    """Every method the user can complete a login with, strongest first."""
    methods = primary_methods(session, user_id)
    if (
        methods
        and session.execute(
            select(RecoveryCode.id)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
            .limit(1)
        ).first()
    ):
        methods.append("recovery")
    return methods


def has_second_factor(session: Session, user_id: str) -> bool:
    return bool(primary_methods(session, user_id))


def org_requires_mfa(session: Session, org_id: str) -> bool:
    row = session.get(MfaOrgPolicy, org_id)
    return bool(row is not None and row.require_mfa)


def any_org_requires_mfa(session: Session, user_id: str) -> bool:
    """True if any organisation the user belongs to requires MFA (then the last factor stays)."""
    return (
        session.execute(
            select(MfaOrgPolicy.org_id)
            .join(Membership, Membership.org_id == MfaOrgPolicy.org_id)
            .where(Membership.user_id == user_id, MfaOrgPolicy.require_mfa.is_(True))
            .limit(1)
        ).first()
        is not None
    )


def set_org_requirement(
    session: Session, org_id: str, require: bool, updated_by: str | None, now: datetime
) -> bool:
    """Set the organisation's requirement; returns the previous value."""
    row = session.get(MfaOrgPolicy, org_id, with_for_update=True)
    previous = bool(row is not None and row.require_mfa)
    if row is None:
        session.add(
            MfaOrgPolicy(org_id=org_id, require_mfa=require, updated_at=now, updated_by=updated_by)
        )
    else:
        row.require_mfa = require
        row.updated_at = now
        row.updated_by = updated_by
    session.flush()
    return previous
