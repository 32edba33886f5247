"""Tests of the pure crypto layer: AEAD, STREAM chunking, hashing, encodings, atomic writes."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pactvault.crypto import aead, stream
from pactvault.crypto.atomic import atomic_write
from pactvault.crypto.encoding import decode_fields, encode_fields
from pactvault.crypto.hashing import equal, sha256_file, sha256_hex
from pactvault.errors import IntegrityError, InvalidInputError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# -- AEAD ------------------------------------------------------------------------------------


def test_aead_round_trip_and_format() -> None:
    sealed = aead.seal(KEY, b"secret contract", aad=b"ctx")
    assert len(sealed) == aead.OVERHEAD + len(b"secret contract")
    assert sealed[0] == aead.FORMAT_VERSION
    assert b"secret contract" not in sealed
    assert aead.open_sealed(KEY, sealed, aad=b"ctx") == b"secret contract"


def test_aead_empty_plaintext() -> None:
    assert aead.open_sealed(KEY, aead.seal(KEY, b"", aad=b""), aad=b"") == b""


def test_aead_nonces_are_random() -> None:
    assert aead.seal(KEY, b"x", aad=b"") != aead.seal(KEY, b"x", aad=b"")


def test_generate_key_is_random_256_bit() -> None:
    keys = {aead.generate_key() for _ in range(8)}
    assert len(keys) == 8
    assert all(len(k) == aead.KEY_SIZE == 32 for k in keys)


@pytest.mark.parametrize(
    "position",
    ["version", "nonce-first", "nonce-last", "ciphertext", "tag-first", "tag-last"],
)
def test_aead_detects_every_bit_flip(position: str) -> None:
    sealed = aead.seal(KEY, b"0123456789abcdef", aad=b"ctx")
    index = {
        "version": 0,
        "nonce-first": 1,
        "nonce-last": aead.NONCE_SIZE,
        "ciphertext": 1 + aead.NONCE_SIZE + 3,
        "tag-first": len(sealed) - aead.TAG_SIZE,
        "tag-last": len(sealed) - 1,
    }[position]
    with pytest.raises(IntegrityError):
        aead.open_sealed(KEY, flip(sealed, index), aad=b"ctx")


def test_aead_every_single_byte_alteration_fails() -> None:
    sealed = aead.seal(KEY, b"short", aad=b"a")
    for index in range(len(sealed)):
        with pytest.raises(IntegrityError):
            aead.open_sealed(KEY, flip(sealed, index, 0x80), aad=b"a")


def test_aead_wrong_aad_wrong_key_truncation() -> None:
    sealed = aead.seal(KEY, b"payload", aad=b"org-1")
    with pytest.raises(IntegrityError):
        aead.open_sealed(KEY, sealed, aad=b"org-2")
    with pytest.raises(IntegrityError):
        aead.open_sealed(KEY, sealed, aad=flip(b"org-1", 0))
    with pytest.raises(IntegrityError) as excinfo:
        aead.open_sealed(OTHER_KEY, sealed, aad=b"org-1")
    with pytest.raises(IntegrityError):
        aead.open_sealed(KEY, sealed[:-1], aad=b"org-1")
    with pytest.raises(IntegrityError):
        aead.open_sealed(KEY, b"", aad=b"org-1")
    message = str(excinfo.value)
    assert "authentication" in message
    assert KEY.hex() not in message and OTHER_KEY.hex() not in message


def test_aead_rejects_wrong_key_length() -> None:
    with pytest.raises(InvalidInputError):
        aead.seal(b"short", b"x", aad=b"")
    with pytest.raises(InvalidInputError):
        aead.open_sealed(KEY[:16], aead.seal(KEY, b"x", aad=b""), aad=b"")


# -- STREAM ----------------------------------------------------------------------------------

CHUNK = 16
SEALED_CHUNK = CHUNK + aead.TAG_SIZE


def encrypt(plaintext: bytes, *, key: bytes = KEY, aad: bytes = b"obj", chunk: int = CHUNK):
    sink = io.BytesIO()
    result = stream.encrypt_stream(key, io.BytesIO(plaintext), sink, aad=aad, chunk_size=chunk)
    return sink.getvalue(), result


def decrypt(ciphertext: bytes, *, key: bytes = KEY, aad: bytes = b"obj") -> bytes:
    return b"".join(stream.decrypt_stream(key, io.BytesIO(ciphertext), aad=aad))


def split(ciphertext: bytes) -> tuple[bytes, list[bytes]]:
    header, body = ciphertext[: stream.HEADER_SIZE], ciphertext[stream.HEADER_SIZE :]
    return header, [body[i : i + SEALED_CHUNK] for i in range(0, len(body), SEALED_CHUNK)]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 7])
def test_stream_round_trip(size: int) -> None:
    plaintext = os.urandom(size)
    ciphertext, result = encrypt(plaintext)
    assert result == stream.StreamResult(size, hashlib.sha256(plaintext).hexdigest())
    full_chunks = size // CHUNK
    # every full chunk, then a strictly shorter final chunk (empty when size % CHUNK == 0)
    expected_len = stream.HEADER_SIZE + full_chunks * SEALED_CHUNK + (size % CHUNK) + 16
    assert len(ciphertext) == expected_len
    assert decrypt(ciphertext) == plaintext


def test_stream_default_chunk_size_round_trip() -> None:
    plaintext = os.urandom(stream.CHUNK_SIZE + 5)
    sink = io.BytesIO()
    stream.encrypt_stream(KEY, io.BytesIO(plaintext), sink, aad=b"")
    sink.seek(0)
    chunks = list(stream.decrypt_stream(KEY, sink, aad=b""))
    assert [len(c) for c in chunks] == [stream.CHUNK_SIZE, 5]
    assert b"".join(chunks) == plaintext


def test_stream_yields_chunk_by_chunk() -> None:
    ciphertext, _ = encrypt(b"a" * (3 * CHUNK + 1))
    chunks = list(stream.decrypt_stream(KEY, io.BytesIO(ciphertext), aad=b"obj"))
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 1]


def test_stream_same_input_encrypts_differently() -> None:
    assert encrypt(b"same")[0] != encrypt(b"same")[0]


PLAIN = bytes(range(3 * CHUNK + 5))  # three full chunks and a 5-byte final chunk


def test_stream_detects_truncation_at_chunk_boundary() -> None:
    ciphertext, _ = encrypt(PLAIN)
    header, chunks = split(ciphertext)
    assert len(chunks) == 4
    for keep in range(4):  # drop the final chunk(s): ends on a full, non-final chunk
        with pytest.raises(IntegrityError):
            decrypt(header + b"".join(chunks[:keep]))


def test_stream_detects_truncation_inside_a_chunk_and_header() -> None:
    ciphertext, _ = encrypt(PLAIN)
    for cut in (1, stream.HEADER_SIZE - 1, stream.HEADER_SIZE + 5, len(ciphertext) - 1):
        with pytest.raises(IntegrityError):
            decrypt(ciphertext[:cut])


def test_stream_detects_dropping_the_empty_final_chunk() -> None:
    ciphertext, _ = encrypt(bytes(2 * CHUNK))
    header, chunks = split(ciphertext)
    assert len(chunks[-1]) == aead.TAG_SIZE  # the empty final chunk
    with pytest.raises(IntegrityError):
        decrypt(header + b"".join(chunks[:-1]))


def test_stream_detects_dropped_chunk() -> None:
    header, chunks = split(encrypt(PLAIN)[0])
    with pytest.raises(IntegrityError):
        decrypt(header + chunks[0] + chunks[2] + chunks[3])


def test_stream_detects_swapped_chunks() -> None:
    header, chunks = split(encrypt(PLAIN)[0])
    with pytest.raises(IntegrityError):
        decrypt(header + chunks[1] + chunks[0] + chunks[2] + chunks[3])


def test_stream_detects_appended_bytes_and_chunks() -> None:
    ciphertext, _ = encrypt(PLAIN)
    _, chunks = split(ciphertext)
    for tail in (b"\x00", os.urandom(SEALED_CHUNK), chunks[-1], chunks[0]):
        with pytest.raises(IntegrityError):
            decrypt(ciphertext + tail)


def test_stream_detects_chunk_from_another_stream_with_same_key() -> None:
    header_a, chunks_a = split(encrypt(PLAIN)[0])
    _, chunks_b = split(encrypt(PLAIN)[0])
    with pytest.raises(IntegrityError):
        decrypt(header_a + chunks_a[0] + chunks_b[1] + chunks_a[2] + chunks_a[3])


def test_stream_detects_every_header_edit() -> None:
    ciphertext, _ = encrypt(PLAIN)
    for index in range(stream.HEADER_SIZE):
        with pytest.raises(IntegrityError):
            decrypt(flip(ciphertext, index))


def test_stream_detects_ciphertext_flip_wrong_key_wrong_aad() -> None:
    ciphertext, _ = encrypt(PLAIN)
    with pytest.raises(IntegrityError):
        decrypt(flip(ciphertext, stream.HEADER_SIZE + 2 * SEALED_CHUNK + 3))
    with pytest.raises(IntegrityError):
        decrypt(ciphertext, key=OTHER_KEY)
    with pytest.raises(IntegrityError):
        decrypt(ciphertext, aad=b"other-object")


def test_stream_releases_final_chunk_only_when_nothing_follows() -> None:
    ciphertext, _ = encrypt(b"x" * (CHUNK + 3))
    received: list[bytes] = []
    with pytest.raises(IntegrityError):
        for chunk in stream.decrypt_stream(KEY, io.BytesIO(ciphertext + b"junk"), aad=b"obj"):
            received.append(chunk)
    assert received == [b"x" * CHUNK]  # the authentic final chunk was withheld


def test_stream_binds_the_last_chunk_flag() -> None:
    """White-box: a short chunk sealed as *non-final* must not be accepted as the final chunk.

    Length-based framing already stops truncation of honest streams; the flag in the nonce makes
    the final/non-final decision itself authenticated (the STREAM construction's guarantee).
    """
    salt, prefix = os.urandom(stream.SALT_SIZE), os.urandom(stream.PREFIX_SIZE)
    header = stream._HEADER.pack(stream.MAGIC, stream.FORMAT_VERSION, CHUNK, salt, prefix)
    aes = aead.cipher(stream._subkey(KEY, salt))
    aad = header + b"obj"
    short_non_final = aes.encrypt(stream._nonce(prefix, 0, False), b"tail", aad)
    with pytest.raises(IntegrityError):
        decrypt(header + short_non_final)
    short_final = aes.encrypt(stream._nonce(prefix, 0, True), b"tail", aad)
    assert decrypt(header + short_final) == b"tail"


class NoEofReader(io.RawIOBase):
    """Returns 0 once at the end of ``data`` and then whatever ``more`` holds."""

    def __init__(self, data: bytes, more: bytes) -> None:
        self._parts = [data, b"", more]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while self._parts:
            part = self._parts[0]
            if not part:
                self._parts.pop(0)
                return 0
            n = min(len(buffer), len(part))
            buffer[:n] = part[:n]
            if n == len(part):
                self._parts.pop(0)
            else:
                self._parts[0] = part[n:]
            return n
        return 0


def test_stream_rejects_data_after_the_final_chunk() -> None:
    ciphertext, _ = encrypt(b"abc")
    with pytest.raises(IntegrityError):
        b"".join(stream.decrypt_stream(KEY, NoEofReader(ciphertext, b"more"), aad=b"obj"))


class Trickle(io.RawIOBase):
    """A raw stream returning at most 3 bytes per read, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(min(3, len(buffer)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_stream_handles_short_reads() -> None:
    plaintext = os.urandom(4 * CHUNK + 9)
    sink = io.BytesIO()
    stream.encrypt_stream(KEY, Trickle(plaintext), sink, aad=b"obj", chunk_size=CHUNK)
    chunks = list(stream.decrypt_stream(KEY, Trickle(sink.getvalue()), aad=b"obj"))
    assert b"".join(chunks) == plaintext


def test_stream_rejects_bad_chunk_size() -> None:
    for bad in (0, stream.MAX_CHUNK_SIZE + 1):
        with pytest.raises(InvalidInputError):
            stream.encrypt_stream(KEY, io.BytesIO(b""), io.BytesIO(), aad=b"", chunk_size=bad)


def test_decrypt_to_file_success(tmp_path: Path) -> None:
    plaintext = os.urandom(3 * CHUNK + 2)
    ciphertext, result = encrypt(plaintext)
    target = tmp_path / "out.pdf"
    assert stream.decrypt_to_file(KEY, io.BytesIO(ciphertext), target, aad=b"obj") == result
    assert target.read_bytes() == plaintext
    assert os.listdir(tmp_path) == ["out.pdf"]


def test_decrypt_to_file_is_all_or_nothing(tmp_path: Path) -> None:
    ciphertext, _ = encrypt(os.urandom(3 * CHUNK + 2))
    target = tmp_path / "out.pdf"
    tampered = flip(ciphertext, len(ciphertext) - 1)  # only the final chunk is bad
    with pytest.raises(IntegrityError):
        stream.decrypt_to_file(KEY, io.BytesIO(tampered), target, aad=b"obj")
    assert os.listdir(tmp_path) == []  # no destination, no temporary file
    target.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        stream.decrypt_to_file(KEY, io.BytesIO(tampered), target, aad=b"obj")
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["out.pdf"]


class PatternSource(io.RawIOBase):
    """``total`` bytes produced by a generator, never materialised at once."""

    def __init__(self, total: int, block: bytes) -> None:
        self._blocks = self._generate(total, block)
        self._pending = memoryview(b"")

    @staticmethod
    def _generate(total: int, block: bytes) -> Iterator[bytes]:
        while total > 0:
            piece = block[: min(total, len(block))]
            total -= len(piece)
            yield piece

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if not self._pending:
            self._pending = memoryview(next(self._blocks, b""))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class HashingSink(io.RawIOBase):
    def __init__(self, target) -> None:  # type: ignore[no-untyped-def]
        self.digest = hashlib.sha256()
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        self.digest.update(data)
        return self._target.write(data)


def test_streaming_64_mib_keeps_memory_far_below_object_size(tmp_path: Path) -> None:
    total = 64 << 20
    block = os.urandom(300_000)  # not a divisor of the chunk size: exercises partial reads
    expected = hashlib.sha256()
    for piece in PatternSource._generate(total, block):
        expected.update(piece)
    key = aead.generate_key()
    encrypted = tmp_path / "big.enc"

    tracemalloc.start()
    try:
        with encrypted.open("wb") as raw:
            result = stream.encrypt_stream(
                key, PatternSource(total, block), HashingSink(raw), aad=b"big"
            )
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        size = 0
        with encrypted.open("rb") as source:
            for chunk in stream.decrypt_stream(key, source, aad=b"big"):
                digest.update(chunk)
                size += len(chunk)
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.plaintext_size == size == total
    assert result.plaintext_sha256 == digest.hexdigest() == expected.hexdigest()
    assert encrypted.stat().st_size > total  # it really went through the file
    assert encrypt_peak < 8 << 20, encrypt_peak  # a few 1 MiB chunks, not 64 MiB
    assert decrypt_peak < 8 << 20, decrypt_peak


# -- hashing ---------------------------------------------------------------------------------

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sha256_helpers(tmp_path: Path) -> None:
    assert sha256_hex(b"abc") == ABC_SHA256
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == ABC_SHA256
    assert sha256_file(str(path)) == ABC_SHA256
    big = os.urandom(3 << 20)
    assert sha256_file(io.BytesIO(big)) == hashlib.sha256(big).hexdigest()


def test_constant_time_equal() -> None:
    assert equal(ABC_SHA256, ABC_SHA256)
    assert not equal(ABC_SHA256, ABC_SHA256[:-1] + "0")
    assert equal(b"\x00\xff", b"\x00\xff")
    assert not equal("a", "ab")
    assert equal("é", "é".encode())


# -- encodings and atomic writes --------------------------------------------------------------


def test_encode_fields_is_unambiguous_and_round_trips() -> None:
    assert encode_fields("ab", "c") != encode_fields("a", "bc")
    assert encode_fields("1") != encode_fields(1)
    assert encode_fields(b"x") != encode_fields("x")
    fields = ["org", b"\x00\x01", 42, -1, ""]
    assert decode_fields(encode_fields(*fields)) == fields
    with pytest.raises(TypeError):
        encode_fields(True)


@pytest.mark.parametrize(
    "data", [b"s", b"s\x00\x00\x00\x05ab", b"x\x00\x00\x00\x00", b"i\x00\x00\x00\x0201"]
)
def test_decode_fields_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_fields(data)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield b"half"
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        atomic_write(tmp_path / "f", failing())
    assert os.listdir(tmp_path) == []
    assert atomic_write(tmp_path / "f", [b"ab", b"c"]) == 3
    assert (tmp_path / "f").read_bytes() == b"abc"
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


def test_atomic_write_no_clobber(tmp_path: Path) -> None:
    target = tmp_path / "root"
    atomic_write(target, [b"first"], no_clobber=True)
    with pytest.raises(FileExistsError):
        atomic_write(target, [b"second"], no_clobber=True)
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["root"]
