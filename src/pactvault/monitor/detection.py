"""The detection engine: reads the audit journal as it grows, fires rules, raises alerts, acts.

Each API process calls :meth:`DetectionEngine.run_due` every second or so. When the journal has
grown past the shared cursor (``monitor_cursors``), one process — the holder of the
``monitor.detection`` lease — reads the new entries in ``seq`` order, in batches:

1. every ``count``/``link`` rule turns entries into observations (``rules.observe``), inserted
   idempotently; the stateful rules compare each entry with the actor's history of networks and
   hours, then add the entry to it — all in one transaction;
2. for every (rule, key) the batch touched, the distinct items observed since the rule's window
   before the batch's latest entry for that key (by the entries' own times, so a late batch is
   judged as it happened) are counted against the organisation's threshold;
3. each firing raises (or bumps) the alert ``monitor.<rule>`` — de-duplicated per rule and key —
   and applies the configured automatic actions (``responses``), naming that alert;
4. only then does the cursor move past the batch.

A crash between 1 and 4, or an alert or action that fails, re-reads the batch: observations are
keyed by (rule, entry, key), alerts are de-duplicated and responses extend instead of piling
up, so nothing is lost and nothing is doubled beyond a repeat count. The cursor starts at the
journal's head when detection first runs (an existing installation is not judged on its
history), see :meth:`start`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pactvault.audit.journal import Actor
from pactvault.errors import ConflictError
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.lease import JobLease
from pactvault.monitor.networks import network_of
from pactvault.monitor.responses import ResponseService, plan
from pactvault.monitor.rules.catalog import (
    DOWNLOAD_ACTIONS,
    MAX_WINDOW_MINUTES,
    RULES,
)
from pactvault.monitor.rules.observe import (
    JournalEvent,
    Observed,
    is_confidential_access,
    observe,
    subject_of,
)
from pactvault.monitor.rules.settings import RuleSettings, RuleSettingsService
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.detection_models import (
    ActivityHour,
    KnownNetwork,
    MonitorCursor,
    Observation,
)
from pactvault.store.models import AuditChainHead, AuditEvent, Contract

__all__ = ["Detection", "DetectionEngine", "EngineHooks", "RunReport"]

log = logging.getLogger("pactvault.monitor")

CURSOR = "detection"
LEASE = "monitor.detection"
MAX_RETRIES = 3


@dataclass(frozen=True)
class Detection:
    rule: str
    key: str
    org_id: str | None
    count: int
    settings: RuleSettings
    seq: int
    ip: str | None
    actor: str | None
    details: dict[str, Any] = field(default_factory=dict)
    #: For ``link`` rules: the alert another component raised.
    linked_alert_id: str | None = None


@dataclass
class RunReport:
    events: int = 0
    detections: list[Detection] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    response_ids: list[str] = field(default_factory=list)
    cursor: int = 0


@dataclass
class EngineHooks:
    """Counters for ``/metrics`` (``monitor.metrics``); no-ops by default."""

    evaluated: Callable[[int], None] = lambda n: None
    detected: Callable[[str], None] = lambda rule: None
    acted: Callable[[str], None] = lambda action: None


class DetectionEngine:
    def __init__(
        self,
        db: Database,
        alerts: AlertService,
        settings: RuleSettingsService,
        responses: ResponseService,
        clock: Callable[[], datetime] = utcnow,
        *,
        batch: int = 500,
        max_batches: int = 20,
        lease_ttl: timedelta = timedelta(seconds=60),
        hooks: EngineHooks | None = None,
        bookkeeping: Database | None = None,
    ) -> None:
        self._db = db
        #: Observations, history, cursor and lease: derived state, committed without an fsync
        #: (``monitor.storage``); the platform's ``db`` by default.
        self._book = bookkeeping or db
        self._alerts = alerts
        self._settings = settings
        self._responses = responses
        self._clock = clock
        self._batch = batch
        self._max_batches = max_batches
        self._lease = JobLease(self._book, LEASE, ttl=lease_ttl)
        self._token: str | None = None
        self._lease_until: datetime | None = None
        self.hooks = hooks or EngineHooks()
        self._retries: dict[int, int] = {}

    # -- the cursor -----------------------------------------------------------------------------

    def start(self) -> int:
        """Create the cursor at the journal's head if there is none; returns the cursor."""
        with self._book.write() as session:
            return self._cursor_row(session).last_seq

    def _cursor_row(self, session: Session) -> MonitorCursor:
        row = session.get(MonitorCursor, CURSOR)
        if row is None:
            head = session.get(AuditChainHead, 1)
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(
                insert(MonitorCursor)
                .values(name=CURSOR, last_seq=head.last_seq if head else 0, updated_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = session.get(MonitorCursor, CURSOR)
            assert row is not None
        return row

    def lag(self) -> tuple[int, int]:
        """(cursor, journal head): how far detection has read."""
        with self._book.read() as session:
            cursor = session.execute(
                select(MonitorCursor.last_seq).where(MonitorCursor.name == CURSOR)
            ).scalar_one_or_none()
            head = session.execute(
                select(AuditChainHead.last_seq).where(AuditChainHead.id == 1)
            ).scalar_one_or_none()
        return (cursor or 0), (head or 0)

    # -- running --------------------------------------------------------------------------------

    def run_due(self) -> RunReport | None:
        """Evaluate what the journal gained since the cursor, if anything; None when idle or
        another process holds the lease."""
        cursor, head = self.lag()
        if cursor == 0 and head == 0:
            return None
        if cursor == 0:
            self.start()
            cursor, head = self.lag()
        if head <= cursor:
            return None
        if not self._hold_lease():
            return None
        return self.run()

    def _hold_lease(self) -> bool:
        """Take the lease, or keep the one this process holds (renewed when half spent): the
        reading process stays the same while it lives; another takes over within ``ttl`` of
        its death."""
        now = self._clock()
        ttl = self._lease.ttl
        if self._token is not None and self._lease_until is not None:
            if now < self._lease_until - ttl / 2:
                return True
            try:
                self._lease.renew(self._token, now)
                self._lease_until = now + ttl
                return True
            except ConflictError:
                self._token = None  # it expired and another process holds it now
        token = self._lease.try_acquire(now, interval=timedelta(0))
        if token is None:
            return False
        self._token, self._lease_until = token, now + ttl
        return True

    def close(self) -> None:
        """Hand the lease back (shutdown), so another process takes over at once."""
        if self._token is not None:
            self._lease.release(self._token, self._clock(), outcome="stopped")
            self._token = None

    def run(self) -> RunReport:
        """Read and evaluate up to ``max_batches`` batches (the caller holds the lease)."""
        report = RunReport()
        for _ in range(self._max_batches):
            with self._book.read() as session:
                cursor = session.execute(
                    select(MonitorCursor.last_seq).where(MonitorCursor.name == CURSOR)
                ).scalar_one_or_none()
                if cursor is None:
                    cursor = 0
                rows = session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.seq > cursor)
                    .order_by(AuditEvent.seq)
                    .limit(self._batch)
                ).scalars()
                events = [JournalEvent.of(r) for r in rows]
            report.cursor = cursor
            if not events:
                break
            if not self._process(events, report):
                break  # the cursor stays: the batch is read again next time
            report.cursor = events[-1].seq
            report.events += len(events)
            self.hooks.evaluated(len(events))
            if self._token is not None:
                self._hold_lease()
        return report

    def _process(self, events: list[JournalEvent], report: RunReport) -> bool:
        """Evaluate and act on one batch; False if it must be read again (an alert or action
        failed: re-reading is harmless, losing it is not). After ``MAX_RETRIES`` failures on
        the same batch it is passed over, loudly, so one broken action cannot stop detection."""
        # With nothing to act on, the cursor moves in the evaluation's own transaction.
        detections = self.evaluate(events, advance=True)
        if not detections:
            return True
        failed = False
        for detection in detections:
            report.detections.append(detection)
            self.hooks.detected(detection.rule)
            try:
                self._act(detection, report)
            except Exception:
                failed = True
                log.exception("acting on detection %s/%s failed", detection.rule, detection.key)
        if not failed:
            self._retries.pop(events[0].seq, None)
            self._advance(events[-1].seq)
            return True
        tries = self._retries[events[0].seq] = self._retries.get(events[0].seq, 0) + 1
        if tries < MAX_RETRIES:
            return False
        log.error(
            "detection gave up acting on journal entries %d-%d", events[0].seq, events[-1].seq
        )
        self._retries.pop(events[0].seq, None)
        self._advance(events[-1].seq)
        return True

    def _advance(self, seq: int, session: Session | None = None) -> None:
        if session is None:
            with self._book.write() as own:
                self._advance(seq, own)
            return
        row = self._cursor_row(session)
        row.last_seq = max(row.last_seq, seq)
        row.updated_at = utcnow()

    # -- evaluation -----------------------------------------------------------------------------

    def evaluate(self, events: list[JournalEvent], *, advance: bool = False) -> list[Detection]:
        """Observations, history and thresholds for one batch (one write transaction, which
        also moves the cursor past the batch when ``advance`` and nothing fired)."""
        observed = [o for e in events for o in observe(e)]
        with self._book.write() as session:
            self._insert_observations(session, observed)
            stateful = _History(session, events).detect(self._settings)
            latest: dict[tuple[str, str], Observed] = {}
            for o in observed:
                latest[(o.rule, o.key)] = o
            for pair, o in latest.items():
                if o.org_id is None and RULES[o.rule].scope == "org":
                    # An entry that names no organisation (a guess at an unknown challenge)
                    # belongs with the organisation the same key was last seen acting in.
                    org = session.execute(
                        select(Observation.org_id)
                        .where(
                            Observation.rule == o.rule,
                            Observation.key == o.key,
                            Observation.org_id.is_not(None),
                        )
                        .order_by(Observation.occurred_at.desc())
                        .limit(1)
                    ).scalar_one_or_none()
                    if org is not None:
                        latest[pair] = replace(o, org_id=org)
            pairs = {(rule, o.org_id) for (rule, _), o in latest.items()}
            effective = self._settings.effective_many(session, pairs)
            detections = []
            for (rule_name, key), o in latest.items():
                settings = effective[(rule_name, o.org_id)]
                if not settings.enabled:
                    continue
                rule = RULES[rule_name]
                if rule.method == "link":
                    detections.append(
                        Detection(
                            rule_name,
                            key,
                            o.org_id,
                            1,
                            settings,
                            o.seq,
                            o.ip,
                            o.actor,
                            {"alert_id": o.item},
                            linked_alert_id=o.item,
                        )
                    )
                    continue
                since = o.occurred_at - timedelta(minutes=settings.window_minutes)
                count = session.execute(
                    select(func.count(func.distinct(Observation.item))).where(
                        Observation.rule == rule_name,
                        Observation.key == key,
                        Observation.occurred_at > since,
                    )
                ).scalar_one()
                if count > settings.threshold:
                    detections.append(
                        Detection(
                            rule_name,
                            key,
                            o.org_id,
                            count,
                            settings,
                            o.seq,
                            o.ip,
                            o.actor,
                            {"count": count},
                        )
                    )
            fired = [*stateful, *detections]
            if advance and not fired:
                self._advance(events[-1].seq, session)
        return fired

    @staticmethod
    def _insert_observations(session: Session, observed: Iterable[Observed]) -> None:
        rows = {
            (o.rule, o.seq, o.key): {
                "rule": o.rule,
                "seq": o.seq,
                "key": o.key,
                "org_id": o.org_id,
                "item": o.item,
                "occurred_at": o.occurred_at,
            }
            for o in observed
        }
        if not rows:
            return
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        values = list(rows.values())
        for start in range(0, len(values), 200):
            session.execute(
                insert(Observation)
                .values(values[start : start + 200])
                .on_conflict_do_nothing(index_elements=["rule", "seq", "key"])
            )

    # -- acting ---------------------------------------------------------------------------------

    def _act(self, detection: Detection, report: RunReport) -> None:
        rule = RULES[detection.rule]
        settings = detection.settings
        planned = plan(settings.actions, actor=detection.actor, ip=detection.ip)
        alert_id = detection.linked_alert_id
        describe = _describe(detection)
        if alert_id is None:
            details = {
                "rule": rule.name,
                "key": detection.key,
                "threshold": settings.threshold,
                "window_minutes": settings.window_minutes,
                "actor": detection.actor,
                "ip": detection.ip,
                "network": network_of(detection.ip),
                "seq": detection.seq,
                "actions": [f"{p.action}:{p.target_type}" for p in planned],
                **detection.details,
            }
            raised = self._alerts.raise_alert(
                rule.alert_kind,
                severity=rule.severity,
                title=describe,
                details=details,
                org_id=detection.org_id,
                subject={"rule": rule.name, "key": detection.key},
                actor=Actor(type="system", id="pactvault-monitor"),
            )
            alert_id = raised.alert.id
            report.alert_ids.append(alert_id)
        if not planned:
            return
        applied = self._responses.apply(
            planned,
            rule=rule.name,
            org_id=detection.org_id,
            minutes=settings.action_minutes,
            reason=describe,
            alert_id=alert_id,
            actor=Actor(type="system", id="pactvault-monitor"),
            details={"key": detection.key, "seq": detection.seq},
        )
        for response in applied:
            report.response_ids.append(response.id)
            self.hooks.acted(response.action)

    # -- housekeeping ---------------------------------------------------------------------------

    def prune(self, now: datetime | None = None) -> int:
        """Drop observations older than the longest window (maintenance)."""
        now = now or self._clock()
        with self._book.write() as session:
            result = session.execute(
                delete(Observation).where(
                    Observation.occurred_at < now - timedelta(minutes=MAX_WINDOW_MINUTES + 60)
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _describe(d: Detection) -> str:
    rule = RULES[d.rule]
    s = d.settings
    if rule.method == "count":
        return f"{rule.title}: {d.count} in {s.window_minutes} min ({d.key})"[:300]
    if rule.method == "link":
        return f"{rule.title}: alert {d.linked_alert_id}"[:300]
    return f"{rule.title} ({d.key}, {d.details.get('network') or d.details.get('hour_utc')})"[:300]


class _History:
    """The batch's users' and tokens' known networks and active hours: read once, checked and
    updated entry by entry in journal order, written back once."""

    def __init__(self, session: Session, events: list[JournalEvent]) -> None:
        self._session = session
        self._events = events
        self._acting = [
            (e, s, n)
            for e in events
            if e.actor_type in ("user", "api-token")
            and (s := subject_of(e)) is not None
            and (n := network_of(e.ip)) is not None
        ]
        subjects = {s for _, s, _ in self._acting}
        self.networks: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        self.hours: dict[str, dict[int, int]] = defaultdict(dict)
        self._touched_networks: set[tuple[str, str]] = set()
        self._touched_hours: set[tuple[str, int]] = set()
        self._new_networks: set[tuple[str, str]] = set()
        self._new_hours: set[tuple[str, int]] = set()
        self._last_seen: dict[tuple[str, str], datetime] = {}
        for chunk in _chunks(sorted(subjects), 200):
            for row in session.execute(
                select(KnownNetwork).where(KnownNetwork.subject.in_(chunk))
            ).scalars():
                self.networks[row.subject][row.network] = [row.first_seen_at, row.seen]
            users = [s for s in chunk if s.startswith("user:")]
            if users:
                for row in session.execute(
                    select(ActivityHour).where(ActivityHour.subject.in_(users))
                ).scalars():
                    self.hours[row.subject][row.hour] = row.count
        contracts = {
            e.object_id
            for e, _, _ in self._acting
            if e.action in DOWNLOAD_ACTIONS and e.object_type == "contract" and e.object_id
        }
        self.levels: dict[str, str] = {}
        for chunk in _chunks(sorted(contracts), 200):
            rows = session.execute(
                select(Contract.id, Contract.classification).where(Contract.id.in_(chunk))
            )
            self.levels.update({contract_id: level for contract_id, level in rows})

    def detect(self, settings_service: RuleSettingsService) -> list[Detection]:
        pairs = {
            (rule, e.org_id)
            for e, _, _ in self._acting
            for rule in ("new-network", "unusual-hours", "token-new-network")
        }
        effective = settings_service.effective_many(self._session, pairs) if pairs else {}
        fired: dict[tuple[str, str], Detection] = {}
        for event, subject, network in self._acting:
            if is_confidential_access(event, self.levels.get):
                s = effective[("new-network", event.org_id)]
                if s.enabled and self._is_new(subject, network, event.occurred_at, s):
                    fired[("new-network", subject)] = self._detection(
                        "new-network", subject, event, s, {"network": network}
                    )
                s = effective[("unusual-hours", event.org_id)]
                if s.enabled and subject.startswith("user:") and self._unusual(subject, event, s):
                    fired[("unusual-hours", subject)] = self._detection(
                        "unusual-hours", subject, event, s, {"hour_utc": event.occurred_at.hour}
                    )
            if event.actor_type == "api-token":
                s = effective[("token-new-network", event.org_id)]
                if s.enabled and self._is_new(subject, network, event.occurred_at, s):
                    fired[("token-new-network", subject)] = self._detection(
                        "token-new-network", subject, event, s, {"network": network}
                    )
            self._learn(subject, network, event.occurred_at)
        self._write()
        return list(fired.values())

    @staticmethod
    def _detection(
        rule: str, subject: str, event: JournalEvent, s: RuleSettings, extra: dict[str, Any]
    ) -> Detection:
        return Detection(
            rule,
            f"{subject}|{extra.get('network', extra.get('hour_utc'))}",
            event.org_id,
            1,
            s,
            event.seq,
            event.ip,
            subject,
            {**extra, "object_id": event.object_id, "action": event.action},
        )

    def _is_new(self, subject: str, network: str, at: datetime, s: RuleSettings) -> bool:
        """First seen within the window, while ``threshold`` networks are older than it."""
        horizon = at - timedelta(minutes=s.window_minutes)
        known = self.networks.get(subject, {})
        seen = known.get(network)
        if seen is not None and seen[0] <= horizon:
            return False
        established = sum(1 for n, (first, _) in known.items() if n != network and first <= horizon)
        return established >= max(1, s.threshold)

    def _unusual(self, subject: str, event: JournalEvent, s: RuleSettings) -> bool:
        counts = self.hours.get(subject, {})
        if sum(counts.values()) < max(1, s.threshold):
            return False
        hour = event.occurred_at.hour
        return all(counts.get((hour + d) % 24, 0) == 0 for d in (-1, 0, 1))

    def _learn(self, subject: str, network: str, at: datetime) -> None:
        known = self.networks[subject]
        if network in known:
            known[network][1] += 1
        else:
            known[network] = [at, 1]
            self._new_networks.add((subject, network))
        self._touched_networks.add((subject, network))
        self._last_seen[(subject, network)] = at
        if subject.startswith("user:"):
            hours = self.hours[subject]
            if at.hour not in hours:
                self._new_hours.add((subject, at.hour))
            hours[at.hour] = hours.get(at.hour, 0) + 1
            self._touched_hours.add((subject, at.hour))

    def _write(self) -> None:
        session = self._session
        for subject, network in self._touched_networks:
            first, seen = self.networks[subject][network]
            last = self._last_seen[(subject, network)]
            if (subject, network) in self._new_networks:
                session.add(
                    KnownNetwork(
                        subject=subject,
                        network=network,
                        first_seen_at=first,
                        last_seen_at=last,
                        seen=seen,
                    )
                )
            else:
                row = session.get(KnownNetwork, (subject, network))
                if row is not None:
                    row.seen = seen
                    row.last_seen_at = max(row.last_seen_at, last)
        for subject, hour in self._touched_hours:
            count = self.hours[subject][hour]
            if (subject, hour) in self._new_hours:
                session.add(ActivityHour(subject=subject, hour=hour, count=count))
            else:
                row = session.get(ActivityHour, (subject, hour))
                if row is not None:
                    row.count = count
        session.flush()


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
