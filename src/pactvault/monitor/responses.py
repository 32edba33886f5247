"""Automatic responses: slow down, require step-up, suspend, block an address — and undo them.

A response is a row of ``monitor_responses`` with a target and an expiry; enforcement
(``monitor.guard``) reads the active ones, so every API process applies the same ones. What each
action does to its target:

- ``block-ip``: every request from the address (IPv4, or the IPv6 /64) is refused with 403;
- ``suspend``: a user's live sessions are revoked at once and every request made as that user (a
  new session, a personal token) is refused with 403 until the suspension ends; a token, or a
  signing link, is refused with 403. Nothing is deleted or revoked for good: lifting the
  suspension restores the token or link, and the user signs in again;
- ``step-up``: the user's next sensitive action (any change, any document download) is refused
  with 403 ``step-up-required`` until they prove a second factor
  (``POST /api/v1/me/security/step-up``), which lifts it. A token cannot prove a second factor:
  for a token, ``step-up`` is a suspension (fail closed). Signers already prove one per signature;
  for them it does nothing more;
- ``slow-down``: requests of the target (user, token, signing link, or address) are held to
  ``SLOW_DOWN`` per minute, answered 429 with ``Retry-After`` beyond that.

Applying the same action to the same target again extends the active response instead of adding
another. Every application and every lift is audited (``monitor.response-applied``,
``monitor.response-lifted``), names the alert that caused it, and can be lifted by the
organisation's ``alert.manage`` holders (responses about their organisation) or by the operator
(``pactvault monitor unblock``; address blocks raised before any organisation is known — failed
sign-ins — are the operator's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, Resource, not_found_message, require
from pactvault.audit.journal import Actor, record
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError
from pactvault.identity.principal import Principal
from pactvault.monitor.alerts import ALERT_MANAGE_PERMISSION, ALERT_READ_PERMISSION
from pactvault.monitor.networks import address_key
from pactvault.monitor.ratelimit import Limit
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.detection_models import RESPONSE_ACTIONS, Response

__all__ = [
    "SLOW_DOWN",
    "ActiveResponses",
    "Planned",
    "ResponsePage",
    "ResponseService",
    "plan",
    "retry_seconds",
]

#: What a slowed-down target may still do.
SLOW_DOWN = Limit(10, 60)
MAX_PAGE = 200
MAX_MINUTES = 7 * 24 * 60
#: Revokes the live sessions of a user, in the caller's transaction; returns how many.
RevokeSessions = Callable[[Session, str], int]


@dataclass(frozen=True)
class Planned:
    """One response to apply: what to do to whom, and why."""

    action: str
    target_type: str  # ip | user | token | signer
    target: str  # the address key (ip:…) or the id


def plan(actions: Sequence[str], *, actor: str | None, ip: str | None) -> list[Planned]:
    """The concrete responses of a rule's ``actions`` for this actor and address.

    ``actor`` is ``user:<id>`` / ``token:<id>`` / ``signer:<id>`` (or None); ``ip`` the address.
    Actions that have nothing to act on (suspending an anonymous address) are left out.
    """
    kind, _, ident = (actor or "").partition(":")
    out: list[Planned] = []
    for action in actions:
        if action == "block-ip":
            key = address_key(ip)
            if key is not None:
                out.append(Planned("block-ip", "ip", key))
        elif action == "slow-down":
            if kind in ("user", "token", "signer") and ident:
                out.append(Planned("slow-down", kind, ident))
            elif (key := address_key(ip)) is not None:
                out.append(Planned("slow-down", "ip", key))
        elif action == "suspend":
            if kind in ("user", "token", "signer") and ident:
                out.append(Planned("suspend", kind, ident))
        elif action == "step-up":
            if kind == "user" and ident:
                out.append(Planned("step-up", "user", ident))
            elif kind == "token" and ident:
                out.append(Planned("suspend", "token", ident))  # tokens cannot step up
    unique: dict[tuple[str, str, str], Planned] = {}
    for p in out:
        unique.setdefault((p.action, p.target_type, p.target), p)
    return list(unique.values())


@dataclass(frozen=True)
class ActiveResponses:
    """What is in force right now, indexed for the request path (see ``monitor.guard``)."""

    #: address key → (response id, until)
    blocked_ips: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    #: ``user:<id>`` / ``token:<id>`` / ``signer:<id>`` → (response id, until)
    suspended: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    #: ``user:<id>`` → response id
    step_up: dict[str, str] = field(default_factory=dict)
    #: ``ip:…`` / ``user:<id>`` / … → until
    slowed: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class ResponsePage:
    items: list[Response]
    total: int


def _label(actor: Actor) -> str:
    return f"{actor.type}:{actor.id or '-'}"[:140]


def _target_key(target_type: str, target: str) -> str:
    return target if target_type == "ip" else f"{target_type}:{target}"


class ResponseService:
    def __init__(
        self,
        db: Database,
        access: AccessControl,
        clock: Callable[[], datetime] = utcnow,
        *,
        revoke_sessions: RevokeSessions | None = None,
    ) -> None:
        self._db = db
        self._access = access
        self._clock = clock
        self._revoke_sessions = revoke_sessions
        #: Called after any change, so this process's enforcement cache sees it at once.
        self.on_change: list[Callable[[], None]] = []
        #: Called with each response an administrator lifted (the counters of its target go).
        self.on_lifted: list[Callable[[Response], None]] = []

    # -- applying -------------------------------------------------------------------------------

    def apply(
        self,
        planned: Sequence[Planned],
        *,
        rule: str,
        org_id: str | None,
        minutes: int,
        reason: str,
        alert_id: str | None = None,
        actor: Actor | None = None,
        details: dict[str, Any] | None = None,
    ) -> list[Response]:
        """Put ``planned`` in force for ``minutes`` (extending identical active ones)."""
        if not 1 <= minutes <= MAX_MINUTES:
            raise InvalidInputError(f"a response lasts 1..{MAX_MINUTES} minutes")
        actor = actor or Actor.system()
        now = self._clock()
        until = now + timedelta(minutes=minutes)
        applied: list[Response] = []
        with self._db.write() as session:
            for p in planned:
                if p.action not in RESPONSE_ACTIONS:
                    raise InvalidInputError(f"unknown action {p.action!r}")
                applied.append(
                    self._apply_one(
                        session, p, rule, org_id, now, until, reason, alert_id, actor, details
                    )
                )
        if applied:
            self.notify_changed()
        return applied

    def _apply_one(
        self,
        session: Session,
        p: Planned,
        rule: str,
        org_id: str | None,
        now: datetime,
        until: datetime,
        reason: str,
        alert_id: str | None,
        actor: Actor,
        details: dict[str, Any] | None,
    ) -> Response:
        existing = session.execute(
            select(Response)
            .where(
                Response.action == p.action,
                Response.target_type == p.target_type,
                Response.target == p.target,
                Response.lifted_at.is_(None),
                Response.expires_at > now,
            )
            .order_by(Response.expires_at.desc())
            .limit(1)
            .with_for_update()
        ).scalar_one_or_none()
        revoked = 0
        if p.action == "suspend" and p.target_type == "user" and self._revoke_sessions:
            revoked = self._revoke_sessions(session, p.target)
        if existing is not None:
            extended = until > existing.expires_at
            if extended:
                existing.expires_at = until
            row = existing
        else:
            row = Response(
                rule=rule,
                org_id=org_id,
                action=p.action,
                target_type=p.target_type,
                target=p.target,
                alert_id=alert_id,
                reason=reason[:300],
                details=dict(details or {}),
                created_at=now,
                expires_at=until,
            )
            session.add(row)
            extended = False
        session.flush()
        if existing is None or extended or revoked:
            record(
                session,
                actor,
                "monitor.response-applied",
                object_type="monitor-response",
                object_id=row.id,
                org_id=org_id,
                details={
                    "rule": rule,
                    "action": p.action,
                    "target_type": p.target_type,
                    "target": p.target,
                    "alert_id": alert_id,
                    "expires_at": row.expires_at,
                    "extended": existing is not None,
                    "sessions_revoked": revoked,
                },
            )
        return row

    def block_address(self, actor: Actor, ip: str, minutes: int, reason: str) -> Response:
        """The operator blocks an address by hand (CLI)."""
        key = address_key(ip)
        if key is None:
            raise InvalidInputError(f"{ip!r} is not an IP address")
        reason = (reason or "").strip() or "blocked by the operator"
        return self.apply(
            [Planned("block-ip", "ip", key)],
            rule="manual",
            org_id=None,
            minutes=minutes,
            reason=reason,
            actor=actor,
        )[0]

    # -- what is in force -----------------------------------------------------------------------

    def active(self) -> ActiveResponses:
        """Everything in force now, for enforcement (one indexed query)."""
        now = self._clock()
        with self._db.read() as session:
            rows = session.execute(
                select(
                    Response.id,
                    Response.action,
                    Response.target_type,
                    Response.target,
                    Response.expires_at,
                ).where(Response.lifted_at.is_(None), Response.expires_at > now)
            ).all()
        out = ActiveResponses()
        for rid, action, target_type, target, until in rows:
            key = _target_key(target_type, target)
            if action == "block-ip":
                _keep_latest(out.blocked_ips, key, rid, until)
            elif action == "suspend":
                _keep_latest(out.suspended, key, rid, until)
            elif action == "step-up":
                out.step_up[key] = rid
            elif action == "slow-down":
                out.slowed[key] = max(until, out.slowed.get(key, until))
        return out

    # -- listing and lifting (organisation administrators) --------------------------------------

    def page(
        self,
        principal: Principal,
        *,
        active_only: bool = True,
        limit: int = 50,
        offset: int = 0,
        actor: Actor | None = None,
    ) -> ResponsePage:
        """The organisation's responses, newest first."""
        self._access.authorize(principal, ALERT_READ_PERMISSION, actor=actor)
        return self._page([Response.org_id == principal.org_id], active_only, limit, offset)

    def lift(
        self,
        principal: Principal,
        response_id: str,
        note: str | None = None,
        actor: Actor | None = None,
    ) -> Response:
        """End one of the organisation's responses now; others' answer like missing ids."""
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor,
                "monitor.response-lift",
                object_type="monitor-response",
                object_id=response_id,
            ),
            self._db.write() as session,
        ):
            require(principal, ALERT_MANAGE_PERMISSION)
            row = self._find(session, response_id)
            require(
                principal,
                ALERT_MANAGE_PERMISSION,
                Resource(type="monitor-response", id=row.id, org_id=row.org_id or ""),
            )
            lifted = self._lift(session, row, actor, note)
        self._lifted([lifted])
        return lifted

    def satisfied_step_up(self, session: Session, user_id: str, actor: Actor) -> int:
        """The user proved a second factor: their step-up requirements end (caller's
        transaction); returns how many there were."""
        now = self._clock()
        rows = session.execute(
            select(Response)
            .where(
                Response.action == "step-up",
                Response.target_type == "user",
                Response.target == user_id,
                Response.lifted_at.is_(None),
                Response.expires_at > now,
            )
            .with_for_update()
        ).scalars()
        count = 0
        for row in rows:
            self._lift(session, row, actor, "second factor proven", by="step-up")
            count += 1
        return count

    def step_up_pending(self, user_id: str) -> bool:
        now = self._clock()
        with self._db.read() as session:
            return (
                session.execute(
                    select(Response.id)
                    .where(
                        Response.action == "step-up",
                        Response.target_type == "user",
                        Response.target == user_id,
                        Response.lifted_at.is_(None),
                        Response.expires_at > now,
                    )
                    .limit(1)
                ).first()
                is not None
            )

    # -- the operator (CLI) ---------------------------------------------------------------------

    def operator_page(
        self,
        *,
        active_only: bool = True,
        org_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ResponsePage:
        scope = [Response.org_id == org_id] if org_id is not None else []
        return self._page(scope, active_only, limit, offset)

    def operator_lift(self, actor: Actor, response_id: str, note: str | None = None) -> Response:
        with self._db.write() as session:
            row = self._find(session, response_id)
            lifted = self._lift(session, row, actor, note)
        self._lifted([lifted])
        return lifted

    def operator_unblock_address(self, actor: Actor, ip: str) -> list[Response]:
        """Lift every active response on an address (block or slow-down)."""
        key = address_key(ip)
        if key is None:
            raise InvalidInputError(f"{ip!r} is not an IP address")
        now = self._clock()
        with self._db.write() as session:
            rows = list(
                session.execute(
                    select(Response)
                    .where(
                        Response.target_type == "ip",
                        Response.target == key,
                        Response.lifted_at.is_(None),
                        Response.expires_at > now,
                    )
                    .with_for_update()
                ).scalars()
            )
            for row in rows:
                self._lift(session, row, actor, None)
        self._lifted(rows)
        return rows

    # -- helpers --------------------------------------------------------------------------------

    def _page(self, scope: list[Any], active_only: bool, limit: int, offset: int) -> ResponsePage:
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidInputError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
        where = list(scope)
        if active_only:
            where += [Response.lifted_at.is_(None), Response.expires_at > self._clock()]
        with self._db.read() as session:
            items = list(
                session.execute(
                    select(Response)
                    .where(*where)
                    .order_by(Response.created_at.desc(), Response.id)
                    .limit(limit)
                    .offset(offset)
                ).scalars()
            )
            total = session.execute(
                select(func.count()).select_from(Response).where(*where)
            ).scalar_one()
        return ResponsePage(items, total)

    @staticmethod
    def _find(session: Session, response_id: str) -> Response:
        row = (
            session.execute(
                select(Response).where(Response.id == response_id).with_for_update()
            ).scalar_one_or_none()
            if isinstance(response_id, str) and 0 < len(response_id) <= 36
            else None
        )
        if row is None:
            raise NotFoundError(not_found_message("monitor-response"))
        return row

    def _lift(
        self, session: Session, row: Response, actor: Actor, note: str | None, by: str | None = None
    ) -> Response:
        now = self._clock()
        if row.lifted_at is not None or row.expires_at <= now:
            raise ConflictError("this response is no longer in force")
        row.lifted_at = now
        row.lifted_by = by or _label(actor)
        session.flush()
        record(
            session,
            actor,
            "monitor.response-lifted",
            object_type="monitor-response",
            object_id=row.id,
            org_id=row.org_id,
            details={
                "rule": row.rule,
                "action": row.action,
                "target_type": row.target_type,
                "target": row.target,
                "note": (note or "").strip()[:500] or None,
            },
        )
        return row

    def _lifted(self, rows: list[Response]) -> None:
        if not rows:
            return
        self.notify_changed()
        for row in rows:
            for callback in self.on_lifted:
                callback(row)

    def notify_changed(self) -> None:
        for callback in self.on_change:
            callback()


def _keep_latest(
    index: dict[str, tuple[str, datetime]], key: str, rid: str, until: datetime
) -> None:
    if key not in index or until > index[key][1]:
        index[key] = (rid, until)


def retry_seconds(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))
