"""Passphrase → key-encryption key for the root key file (argon2id, scrypt as fallback).

Argon2id comes from ``cryptography`` (OpenSSL ≥ 3.2), so no extra dependency is needed; it is the
same RFC 9106 function argon2-cffi computes. Where OpenSSL lacks it we fall back to scrypt. The
chosen function and its parameters are stored in the root key file, so a file written on one host
opens on another, and stronger defaults later do not break old files.

Defaults: argon2id m=64 MiB, t=3, p=4 (RFC 9106 §4 second recommended option, well above OWASP's
minimum m=19 MiB, t=2, p=1); scrypt N=2^17, r=8, p=1 (OWASP). The derivation runs once per process
start, so ~0.2 s is affordable. Parameters read from a file are bounded so an edited file cannot
make startup allocate unbounded memory.
"""

from __future__ import annotations

import base64
import os
import unicodedata
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pactvault.errors import KeyServiceError

KEY_LENGTH = 32
SALT_SIZE = 16

ARGON2ID_DEFAULTS: dict[str, int] = {"memory_cost_kib": 64 * 1024, "iterations": 3, "lanes": 4}
ARGON2ID_MINIMUM: dict[str, int] = {"memory_cost_kib": 19 * 1024, "iterations": 2, "lanes": 1}
SCRYPT_DEFAULTS: dict[str, int] = {"n": 1 << 17, "r": 8, "p": 1}
_MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
_MAX_ITERATIONS = 64
_MAX_LANES = 64


def argon2id_available() -> bool:
    """True if the linked OpenSSL provides Argon2id."""
    try:
        Argon2id(salt=b"\0" * SALT_SIZE, length=KEY_LENGTH, iterations=1, lanes=1, memory_cost=8)
    except UnsupportedAlgorithm:
        return False
    return True


def new_params(**overrides: int) -> dict[str, Any]:
    """Fresh KDF parameters (random salt) for a new root key file."""
    salt = base64.b64encode(os.urandom(SALT_SIZE)).decode("ascii")
    if argon2id_available():
        return {"name": "argon2id", "salt": salt, **ARGON2ID_DEFAULTS, **overrides}
    return {"name": "scrypt", "salt": salt, **SCRYPT_DEFAULTS, **overrides}


def derive_key(passphrase: str, params: dict[str, Any]) -> bytes:
    """Derive the 256-bit key that seals the root key. Bad parameters → KeyServiceError."""
    if not passphrase:
        raise KeyServiceError("the passphrase must not be empty")
    # NFC so the same passphrase typed on macOS (NFD input) and Linux derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    try:
        salt = base64.b64decode(params["salt"], validate=True)
        if len(salt) < SALT_SIZE:
            raise ValueError("salt too short")
        name = params["name"]
        if name == "argon2id":
            memory, iterations, lanes = (
                int(params["memory_cost_kib"]),
                int(params["iterations"]),
                int(params["lanes"]),
            )
            _check_range(memory, 8 * lanes, _MAX_MEMORY_KIB)
            _check_range(iterations, 1, _MAX_ITERATIONS)
            _check_range(lanes, 1, _MAX_LANES)
            kdf: Argon2id | Scrypt = Argon2id(
                salt=salt,
                length=KEY_LENGTH,
                iterations=iterations,
                lanes=lanes,
                memory_cost=memory,
            )
        elif name == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            _check_range(n, 2, 1 << 22)
            _check_range(r, 1, 32)
            _check_range(p, 1, 16)
            kdf = Scrypt(salt=salt, length=KEY_LENGTH, n=n, r=r, p=p)
        else:
            raise KeyServiceError("root key file names an unknown key derivation function")
        return kdf.derive(secret)
    except UnsupportedAlgorithm:
        raise KeyServiceError(
            "the root key is protected with argon2id, which this OpenSSL build lacks"
        ) from None
    except (KeyError, TypeError, ValueError):
        raise KeyServiceError("root key file has invalid key derivation parameters") from None


def _check_range(value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError("parameter out of range")
