"""The authorisation decision: one pure function, and one audited entry point.

``decide`` answers from the principal's permissions alone (no I/O), so it can be tested
exhaustively. ``AccessControl.authorize`` is what interfaces call: it raises on denial and writes
the denial to the audit journal in its *own* transaction, because the caller's transaction is
about to roll back with the exception and would take the audit entry with it.

Rules, in order:
1. a resource of another organisation is answered as missing (``NotFoundError``, word for word the
   message a missing id of that type gets: "contract not found") so tenants cannot probe ids;
2. a scoped action (``contract.read``) is allowed by its ``.all`` permission, or by ``.own`` when
   the caller created the resource or is a party to it;
3. an exact, known permission the principal holds is allowed;
4. everything else — including names that are not in the table — is denied;
5. a classified resource (分类分级) above the caller's clearance is denied, unless the caller
   created it or is a party to it (a signer must be able to read what they sign).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pactvault.access.permissions import SCOPED_ACTIONS, is_known
from pactvault.audit.journal import Actor, record
from pactvault.errors import NotFoundError, PactvaultError, PermissionDeniedError
from pactvault.identity.principal import Principal
from pactvault.store.db import Database

NOT_FOUND = "not found"


def not_found_message(resource_type: str | None) -> str:
    """What a missing id answers, so another tenant's id can answer exactly the same."""
    return f"{resource_type} {NOT_FOUND}" if resource_type else NOT_FOUND


@dataclass(frozen=True)
class Resource:
    """What a decision is about: enough to check tenancy and ownership, nothing more."""

    type: str
    id: str
    org_id: str
    owner_user_id: str | None = None
    party_user_ids: frozenset[str] = field(default_factory=frozenset)
    #: Classification level of the resource, if it has one.
    level: str | None = None

    def involves(self, user_id: str | None) -> bool:
        """Whether ``user_id`` created this resource or is a party to it."""
        return user_id is not None and (
            self.owner_user_id == user_id or user_id in self.party_user_ids
        )

    def owned_by(self, user_id: str | None) -> bool:
        """Whether ``user_id`` created this resource (parties do not own it)."""
        return user_id is not None and self.owner_user_id == user_id


#: Classification levels, lowest first.
LEVELS = ("public", "internal", "confidential", "secret")


def cleared(clearance: str, level: str) -> bool:
    """Whether ``clearance`` reaches ``level``; unknown names never do (fail closed)."""
    if clearance not in LEVELS or level not in LEVELS:
        return False
    return LEVELS.index(clearance) >= LEVELS.index(level)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    permission: str
    reason: str
    #: Deny as "not found" (the resource belongs to another tenant).
    hide: bool = False
    #: The resource type, for the "<type> not found" message of a hidden resource.
    subject: str | None = None

    def error(self) -> PactvaultError:
        if self.hide:
            return NotFoundError(not_found_message(self.subject))
        if self.reason == "insufficient-clearance":
            return PermissionDeniedError(
                "your clearance does not reach this object's classification level"
            )
        return PermissionDeniedError(f"you are not allowed to {self.permission}")


def decide(principal: Principal, permission: str, resource: Resource | None = None) -> Decision:
    """Allow or deny; never raises, never touches the database."""
    if resource is not None and resource.org_id != principal.org_id:
        return Decision(False, permission, "other-tenant", hide=True, subject=resource.type)
    decision = _decide_permission(principal, permission, resource)
    if (
        decision.allowed
        and resource is not None
        and resource.level is not None
        and not resource.involves(principal.user_id)
        and not cleared(principal.clearance, resource.level)
    ):
        return Decision(False, permission, "insufficient-clearance")
    return decision


def _decide_permission(
    principal: Principal, permission: str, resource: Resource | None
) -> Decision:
    held = principal.permissions
    if permission in SCOPED_ACTIONS:
        if f"{permission}.all" in held:
            return Decision(True, permission, f"{permission}.all")
        if f"{permission}.own" in held:
            if resource is None:
                return Decision(False, permission, "own-needs-resource")
            # "Own" reads extend to parties (signers, approvers see what they sign or approve);
            # every other own action (edit, send, void) is for the creator alone.
            mine = (
                resource.involves(principal.user_id)
                if permission.endswith(".read")
                else resource.owned_by(principal.user_id)
            )
            if mine:
                return Decision(True, permission, f"{permission}.own")
            return Decision(False, permission, "not-own")
        return Decision(False, permission, "missing-permission")
    if not is_known(permission):
        return Decision(False, permission, "unknown-permission")
    if permission in held:
        return Decision(True, permission, permission)
    return Decision(False, permission, "missing-permission")


def reach(principal: Principal, action: str) -> str | None:
    """For list queries: ``"all"``, ``"own"`` (filter on owner/party) or ``None`` (nothing)."""
    if action not in SCOPED_ACTIONS:
        return None
    if f"{action}.all" in principal.permissions:
        return "all"
    if f"{action}.own" in principal.permissions and principal.user_id is not None:
        return "own"
    return None


def require(principal: Principal, permission: str, resource: Resource | None = None) -> None:
    """Raise on denial without auditing: only for use inside ``AccessControl.guard``."""
    decision = decide(principal, permission, resource)
    if not decision.allowed:
        raise decision.error()


class AccessControl:
    """The audited front of ``decide``; every denial leaves an ``access.denied`` entry."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def authorize(
        self,
        principal: Principal,
        permission: str,
        resource: Resource | None = None,
        *,
        actor: Actor | None = None,
    ) -> None:
        """Return if allowed; otherwise audit the denial and raise (403, or 404 cross-tenant).

        Call it before opening a write unit of work: it writes its own transaction on denial.
        """
        decision = decide(principal, permission, resource)
        if decision.allowed:
            return
        self.record_denial(
            actor or principal.actor(),
            permission,
            decision.error(),
            object_type=resource.type if resource else None,
            object_id=resource.id if resource else None,
            # The prober's own auditors must not learn that a foreign id exists.
            reason=NOT_FOUND if decision.hide else decision.reason,
        )
        raise decision.error()

    @contextmanager
    def guard(
        self,
        actor: Actor,
        action: str,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
    ) -> Iterator[None]:
        """Wrap a unit of work: a denial raised inside is audited after the rollback.

        Use it *outside* ``db.write()``: the failed transaction rolls back (nothing changes), then
        the denial is recorded in a fresh one, then the error propagates unchanged.
        """
        try:
            yield
        except (PermissionDeniedError, NotFoundError) as exc:
            self.record_denial(actor, action, exc, object_type=object_type, object_id=object_id)
            raise

    def record_denial(
        self,
        actor: Actor,
        action: str,
        error: PactvaultError,
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        with self._db.write() as session:
            record(
                session,
                actor,
                "access.denied",
                object_type=object_type,
                object_id=(object_id or None) and object_id[:36],
                details={
                    "action": action,
                    "status": error.status,
                    "reason": reason or error.detail,
                },
            )
