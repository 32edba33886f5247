"""Bearer secrets: API tokens, signing invitations, the first-admin setup token.

A token is 256 bits from the OS CSPRNG with a short prefix saying what it is for (so a leaked
token found in a log can be recognised and revoked). Only its SHA-256 digest is stored: for a
uniformly random 256-bit secret a fast hash is as strong as a slow one, and lookups stay O(1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_PREFIX = "pva_"
SIGNING_PREFIX = "pvs_"
SETUP_PREFIX = "pvsetup_"


def new_token(prefix: str) -> tuple[str, str]:
    """Return ``(token, digest)``; hand the token out once, store only the digest."""
    token = prefix + secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))
