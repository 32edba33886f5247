"""One-shot AES-256-GCM for small secrets (wrapped keys, root key file).

Format: ``version (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)``. The version byte is
part of the associated data, so it cannot be changed to steer a future parser. Nonces are random:
with 96 bits and one key sealing at most a few million small values (KEKs wrap data keys), the
collision bound stays far below 2^-32 — large objects go through ``crypto.stream`` instead.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pactvault.errors import IntegrityError, InvalidInputError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
FORMAT_VERSION = 1
_VERSION_BYTE = bytes([FORMAT_VERSION])
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE

_FAILED = "sealed data failed authentication (altered, wrong key or wrong context)"


def generate_key() -> bytes:
    """A fresh random 256-bit key from the OS CSPRNG."""
    return os.urandom(KEY_SIZE)


def cipher(key: bytes) -> AESGCM:
    """AESGCM for a 256-bit key; any other length is a programming error, never silently used."""
    if len(key) != KEY_SIZE:
        raise InvalidInputError("an AES-256-GCM key must be 32 bytes")
    return AESGCM(key)


def seal(key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``."""
    nonce = os.urandom(NONCE_SIZE)
    return _VERSION_BYTE + nonce + cipher(key).encrypt(nonce, plaintext, _VERSION_BYTE + aad)


def open_sealed(key: bytes, sealed: bytes, *, aad: bytes) -> bytes:
    """Authenticate and decrypt; any alteration, wrong key or wrong ``aad`` → IntegrityError."""
    aes = cipher(key)
    if len(sealed) < OVERHEAD or sealed[:1] != _VERSION_BYTE:
        raise IntegrityError(_FAILED)
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return aes.decrypt(nonce, sealed[1 + NONCE_SIZE :], _VERSION_BYTE + aad)
    except InvalidTag:
        raise IntegrityError(_FAILED) from None
