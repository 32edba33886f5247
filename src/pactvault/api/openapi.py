"""The OpenAPI document, made to say what the API really answers.

FastAPI documents a route's success answer and a ``422`` in its own ``HTTPValidationError``
shape. Our API answers every error — validation included — as RFC 9457
``application/problem+json`` (``api/problems.py``), and any route can answer ``401``/``403``
(authentication, permissions, blocks), ``404`` (unknown or another tenant's ids), ``409``,
``413``/``415`` (request hygiene) or ``429`` (rate limits, with ``Retry-After``), and ``503``
when something it must not do without (the TSA, the database) is unavailable. A client generated
from the document, or a checker such as schemathesis, must be able to rely on that: so every
operation documents ``4XX`` and ``503`` as a ``Problem``, and ``422`` is rewritten to it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pactvault.api.problems import PROBLEM_JSON

__all__ = ["PROBLEM_SCHEMA", "install"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: a stable `type` URI, a human `detail`, the request id.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status", "detail"],
}

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "4XX": "The request was refused: see `type` and `detail` (401, 403, 404, 409, 413, 415, "
    "422, 429 with `Retry-After`, …).",
    "503": "A service the request needs is unavailable; nothing was changed.",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the problem answers to every operation of ``spec`` (in place; returned for chaining)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    # FastAPI's own validation-error shapes are never sent: drop them with their references.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for operations in spec.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _problem_response("The request is not valid.")
            for code, description in _ERRORS.items():
                declared = responses.setdefault(code, _problem_response(description))
                # A route that names the code for its description still answers a problem.
                declared.setdefault("content", {PROBLEM_JSON: {"schema": _PROBLEM_REF}})
    return spec


def install(app: FastAPI) -> None:
    """Serve the corrected document at ``/openapi.json`` (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_problems(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
