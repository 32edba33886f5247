"""Readiness: can this process do real work right now?

Each check is a plain callable that raises when its dependency is unusable. Checks run at the
same time on their own threads, each against its own deadline, so one hung dependency (a database
that stopped answering, an external TSA that never replies) turns the answer into "not ready"
within the timeout instead of hanging the caller. A thread stuck inside a check cannot be killed:
it is left to finish (as a daemon, so it never blocks shutdown), and that check is not started
again while it runs — it keeps answering ``timeout`` — so a hung dependency cannot pile up threads.

Readiness is asked without credentials (load balancers, orchestrators), and a run writes a blob
and signs a timestamp; so results are reused for a moment and concurrent callers share one run:
asking often cannot make the server do unbounded work.

Only ``ok`` / ``timeout`` / ``error`` leaves this module; what went wrong is logged on the server.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("pactvault.health")

CheckStatus = Literal["ok", "timeout", "error"]
#: How long a result is reused: a burst of probes costs one run.
REUSE_SECONDS = 1.0


@dataclass(frozen=True)
class Check:
    """One dependency: ``run`` raises if it is unusable and must finish within ``timeout``."""

    name: str
    run: Callable[[], None]
    timeout: float


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Readiness:
    results: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failing(self) -> list[str]:
        return [r.name for r in self.results if not r.ok]

    def checks(self) -> dict[str, dict[str, Any]]:
        """Per check: its status and how long it took (no error text: that is in the log)."""
        return {r.name: {"status": r.status, "ms": r.duration_ms} for r in self.results}


class ReadinessProbe:
    def __init__(
        self,
        checks: Sequence[Check],
        *,
        reuse_for: float = REUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise ValueError("check names must be unique")
        self._checks = tuple(checks)
        self._reuse_for = reuse_for
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, Future[CheckResult]] = {}
        self._last: tuple[float, Readiness] | None = None

    def check(self) -> Readiness:
        """Run every check (or reuse a result younger than ``reuse_for``)."""
        with self._lock:  # concurrent callers wait for the run in progress and share it
            if self._last is not None and self._clock() - self._last[0] < self._reuse_for:
                return self._last[1]
            readiness = self._run()
            self._last = (self._clock(), readiness)
            return readiness

    def _run(self) -> Readiness:
        started = self._clock()
        pending: dict[str, Future[CheckResult] | None] = {}
        for check in self._checks:
            previous = self._running.get(check.name)
            if previous is not None and not previous.done():
                pending[check.name] = None  # still stuck in an earlier run: do not pile up
                continue
            pending[check.name] = self._running[check.name] = _start(check)
        results = []
        for check in self._checks:
            future = pending[check.name]
            remaining = check.timeout - (self._clock() - started)
            try:
                if future is None:
                    raise TimeoutError
                results.append(future.result(timeout=max(remaining, 0.0)))
            except TimeoutError:
                log.warning("readiness check %r took over %ss", check.name, check.timeout)
                results.append(CheckResult(check.name, "timeout", round(check.timeout * 1000, 1)))
        return Readiness(tuple(results))


def _start(check: Check) -> Future[CheckResult]:
    future: Future[CheckResult] = Future()
    context = contextvars.copy_context()  # log lines keep the request id of whoever asked

    def work() -> None:
        future.set_result(context.run(_timed, check))

    threading.Thread(target=work, name=f"readiness-{check.name}", daemon=True).start()
    return future


def _timed(check: Check) -> CheckResult:
    began = time.perf_counter()
    status: CheckStatus = "ok"
    try:
        check.run()
    except Exception:  # any failure means "not ready"; the details stay in the server log
        log.warning("readiness check %r failed", check.name, exc_info=True)
        status = "error"
    return CheckResult(check.name, status, round((time.perf_counter() - began) * 1000, 1))
