"""SHA-256 helpers and a constant-time comparison.

Hashes of documents are compared against values an attacker may influence (uploaded files,
stored digests); ``equal`` uses ``hmac.compare_digest`` so the comparison time does not reveal how
many leading characters matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import BinaryIO

_READ_SIZE = 1 << 20


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path_or_stream: str | os.PathLike[str] | BinaryIO) -> str:
    """Lower-case hex SHA-256 of a file or binary stream, read in 1 MiB pieces.

    A stream is read from its current position to EOF and left open (the caller owns it).
    """
    if isinstance(path_or_stream, str | os.PathLike):
        with open(path_or_stream, "rb") as handle:
            return _hash_stream(handle)
    return _hash_stream(path_or_stream)


def _hash_stream(stream: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while True:
        block = stream.read(_READ_SIZE)
        if not block:
            return hasher.hexdigest()
        hasher.update(block)


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two digests/tokens (str is compared as its UTF-8 bytes)."""
    left = a.encode("utf-8") if isinstance(a, str) else a
    right = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
