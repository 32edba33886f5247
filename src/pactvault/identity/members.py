"""Shared look-ups: an active member's role and permissions, and email normalisation."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.access.roles import role_permissions
from pactvault.store.identity_models import Membership, User


@dataclass(frozen=True)
class ActiveMember:
    user_id: str
    org_id: str
    role: str
    permissions: frozenset[str]
    clearance: str = "internal"


def normalise_email(email: str) -> str:
    """One spelling per address: NFKC, trimmed, lower-cased (we treat local parts as
    case-insensitive, as virtually every mail system does)."""
    return unicodedata.normalize("NFKC", email or "").strip().lower()


def active_member(session: Session, user_id: str, org_id: str) -> ActiveMember | None:
    """The member's current role, or ``None`` if the account is disabled or not a member."""
    row = session.execute(
        select(Membership.role, Membership.clearance)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.user_id == user_id,
            Membership.org_id == org_id,
            User.status == "active",
        )
    ).first()
    if row is None:
        return None
    permissions = role_permissions(session, org_id, row.role)
    if permissions is None:  # role deleted underneath: no rights at all (fail closed)
        permissions = frozenset()
    return ActiveMember(user_id, org_id, row.role, permissions, row.clearance)
