"""The ASGI middleware every request passes first: id, limits, deadline, headers, access log.

One pure ASGI class rather than a stack of ``BaseHTTPMiddleware``s: it sees the raw ``receive``
(to stop reading a body the moment it is too large), the raw ``send`` (to add headers to every
response, including the ones it produces itself), and the scope after routing (the route
template for the log, never the raw path with its ids and query string).

The deadline: if no response has started ``request_timeout_seconds`` after the request arrived
(time spent waiting for the client's body excluded), the client gets ``503`` at once. The endpoint
cannot be interrupted if it runs on a worker thread: it is left to finish in the background and
whatever it then tries to send is dropped. Its outcome is unknown to the client, exactly as after
a gateway timeout: retries meet the usual conflict checks (a contract signed twice is refused).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pactvault.api import problems
from pactvault.api.middleware.body import BodyLimits, GuardedBody, declared_length, header
from pactvault.api.middleware.headers import security_headers, with_defaults
from pactvault.api.middleware.request_id import HEADER as REQUEST_ID_HEADER
from pactvault.api.middleware.request_id import accept_request_id
from pactvault.config import Settings
from pactvault.observability.logs import ACCESS_LOGGER, REQUEST_ID

access_log = logging.getLogger(ACCESS_LOGGER)
log = logging.getLogger("pactvault.api")


@dataclass
class _Exchange:
    """What happened to one request's response so far."""

    status: int | None = None
    started: bool = False
    #: Set once this middleware answered in the app's place (timeout): the app's sends are dropped.
    taken_over: bool = False
    timed_out: bool = False


class RequestHygiene:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.timeout = settings.request_timeout_seconds
        self.limits = BodyLimits(
            request=settings.max_request_bytes,
            upload=settings.max_upload_bytes,
            idle_timeout=settings.request_timeout_seconds,
        )
        self.headers = security_headers(settings.public_url)
        self._abandoned: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = accept_request_id(header(scope, REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        # Not reset afterwards on purpose: the server runs each request in a task of its own,
        # and the error handler outside this middleware logs with it after we return.
        REQUEST_ID.set(request_id)
        exchange = _Exchange()
        try:
            await self._serve(scope, receive, self._sender(send, exchange, request_id), exchange)
        finally:
            self._log(scope, exchange, began)

    def _sender(self, send: Send, exchange: _Exchange, request_id: str) -> Send:
        rid = request_id.encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER
                ]
                headers = with_defaults(headers, self.headers)
                headers.append((REQUEST_ID_HEADER, rid))
                message = {**message, "headers": headers}
                exchange.status = message["status"]
                exchange.started = True
            await send(message)

        return send_with_headers

    async def _serve(self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange) -> None:
        length = declared_length(scope)
        if length is not None and length > self.limits.ceiling:
            # No route takes a body this large: refuse before routing or reading anything.
            await self._answer(scope, receive, send, 413)
            return
        body = GuardedBody(scope, receive, self.limits)
        started = asyncio.Event()

        async def app_send(message: Message) -> None:
            if exchange.taken_over:  # we already answered in the app's place
                return
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, body.receive, app_send))
        try:
            timed_out = await self._deadline(task, started, body)
        except BaseException:  # the server cancelled us (client gone, shutdown)
            task.cancel()
            raise
        if timed_out:
            exchange.taken_over = exchange.timed_out = True
            self._abandon(task, scope)
            await self._answer(scope, receive, send, 503)
            return
        try:
            await task
        except Exception:
            if exchange.started:
                raise
            # Answer with our headers and the request id; the error handler logs it.
            await self._answer(scope, receive, send, 500)
            raise

    async def _deadline(
        self, task: asyncio.Task[None], started: asyncio.Event, body: GuardedBody
    ) -> bool:
        """Wait until the response starts or the app ends; ``True`` if the deadline passed."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        waiter = asyncio.ensure_future(started.wait())
        try:
            while True:
                now = loop.time()
                budget = self.timeout - (now - began - body.waiting_seconds(now))
                if budget <= 0:
                    return True
                done, _ = await asyncio.wait(
                    {task, waiter}, timeout=budget, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    return False
        finally:
            waiter.cancel()

    def _abandon(self, task: asyncio.Task[None], scope: Scope) -> None:
        """Let a timed-out request finish on its own (logged if it then fails)."""
        task.cancel()
        self._abandoned.add(task)
        request_id = scope["state"]["request_id"]

        def finished(done: asyncio.Task[None]) -> None:
            self._abandoned.discard(done)
            if not done.cancelled() and done.exception() is not None:
                log.warning("request %s failed after its timeout", request_id)

        task.add_done_callback(finished)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        slug, title, detail = _ANSWERS[status]
        if status == 413:
            detail = f"request bodies are limited to {self.limits.ceiling} bytes"
        response = problems.problem(Request(scope, receive), status, slug, title, detail)
        await response(scope, receive, send)

    def _log(self, scope: Scope, exchange: _Exchange, began: float) -> None:
        """One line per request, from an allow-list of fields: never headers, query or body."""
        route = scope.get("route")
        client = scope.get("client")
        status = exchange.status  # None: no response at all (the client went away)
        fields = {
            "method": scope.get("method"),
            "route": getattr(route, "path_format", None) or getattr(route, "path", None),
            "status": status,
            "duration_ms": round((time.perf_counter() - began) * 1000, 2),
            "client_ip": client[0] if client else None,
            "principal": scope.get("state", {}).get("principal_id"),
        }
        if exchange.timed_out:
            fields["timed_out"] = True
        level = logging.WARNING if status is None or status >= 500 else logging.INFO
        # The message repeats the gist for plain-text handlers; JSON lines carry the fields.
        access_log.log(
            level,
            "%s %s %s %sms",
            fields["method"],
            fields["route"] or "-",
            status or "-",
            fields["duration_ms"],
            extra={"fields": fields},
        )


_ANSWERS = {
    413: ("payload-too-large", "Upload too large", ""),
    500: ("internal", "Internal error", "an internal error occurred"),
    503: ("timeout", "Request timed out", "the server did not answer in time; try again later"),
}
