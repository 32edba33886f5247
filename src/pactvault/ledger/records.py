"""Evidence records: what one ledger leaf says, in canonical JSON, hashes only.

The ledger is public evidence that outlives tenants: when an organisation's keys are destroyed its
documents become unreadable, but the log must stay verifiable and must not leak anything. So a
record can only hold values that are *references* — SHA-256 digests (lowercase hex), a contract's
UUID, an audit journal sequence number and an event type from a fixed list — and the constructor
refuses everything else. There is no free-text field on purpose: names, e-mail addresses, titles
or document bytes have no way in.

The leaf data is the record's canonical JSON (sorted keys, compact, UTF-8; absent fields left
out) with a format version ``v``, so anyone can re-hash an exported record with an ordinary JSON
library and find its leaf.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

from pactvault.canonical import canonical_json
from pactvault.ledger.errors import EvidenceRecordError
from pactvault.ledger.merkle import leaf_hash

__all__ = ["EVENT_TYPES", "RECORD_VERSION", "EvidenceRecord"]

RECORD_VERSION = 1

# Named like the audit journal's actions, so a leaf and its audit entry read alike.
EVENT_TYPES = frozenset(
    {
        "contract.create",  # original document uploaded: its hash
        "contract.send",  # prepared revision sent for signing
        "contract.sign",  # one signature: revision, signature, timestamp, certificate
        "contract.complete",  # completion seal over the final revision
        "contract.decline",
        "contract.void",
        "contract.expire",
        "document.revision",  # any other new revision of a contract's document
        "audit.anchor",  # head of the audit journal's hash chain
    }
)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class EvidenceRecord:
    """One ledger leaf. Every field but ``type`` is optional; all are validated on creation."""

    type: str
    contract_id: str | None = None
    document_sha256: str | None = None  # the document revision this event concerns
    signature_sha256: str | None = None  # the CMS signature bytes
    timestamp_token_sha256: str | None = None  # the RFC 3161 token
    certificate_sha256: str | None = None  # fingerprint of the signer's certificate (DER)
    audit_entry_sha256: str | None = None  # entry_hash of the matching audit journal entry
    # "contract.sign" only: the step-up proof (second factor bound to the document) spent on it.
    stepup_proof_sha256: str | None = None
    # "audit.anchor" only: the seq of the journal entry whose entry_hash is audit_entry_sha256, so
    # the anchor names which prefix of the hash chain it commits to.
    audit_seq: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or self.type not in EVENT_TYPES:
            raise EvidenceRecordError(f"unknown evidence event type {self.type!r}")
        if self.contract_id is not None and not _matches(_UUID, self.contract_id):
            raise EvidenceRecordError("contract_id must be a lowercase UUID")
        if self.audit_seq is not None and (
            type(self.audit_seq) is not int or not 1 <= self.audit_seq < 1 << 63
        ):
            raise EvidenceRecordError("audit_seq must be a positive integer")
        for f in fields(self):
            if f.name.endswith("_sha256"):
                value = getattr(self, f.name)
                if value is not None and not _matches(_SHA256_HEX, value):
                    raise EvidenceRecordError(f"{f.name} must be a lowercase hex SHA-256 digest")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }
        data["v"] = RECORD_VERSION
        return data

    def encode(self) -> bytes:
        """The leaf data: canonical JSON of :meth:`to_dict`."""
        return canonical_json(self.to_dict())

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> EvidenceRecord:
        """Parse leaf data, accepting only the exact canonical bytes :meth:`encode` produces."""
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EvidenceRecordError("evidence record is not JSON") from None
        if not isinstance(parsed, dict) or parsed.get("v") != RECORD_VERSION:
            raise EvidenceRecordError("evidence record has an unknown format version")
        parsed.pop("v")
        known = {f.name for f in fields(cls)}
        if not set(parsed) <= known:
            raise EvidenceRecordError(f"unknown evidence fields: {sorted(set(parsed) - known)}")
        record = cls(**parsed)
        if record.encode() != bytes(data):
            raise EvidenceRecordError("evidence record is not in canonical form")
        return record


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None
