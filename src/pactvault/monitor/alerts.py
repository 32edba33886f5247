"""Alerts: stored, de-duplicated, shown to the right administrators, sent by email and webhooks.

Anything that detects a security problem (the integrity auditor now, detection rules later)
calls :meth:`AlertService.raise_alert`. One *problem* is one alert: its fingerprint is computed
from the kind, the organisation and the ``subject`` (the exact object ids), and while an alert
with that fingerprint is not resolved, raising it again only bumps ``count``/``last_seen_at``
(the database enforces this through the unique ``open_fingerprint``; see ``monitor_models``).

Raising never touches the network: a new alert and one outbox row per configured webhook and per
email recipient (``monitor.alert_mail``: the organisation's alert readers, or the operator's
addresses for platform-wide alerts; from ``email_min_severity`` up) commit in one transaction,
and :meth:`AlertService.deliver_pending` (called by the maintenance loop) sends them later with
retries and exponential back-off. Every change — raised, repeated, acknowledged, resolved,
delivered, given up — is written to the audit journal.

Who sees what: an organisation's administrators (permission ``ALERT_READ``) see the alerts
about their organisation's objects; platform-wide alerts (``org_id`` None: the ledger, the
journal) and everyone's alerts are for the instance operator, who works through the CLI with
the ``operator_*`` methods (there is no platform-operator principal in the API yet). The operator
handles an organisation's alert only by naming that organisation (``org_id``), so a mistyped id
never closes the wrong tenant's alert.

Each alert's deliveries (status, attempts, last error, next attempt) are shown with it
(:class:`AlertDetail`): they name the configured endpoint, never its URL or secret.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy.exc
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, Resource, require
from pactvault.audit.journal import Actor, record
from pactvault.canonical import canonical_json
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError
from pactvault.identity.principal import Principal
from pactvault.monitor import alert_mail
from pactvault.monitor.webhooks import WebhookEndpoint, WebhookSender
from pactvault.notify import Mailer
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.monitor_models import (
    ALERT_STATUSES,
    DELIVERY_STATUSES,
    SEVERITIES,
    Alert,
    AlertDelivery,
)

__all__ = [
    "ALERT_MANAGE_PERMISSION",
    "ALERT_READ_PERMISSION",
    "AlertDetail",
    "AlertPage",
    "AlertScopeError",
    "AlertService",
    "DeliveryStats",
    "RaisedAlert",
    "alert_fingerprint",
]

#: Seeing an organisation's alerts.
ALERT_READ_PERMISSION = "alert.read"
#: Acknowledging and resolving them.
ALERT_MANAGE_PERMISSION = "alert.manage"

KIND = re.compile(r"[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+")
#: A kind filter: one kind, or every kind under a prefix ("integrity.*").
KIND_PREFIX = re.compile(r"[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*\.\*")
MAX_ID = 36
MAX_PAGE = 500
MAX_TITLE = 300
MAX_NOTE = 2000
MAX_DETAILS_BYTES = 16 * 1024
Clock = Callable[[], datetime]


def alert_fingerprint(kind: str, org_id: str | None, subject: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what makes two detections the *same* problem."""
    return hashlib.sha256(
        canonical_json({"kind": kind, "org_id": org_id, "subject": subject})
    ).hexdigest()


@dataclass(frozen=True)
class RaisedAlert:
    alert: Alert
    #: False when an unresolved alert for the same problem existed and was bumped instead.
    created: bool


@dataclass
class DeliveryStats:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    #: Ids of the deliveries attempted in this call (so a caller can show what happened).
    attempted: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class AlertPage:
    """One page of a filtered listing, with the number of alerts matching the filters."""

    items: list[Alert]
    total: int


@dataclass(frozen=True)
class AlertDetail:
    """An alert with its notification log (one delivery per configured endpoint)."""

    alert: Alert
    deliveries: list[AlertDelivery]


