"""RFC 6238 time-based one-time passwords (pure functions over ``pyotp``'s HOTP core).

We keep our own verification loop rather than ``pyotp.TOTP.verify`` because we need to know
*which* time step matched: a code is accepted only for a step later than the last accepted one,
which is what makes every (user, step) usable once (RFC 6238 §5.2). All candidate steps are
computed and compared in constant time, so the response time says nothing about which one
matched.

New secrets are 160 bits (RFC 4226 §4 recommends it) with SHA-1, 6 digits and 30 s steps: the
only combination every authenticator app implements, and HMAC-SHA-1 is not weakened for this use
by SHA-1 collisions. Other parameters are supported for verification (RFC 6238 Appendix B).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp

from pactvault.errors import InvalidInputError
from pactvault.identity.mfa.codes import clean_numeric

ISSUER = "pactvault"
SECRET_BYTES = 20
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


@dataclass(frozen=True)
class TotpParameters:
    algorithm: str = "sha1"
    digits: int = 6
    period: int = 30

    def __post_init__(self) -> None:
        if self.algorithm not in _DIGESTS:
            raise InvalidInputError(f"unsupported TOTP algorithm {self.algorithm!r}")
        if not 6 <= self.digits <= 8 or not 15 <= self.period <= 120:
            raise InvalidInputError("TOTP needs 6 to 8 digits and a 15 to 120 second period")


DEFAULT_PARAMETERS = TotpParameters()


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def _otp(secret: bytes, params: TotpParameters) -> pyotp.TOTP:
    return pyotp.TOTP(
        base64.b32encode(secret).decode("ascii"),
        digits=params.digits,
        digest=_DIGESTS[params.algorithm],
        interval=params.period,
    )


def time_step(moment: datetime, params: TotpParameters = DEFAULT_PARAMETERS) -> int:
    """RFC 6238 T = floor((Unix time − T0) / X) with T0 = 0."""
    return int(moment.timestamp()) // params.period


def code_for_step(secret: bytes, step: int, params: TotpParameters = DEFAULT_PARAMETERS) -> str:
    return _otp(secret, params).generate_otp(step)


def code_at(secret: bytes, moment: datetime, params: TotpParameters = DEFAULT_PARAMETERS) -> str:
    return code_for_step(secret, time_step(moment, params), params)


def matching_step(
    secret: bytes,
    code: str,
    moment: datetime,
    params: TotpParameters = DEFAULT_PARAMETERS,
    *,
    window: int = 1,
    after_step: int | None = None,
) -> int | None:
    """The time step ``code`` is valid for within ±``window`` steps of ``moment``, or ``None``.

    Steps at or before ``after_step`` (the last accepted one) never match: that is the replay
    rule. If several steps match (possible only by coincidence) the latest wins, so the replay
    floor moves as far forward as the evidence allows.
    """
    typed = clean_numeric(code, params.digits)
    current = time_step(moment, params)
    found = None
    for step in range(current - window, current + window + 1):
        expected = code_for_step(secret, step, params)
        # Compare even for a malformed or replayed code so every call does the same work.
        same = hmac.compare_digest(expected.encode("ascii"), (typed or "x").encode("ascii"))
        if same and typed is not None and (after_step is None or step > after_step):
            found = step
    return found


def provisioning_uri(
    secret: bytes, account: str, params: TotpParameters = DEFAULT_PARAMETERS
) -> str:
    """The ``otpauth://`` URI an authenticator app reads from a QR code."""
    return _otp(secret, params).provisioning_uri(name=account, issuer_name=ISSUER)


def secret_base32(secret: bytes) -> str:
    """The secret as people type it when they cannot scan the QR code."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")
