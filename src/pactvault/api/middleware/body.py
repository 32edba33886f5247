"""Request bodies: how large, of which media type, and how fast they must arrive.

Limits are per route, decided once the router has picked it (``scope["route"]`` is set before the
endpoint asks for its first byte):

- routes taking form data (the multipart uploads) may receive ``max_upload_bytes`` plus room for
  the multipart framing; the upload routes then hold the file itself to ``max_upload_bytes``
  (``api.deps.read_upload``);
- every other route gets ``max_request_bytes``: JSON, OCSP and timestamp requests are small.

A declared ``Content-Length`` above the limit is refused before a byte is read (above the largest
limit of any route, even before routing); a body streamed without one is counted as it arrives and
refused the moment it passes the limit, so no more than the limit plus one chunk is ever buffered.
These refusals are raised as Starlette ``HTTPException``s from ``receive``: FastAPI re-raises those
from its body parsing, so they reach ``api/problems.py`` like any other error.

Content types are strict where FastAPI parses the body: a JSON route takes ``application/json``
or ``application/*+json`` only (FastAPI would hand other bodies to validation as raw bytes); form
routes take ``multipart/form-data`` or ``application/x-www-form-urlencoded`` (FastAPI would parse
anything else as an empty form); a route declaring another media type
(``Body(media_type="text/plain")``) takes exactly that. Routes that read the raw request
themselves (``/tsa``, ``/pki/ocsp``) declare no body and check their own type. FastAPI does not
read a form body of the wrong type at all, so this check is an application-wide dependency
(``strict_content_type``), which runs after routing and before any other dependency.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from fastapi import Request, params
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope

MULTIPART_OVERHEAD = 1 << 20
JSON = "application/json"
FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
_JSON_SUFFIX = re.compile(r"application/[a-z0-9.\-]+\+json")


@dataclass(frozen=True)
class RouteBody:
    """What a route's declared body accepts."""

    form: bool = False
    #: Accepted media types; ``None`` when the route declares no body (or reads it raw).
    accepts: frozenset[str] | None = None

    def accepts_type(self, media_type: str | None) -> bool:
        if self.accepts is None:
            return True
        if media_type is None:
            return False
        if media_type in self.accepts:
            return True
        return JSON in self.accepts and bool(_JSON_SUFFIX.fullmatch(media_type))


def route_body(route: object) -> RouteBody:
    field = route.body_field if isinstance(route, APIRoute) else None
    if field is None:
        return RouteBody()
    info = field.field_info
    if isinstance(info, params.Form):  # File is a Form
        return RouteBody(form=True, accepts=FORM_TYPES)
    return RouteBody(accepts=frozenset({media_type(getattr(info, "media_type", None)) or JSON}))


def media_type(header_value: str | None) -> str | None:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``."""
    if header_value is None:
        return None
    value = header_value.split(";", 1)[0].strip().lower()
    return value or None


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def declared_length(scope: Scope) -> int | None:
    """The ``Content-Length``, if any (the server already refused malformed ones)."""
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def has_body(scope: Scope) -> bool:
    return bool(declared_length(scope)) or header(scope, b"transfer-encoding") is not None


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request bodies are limited to {limit} bytes here")


async def strict_content_type(request: Request) -> None:
    """Application-wide dependency: a body must have the type its route declares (else 415)."""
    body = route_body(request.scope.get("route"))
    if has_body(request.scope) and not body.accepts_type(
        media_type(request.headers.get("content-type"))
    ):
        expected = " or ".join(sorted(body.accepts or ()))
        raise HTTPException(415, f"send this request's body as {expected}")


class BodyLimits:
    """The body limits of one application."""

    def __init__(self, *, request: int, upload: int, idle_timeout: float) -> None:
        self.request = request
        self.upload = upload + MULTIPART_OVERHEAD
        self.idle_timeout = idle_timeout

    @property
    def ceiling(self) -> int:
        """The largest body any route accepts: bigger declared bodies are refused up front."""
        return max(self.request, self.upload)

    def limit_for(self, route: object) -> int:
        return self.upload if route_body(route).form else self.request


class GuardedBody:
    """The request's ``receive``, checked against the route's limit before the first byte,
    counted as the body streams in, and timed while the client is still sending it."""

    def __init__(self, scope: Scope, receive: Receive, limits: BodyLimits) -> None:
        self._scope = scope
        self._receive = receive
        self._limits = limits
        self._limit: int | None = None
        self._received = 0
        self._waited = 0.0
        self._waiting_since: float | None = None
        self.complete = False

    def waiting_seconds(self, now: float) -> float:
        """Time spent so far waiting for the client's body (event-loop clock)."""
        ongoing = now - self._waiting_since if self._waiting_since is not None else 0.0
        return self._waited + ongoing

    async def receive(self) -> Message:
        if self.complete:  # after the body only disconnect notices come: no limits, no timeout
            return await self._receive()
        limit = self._limit if self._limit is not None else self._first_read()
        loop = asyncio.get_running_loop()
        self._waiting_since = loop.time()
        try:
            async with asyncio.timeout(self._limits.idle_timeout):
                message = await self._receive()
        except TimeoutError:
            raise HTTPException(408, "the request body stopped arriving") from None
        finally:
            self._waited += loop.time() - self._waiting_since
            self._waiting_since = None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > limit:
                raise too_large(limit)
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message

    def _first_read(self) -> int:
        limit = self._limit = self._limits.limit_for(self._scope.get("route"))
        length = declared_length(self._scope)
        if length is not None and length > limit:
            raise too_large(limit)
        return limit
