"""The root key escrow record and its M-of-N custodian shares (the key ceremony's output).

**What is shared.** Ordinary backups never contain the root key, so a restore needs it from
elsewhere. ``pactvault backup export-root-key`` builds one *escrow record* and splits it with
:mod:`backup.shamir`::

    record = encode_fields("pactvault/root-key-escrow/v1", instance id, created at,
                           backup verification key (Ed25519, raw 32 bytes),
                           active root key version, number of versions,
                           version₁, key₁, version₂, key₂, …)
    secret = record ‖ SHA-256(record)[:16]

Carrying the backup verification (public) key inside the secret makes the shares the restore's
trust anchor as well: whoever rebuilds the root key also gets, authenticated, the key that backup
manifests must be signed with — a forged manifest at a compromised destination cannot pass.

**Detecting bad shares.** Shamir alone would silently rebuild a wrong secret, so:

* every share carries a 4-byte checksum (SHA-256 of its body): a mistyped share is refused and
  named before anything is combined;
* all shares of one ceremony carry the same random 8-byte *set id*, threshold and count: mixing
  ceremonies is refused;
* the rebuilt secret must end in the digest of its record: a share altered on purpose (with its
  checksum recomputed) yields a secret that fails this check, except with probability 2⁻¹²⁸;
* given more than ``threshold`` shares, every threshold-sized subset is tried until one rebuilds
  a valid record, and any share that does not lie on the same polynomials is named and refused.

**Printable form.** ``PVK1-`` then the share's bytes in RFC 4648 base32 (A-Z, 2-7: no 0/O or 1/I
confusion), in groups of five. Input is accepted in any case, with any spaces, dashes or line
breaks, so a share typed back from paper works.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from pactvault.backup import shamir
from pactvault.backup.errors import ShareError
from pactvault.crypto.encoding import decode_fields, encode_fields
from pactvault.crypto.hashing import equal

__all__ = [
    "EscrowRecord",
    "ParsedShare",
    "RootKeyMaterial",
    "combine_shares",
    "format_share",
    "parse_share",
    "split_record",
]

RECORD_LABEL = "pactvault/root-key-escrow/v1"
SHARE_PREFIX = "PVK1"
_MAGIC = b"PVK\x01"
_DIGEST_SIZE = 16
_CHECKSUM_SIZE = 4
_SET_ID_SIZE = 8
_HEADER_SIZE = len(_MAGIC) + _SET_ID_SIZE + 3
_MAX_SUBSETS = 5000
_SEPARATORS = re.compile(r"[\s\-_]+")


@dataclass(frozen=True)
class RootKeyMaterial:
    """Every version of the local key store's root key, and which one is active."""

    active_version: int
    keys: dict[int, bytes]

    def __post_init__(self) -> None:
        if self.active_version not in self.keys:
            raise ValueError("the active root key version is not among the keys")
        if any(len(key) != 32 for key in self.keys.values()):
            raise ValueError("root keys are 32 bytes")

    def same_as(self, other: RootKeyMaterial) -> bool:
        """Constant-time comparison of two materials (for ``import-root-key --check``)."""
        if self.active_version != other.active_version or set(self.keys) != set(other.keys):
            return False
        return all(equal(self.keys[v], other.keys[v]) for v in sorted(self.keys))


@dataclass(frozen=True)
class EscrowRecord:
    """What the shares rebuild: root key material plus the backup verification key."""

    instance_id: str
    created_at: str
    backup_public_key: bytes
    material: RootKeyMaterial

    def encode(self) -> bytes:
        fields: list[str | bytes | int] = [
            RECORD_LABEL,
            self.instance_id,
            self.created_at,
            self.backup_public_key,
            self.material.active_version,
            len(self.material.keys),
        ]
        for version in sorted(self.material.keys):
            fields += [version, self.material.keys[version]]
        record = encode_fields(*fields)
        return record + hashlib.sha256(record).digest()[:_DIGEST_SIZE]

    @classmethod
    def decode(cls, secret: bytes) -> EscrowRecord:
        """Parse a rebuilt secret; anything that does not check out → ShareError."""
        record, digest = secret[:-_DIGEST_SIZE], secret[-_DIGEST_SIZE:]
        if len(secret) <= _DIGEST_SIZE or not equal(
            hashlib.sha256(record).digest()[:_DIGEST_SIZE], digest
        ):
            raise ShareError(_NOT_VALID)
        try:
            fields = decode_fields(record)
        except (ValueError, UnicodeDecodeError):
            raise ShareError(_NOT_VALID) from None
        match fields[:6]:
            case [
                str() as label,
                str() as instance_id,
                str() as created_at,
                bytes() as public_key,
                int() as active,
                int() as count,
            ] if label == RECORD_LABEL and len(fields) == 6 + 2 * count and len(public_key) == 32:
                pass
            case _:
                raise ShareError(_NOT_VALID)
        keys: dict[int, bytes] = {}
        for version, key in zip(fields[6::2], fields[7::2], strict=True):
            if not isinstance(version, int) or not isinstance(key, bytes) or version in keys:
                raise ShareError(_NOT_VALID)
            keys[version] = key
        try:
            material = RootKeyMaterial(active, keys)
        except ValueError:
            raise ShareError(_NOT_VALID) from None
        return cls(instance_id, created_at, public_key, material)


