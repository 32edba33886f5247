"""The backup manifest: what one backup holds, hashed and signed.

Layout of a destination (a directory, or a bucket + prefix)::

    pactvault-backups.json              marker: which instance writes here (one instance each)
    backup-signing-key.pem              the manifest verification key (Ed25519, SPKI PEM)
    objects/sha256/ab/abcd…             blobs exactly as stored (already encrypted), named by the
                                        SHA-256 of their bytes: shared by every backup, copied once
    backups/<id>/database.pvbk          the database snapshot, encrypted with the backup's data key
    backups/<id>/catalog.pvbk           blob key → object hash (encrypted: blob keys name
                                        organisations and contracts)
    backups/<id>/manifest.sig           raw Ed25519 signature over manifest.json's exact bytes
    backups/<id>/manifest.json          canonical JSON, written last: a backup exists once its
                                        manifest does

A backup id is ``YYYYMMDDTHHMMSSZ-<8 hex>`` (UTC snapshot time), so ids sort by time and can be
used as path segments safely (they are validated wherever read).

The manifest records every object (name, SHA-256, size; blobs as ``[sha256, size]`` pairs whose
name derives from the hash), the instance id, the database kind and schema heads, the evidence
ledger's size and root and the audit journal's head *as of the snapshot*, a few counts, the root
key version and the per-backup data key wrapped under it, and the signing key. It holds hashes
and ids only — no contract content, no personal data.

Anyone can check a manifest without pactvault::

    openssl pkeyutl -verify -pubin -inkey backup-signing-key.pem -rawin \
        -in manifest.json -sigfile manifest.sig
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pactvault.backup.errors import BackupIntegrityError
from pactvault.canonical import canonical_json

__all__ = [
    "BlobObject",
    "Manifest",
    "StoredFile",
    "backup_id_for",
    "catalog_name",
    "database_name",
    "manifest_name",
    "object_name",
    "signature_name",
]

FORMAT = "pactvault-backup-manifest"
FORMAT_VERSION = 1
BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
FILE_ROLES = ("database", "catalog")
DATABASE_KINDS = ("sqlite", "postgresql")
MARKER_NAME = "pactvault-backups.json"
PUBLIC_KEY_NAME = "backup-signing-key.pem"
OBJECTS_PREFIX = "objects/sha256/"
_KEYS = {
    "format",
    "format_version",
    "backup_id",
    "instance_id",
    "created_at",
    "pactvault_version",
    "database",
    "state",
    "encryption",
    "signing_key",
    "files",
    "blobs",
    "missing_blobs",
}
BACKUPS_PREFIX = "backups/"


def backup_id_for(moment: datetime, suffix: str) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}-{suffix}"


def check_backup_id(backup_id: str) -> str:
    if not isinstance(backup_id, str) or not BACKUP_ID.fullmatch(backup_id):
        raise ValueError(f"{backup_id!r} is not a backup id (YYYYMMDDTHHMMSSZ-xxxxxxxx)")
    return backup_id


def manifest_name(backup_id: str) -> str:
    return f"{BACKUPS_PREFIX}{check_backup_id(backup_id)}/manifest.json"


def signature_name(backup_id: str) -> str:
    return f"{BACKUPS_PREFIX}{check_backup_id(backup_id)}/manifest.sig"


def database_name(backup_id: str) -> str:
    return f"{BACKUPS_PREFIX}{check_backup_id(backup_id)}/database.pvbk"


def catalog_name(backup_id: str) -> str:
    return f"{BACKUPS_PREFIX}{check_backup_id(backup_id)}/catalog.pvbk"


def object_name(sha256: str) -> str:
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return f"{OBJECTS_PREFIX}{sha256[:2]}/{sha256}"


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class StoredFile:
    """A per-backup encrypted file: its ciphertext's hash and size, and its plaintext's."""

    role: str
    name: str
    sha256: str
    size: int
    plaintext_sha256: str
    plaintext_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "plaintext_sha256": self.plaintext_sha256,
            "plaintext_size": self.plaintext_size,
        }


@dataclass(frozen=True)
class BlobObject:
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return object_name(self.sha256)


@dataclass(frozen=True)
class Manifest:
    backup_id: str
    instance_id: str
    created_at: datetime
    pactvault_version: str
    database_kind: str
    schema_heads: tuple[str, ...]
    ledger_size: int
    ledger_root: str
    audit_seq: int
    audit_head: str
    counts: dict[str, int]
    root_key_version: int
    wrapped_data_key: bytes
    signing_key: bytes
    files: tuple[StoredFile, ...]
    blobs: tuple[BlobObject, ...]
    missing_blobs: int = 0

    def file(self, role: str) -> StoredFile:
        for stored in self.files:
            if stored.role == role:
                return stored
        raise BackupIntegrityError(f"the manifest of backup {self.backup_id} lists no {role}")

    def objects(self) -> list[tuple[str, str, int]]:
        """Every object the backup needs: (name, sha256, size), per-backup files first."""
        return [(f.name, f.sha256, f.size) for f in self.files] + [
            (b.name, b.sha256, b.size) for b in self.blobs
        ]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files) + sum(b.size for b in self.blobs)

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "backup_id": self.backup_id,
                "instance_id": self.instance_id,
                "created_at": _time(self.created_at),
                "pactvault_version": self.pactvault_version,
                "database": {"kind": self.database_kind, "schema_heads": list(self.schema_heads)},
                "state": {
                    "ledger": {"tree_size": self.ledger_size, "root_hash": self.ledger_root},
                    "audit": {"last_seq": self.audit_seq, "head_hash": self.audit_head},
                    "counts": dict(self.counts),
                },
                "encryption": {
                    "algorithm": "AES-256-GCM STREAM (pactvault PVS1), data key per backup",
                    "root_key_version": self.root_key_version,
                    "wrapped_data_key": self.wrapped_data_key.hex(),
                },
                "signing_key": {"algorithm": "ed25519", "public_key": self.signing_key.hex()},
                "files": [f.to_json() for f in self.files],
                "blobs": [[b.sha256, b.size] for b in self.blobs],
                "missing_blobs": self.missing_blobs,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, expected_id: str | None = None) -> Manifest:
        """Parse and validate strictly; anything unexpected → BackupIntegrityError."""
        where = f"backup {expected_id}" if expected_id else "a backup"
        try:
            doc = json.loads(data)
            manifest = cls._from_json(doc)
        except BackupIntegrityError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise BackupIntegrityError(f"the manifest of {where} is malformed") from None
        if expected_id is not None and manifest.backup_id != expected_id:
            raise BackupIntegrityError(f"the manifest stored as {where} names another backup")
        if canonical_json(doc) != data:
            raise BackupIntegrityError(f"the manifest of {where} is not in canonical form")
        return manifest

    @classmethod
    def _from_json(cls, doc: dict[str, Any]) -> Manifest:
        if doc["format"] != FORMAT or doc["format_version"] != FORMAT_VERSION:
            raise ValueError("unknown manifest format")
        if set(doc) != _KEYS:
            raise ValueError("unexpected manifest fields")
        backup_id = check_backup_id(doc["backup_id"])
        database = doc["database"]
        if database["kind"] not in DATABASE_KINDS:
            raise ValueError("unknown database kind")
        state = doc["state"]
        files = tuple(
            StoredFile(
                role=_choice(f["role"], FILE_ROLES),
                name=_str(f["name"]),
                sha256=_sha(f["sha256"]),
                size=_count(f["size"]),
                plaintext_sha256=_sha(f["plaintext_sha256"]),
                plaintext_size=_count(f["plaintext_size"]),
            )
            for f in doc["files"]
        )
        expected = {"database": database_name(backup_id), "catalog": catalog_name(backup_id)}
        if sorted(f.role for f in files) != sorted(FILE_ROLES) or any(
            f.name != expected[f.role] for f in files
        ):
            raise ValueError("unexpected per-backup files")
        blobs = tuple(BlobObject(_sha(sha), _count(size)) for sha, size in doc["blobs"])
        if len({b.sha256 for b in blobs}) != len(blobs):
            raise ValueError("duplicate blob objects")
        signing = doc["signing_key"]
        encryption = doc["encryption"]
        if signing["algorithm"] != "ed25519":
            raise ValueError("unknown signing algorithm")
        signing_key = bytes.fromhex(signing["public_key"])
        if len(signing_key) != 32:
            raise ValueError("bad signing key")
        counts = {str(k): _count(v) for k, v in state["counts"].items()}
        return cls(
            backup_id=backup_id,
            instance_id=_str(doc["instance_id"]),
            created_at=_parse_time(doc["created_at"]),
            pactvault_version=_str(doc["pactvault_version"]),
            database_kind=database["kind"],
            schema_heads=tuple(_str(h) for h in database["schema_heads"]),
            ledger_size=_count(state["ledger"]["tree_size"]),
            ledger_root=_sha(state["ledger"]["root_hash"]),
            audit_seq=_count(state["audit"]["last_seq"]),
            audit_head=_sha(state["audit"]["head_hash"]),
            counts=counts,
            root_key_version=_count(encryption["root_key_version"]),
            wrapped_data_key=bytes.fromhex(encryption["wrapped_data_key"]),
            signing_key=signing_key,
            files=files,
            blobs=blobs,
            missing_blobs=_count(doc["missing_blobs"]),
        )


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError("bad string")
    return value


def _sha(value: Any) -> str:
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise ValueError("bad hash")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("bad count")
    return value


def _choice(value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError("bad choice")
    return str(value)


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError("bad time")
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
