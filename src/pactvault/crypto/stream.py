"""Chunked AEAD for large objects (STREAM construction, Hoang–Reyhanitabar–Rogaway–Vizár 2015).

A 1 GB contract must never sit whole in memory, and a chunked format must not let an attacker
truncate, reorder, drop or append chunks. Layout::

    header = "PVS1" ‖ version (1) ‖ chunk_size (u32 BE) ‖ salt (16) ‖ nonce_prefix (7)   (32 bytes)
    chunk_i = AES-256-GCM(subkey, nonce_i, plaintext_i, aad = header ‖ caller_aad)
    nonce_i = nonce_prefix ‖ i (u32 BE) ‖ last_flag (0x00 or 0x01)
    subkey  = HKDF-SHA256(key, salt, info="pactvault/stream/v1")

* the counter in the nonce detects reordered or dropped chunks;
* the last-chunk flag detects truncation at a chunk boundary and appended chunks;
* the header is in every chunk's AAD, so editing it (chunk size, salt, prefix) fails;
* every non-final chunk holds exactly ``chunk_size`` plaintext bytes and the final chunk holds
  strictly fewer (possibly zero), so the reader knows which chunk is last without lookahead and
  the empty plaintext is just one empty final chunk;
* the per-stream HKDF subkey means that even a key reused across many streams never repeats a
  (key, nonce) pair in practice; pactvault still uses a fresh data key per object.

Streaming decryption releases plaintext before the whole object is authenticated: a consumer that
must act all-or-nothing (write a file, hash-and-sign) must either wait for the iterator to finish
or use :func:`decrypt_to_file`, which renames its output into place only after the final chunk
authenticated.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pactvault.crypto.aead import TAG_SIZE, cipher
from pactvault.crypto.atomic import atomic_write
from pactvault.errors import IntegrityError, InvalidInputError

CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20  # a reader trusts the header's chunk size only up to this bound
MAGIC = b"PVS1"
FORMAT_VERSION = 1
SALT_SIZE = 16
PREFIX_SIZE = 7
_HEADER = struct.Struct(f">4sBI{SALT_SIZE}s{PREFIX_SIZE}s")
HEADER_SIZE = _HEADER.size
_MAX_CHUNKS = 1 << 32
_INFO = b"pactvault/stream/v1"

_FAILED = "encrypted stream failed authentication (altered, truncated, reordered or wrong key)"


@dataclass(frozen=True)
class StreamResult:
    plaintext_size: int
    plaintext_sha256: str


def _subkey(key: bytes, salt: bytes) -> bytes:
    cipher(key)  # validates the key length before deriving anything from it
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(key)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise InvalidInputError("stream too long for its chunk size")
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _fill(source: BinaryIO, view: memoryview) -> int:
    """Read until ``view`` is full or EOF; returns the number of bytes read.

    A short ``read`` is not EOF on pipes and raw files, so we loop; ``None`` (a non-blocking
    stream with no data) is an error rather than EOF — mistaking it for EOF would silently
    truncate a document.
    """
    total = 0
    readinto = getattr(source, "readinto", None)
    while total < len(view):
        if readinto is not None:
            n = readinto(view[total:])
        else:
            data = source.read(len(view) - total)
            n = None if data is None else len(data)
            if n:
                view[total : total + n] = data
        if n is None:
            raise InvalidInputError("source stream is non-blocking and returned no data")
        if n == 0:
            break
        total += n
    return total


class StreamEncryptor:
    """Iterates the encrypted form of ``source``: the header, then one sealed chunk at a time.

    Pull-based so it can feed a :class:`~pactvault.store.blobs.BlobStore` (which consumes an
    iterable) as well as a sink. One reusable ``chunk_size`` buffer is read into; each yielded
    ciphertext chunk is a fresh ``bytes`` the consumer may keep. ``result`` is available once the
    iteration has finished.
    """

    def __init__(
        self, key: bytes, source: BinaryIO, *, aad: bytes, chunk_size: int = CHUNK_SIZE
    ) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInputError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
        salt = os.urandom(SALT_SIZE)
        self._prefix = os.urandom(PREFIX_SIZE)
        self._aes = cipher(_subkey(key, salt))
        self._header = _HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, salt, self._prefix)
        self._chunk_aad = self._header + aad
        self._source = source
        self._chunk_size = chunk_size
        self._result: StreamResult | None = None
        self._started = False

    @property
    def result(self) -> StreamResult:
        if self._result is None:
            raise RuntimeError("the stream has not been fully encrypted yet")
        return self._result

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a StreamEncryptor can be iterated only once")
        self._started = True
        return self._generate()

    def _generate(self) -> Iterator[bytes]:
        buffer = bytearray(self._chunk_size)
        view = memoryview(buffer)
        hasher = hashlib.sha256()
        size = 0
        counter = 0
        yield self._header
        while True:
            n = _fill(self._source, view)
            piece = view[:n]
            last = n < self._chunk_size
            hasher.update(piece)
            size += n
            yield self._aes.encrypt(_nonce(self._prefix, counter, last), piece, self._chunk_aad)
            if last:
                break
            counter += 1
        self._result = StreamResult(plaintext_size=size, plaintext_sha256=hasher.hexdigest())


def encrypt_stream(
    key: bytes, source: BinaryIO, sink: BinaryIO, *, aad: bytes, chunk_size: int = CHUNK_SIZE
) -> StreamResult:
    """Encrypt ``source`` into ``sink`` chunk by chunk; returns the plaintext size and SHA-256."""
    encryptor = StreamEncryptor(key, source, aad=aad, chunk_size=chunk_size)
    for piece in encryptor:
        sink.write(piece)
    return encryptor.result


def decrypt_stream(key: bytes, source: BinaryIO, *, aad: bytes) -> Iterator[bytes]:
    """Yield authenticated plaintext chunks; raises IntegrityError on any tampering.

    Each yielded chunk is authentic, but the object as a whole is only known to be complete once
    the iterator is exhausted without error (the final chunk is released only after checking that
    nothing follows it). See the module docstring for all-or-nothing consumers.
    """
    header = bytearray(HEADER_SIZE)
    if _fill(source, memoryview(header)) != HEADER_SIZE:
        raise IntegrityError(_FAILED)
    magic, version, chunk_size, salt, prefix = _HEADER.unpack(header)
    if magic != MAGIC or version != FORMAT_VERSION or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise IntegrityError(_FAILED)
    aes = cipher(_subkey(key, salt))
    chunk_aad = bytes(header) + aad
    buffer = bytearray(chunk_size + TAG_SIZE)
    view = memoryview(buffer)
    counter = 0
    while True:
        n = _fill(source, view)
        if n < TAG_SIZE:  # includes a stream cut exactly at a chunk boundary
            raise IntegrityError(_FAILED)
        last = n < len(buffer)
        try:
            plaintext = aes.decrypt(_nonce(prefix, counter, last), view[:n], chunk_aad)
        except InvalidTag:
            raise IntegrityError(_FAILED) from None
        if last:
            if source.read(1):
                raise IntegrityError(_FAILED)
            yield plaintext
            return
        yield plaintext
        counter += 1


def decrypt_to_file(
    key: bytes, source: BinaryIO, sink_path: str | os.PathLike[str], *, aad: bytes
) -> StreamResult:
    """Decrypt into ``sink_path`` all-or-nothing.

    Plaintext goes to a 0600 temporary file next to the destination and is renamed into place only
    after the final chunk authenticated; on any failure the temporary file is removed and the
    destination is untouched.
    """
    hasher = hashlib.sha256()
    counted = 0

    def chunks() -> Iterator[bytes]:
        nonlocal counted
        for chunk in decrypt_stream(key, source, aad=aad):
            hasher.update(chunk)
            counted += len(chunk)
            yield chunk

    atomic_write(sink_path, chunks())
    return StreamResult(plaintext_size=counted, plaintext_sha256=hasher.hexdigest())
