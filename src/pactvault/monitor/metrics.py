"""Prometheus metrics: per-process request counters plus gauges read from the database.

Two kinds of numbers, chosen so several API processes add up correctly without a shared
multiprocess directory:

- **per-process** counters and histograms, kept in this process's own registry: HTTP requests by
  route *template* (never the raw path: ids would make every request a new series), method and
  status; request latency; the detection engine's evaluations, detections and actions; the
  guard's refusals. Prometheus scrapes each process (each port or pod) and ``sum()`` adds them up;
  a restarted process starts from zero, which ``rate()`` handles.
- **database-derived** values, computed at scrape time by :class:`DatabaseCollector` with a
  handful of short aggregate queries: signatures made, alerts raised and open by severity, queue
  depths (pending webhook deliveries, witness requests behind the latest checkpoint), ledger size,
  latest checkpoint size and age, active automatic responses, detection lag. Every process
  reports the same values, so take ``max()`` of those, not ``sum()``.

(The ``prometheus_client`` multiprocess mode was the alternative; it needs a shared writable
directory, per-process files that must be cleaned on restart, and cannot express the database
gauges any better.)

Only aggregate numbers leave: no organisation, user, token, address or document appears as a
label or value. Label values come from fixed sets (methods, statuses, route templates, rule and
action names), so cardinality is bounded by the route table. Access is decided by the route
(``api/routes/metrics.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from pactvault.monitor.detection import CURSOR, EngineHooks
from pactvault.store.db import Database
from pactvault.store.detection_models import RESPONSE_ACTIONS, MonitorCursor, Response
from pactvault.store.ledger_models import LedgerCheckpoint, LedgerHead
from pactvault.store.models import AuditChainHead, Signature
from pactvault.store.monitor_models import SEVERITIES, Alert, AlertDelivery
from pactvault.store.witness_models import LedgerWitnessState

__all__ = ["DatabaseCollector", "Metrics"]

log = logging.getLogger("pactvault.metrics")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"


class Metrics:
    """This process's registry: its own counters and the database collector."""

    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        # No ``*_created`` series: they double every counter's series for little use here.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pactvault_http_requests",
            "HTTP requests served by this process, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pactvault_http_request_duration_seconds",
            "Time to serve a request in this process, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "pactvault_monitor_refusals",
            "Requests refused before routing: blocked, suspended, step-up, rate-limited",
            ["reason", "route_class"],
            registry=self.registry,
        )
        self.evaluated = Counter(
            "pactvault_monitor_events_evaluated",
            "Audit journal entries the detection rules evaluated in this process",
            registry=self.registry,
        )
        self.detections = Counter(
            "pactvault_monitor_detections",
            "Rule firings in this process, by rule",
            ["rule"],
            registry=self.registry,
        )
        self.actions = Counter(
            "pactvault_monitor_actions",
            "Automatic responses applied by this process, by action",
            ["action"],
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(db, cache_seconds=cache_seconds))

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        template = route or UNMATCHED
        self.requests.labels(template, method, str(status)).inc()
        self.latency.labels(template, method).observe(seconds)

    def engine_hooks(self) -> EngineHooks:
        return EngineHooks(
            evaluated=lambda n: self.evaluated.inc(n),
            detected=lambda rule: self.detections.labels(rule).inc(),
            acted=lambda action: self.actions.labels(action).inc(),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Gauges read at scrape time (reused for ``cache_seconds``: scrapes cannot pile up work)."""

    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> list[Metric]:
        return []  # names are fixed, but describing must not query the database

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._cache_seconds:
                self._cached = (now, self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "pactvault_metrics_database_up", "1 if the database answered the metrics queries"
        )
        try:
            metrics = self._query()
        except Exception:  # a scrape must still answer; the failure is visible and logged
            log.warning("metrics: database queries failed", exc_info=True)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *metrics]

    def _query(self) -> list[Metric]:
        with self._db.read() as s:
            signatures = s.execute(select(func.count()).select_from(Signature)).scalar_one()
            by_severity = {
                row.severity: (row.raised, row.open)
                for row in s.execute(
                    select(
                        Alert.severity,
                        func.count().label("raised"),
                        func.sum(case((Alert.status != "resolved", 1), else_=0)).label("open"),
                    ).group_by(Alert.severity)
                )
            }
            pending = s.execute(
                select(func.count())
                .select_from(AlertDelivery)
                .where(AlertDelivery.status == "pending")
            ).scalar_one()
            tree_size = s.execute(select(LedgerHead.tree_size).limit(1)).scalar_one_or_none()
            checkpoint = s.execute(
                select(LedgerCheckpoint.tree_size, LedgerCheckpoint.published_at)
                .order_by(LedgerCheckpoint.seq.desc())
                .limit(1)
            ).first()
            witness_behind = 0
            if checkpoint is not None:
                witness_behind = s.execute(
                    select(func.count())
                    .select_from(LedgerWitnessState)
                    .where(LedgerWitnessState.cosigned_size < checkpoint.tree_size)
                ).scalar_one()
            journal = s.execute(
                select(AuditChainHead.last_seq).where(AuditChainHead.id == 1)
            ).scalar_one_or_none()
            cursor = s.execute(
                select(MonitorCursor.last_seq).where(MonitorCursor.name == CURSOR)
            ).scalar_one_or_none()
            now = datetime.now(UTC)
            responses = {
                action: count
                for action, count in s.execute(
                    select(Response.action, func.count())
                    .where(Response.lifted_at.is_(None), Response.expires_at > now)
                    .group_by(Response.action)
                )
            }
        out: list[Metric] = []
        sig = CounterMetricFamily("pactvault_signatures", "Signatures made (all processes)")
        sig.add_metric([], signatures)
        out.append(sig)
        raised = CounterMetricFamily(
            "pactvault_alerts_raised", "Alerts raised, by severity", labels=["severity"]
        )
        open_ = GaugeMetricFamily(
            "pactvault_alerts_open", "Alerts not yet resolved, by severity", labels=["severity"]
        )
        for severity in SEVERITIES:
            total, unresolved = by_severity.get(severity, (0, 0))
            raised.add_metric([severity], total or 0)
            open_.add_metric([severity], unresolved or 0)
        out += [raised, open_]
        out.append(
            _gauge("pactvault_alert_deliveries_pending", "Webhook deliveries queued", pending)
        )
        out.append(
            _gauge(
                "pactvault_witness_requests_pending",
                "Configured witnesses that have not cosigned the latest checkpoint",
                witness_behind,
            )
        )
        out.append(_gauge("pactvault_ledger_size", "Leaves in the evidence ledger", tree_size or 0))
        out.append(
            _gauge(
                "pactvault_ledger_checkpoint_size",
                "Tree size of the latest published checkpoint",
                checkpoint.tree_size if checkpoint else 0,
            )
        )
        if checkpoint is not None:
            age = (now - checkpoint.published_at).total_seconds()
            out.append(
                _gauge(
                    "pactvault_ledger_checkpoint_age_seconds",
                    "Seconds since the latest checkpoint was published",
                    max(0.0, age),
                )
            )
        out.append(
            _gauge("pactvault_audit_journal_size", "Entries in the audit journal", journal or 0)
        )
        out.append(
            _gauge(
                "pactvault_monitor_lag_events",
                "Audit journal entries the detection rules have not read yet",
                max(0, (journal or 0) - (cursor if cursor is not None else (journal or 0))),
            )
        )
        active = GaugeMetricFamily(
            "pactvault_monitor_responses_active",
            "Automatic responses in force, by action",
            labels=["action"],
        )
        for action in RESPONSE_ACTIONS:
            active.add_metric([action], responses.get(action, 0))
        out.append(active)
        return out


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation)
    gauge.add_metric([], value)
    return gauge
