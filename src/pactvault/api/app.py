"""The FastAPI application: routes, problem+json errors, and request hygiene.

Request hygiene (ids, body limits, content types, timeouts, security headers, the access log) is
one middleware, ``api/middleware/``; liveness and readiness are ``api/routes/health.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from pactvault import __version__
from pactvault.api import middleware, openapi, problems
from pactvault.api.middleware import guard as monitor_middleware
from pactvault.api.middleware.idempotency import IdempotencyKeys
from pactvault.api.middleware.idempotency import prune as prune_idempotency_keys
from pactvault.api.routes import (
    admin,
    alerts,
    approvals,
    auth,
    contracts,
    health,
    ledger,
    metrics,
    mfa,
    organisation,
    security,
    signer_verification,
    signing,
    trust,
    verification,
    verify,
    witness,
)
from pactvault.audit.journal import Actor
from pactvault.platform import Platform
from pactvault.web import install as install_web

#: Every router of the API; the authorisation matrix test reads its rules from these.
ROUTERS = (
    health,
    admin,
    auth,
    mfa,
    organisation,
    contracts,
    signing,
    verify,
    trust,
    ledger,
    alerts,
    witness,
    approvals,
    verification,
    signer_verification,
    security,
    metrics,
)


MAINTENANCE_INTERVAL_SECONDS = 60.0
INTEGRITY_POLL_SECONDS = 300.0
BACKUP_POLL_SECONDS = 60.0
log = logging.getLogger("pactvault.maintenance")


def run_maintenance(platform: Platform) -> None:
    """Periodic housekeeping every API process may run (each step is idempotent)."""
    expired = platform.contracts.expire_due()
    if expired:
        log.info("expired %d contract(s) past their signing deadline", expired)
    lapsed = platform.verification.expire_due(Actor.system())
    if lapsed:
        log.info("expired %d real-name verification(s) past their deadline", lapsed)
    due = platform.ledger.run_due()
    if due.anchored or due.published:
        log.info("ledger: anchored=%s published=%s", due.anchored, bool(due.published))
    # After publishing: ask the witnesses for what they have not cosigned yet (never raises for
    # an unreachable witness; it is retried next round).
    cosigned = platform.cosigning.run_due()
    for outcome in cosigned.outcomes if cosigned else ():
        level = logging.INFO if outcome.ok else logging.WARNING
        log.log(level, "witness %s: %s", outcome.witness, outcome.detail)
    delivered = platform.alerts.deliver_pending()
    if delivered.delivered or delivered.retrying or delivered.failed:
        log.info("alert webhooks: %s", delivered)
    pruned = platform.login.prune_throttles()
    if pruned:
        log.info("pruned %d stale sign-in throttle record(s)", pruned)
    expired = prune_idempotency_keys(platform.db)
    if expired:
        log.info("forgot %d expired idempotency key(s)", expired)
    noticed = platform.notices.run_due()
    if noticed:
        log.info("sent %d security notice(s)", noticed)
    forgotten = platform.monitor.prune()
    if forgotten:
        log.info("pruned %d expired detection observation(s) and rate counter(s)", forgotten)


def run_detection(platform: Platform) -> None:
    """Detection rules on the journal's new entries (a lease makes one process read them)."""
    report = platform.monitor.run_due()
    if report is not None and report.detections:
        log.info(
            "monitor: %d detection(s), %d response(s)",
            len(report.detections),
            len(report.response_ids),
        )


def run_integrity_audit(platform: Platform) -> None:
    """The scheduled integrity audit; a lease makes one process run it per interval."""
    report = platform.integrity.run_if_due()
    if report is not None:
        log.info("integrity audit finished: %d finding(s)", report.findings_total)


def run_backups(platform: Platform) -> None:
    """Scheduled backups (then pruning) and restore drills, when configured and due; a lease
    makes one process run each. Failures raise alerts inside the backup service."""
    for outcome in platform.backups.run_due():
        log.info("backups: %s", outcome)


def _lifespan(platform: Platform, interval: float):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def loop(job: Callable[[Platform], None], every: float) -> None:
            while True:
                try:
                    await asyncio.to_thread(job, platform)
                except Exception:  # keep serving; the next round retries
                    log.exception("background job %s failed", job.__name__)
                await asyncio.sleep(every)

        # A full integrity audit can take long: its own task, so expiry and checkpoints go on.
        tasks = [
            asyncio.create_task(loop(run_maintenance, interval)),
            asyncio.create_task(loop(run_integrity_audit, max(interval, INTEGRITY_POLL_SECONDS))),
            asyncio.create_task(loop(run_backups, max(interval, BACKUP_POLL_SECONDS))),
            asyncio.create_task(loop(run_detection, platform.settings.monitor_interval_seconds)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan


def create_app(
    platform: Platform, *, maintenance_interval: float = MAINTENANCE_INTERVAL_SECONDS
) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan(platform, maintenance_interval),
        title="pactvault",
        version=__version__,
        description="Electronic contract signing: PAdES, RFC 3161 timestamps, encrypted storage.",
        docs_url=None,  # the stock docs page loads scripts from a CDN; ours is self-contained
        redoc_url=None,
    )
    app.state.platform = platform
    problems.install(app)
    openapi.install(app)  # errors documented as problem+json on every operation

    # Metrics, then blocks and rate limits before routing (api/middleware/guard.py): inside
    # the hygiene middleware, so refusals still get its headers, request id and log line.
    # Retried POSTs with an Idempotency-Key get the first answer (innermost: after the guard).
    app.add_middleware(IdempotencyKeys, db=platform.db)
    monitor_middleware.install(app, platform.monitor)
    # Request ids, body limits, content types, deadline, security headers, access log: keep it
    # the last middleware added (the outermost), see api/middleware/__init__.py.
    middleware.install(app, platform.settings)

    for module in ROUTERS:
        app.include_router(module.router)
    # The pages for people (web/): their own routers, rules and /static, on the same services.
    install_web(app, platform)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(render_docs(app.openapi()))

    return app


def render_docs(spec: dict) -> str:  # type: ignore[type-arg]
    """A plain HTML index of the OpenAPI document: readable offline, no scripts."""
    rows = []
    for path, operations in sorted(spec.get("paths", {}).items()):
        for method, op in operations.items():
            summary = html.escape(op.get("summary", ""))
            description = html.escape(op.get("description", "") or "")
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td><b>{summary}</b><br>{description}</td></tr>"
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>pactvault API</title>"
        "</head><body><h1>pactvault API</h1><p>Machine-readable: <a href='/openapi.json'>"
        "/openapi.json</a>. Errors are RFC 9457 <code>application/problem+json</code>.</p>"
        "<table border='1' cellpadding='4'><tr><th>Method</th><th>Path</th><th>What</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
