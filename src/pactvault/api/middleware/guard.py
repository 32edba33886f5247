"""Security monitoring at the HTTP edge: who the client is, whether it may go on, and metrics.

Two pure ASGI middlewares, installed inside ``RequestHygiene`` (so their refusals still carry the
security headers, the request id and an access-log line) — outermost first:

- ``RequestMetrics`` counts every request by route *template* (known once the router has run;
  requests no route matched, or refused before routing, count as ``unmatched``), method and
  status, and times it, into ``platform.monitor.metrics``;
- ``MonitorGuard`` first settles the client address: the TCP peer, or — only when the peer is
  one of ``PACTVAULT_TRUSTED_PROXIES`` — the client named by ``X-Forwarded-For`` (it rewrites
  ``scope["client"]`` so the audit journal, sessions and logs all see the same address). Then it
  asks ``monitor.guard`` (on a worker thread: it may touch the database) whether the request may
  go on, before any route runs — and before any body is read: a blocked client cannot make us
  read its upload. A refusal is problem+json: 403 ``blocked`` / ``suspended`` /
  ``step-up-required``, or 429 ``rate-limited`` with ``Retry-After``; allowed requests carry the
  ``RateLimit-*`` headers of their tightest limit. If the decision itself fails (the database is
  unreachable) the answer is 503: fail closed.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pactvault.api import problems
from pactvault.api.middleware.body import header
from pactvault.monitor.guard import Credential, Decision, RequestFacts, classify
from pactvault.monitor.service import SecurityMonitor

__all__ = ["MonitorGuard", "RequestMetrics", "install"]

log = logging.getLogger("pactvault.api")
SESSION_COOKIE = "pv_session"

_REFUSALS = {
    "blocked": ("blocked", "Blocked"),
    "suspended": ("suspended", "Suspended"),
    "step-up": ("step-up-required", "Step-up required"),
    "rate-limited": ("rate-limited", "Too many requests"),
    "slowed-down": ("rate-limited", "Too many requests"),
}


def install(app: FastAPI, monitor: SecurityMonitor) -> None:
    """Add both middlewares; call it *before* ``api.middleware.install`` (which must stay the
    outermost)."""
    app.add_middleware(MonitorGuard, monitor=monitor)
    app.add_middleware(RequestMetrics, monitor=monitor)


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]


class MonitorGuard:
    def __init__(self, app: ASGIApp, *, monitor: SecurityMonitor) -> None:
        self.app = app
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._settle_client(scope)
        if not self.monitor.enabled or classify(scope.get("path", "/")) is None:
            await self.app(scope, receive, send)  # off, or a probe, scrape or static asset
            return
        try:
            decision = await run_in_threadpool(self.monitor.guard.check, self._facts(scope))
        except Exception:
            log.exception("the request guard failed; refusing the request (fail closed)")
            await self._refuse(
                scope,
                receive,
                send,
                503,
                "monitor-unavailable",
                "Service unavailable",
                "the server cannot check this request right now; try again later",
            )
            return
        if not decision.allowed:
            assert decision.status is not None and decision.reason is not None
            self.monitor.metrics.refusals.labels(decision.reason, decision.route_class or "-").inc()
            slug, title = _REFUSALS[decision.reason]
            await self._refuse(
                scope, receive, send, decision.status, slug, title, decision.detail, decision
            )
            return
        if not decision.headers:
            await self.app(scope, receive, send)
            return
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_limits)

    def _settle_client(self, scope: Scope) -> None:
        trusted = self.monitor.trusted_proxies
        client = scope.get("client")
        if not trusted or not client:
            return
        real = trusted.client(client[0], _headers(scope, b"x-forwarded-for"))
        if real is not None and real != client[0]:
            scope["client"] = (real, 0)

    @staticmethod
    def _facts(scope: Scope) -> RequestFacts:
        authorization = header(scope, b"authorization") or ""
        scheme, _, value = authorization.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" and value.strip() else None
        cookie = None
        if bearer is None:
            raw = ";".join(_headers(scope, b"cookie"))
            cookie = cookie_parser(raw).get(SESSION_COOKIE) if raw else None
        client = scope.get("client")
        return RequestFacts(
            method=scope.get("method", "GET"),
            path=scope.get("path", "/"),
            ip=client[0] if client else None,
            credential=Credential.of(bearer, cookie),
        )

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        slug: str,
        title: str,
        detail: str,
        decision: Decision | None = None,
    ) -> None:
        headers = dict(decision.headers) if decision else {}
        response = problems.problem(
            Request(scope, receive), status, slug, title, detail, headers=headers
        )
        await response(scope, receive, send)


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, monitor: SecurityMonitor) -> None:
        self.app = app
        self.metrics = monitor.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            self.metrics.observe_request(
                template, scope.get("method", ""), status or 500, time.perf_counter() - began
            )
