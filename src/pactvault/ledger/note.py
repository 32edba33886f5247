"""C2SP signed notes (c2sp.org/signed-note): text plus one or more key-identified signatures.

A note is ``text`` (newline-terminated), a blank line, then lines ``— <key name> <base64(key ID ‖
signature)>``. Parsing is strict — anything malformed is rejected before any key is consulted —
and opening applies the spec's trust rules: signatures from unknown (name, key ID) pairs are
ignored, a known key whose signature fails rejects the whole note, and at least one known key
must have signed.

Verifiers are plain objects with ``name``, ``key_id`` and ``verify(text, signature)``, so the
log's Ed25519 key (type 0x01) and witness cosigners (type 0x04, ``witness.py``) plug in alike.
Keys come from the caller as ``cryptography`` objects; key storage is the key service's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pactvault.ledger.errors import NoteError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Ed25519NoteSigner",
    "Ed25519NoteVerifier",
    "Note",
    "NoteSignature",
    "OpenedNote",
    "Verifier",
    "add_signatures",
    "b64decode_strict",
    "check_key_name",
    "compute_key_id",
    "decode_verifier_key",
    "open_note",
    "parse_note",
    "parse_verifier_key",
    "raw_public_key",
    "sign_note",
    "verifier_key",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
_DASH = "— "  # U+2014 EM DASH, U+0020 SPACE


class Verifier(Protocol):
    """A trusted key: the (name, key ID) it signs under and how to check its signatures."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


def check_key_name(name: str) -> str:
    """Key names are non-empty, without Unicode spaces or ``+`` (which delimits key strings)."""
    if not name or "+" in name or any(ch.isspace() for ch in name) or not _text_ok(name):
        raise NoteError(f"invalid key name {name!r}")
    return name


def compute_key_id(name: str, algorithm: int, public_key: bytes) -> int:
    """SHA-256(name ‖ 0x0A ‖ algorithm ‖ public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def b64decode_strict(value: str) -> bytes:
    """Standard base64 with padding, accepted only in its one canonical spelling."""
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("invalid base64") from None
    if base64.b64encode(decoded).decode("ascii") != value:
        raise NoteError("non-canonical base64")
    return decoded


def verifier_key(name: str, algorithm: int, public_key: bytes) -> str:
    """The ``name+hex(key ID)+base64(algorithm ‖ public key)`` string verifiers are set up with."""
    check_key_name(name)
    key_id = compute_key_id(name, algorithm, public_key)
    encoded = base64.b64encode(bytes([algorithm]) + public_key).decode("ascii")
    return f"{name}+{key_id:08x}+{encoded}"


def decode_verifier_key(vkey: str) -> tuple[str, int, bytes]:
    """Split ``name+hex(key ID)+base64(type ‖ key)`` into (name, type, key), checking the ID."""
    parts = vkey.split("+", 2)  # the base64 key material may itself contain "+"
    if len(parts) != 3 or len(parts[1]) != 8:
        raise NoteError("malformed verifier key")
    name, key_hex, encoded = parts
    check_key_name(name)
    try:
        key_id = int(key_hex, 16)
    except ValueError:
        raise NoteError("malformed verifier key ID") from None
    if key_hex != f"{key_id:08x}":
        raise NoteError("malformed verifier key ID")
    material = b64decode_strict(encoded)
    if len(material) < 2:
        raise NoteError("verifier key has no key material")
    algorithm, public = material[0], material[1:]
    if compute_key_id(name, algorithm, public) != key_id:
        raise NoteError("verifier key ID does not match the key")
    return name, algorithm, public


def parse_verifier_key(vkey: str) -> Ed25519NoteVerifier:
    """A log verifier from its key string; only Ed25519 note keys (type 0x01) are accepted.

    Witness keys (type 0x04) have their own parser in ``witness.py``: a cosigner's key string
    configured as a log key would otherwise be a confusing half-trust.
    """
    return parse_ed25519_key(vkey, Ed25519NoteVerifier, "note")


def parse_ed25519_key(vkey: str, kind: type[_K], what: str) -> _K:
    """Decode a verifier key string into ``kind``, insisting on ``kind``'s algorithm byte."""
    name, algorithm, public = decode_verifier_key(vkey)
    if algorithm != kind.ALGORITHM or len(public) != 32:
        raise NoteError(f"not an Ed25519 {what} key (type 0x{algorithm:02x})")
    return kind(name, Ed25519PublicKey.from_public_bytes(public))


