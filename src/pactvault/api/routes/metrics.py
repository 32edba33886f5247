"""``/metrics`` for Prometheus: aggregate numbers only, and only for whom the operator allows.

Allowed: a client on this machine (loopback) whose request came directly — carrying no
``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP`` header, so a reverse proxy on the same host
does not turn every outside request into a "local" one — or any client presenting
``Authorization: Bearer <PACTVAULT_METRICS_TOKEN>`` (compared in constant time). Anything else
is refused (403) without a hint of what the metrics are: fail closed. The route declares the
public rule because it does not use sessions or API tokens; the check below is its rule.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from pactvault.api.deps import PUBLIC, PlatformDep, bearer_token
from pactvault.errors import PermissionDeniedError
from pactvault.monitor.networks import parse_address

router = APIRouter(tags=["operations"], dependencies=[PUBLIC])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FORWARDING = ("x-forwarded-for", "forwarded", "x-real-ip")


def metrics_allowed(request: Request, token: str | None) -> bool:
    presented = bearer_token(request)
    if presented is not None:
        return token is not None and hmac.compare_digest(
            presented.encode("utf-8"), token.encode("utf-8")
        )
    address = parse_address(request.client.host if request.client else None)
    forwarded = any(name in request.headers for name in _FORWARDING)
    return address is not None and address.is_loopback and not forwarded


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, platform: PlatformDep) -> Response:
    """Prometheus text format: request counts and latencies of this process, and gauges read
    from the database (see ``monitor/metrics.py``)."""
    if not metrics_allowed(request, platform.settings.metrics_token):
        raise PermissionDeniedError(
            "metrics are served to local clients, or with the operator's metrics token"
        )
    return Response(platform.monitor.metrics.render(), media_type=CONTENT_TYPE)
