"""Short secrets people type (one-time and recovery codes): generation, keyed digests, masking.

Such codes are short (6 digits, 50-bit recovery codes), so a plain hash of one could be reversed
by trying every value. They are stored as HMAC-SHA256 under a server key that is not in the
database (``keyring``): a database dump alone allows no offline guessing at all, and online
guessing is bounded by throttling and per-code attempt limits. Every digest covers its context
(purpose, owner, challenge, document hash) with an unambiguous field encoding, so a digest is
never valid anywhere but where it was issued.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pactvault.crypto.encoding import Field, encode_fields

OTP_DIGITS = 6


def numeric_code(digits: int = OTP_DIGITS) -> str:
    """A uniformly random decimal code, zero-padded (``secrets``, not ``random``)."""
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def keyed_digest(key: bytes, *fields: Field) -> str:
    """Hex HMAC-SHA256 of the unambiguously encoded ``fields``."""
    return hmac.new(key, encode_fields(*fields), hashlib.sha256).hexdigest()


def same_digest(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two hex digests; ``None`` never matches."""
    if a is None or b is None:
        return False
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def clean_numeric(code: str | None, digits: int) -> str | None:
    """The code as typed without spaces, or ``None`` if it cannot be a code of ``digits``."""
    compact = "".join((code or "").split())
    if len(compact) != digits or not compact.isascii() or not compact.isdigit():
        return None
    return compact


def mask_email(address: str) -> str:
    """``o***r@acme.test``: enough for the person to recognise, little for anyone else."""
    local, _, domain = address.partition("@")
    shown = local[:1] + "***" if len(local) <= 2 else local[0] + "***" + local[-1]
    return f"{shown}@{domain}"[:64]


def mask_phone(number: str) -> str:
    """``+86*******8000``: the country code and the last four digits."""
    if len(number) <= 7:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask(channel: str, destination: str) -> str:
    return mask_email(destination) if channel == "email" else mask_phone(destination)
