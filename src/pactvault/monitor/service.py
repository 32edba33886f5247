"""``SecurityMonitor``: detection rules, automatic responses, rate limits and metrics, wired.

The platform builds one (``platform.monitor``); the API middleware asks its ``guard`` about each
request and renders its ``metrics``; the maintenance loop calls ``run_due`` (about every second)
and ``prune``; the CLI and the admin API use ``rules``, ``responses`` and ``stepup``.

``PACTVAULT_MONITOR=off`` switches detection, responses and rate limiting off (the guard lets
every request through, the engine does not run) — for measuring their cost, never for
production. Metrics and trusted-proxy handling stay on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pactvault.access.decision import AccessControl
from pactvault.identity.mfa.service import MfaService
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.detection import DetectionEngine, RunReport
from pactvault.monitor.guard import RequestGuard, parse_limits
from pactvault.monitor.metrics import Metrics
from pactvault.monitor.networks import TrustedProxies
from pactvault.monitor.ratelimit import CounterStore, counter_url
from pactvault.monitor.responses import ResponseService, RevokeSessions
from pactvault.monitor.rules.settings import RuleSettingsService
from pactvault.monitor.stepup import MonitorStepUp
from pactvault.monitor.storage import relaxed_database
from pactvault.store.db import Database

__all__ = ["SecurityMonitor"]


class SecurityMonitor:
    def __init__(
        self,
        *,
        db: Database,
        database_url: str,
        access: AccessControl,
        alerts: AlertService,
        revoke_sessions: RevokeSessions,
        mfa: Callable[[], MfaService],
        enabled: bool = True,
        trusted_proxies: tuple[str, ...] = (),
        rate_limits: tuple[str, ...] = (),
        cache_seconds: float = 2.0,
    ) -> None:
        self.enabled = enabled
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self.rules = RuleSettingsService(db, access)
        self.responses = ResponseService(db, access, revoke_sessions=revoke_sessions)
        self.metrics = Metrics(db)
        self._bookkeeping = relaxed_database(database_url)
        self.engine = DetectionEngine(
            db,
            alerts,
            self.rules,
            self.responses,
            hooks=self.metrics.engine_hooks(),
            bookkeeping=self._bookkeeping,
        )
        url, side = counter_url(database_url)
        self.counters = CounterStore(url, create_table=side)
        self.guard = RequestGuard(
            db,
            self.counters,
            self.responses,
            limits=parse_limits(rate_limits),
            cache_seconds=cache_seconds,
        )
        self.responses.on_change.append(self.guard.invalidate)
        self.responses.on_lifted.append(
            lambda r: self.counters.forget(
                r.target if r.target_type == "ip" else f"{r.target_type}:{r.target}"
            )
        )
        self.stepup = MonitorStepUp(db, self.responses, mfa)

    def run_due(self) -> RunReport | None:
        """Evaluate new journal entries (one process at a time); None when idle or disabled."""
        return self.engine.run_due() if self.enabled else None

    def prune(self) -> int:
        """Forget observations and counters past every window (maintenance)."""
        return self.engine.prune() + self.counters.prune(time.time())

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            self.counters.close()
            self._bookkeeping.dispose()
