"""HTTP-level hygiene for every request, as one ASGI middleware (``hygiene.RequestHygiene``).

Split: the pieces that need the ASGI messages live here (request id, body limits and content
types, deadline, security headers, the access-log line); the content-type check alone is an
application-wide dependency, as it needs the route chosen but runs before the endpoint (see
``body.py``). What does not depend on HTTP — the JSON
log format, readiness checks — lives in ``pactvault.observability``.

It must be the outermost middleware the application adds (``install`` last), so that every
response — including refusals from middleware added before it — carries the security headers and
the request id, and appears in the access log.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from pactvault.api.middleware.body import strict_content_type
from pactvault.api.middleware.hygiene import RequestHygiene
from pactvault.config import Settings

__all__ = ["RequestHygiene", "install"]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the middleware, and the content-type check every route runs first.

    Call it before routers are included: routes take the application's dependencies with them.
    """
    app.router.dependencies = [Depends(strict_content_type), *app.router.dependencies]
    app.add_middleware(RequestHygiene, settings=settings)
