"""Built-in and custom roles, and the rules for granting them (no privilege escalation).

A role is named by a key: one of ``BUILTIN_ROLES`` or a custom role's key within the organisation.
Anti-escalation, enforced for every grant (invitation, role change, custom role edit):
- the granted role's permissions must all be held by the granter;
- changing someone's role also requires holding every permission of their *current* role (an
  admin cannot demote an owner);
- nobody changes their own role or edits the definition of the role they hold.
Denials are raised inside ``AccessControl.guard`` and so audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, require
from pactvault.access.permissions import BUILTIN_ROLES, PERMISSIONS, is_known
from pactvault.audit.journal import Actor, record
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from pactvault.identity.principal import Principal
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import CustomRole, Membership

ROLE_KEY = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")


@dataclass(frozen=True)
class RoleInfo:
    key: str
    name: str
    permissions: tuple[str, ...]
    builtin: bool


def role_permissions(session: Session, org_id: str, role: str) -> frozenset[str] | None:
    """The permissions of ``role`` in ``org_id``; ``None`` if there is no such role there."""
    if role in BUILTIN_ROLES:
        return BUILTIN_ROLES[role]
    row = session.execute(
        select(CustomRole).where(CustomRole.org_id == org_id, CustomRole.key == role)
    ).scalar_one_or_none()
    if row is None:
        return None
    # A permission later removed from the table is simply no longer granted (fail closed).
    return frozenset(p for p in row.permissions if is_known(p))


def check_grant(
    principal: Principal,
    granted: frozenset[str],
    *,
    current: frozenset[str] | None = None,
    target_user_id: str | None = None,
) -> None:
    """Raise ``PermissionDeniedError`` if granting ``granted`` would escalate anyone's rights."""
    if target_user_id is not None and target_user_id == principal.user_id:
        raise PermissionDeniedError("you cannot change your own role")
    beyond = granted - principal.permissions
    if beyond:
        raise PermissionDeniedError(
            "you cannot grant permissions you do not hold: " + ", ".join(sorted(beyond))
        )
    if current is not None and not current <= principal.permissions:
        raise PermissionDeniedError(
            "you cannot change the role of someone who holds permissions you do not hold"
        )


def _validated_permissions(permissions: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(permissions)
    unknown = sorted(p for p in chosen if not is_known(p))
    if unknown:
        raise InvalidInputError("unknown permissions: " + ", ".join(unknown))
    return chosen


class RoleService:
    def __init__(self, db: Database, access: AccessControl) -> None:
        self._db = db
        self._access = access

    def list_roles(self, principal: Principal) -> list[RoleInfo]:
        self._access.authorize(principal, "member.read")
        roles = [
            RoleInfo(key, key.replace("_", " "), tuple(sorted(perms)), True)
            for key, perms in BUILTIN_ROLES.items()
        ]
        with self._db.read() as session:
            for row in session.execute(
                select(CustomRole)
                .where(CustomRole.org_id == principal.org_id)
                .order_by(CustomRole.key)
            ).scalars():
                roles.append(RoleInfo(row.key, row.name, tuple(sorted(row.permissions)), False))
        return roles

    def create_role(
        self,
        principal: Principal,
        key: str,
        name: str,
        permissions: Iterable[str],
        actor: Actor | None = None,
    ) -> RoleInfo:
        actor = actor or principal.actor()
        if not ROLE_KEY.match(key or "") or key in BUILTIN_ROLES:
            raise InvalidInputError(
                "a role key is 2-40 lowercase letters, digits, '-' or '_' and not a built-in role"
            )
        name = (name or "").strip()[:200] or key
        chosen = _validated_permissions(permissions)
        with self._access.guard(actor, "role.create", object_type="role"), self._db.write() as s:
            require(principal, "role.manage")
            check_grant(principal, chosen)
            exists = s.execute(
                select(CustomRole.id).where(
                    CustomRole.org_id == principal.org_id, CustomRole.key == key
                )
            ).first()
            if exists:
                raise ConflictError(f"a role {key!r} already exists")
            row = CustomRole(
                org_id=principal.org_id, key=key, name=name, permissions=sorted(chosen)
            )
            s.add(row)
            s.flush()
            record(
                s,
                actor,
                "role.create",
                object_type="role",
                object_id=row.id,
                details={"key": key, "permissions": sorted(chosen)},
            )
            return RoleInfo(key, name, tuple(sorted(chosen)), False)

    def update_role(
        self,
        principal: Principal,
        key: str,
        permissions: Iterable[str],
        name: str | None = None,
        actor: Actor | None = None,
    ) -> RoleInfo:
        actor = actor or principal.actor()
        chosen = _validated_permissions(permissions)
        with self._access.guard(actor, "role.update", object_type="role"), self._db.write() as s:
            require(principal, "role.manage")
            row = self._custom(s, principal.org_id, key)
            if principal.role == key:
                raise PermissionDeniedError("you cannot change the role you hold yourself")
            check_grant(principal, chosen, current=frozenset(row.permissions))
            before = sorted(row.permissions)
            row.permissions = sorted(chosen)
            if name is not None:
                row.name = name.strip()[:200] or row.name
            row.updated_at = utcnow()
            record(
                s,
                actor,
                "role.update",
                object_type="role",
                object_id=row.id,
                details={"key": key, "before": before, "after": sorted(chosen)},
            )
            return RoleInfo(key, row.name, tuple(sorted(chosen)), False)

    def delete_role(self, principal: Principal, key: str, actor: Actor | None = None) -> None:
        actor = actor or principal.actor()
        with self._access.guard(actor, "role.delete", object_type="role"), self._db.write() as s:
            require(principal, "role.manage")
            row = self._custom(s, principal.org_id, key)
            check_grant(principal, frozenset(), current=frozenset(row.permissions))
            holders = s.execute(
                select(func.count())
                .select_from(Membership)
                .where(Membership.org_id == principal.org_id, Membership.role == key)
            ).scalar_one()
            if holders:
                raise ConflictError(f"{holders} member(s) still hold the role {key!r}")
            record(
                s, actor, "role.delete", object_type="role", object_id=row.id, details={"key": key}
            )
            s.delete(row)

    @staticmethod
    def _custom(session: Session, org_id: str, key: str) -> CustomRole:
        row = session.execute(
            select(CustomRole).where(CustomRole.org_id == org_id, CustomRole.key == key)
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError("role not found")
        return row


__all__ = ["PERMISSIONS", "ROLE_KEY", "RoleInfo", "RoleService", "check_grant", "role_permissions"]
