"""The keys behind recovery-code and one-time-code digests.

One instance-wide secret, ``keys.secrets.platform_secret(session, keys, "mfa")``: a data key of
the platform KEK, stored only wrapped, so reading the database is not enough to test guesses
offline, and it follows the platform KEK through rotation like every other data key.
Purpose-specific keys are derived from it with HKDF, so a digest made for one purpose can never
be replayed as another.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The ``platform_secret`` name the MFA digest keys are derived from.
KEY_NAME = "mfa"


class DigestKeys:
    """Purpose-separated HMAC keys derived from one server secret (HKDF-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the MFA digest secret must be at least 32 random bytes")
        self.recovery = _derive(secret, b"pactvault mfa recovery codes v1")
        self.otp = _derive(secret, b"pactvault mfa one-time codes v1")


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