class AlertScopeError(InvalidInputError):
    """The operator handled an alert outside the scope they named (platform or organisation)."""

    def __init__(self, detail: str, org_id: str | None) -> None:
        super().__init__(detail)
        #: The organisation the alert belongs to (None: platform-wide).
        self.org_id = org_id


def _normalised(details: dict[str, Any]) -> dict[str, Any]:
    """Exactly what gets stored and hashed: canonical JSON, bounded in size."""
    if not isinstance(details, dict):
        raise InvalidInputError("alert details must be a JSON object")
    encoded = canonical_json(details)
    if len(encoded) > MAX_DETAILS_BYTES:
        raise InvalidInputError("alert details are too large (ids and hashes only)")
    return json.loads(encoded)


def _label(actor: Actor) -> str:
    return f"{actor.type}:{actor.id or '-'}"[:140]


class AlertService:
    """Raise, list, acknowledge and resolve alerts; deliver their notifications.

    ``webhooks`` come from the operator's configuration and must be the same in every process
    (the CLI too): a process without them queues no notification for the alerts it raises.
    """

    def __init__(
        self,
        db: Database,
        access: AccessControl,
        webhooks: Sequence[WebhookEndpoint] = (),
        clock: Clock = utcnow,
        *,
        sender: WebhookSender | None = None,
        max_attempts: int = 10,
        retry_base: timedelta = timedelta(seconds=30),
        retry_cap: timedelta = timedelta(hours=6),
        claim_for: timedelta = timedelta(minutes=2),
        mailer: Mailer | None = None,
        operator_emails: Sequence[str] = (),
        email_min_severity: str = "warning",
        public_url: str = "http://localhost",
    ) -> None:
        if email_min_severity not in SEVERITIES:
            raise InvalidInputError(f"email severity must be one of {', '.join(SEVERITIES)}")
        names = [w.name for w in webhooks]
        if len(set(names)) != len(names):
            raise InvalidInputError("webhook endpoint names must be unique")
        if max_attempts < 1:
            raise InvalidInputError("max_attempts must be at least 1")
        self._db = db
        self._access = access
        self._webhooks = {w.name: w for w in webhooks}
        self._clock = clock
        self._sender = sender
        self._owns_sender = False
        self._max_attempts = max_attempts
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._claim_for = claim_for
        self._mailer = mailer
        self._operator_emails = tuple(operator_emails)
        self._email_from = SEVERITIES.index(email_min_severity)
        self._public_url = public_url

    # -- raising -----------------------------------------------------------------------------

    def raise_alert(
        self,
        kind: str,
        *,
        severity: str,
        title: str,
        details: dict[str, Any] | None = None,
        org_id: str | None = None,
        subject: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> RaisedAlert:
        """Store (or bump) the alert for one problem and queue its notifications.

        ``subject`` names the object exactly (it defaults to ``details``); ``details`` says what
        differs. Both hold ids and hashes only: they are shown to administrators, sent to
        webhooks and written to the audit journal.
        """
        if not isinstance(kind, str) or len(kind) > 64 or not KIND.fullmatch(kind):
            raise InvalidInputError("an alert kind is dotted lowercase words, e.g. integrity.x")
        if severity not in SEVERITIES:
            raise InvalidInputError(f"severity must be one of {', '.join(SEVERITIES)}")
        title = (title or "").strip()
        if not title or len(title) > MAX_TITLE:
            raise InvalidInputError(f"an alert title is 1 to {MAX_TITLE} characters")
        stored = _normalised(details or {})
        fingerprint = alert_fingerprint(
            kind, org_id, _normalised(subject) if subject is not None else stored
        )
        actor = actor or Actor.system()
        now = self._clock()
        try:
            return self._raise(actor, kind, severity, title, stored, org_id, fingerprint, now)
        except sqlalchemy.exc.IntegrityError:
            # Another process opened the same alert between our look-up and our insert; its
            # row is committed now (the unique index made us wait for it), so this is a repeat.
            return self._raise(actor, kind, severity, title, stored, org_id, fingerprint, now)

    def _raise(
        self,
        actor: Actor,
        kind: str,
        severity: str,
        title: str,
        details: dict[str, Any],
        org_id: str | None,
        fingerprint: str,
        now: datetime,
    ) -> RaisedAlert:
        with self._db.write() as session:
            existing = session.execute(
                select(Alert).where(Alert.open_fingerprint == fingerprint).with_for_update()
            ).scalar_one_or_none()
            if existing is not None:
                existing.count += 1
                existing.last_seen_at = now
                if SEVERITIES.index(severity) > SEVERITIES.index(existing.severity):
                    existing.severity = severity  # a problem can get worse, never quieter
                noted: dict[str, Any] = {"kind": kind, "count": existing.count}
                if existing.details != details:
                    # The alert shows the latest evidence; the journal keeps every version.
                    existing.details = details
                    noted["details"] = details
                record(
                    session,
                    actor,
                    "alert.repeated",
                    object_type="alert",
                    object_id=existing.id,
                    org_id=existing.org_id,
                    details={**noted, "fingerprint": fingerprint},
                )
                return RaisedAlert(existing, created=False)
            alert = Alert(
                org_id=org_id,
                kind=kind,
                severity=severity,
                title=title,
                details=details,
                fingerprint=fingerprint,
                open_fingerprint=fingerprint,
                count=1,
                status="open",
                created_at=now,
                last_seen_at=now,
            )
            session.add(alert)
            session.flush()
            record(
                session,
                actor,
                "alert.raised",
                object_type="alert",
                object_id=alert.id,
                org_id=org_id,
                details={
                    "kind": kind,
                    "severity": severity,
                    "fingerprint": fingerprint,
                    "details": details,
                },
            )
            self._queue(session, alert, now)
            return RaisedAlert(alert, created=True)

    def _queue(self, session: Session, alert: Alert, now: datetime) -> None:
        recipients = self._email_recipients(session, alert)
        if not self._webhooks and not recipients:
            return
        body = canonical_json(
            {
                "type": "alert.raised",
                "alert": {
                    "id": alert.id,
                    "org_id": alert.org_id,
                    "kind": alert.kind,
                    "severity": alert.severity,
                    "title": alert.title,
                    "details": alert.details,
                    "created_at": alert.created_at,
                },
            }
        ).decode("utf-8")
        targets = [("webhook", name) for name in sorted(self._webhooks)]
        targets += [(alert_mail.EMAIL_CHANNEL, endpoint) for endpoint in recipients]
        for channel, endpoint in targets:
            session.add(
                AlertDelivery(
                    alert_id=alert.id,
                    channel=channel,
                    endpoint=endpoint,
                    payload=body,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        session.flush()

    def _email_recipients(self, session: Session, alert: Alert) -> list[str]:
        """Who is written to about a new alert: endpoints, never addresses (see alert_mail)."""
        if self._mailer is None or SEVERITIES.index(alert.severity) < self._email_from:
            return []
        if alert.org_id is None:
            return [alert_mail.operator_endpoint(i) for i in range(len(self._operator_emails))]
        readers = alert_mail.alert_readers(session, alert.org_id)
        return [alert_mail.user_endpoint(user_id) for user_id in readers]

    # -- reading -----------------------------------------------------------------------------

    def list_alerts(
        self,
        principal: Principal,
        *,
        status: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        actor: Actor | None = None,
    ) -> list[Alert]:
        """The caller's organisation's alerts, newest first (denials are audited)."""
        return self.alert_page(
            principal,
            status=status,
            severity=severity,
            kind=kind,
            since=since,
            limit=limit,
            offset=offset,
            actor=actor,
        ).items

    def alert_page(
        self,
        principal: Principal,
        *,
        status: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        actor: Actor | None = None,
    ) -> AlertPage:
        """One page of the caller's organisation's alerts and how many match the filters.

        ``status`` and ``severity`` take one value or several (``open`` + ``acknowledged`` is
        "unresolved"); ``kind`` is one kind or a prefix (``integrity.*``); ``since`` keeps alerts
        raised *or seen again* at or after that moment, so a recurring problem is not missed.
        """
        self._access.authorize(principal, ALERT_READ_PERMISSION, actor=actor)
        scope = Alert.org_id == principal.org_id
        return self._page([scope], status, severity, kind, since, limit, offset)

    def get_alert(
        self, principal: Principal, alert_id: str, actor: Actor | None = None
    ) -> AlertDetail:
        """One of the caller's organisation's alerts with its deliveries.

        Another organisation's alert, a platform-wide one and a missing id all answer "alert not
        found", and each refusal is audited the same way.
        """
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor, ALERT_READ_PERMISSION, object_type="alert", object_id=alert_id
            ),
            self._db.read() as session,
        ):
            require(principal, ALERT_READ_PERMISSION)
            alert = _find(session, alert_id)
            require(
                principal,
                ALERT_READ_PERMISSION,
                Resource(type="alert", id=alert.id, org_id=alert.org_id or ""),
            )
            return AlertDetail(alert, _deliveries(session, alert.id))

    def operator_alerts(
        self,
        *,
        status: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        org_id: str | None = None,
        platform_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Alert]:
        """Every alert, platform-wide ones included: for the instance operator (CLI) only."""
        return self.operator_page(
            status=status,
            severity=severity,
            kind=kind,
            since=since,
            org_id=org_id,
            platform_only=platform_only,
            limit=limit,
            offset=offset,
        ).items

    def operator_page(
        self,
        *,
        status: str | Sequence[str] | None = None,
        severity: str | Sequence[str] | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        org_id: str | None = None,
        platform_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> AlertPage:
        """For the operator: everyone's alerts, one organisation's (``org_id``) or only the
        platform-wide ones (``platform_only``); the filters are those of :meth:`alert_page`."""
        if org_id is not None and platform_only:
            raise InvalidInputError("choose one organisation or the platform-wide alerts")
        scope: list[ColumnElement[bool]] = []
        if org_id is not None:
            scope.append(Alert.org_id == org_id)
        elif platform_only:
            scope.append(Alert.org_id.is_(None))
        return self._page(scope, status, severity, kind, since, limit, offset)

    def operator_get(self, alert_id: str) -> AlertDetail:
        """Any alert with its deliveries, for the instance operator (CLI) only."""
        with self._db.read() as session:
            alert = _find(session, alert_id)
            return AlertDetail(alert, _deliveries(session, alert.id))

    def _page(
        self,
        scope: list[ColumnElement[bool]],
        status: str | Sequence[str] | None,
        severity: str | Sequence[str] | None,
        kind: str | None,
        since: datetime | None,
        limit: int,
        offset: int,
    ) -> AlertPage:
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidInputError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
        where = [*scope, *_filters(status, severity, kind, since)]
        listing = (
            select(Alert)
            .where(*where)
            .order_by(Alert.created_at.desc(), Alert.id)
            .limit(limit)
            .offset(offset)
        )
        counting = select(func.count()).select_from(Alert).where(*where)
        with self._db.read() as session:
            items = list(session.execute(listing).scalars())
            return AlertPage(items, session.execute(counting).scalar_one())

    def operator_deliveries(
        self,
        *,
        ids: Sequence[str] | None = None,
        status: str | None = None,
        limit: int = 200,
    ) -> list[AlertDelivery]:
        """The notification outbox for the operator: given deliveries, or those in ``status``,
        soonest next attempt first."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be 1..{MAX_PAGE}")
        query = select(AlertDelivery)
        if ids is not None:
            query = query.where(AlertDelivery.id.in_(list(ids)))
        if status is not None:
            query = query.where(AlertDelivery.status == status)
        query = query.order_by(AlertDelivery.next_attempt_at, AlertDelivery.id).limit(limit)
        with self._db.read() as session:
            return list(session.execute(query).scalars())

    def unconfigured_endpoints(self) -> list[str]:
        """Endpoints that pending deliveries name but this process has no configuration for.

        :meth:`deliver_pending` gives such deliveries up for good, which is right in the server
        (its configuration is the truth) but wrong in a shell that merely lacks the settings:
        the CLI checks this first and refuses.
        """
        with self._db.read() as session:
            named = session.execute(
                select(AlertDelivery.endpoint).where(AlertDelivery.status == "pending").distinct()
            ).scalars()
            return sorted(set(named) - set(self._webhooks))

    # -- handling ----------------------------------------------------------------------------

    def acknowledge(
        self,
        principal: Principal,
        alert_id: str,
        note: str | None = None,
        actor: Actor | None = None,
    ) -> Alert:
        """Someone is on it: the alert stays visible (and keeps counting) until resolved."""
        return self._handle(principal, alert_id, "acknowledged", note, actor)

    def resolve(
        self,
        principal: Principal,
        alert_id: str,
        note: str | None = None,
        actor: Actor | None = None,
    ) -> Alert:
        """Closed: if the problem is detected again, a new alert opens."""
        return self._handle(principal, alert_id, "resolved", note, actor)

    def operator_acknowledge(
        self, actor: Actor, alert_id: str, note: str | None = None, *, org_id: str | None = None
    ) -> Alert:
        """The operator acknowledges a platform-wide alert, or (``org_id``) that organisation's."""
        with self._db.write() as session:
            return self._transition(
                session, actor, alert_id, "acknowledged", note, None, operator_org=org_id
            )

    def operator_resolve(
        self, actor: Actor, alert_id: str, note: str | None = None, *, org_id: str | None = None
    ) -> Alert:
        """The operator resolves a platform-wide alert, or (``org_id``) that organisation's."""
        with self._db.write() as session:
            return self._transition(
                session, actor, alert_id, "resolved", note, None, operator_org=org_id
            )

    def _handle(
        self,
        principal: Principal,
        alert_id: str,
        target: str,
        note: str | None,
        actor: Actor | None,
    ) -> Alert:
        actor = actor or principal.actor()
        action = "alert.acknowledge" if target == "acknowledged" else "alert.resolve"
        with (
            self._access.guard(actor, action, object_type="alert", object_id=alert_id),
            self._db.write() as session,
        ):
            require(principal, ALERT_MANAGE_PERMISSION)
            return self._transition(session, actor, alert_id, target, note, principal)

    def _transition(
        self,
        session: Session,
        actor: Actor,
        alert_id: str,
        target: str,
        note: str | None,
        principal: Principal | None,
        *,
        operator_org: str | None = None,
    ) -> Alert:
        alert = session.execute(
            select(Alert).where(Alert.id == alert_id).with_for_update()
        ).scalar_one_or_none()
        if alert is None:
            raise NotFoundError("alert not found")
        if principal is not None:
            # Another organisation's alert, or a platform-wide one, answers like a missing id.
            require(
                principal,
                ALERT_MANAGE_PERMISSION,
                Resource(type="alert", id=alert.id, org_id=alert.org_id or ""),
            )
        elif alert.org_id != operator_org:
            raise AlertScopeError(_scope_problem(alert, operator_org), alert.org_id)
        if alert.status == "resolved" or alert.status == target:
            raise ConflictError(f"the alert is already {alert.status}")
        note = (note or "").strip()[:MAX_NOTE] or None
        now = self._clock()
        if target == "acknowledged":
            alert.acknowledged_at, alert.acknowledged_by = now, _label(actor)
        else:
            alert.resolved_at, alert.resolved_by = now, _label(actor)
            alert.open_fingerprint = None
        alert.status = target
        if note:
            alert.note = note
        session.flush()
        record(
            session,
            actor,
            "alert.acknowledge" if target == "acknowledged" else "alert.resolve",
            object_type="alert",
            object_id=alert.id,
            org_id=alert.org_id,
            details={"kind": alert.kind, "note": note},
        )
        return alert

    # -- delivery ----------------------------------------------------------------------------

    def deliver_pending(self, now: datetime | None = None, *, limit: int = 100) -> DeliveryStats:
        """Send due notifications once each (for the maintenance loop; safe in many processes).

        A delivery is claimed by bumping its attempt counter where the counter still has the
        value we read, so two processes never send the same attempt; a claim that dies with its
        process is retried after ``claim_for``.
        """
        now = now or self._clock()
        stats = DeliveryStats()
        with self._db.read() as session:
            due = session.execute(
                select(AlertDelivery.id, AlertDelivery.attempts)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(limit)
            ).all()
        for delivery_id, attempts in due:
            claimed = self._claim(delivery_id, attempts, now)
            if claimed is None:
                continue
            stats.attempted.append(delivery_id)
            channel, endpoint_name, payload = claimed
            if channel == alert_mail.EMAIL_CHANNEL:
                self._send_email(delivery_id, attempts, now, endpoint_name, payload, stats)
                continue
            endpoint = self._webhooks.get(endpoint_name)
            if endpoint is None:
                self._finish(delivery_id, attempts + 1, now, None, "endpoint no longer configured")
                stats.failed += 1
                continue
            result = self._sender_instance().send(
                endpoint,
                msg_id=delivery_id,
                # Wall-clock time, not the injected clock: receivers compare it with theirs.
                timestamp=int(datetime.now(UTC).timestamp()),
                body=payload.encode("utf-8"),
            )
            if result.ok:
                self._finish(delivery_id, attempts + 1, now, result.status_code, None)
                stats.delivered += 1
            elif attempts + 1 >= self._max_attempts:
                self._finish(delivery_id, attempts + 1, now, result.status_code, result.error)
                stats.failed += 1
            else:
                self._retry(delivery_id, attempts + 1, now, result.status_code, result.error)
                stats.retrying += 1
        return stats

    def _send_email(
        self,
        delivery_id: str,
        attempts: int,
        now: datetime,
        endpoint: str,
        payload: str,
        stats: DeliveryStats,
    ) -> None:
        alert = json.loads(payload)["alert"]
        with self._db.read() as session:
            address = alert_mail.recipient_address(
                session, endpoint, alert.get("org_id"), self._operator_emails
            )
        if address is None or self._mailer is None:
            # Left the organisation, lost the permission, or mail is no longer configured.
            self._finish(delivery_id, attempts + 1, now, None, "recipient may no longer be told")
            stats.failed += 1
            return
        try:
            message = alert_mail.alert_message(address, alert, self._public_url, delivery_id)
            self._mailer.send(message)
        except Exception as exc:  # any mail failure is retried, then given up
            error = f"mail not sent: {type(exc).__name__}"
            if attempts + 1 >= self._max_attempts:
                self._finish(delivery_id, attempts + 1, now, None, error)
                stats.failed += 1
            else:
                self._retry(delivery_id, attempts + 1, now, None, error)
                stats.retrying += 1
            return
        self._finish(delivery_id, attempts + 1, now, None, None)
        stats.delivered += 1

    def _sender_instance(self) -> WebhookSender:
        if self._sender is None:
            self._sender = WebhookSender()
            self._owns_sender = True
        return self._sender

    def close(self) -> None:
        """Release the HTTP client this service created (not one it was given)."""
        if self._sender is not None and self._owns_sender:
            self._sender.close()
            self._sender = None

    def _claim(
        self, delivery_id: str, attempts: int, now: datetime
    ) -> tuple[str, str, str] | None:
        with self._db.write() as session:
            claimed = session.execute(
                update(AlertDelivery)
                .where(
                    AlertDelivery.id == delivery_id,
                    AlertDelivery.status == "pending",
                    AlertDelivery.attempts == attempts,
                )
                .values(
                    attempts=attempts + 1,
                    last_attempt_at=now,
                    next_attempt_at=now + self._claim_for,
                )
            ).rowcount
            if claimed != 1:
                return None
            row = session.get(AlertDelivery, delivery_id)
            assert row is not None
            return row.channel, row.endpoint, row.payload

    def _retry(
        self, delivery_id: str, attempts: int, now: datetime, code: int | None, error: str | None
    ) -> None:
        delay = min(self._retry_base * (2 ** (attempts - 1)), self._retry_cap)
        with self._db.write() as session:
            session.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id == delivery_id, AlertDelivery.attempts == attempts)
                .values(
                    next_attempt_at=now + delay,
                    last_status_code=code,
                    last_error=(error or "")[:300] or None,
                )
            )

    def _finish(
        self, delivery_id: str, attempts: int, now: datetime, code: int | None, error: str | None
    ) -> None:
        """Delivered (``error`` None) or given up: final, and audited either way."""
        with self._db.write() as session:
            row = session.execute(
                select(AlertDelivery).where(AlertDelivery.id == delivery_id).with_for_update()
            ).scalar_one()
            if row.attempts != attempts or row.status != "pending":
                return  # our claim expired and another process took over
            row.status = "delivered" if error is None else "failed"
            row.last_status_code = code
            row.last_error = (error or "")[:300] or None
            if error is None:
                row.delivered_at = now
            alert = session.get(Alert, row.alert_id)
            record(
                session,
                Actor.system(),
                "alert.delivered" if error is None else "alert.delivery-failed",
                object_type="alert",
                object_id=row.alert_id,
                org_id=alert.org_id if alert is not None else None,
                details={
                    "delivery_id": row.id,
                    "endpoint": row.endpoint,
                    "attempts": attempts,
                    "status_code": code,
                    "error": row.last_error,
                },
            )


