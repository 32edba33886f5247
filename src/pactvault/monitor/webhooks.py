"""Signed webhooks for alerts, in the Standard Webhooks format (https://www.standardwebhooks.com).

A receiver must be able to tell our alerts from anyone else's POSTs, and a replay of an old
alert from a fresh one, with code it did not have to write for us. So every request carries
the three Standard Webhooks headers::

    webhook-id:        the delivery's id (the same on every retry, so receivers de-duplicate)
    webhook-timestamp: Unix seconds when this attempt was sent (receivers refuse stale ones)
    webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))

with the shared secret written ``whsec_`` + base64(key), as the spec's libraries expect it. The
secret lives in configuration only, never in the database; the outbox rows name the endpoint.

Endpoints are configured by the instance operator; still, a URL must be ``https`` (plain ``http``
only to a loopback address) and carry no credentials, so a typo cannot send alerts in clear
across a network. Redirects are not followed: a 3xx is a failed delivery, not a new destination.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from pactvault.errors import InvalidInputError

__all__ = [
    "SECRET_PREFIX",
    "DeliveryResult",
    "WebhookEndpoint",
    "WebhookSender",
    "new_webhook_secret",
    "sign_webhook",
    "verify_webhook",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
MIN_KEY_BYTES = 24  # the Standard Webhooks range is 24..64 bytes
MAX_KEY_BYTES = 64
DEFAULT_TOLERANCE_SECONDS = 300
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LOOPBACK_NAMES = {"localhost"}


def new_webhook_secret() -> str:
    """A fresh secret to configure on both sides: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidInputError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("a webhook secret is whsec_ followed by base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidInputError(
            f"a webhook secret must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes"
        )
    return key


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("a webhook URL must not carry credentials")
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise InvalidInputError("a webhook URL must be https (plain http only to a loopback address)")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where alerts go: a short ``name`` (what outbox rows record), the URL and the secret."""

    name: str
    url: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise InvalidInputError("a webhook name is 1-64 lowercase letters, digits, '-', '_'")
        _check_url(self.url)
        _secret_key(self.secret)

    @property
    def key(self) -> bytes:
        return _secret_key(self.secret)


def sign_webhook(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does (and our tests do): signature valid and timestamp fresh.

    ``headers`` must be case-insensitive or lower-case. Any of several space-separated ``v1,``
    signatures may match (secret rotation); comparisons are constant-time.
    """
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        offered = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign_webhook(_secret_key(secret), msg_id, timestamp, body).encode("ascii")
    return any(hmac.compare_digest(expected, candidate.encode("ascii")) for candidate in offered)


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None


class WebhookSender:
    """POSTs one signed message. Never raises for network trouble: it reports it."""

    def __init__(self, client: httpx.Client | None = None, *, timeout: float = 10.0) -> None:
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def send(
        self, endpoint: WebhookEndpoint, *, msg_id: str, timestamp: int, body: bytes
    ) -> DeliveryResult:
        headers = {
            "content-type": "application/json",
            "user-agent": "pactvault-alerts",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_webhook(endpoint.key, msg_id, timestamp, body),
        }
        try:
            response = self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # The class name says what failed (timeout, refused, TLS) without echoing the URL.
            return DeliveryResult(False, None, type(exc).__name__)
        if 200 <= response.status_code < 300:
            return DeliveryResult(True, response.status_code)
        return DeliveryResult(False, response.status_code, f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()
