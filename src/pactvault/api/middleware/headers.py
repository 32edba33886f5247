"""Security headers every response carries, API and pages alike.

The defaults are strict because pactvault serves confidential documents: nothing may frame us,
nothing cached, scripts only from our own origin, no plugins, no referrer leaking ids in URLs.
A response that sets one of these headers itself keeps its own value (a page that needs the
camera for a liveness check, the ledger's public checkpoint that may be cached briefly).
"""

from __future__ import annotations

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
#: Powerful features no pactvault page uses (a page that does overrides this header).
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(public_url: str) -> tuple[tuple[bytes, bytes], ...]:
    """The default headers, as raw ASGI pairs (lower-case names)."""
    headers = {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "permissions-policy": PERMISSIONS_POLICY,
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "same-origin",
        # Documents and personal data are confidential: no browser or proxy keeps a copy.
        "cache-control": "no-store",
    }
    if public_url.lower().startswith("https://"):
        # Only over HTTPS: on plain HTTP the header is ignored anyway, and on a loopback
        # development URL it would pin "localhost" to HTTPS in the developer's browser.
        headers["strict-transport-security"] = HSTS
    return tuple((name.encode(), value.encode()) for name, value in headers.items())


def with_defaults(
    present: list[tuple[bytes, bytes]], defaults: tuple[tuple[bytes, bytes], ...]
) -> list[tuple[bytes, bytes]]:
    """``present`` plus every default header it does not already set."""
    names = {name.lower() for name, _ in present}
    return present + [(name, value) for name, value in defaults if name not in names]