# -- helpers -----------------------------------------------------------------------------------


def _find(session: Session, alert_id: str) -> Alert:
    alert = (
        session.get(Alert, alert_id)
        if isinstance(alert_id, str) and 0 < len(alert_id) <= MAX_ID
        else None
    )
    if alert is None:
        raise NotFoundError("alert not found")
    return alert


def _deliveries(session: Session, alert_id: str) -> list[AlertDelivery]:
    return list(
        session.execute(
            select(AlertDelivery)
            .where(AlertDelivery.alert_id == alert_id)
            .order_by(AlertDelivery.created_at, AlertDelivery.endpoint)
        ).scalars()
    )


def _choices(value: str | Sequence[str] | None, allowed: tuple[str, ...], name: str) -> list[str]:
    values = [value] if isinstance(value, str) else list(value or [])
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}")
    return values


def _filters(
    status: str | Sequence[str] | None,
    severity: str | Sequence[str] | None,
    kind: str | None,
    since: datetime | None,
) -> list[ColumnElement[bool]]:
    """SQL conditions for the listing filters; bad values are refused, never ignored."""
    where: list[ColumnElement[bool]] = []
    if statuses := _choices(status, ALERT_STATUSES, "status"):
        where.append(Alert.status.in_(statuses))
    if severities := _choices(severity, SEVERITIES, "severity"):
        where.append(Alert.severity.in_(severities))
    if kind is not None:
        if KIND_PREFIX.fullmatch(kind):
            where.append(Alert.kind.startswith(kind[:-1], autoescape=True))
        elif len(kind) <= 64 and KIND.fullmatch(kind):
            where.append(Alert.kind == kind)
        else:
            raise InvalidInputError(
                "kind is an alert kind (integrity.blob-missing) or a prefix (integrity.*)"
            )
    if since is not None:
        if since.tzinfo is None:
            raise InvalidInputError("since needs a time zone, e.g. 2030-01-01T00:00:00Z")
        where.append(Alert.last_seen_at >= since)
    return where


def _scope_problem(alert: Alert, named: str | None) -> str:
    if alert.org_id is None:
        return f"alert {alert.id} is platform-wide, not organisation {named}'s"
    return (
        f"alert {alert.id} belongs to organisation {alert.org_id}; handling it needs that "
        "organisation named explicitly"
    )
