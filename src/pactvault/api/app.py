"""The FastAPI application: routes, problem+json errors, and request hygiene.

Security headers and request ids are added to every response here; request bodies larger than the
configured upload limit are refused before they are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pactvault import __version__
from pactvault.api import problems
from pactvault.api.routes import (
    admin,
    auth,
    contracts,
    ledger,
    organisation,
    signing,
    trust,
    verify,
)
from pactvault.platform import Platform

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MULTIPART_OVERHEAD = 1 << 20
#: Every router of the API; the authorisation matrix test reads its rules from these.
ROUTERS = (admin, auth, organisation, contracts, signing, verify, trust, ledger)


MAINTENANCE_INTERVAL_SECONDS = 60.0
INTEGRITY_POLL_SECONDS = 300.0
log = logging.getLogger("pactvault.maintenance")


def run_maintenance(platform: Platform) -> None:
    """Periodic housekeeping every API process may run (each step is idempotent)."""
    expired = platform.contracts.expire_due()
    if expired:
        log.info("expired %d contract(s) past their signing deadline", expired)
    due = platform.ledger.run_due()
    if due.anchored or due.published:
        log.info("ledger: anchored=%s published=%s", due.anchored, bool(due.published))
    delivered = platform.alerts.deliver_pending()
    if delivered.delivered or delivered.retrying or delivered.failed:
        log.info("alert webhooks: %s", delivered)
    pruned = platform.login.prune_throttles()
    if pruned:
        log.info("pruned %d stale sign-in throttle record(s)", pruned)


def run_integrity_audit(platform: Platform) -> None:
    """The scheduled integrity audit; a lease makes one process run it per interval."""
    report = platform.integrity.run_if_due()
    if report is not None:
        log.info("integrity audit finished: %d finding(s)", report.findings_total)


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

    @app.middleware("http")
    async def hygiene(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = request.headers.get("x-request-id", "")[:64] or str(uuid.uuid4())
        length = request.headers.get("content-length")
        limit = platform.settings.max_upload_bytes + MULTIPART_OVERHEAD
        if length is not None and (not length.isdigit() or int(length) > limit):
            response: Response = problems.problem(
                request,
                413,
                "payload-too-large",
                "Upload too large",
                f"request bodies are limited to {platform.settings.max_upload_bytes} bytes",
            )
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    for module in ROUTERS:
        app.include_router(module.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

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
