"""Evidence records hold references only: hashes, a contract UUID and a known event type."""

from __future__ import annotations

import hashlib
import json

import pytest

from pactvault.canonical import canonical_json
from pactvault.ledger.errors import EvidenceRecordError
from pactvault.ledger.merkle import leaf_hash
from pactvault.ledger.records import EVENT_TYPES, EvidenceRecord

DOC = hashlib.sha256(b"document").hexdigest()
SIG = hashlib.sha256(b"signature").hexdigest()
CONTRACT = "0b9f0a1e-7a31-4b7e-9d43-3f6f1c1a1b2c"


def test_record_is_canonical_json_of_its_set_fields() -> None:
    record = EvidenceRecord(
        "contract.sign", contract_id=CONTRACT, document_sha256=DOC, signature_sha256=SIG
    )
    data = record.encode()
    assert data == canonical_json(
        {"v": 1, "type": "contract.sign", "contract_id": CONTRACT,
         "document_sha256": DOC, "signature_sha256": SIG}
    )
    assert json.loads(data)["type"] == "contract.sign" and b"null" not in data
    assert record.leaf_hash() == leaf_hash(data)
    assert EvidenceRecord.decode(data) == record


def test_only_type_is_required() -> None:
    for event in EVENT_TYPES:
        assert EvidenceRecord.decode(EvidenceRecord(event).encode()).type == event


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "contract.signed-by-alice"},
        {"type": "contract.sign", "contract_id": "Alice Zhang"},
        {"type": "contract.sign", "contract_id": CONTRACT.upper()},
        {"type": "contract.sign", "contract_id": "{" + CONTRACT + "}"},
        {"type": "contract.sign", "document_sha256": "alice@example.com"},
        {"type": "contract.sign", "document_sha256": DOC.upper()},
        {"type": "contract.sign", "document_sha256": DOC[:-1]},
        {"type": "contract.sign", "signature_sha256": DOC + "\n"},
        {"type": "contract.sign", "timestamp_token_sha256": "张三的合同"},
        {"type": "contract.sign", "certificate_sha256": b"\x00" * 32},
        {"type": "contract.sign", "audit_entry_sha256": 12345},
    ],
)
def test_anything_that_could_be_content_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(EvidenceRecordError):
        EvidenceRecord(**fields)  # type: ignore[arg-type]


def test_unknown_fields_cannot_be_smuggled_in() -> None:
    with pytest.raises(TypeError):
        EvidenceRecord("contract.sign", signer_name="Alice")  # type: ignore[call-arg]
    with pytest.raises(EvidenceRecordError, match="unknown evidence fields"):
        EvidenceRecord.decode(canonical_json({"v": 1, "type": "contract.sign", "email": "a@b"}))


@pytest.mark.parametrize(
    "data",
    [
        b'{"type":"contract.sign"}',  # no version
        b'{"type":"contract.sign","v":2}',
        b'{"type": "contract.sign", "v": 1}',  # not compact
        b'{"v":1,"type":"contract.sign"}',  # keys not sorted
        b'{"type":"contract.sign","v":true}',
        b"not json",
        b"\xff",
    ],
)
def test_decode_accepts_only_the_canonical_bytes(data: bytes) -> None:
    with pytest.raises(EvidenceRecordError):
        EvidenceRecord.decode(data)