@dataclass(frozen=True)
class Ed25519Key:
    """A named Ed25519 public key of one signed-note algorithm (log key or witness key)."""

    ALGORITHM: ClassVar[int]
    name: str
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def key_id(self) -> int:
        return compute_key_id(self.name, self.ALGORITHM, raw_public_key(self.public_key))

    def key_string(self) -> str:
        return verifier_key(self.name, self.ALGORITHM, raw_public_key(self.public_key))


_K = TypeVar("_K", bound=Ed25519Key)


@dataclass(frozen=True)
class Ed25519NoteVerifier(Ed25519Key):
    """Checks type-0x01 Ed25519 signatures over the note text (signed-note §Ed25519)."""

    ALGORITHM: ClassVar[int] = ALG_ED25519

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Ed25519NoteSigner:
    """Signs note text with an Ed25519 key the caller holds (the key service unwraps it)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        self.verifier = Ed25519NoteVerifier(name, private_key.public_key())
        self.key_id = self.verifier.key_id

    def sign(self, text: str) -> NoteSignature:
        _check_text(text)
        return NoteSignature(self.name, self.key_id, self._key.sign(text.encode("utf-8")))


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes  # without the 4-byte key ID

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_DASH}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


@dataclass(frozen=True)
class OpenedNote:
    """A note with at least one verified signature from a trusted key."""

    note: Note
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]

    @property
    def text(self) -> str:
        return self.note.text


def _text_ok(value: str) -> bool:
    return all(ch == "\n" or ord(ch) >= 0x20 for ch in value)


def _check_text(text: str) -> None:
    if not text or not text.endswith("\n") or not _text_ok(text):
        raise NoteError("note text must be non-empty, end in a newline, have no control chars")


def sign_note(text: str, signers: Sequence[Ed25519NoteSigner]) -> str:
    if not signers:
        raise NoteError("a note needs at least one signature")
    return Note(text, tuple(s.sign(text) for s in signers)).encode()


def add_signatures(note: str, signatures: Iterable[NoteSignature]) -> str:
    """Append signature lines (e.g. witness cosignatures) to an encoded note."""
    parsed = parse_note(note)
    return Note(parsed.text, parsed.signatures + tuple(signatures)).encode()


def parse_note(data: str | bytes) -> Note:
    """Split a note into text and signatures, rejecting anything malformed."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not _text_ok(data):
        raise NoteError("note contains control characters")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no signature block")
    text, block = data[: split + 1], data[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("note does not end with a signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError("malformed signature line")
        fields = line[len(_DASH) :].split(" ")
        if len(fields) != 2:
            raise NoteError("malformed signature line")
        name, encoded = fields
        check_key_name(name)
        blob = b64decode_strict(encoded)
        if len(blob) < 5:
            raise NoteError("signature too short")
        signatures.append(NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return Note(text, tuple(signatures))


def open_note(data: str | bytes, verifiers: Sequence[Verifier]) -> OpenedNote:
    """Parse and verify a note against trusted keys, by the signed-note rules."""
    note = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    text = note.text.encode("utf-8")
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if not verifier.verify(text, sig.signature):
            raise NoteError(f"signature by {sig.name} does not verify")
        verified.setdefault((sig.name, sig.key_id), sig)
    if not verified:
        raise NoteError("note is not signed by any trusted key")
    return OpenedNote(note, tuple(verified.values()), tuple(unverified))
