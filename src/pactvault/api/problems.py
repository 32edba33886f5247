"""Errors → RFC 9457 problem+json, in one place.

Clients get a stable ``type`` URI, a human ``detail`` and the request id; internals (stack traces,
SQL, key ids) only go to the server log under that request id.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pactvault.errors import PactvaultError

log = logging.getLogger("pactvault.api")
PROBLEM_BASE = "https://pactvault.dev/problems/"
PROBLEM_JSON = "application/problem+json"
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def problem(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path, for a 405's ``Allow`` header.

    FastAPI registers one route per method, and Starlette names only the first route that
    matched the path; a client must learn all of them (RFC 9110 §15.5.6). Each method is tried
    against the router as a request with that method would be.
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in routes
        )
    ]
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    @app.exception_handler(PactvaultError)
    async def _pactvault_error(request: Request, exc: PactvaultError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request %s failed: %s", getattr(request.state, "request_id", "-"), exc)
        return problem(request, exc.status, exc.slug, exc.title, exc.detail, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "")}
            for err in exc.errors()
        ]
        return problem(
            request,
            422,
            "invalid-input",
            "Invalid input",
            "the request is not valid",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {
            404: "not-found",
            405: "method-not-allowed",
            408: "request-timeout",
            413: "payload-too-large",
            415: "unsupported-media-type",
        }.get(exc.status_code, "http-error")
        detail = str(exc.detail)
        # Keep the exception's headers: they are part of the answer.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem(request, exc.status_code, slug, detail, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in request %s", getattr(request.state, "request_id", "-"))
        return problem(request, 500, "internal", "Internal error", "an internal error occurred")