_NOT_VALID = (
    "the shares do not rebuild a valid root key: one of them is wrong or was tampered with "
    "(add another custodian's share to find out which)"
)


@dataclass(frozen=True)
class ParsedShare:
    set_id: bytes
    threshold: int
    count: int
    number: int  # the x-coordinate, 1 … count
    values: bytes

    @property
    def set_label(self) -> str:
        return self.set_id.hex()


def split_record(record: EscrowRecord, *, shares: int, threshold: int) -> list[str]:
    """The printable shares of ``record``: any ``threshold`` of the ``shares`` rebuild it."""
    if not 2 <= threshold <= shares <= shamir.MAX_SHARES:
        raise ShareError(
            f"choose 2 ≤ threshold ≤ shares ≤ {shamir.MAX_SHARES} (got {threshold} of {shares})"
        )
    set_id = secrets.token_bytes(_SET_ID_SIZE)
    pieces = shamir.split(record.encode(), shares=shares, threshold=threshold)
    return [
        format_share(ParsedShare(set_id, threshold, shares, number, values))
        for number, values in pieces
    ]


def _checksum(body: bytes) -> bytes:
    return hashlib.sha256(b"pactvault/share-check/v1" + body).digest()[:_CHECKSUM_SIZE]


def format_share(share: ParsedShare) -> str:
    body = (
        _MAGIC + share.set_id + bytes([share.threshold, share.count, share.number]) + share.values
    )
    text = base64.b32encode(body + _checksum(body)).decode("ascii").rstrip("=")
    groups = [text[i : i + 5] for i in range(0, len(text), 5)]
    return "-".join([SHARE_PREFIX, *groups])


def parse_share(text: str, *, position: int | None = None) -> ParsedShare:
    """Decode one printed share; a typo (checksum) or a non-share → ShareError naming it."""
    where = f"share #{position}" if position is not None else "the share"
    compact = _SEPARATORS.sub("", text or "").upper()
    if not compact.startswith(SHARE_PREFIX):
        raise ShareError(f"{where} is not a pactvault root key share (it starts with PVK1)")
    payload = compact[len(SHARE_PREFIX) :]
    try:
        raw = base64.b32decode(payload + "=" * (-len(payload) % 8))
    except (binascii.Error, ValueError):
        raise ShareError(f"{where} contains characters that are not base32 (A-Z, 2-7)") from None
    body, checksum = raw[:-_CHECKSUM_SIZE], raw[-_CHECKSUM_SIZE:]
    if len(raw) <= _HEADER_SIZE + _CHECKSUM_SIZE or not body.startswith(_MAGIC):
        raise ShareError(f"{where} is incomplete or not a pactvault root key share")
    if not equal(_checksum(body), checksum):
        raise ShareError(f"{where} fails its checksum: it was mistyped or altered")
    set_id = body[len(_MAGIC) : len(_MAGIC) + _SET_ID_SIZE]
    threshold, count, number = body[len(_MAGIC) + _SET_ID_SIZE : _HEADER_SIZE]
    if not 2 <= threshold <= count or not 1 <= number <= count:
        raise ShareError(f"{where} has an impossible share number or threshold")
    return ParsedShare(set_id, threshold, count, number, body[_HEADER_SIZE:])


def combine_shares(texts: Sequence[str]) -> EscrowRecord:
    """Rebuild the escrow record from printed shares, refusing too few or bad ones."""
    parsed = [parse_share(text, position=i) for i, text in enumerate(texts, start=1)]
    if not parsed:
        raise ShareError("no shares given")
    first = parsed[0]
    for share in parsed[1:]:
        if (share.set_id, share.threshold, share.count, len(share.values)) != (
            first.set_id,
            first.threshold,
            first.count,
            len(first.values),
        ):
            raise ShareError(
                "the shares come from different key ceremonies (their set ids, thresholds or "
                "lengths differ); use shares of one ceremony only"
            )
    by_number: dict[int, ParsedShare] = {}
    for share in parsed:
        known = by_number.get(share.number)
        if known is not None and not equal(known.values, share.values):
            raise ShareError(f"two different shares both claim to be share {share.number}")
        by_number[share.number] = share
    unique = [by_number[n] for n in sorted(by_number)]
    if len(unique) < first.threshold:
        raise ShareError(
            f"{first.threshold} different shares of set {first.set_label} are needed, "
            f"{len(unique)} given"
        )
    points = [(s.number, s.values) for s in unique]
    record: EscrowRecord | None = None
    basis: tuple[tuple[int, bytes], ...] = ()
    for subset in itertools.islice(itertools.combinations(points, first.threshold), _MAX_SUBSETS):
        try:
            record = EscrowRecord.decode(shamir.combine(subset))
        except ShareError:
            continue
        basis = subset
        break
    if record is None:
        raise ShareError(_NOT_VALID)
    # Every share must lie on the polynomials the valid subset defines.
    altered = [
        number for number, values in points if not equal(shamir.evaluate(basis, number), values)
    ]
    if altered:
        names = ", ".join(str(n) for n in altered)
        raise ShareError(
            f"share(s) {names} do not match the others: altered or from another ceremony; "
            "leave them out and check with their custodians"
        )
    return record
