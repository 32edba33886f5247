"""Liveness and readiness for orchestrators and load balancers (no credentials needed).

``/healthz`` answers as long as the process serves HTTP and touches no dependency: a slow
database must not get a healthy process restarted. ``/readyz`` says whether this process can do
real work — database, blob store, key service and timestamp authority each checked with a
timeout (``observability/``) — so traffic goes elsewhere while it cannot. Both answer with
statuses only: no versions of dependencies, no error text, no stack traces.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from pactvault import __version__
from pactvault.api import problems
from pactvault.api.deps import PUBLIC, PlatformDep
from pactvault.observability.health import Check, ReadinessProbe
from pactvault.observability.probes import (
    blob_store_check,
    database_check,
    key_service_check,
    timestamp_check,
)
from pactvault.platform import Platform

router = APIRouter(tags=["operations"], dependencies=[PUBLIC])
_probe_lock = threading.Lock()


def readiness_checks(platform: Platform) -> list[Check]:
    timeout = platform.settings.readiness_timeout_seconds
    return [
        Check("database", database_check(platform.db), timeout),
        Check("blob_store", blob_store_check(platform.blob_store), timeout),
        Check("key_service", key_service_check(platform.db, platform.keys), timeout),
        Check("tsa", timestamp_check(platform.db, platform.timestamper), timeout),
    ]


def _probe(app: FastAPI, platform: Platform) -> ReadinessProbe:
    """One probe per application, so its result reuse and single-flight cover every caller."""
    with _probe_lock:
        probe = getattr(app.state, "readiness_probe", None)
        if probe is None:
            probe = app.state.readiness_probe = ReadinessProbe(readiness_checks(platform))
        return probe  # type: ignore[no-any-return]


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    """Liveness: the process answers. Checks no dependency."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/readyz",
    responses={503: {"description": "Not ready: names the failing checks (problem+json)"}},
)
def readyz(request: Request, platform: PlatformDep) -> JSONResponse:
    """Readiness: database, blob store (write, read, delete), key service (wrap, unwrap) and TSA
    (a verified timestamp), each within ``PACTVAULT_READINESS_TIMEOUT_SECONDS``."""
    readiness = _probe(request.app, platform).check()
    if readiness.ready:
        return JSONResponse({"status": "ready", "checks": readiness.checks()})
    return problems.problem(
        request,
        503,
        "not-ready",
        "Not ready",
        "failing checks: " + ", ".join(readiness.failing),
        failing=readiness.failing,
        checks=readiness.checks(),
    )
