"""Proof bundles: everything needed to check one contract's ledger evidence without our server.

A bundle is a JSON object::

    {
      "format": "pactvault-proof-bundle/1",
      "contract_id": "<uuid>",
      "verifier_key": "<origin>+<key id>+<base64 key>",
      "checkpoint": "<C2SP signed checkpoint note>",
      "leaves": [
        {"index": 7, "record": "<canonical JSON record>", "inclusion_proof": ["<base64>", …]},
        …
      ],
      "stepup_proofs": ["<canonical JSON step-up proof>", …]
    }

Each record is the exact leaf data (canonical JSON, hashes only: document revisions, signatures,
timestamps, certificates, audit entries); its RFC 9162 leaf hash with its inclusion proof must
lead to the checkpoint's root, and the checkpoint must be signed by the log key the *verifier*
trusts — the key inside the bundle is only a label and must agree with it. The last record that
names a document revision is the final document: given the PDF, its SHA-256 must match.

Every signature record carries the SHA-256 of its step-up proof — the second factor the signer
passed, bound to the document they signed ("real intention"). ``stepup_proofs`` holds those
proofs: each must hash to exactly one signature record's ``stepup_proof_sha256``, name the
document revision that signature was made on (the last document hash recorded before it), and
every such record must have its proof here. (A passkey proof's WebAuthn assertion can further be
re-checked against the credential's public key with ``identity.mfa.proof.verify_passkey_proof``;
that needs the ``webauthn`` package, so it is not part of this dependency-free check.)

:func:`verify_bundle` refuses on the first thing that does not hold, saying exactly what and
where. Only the standard library, ``cryptography`` and the pure ledger modules are used here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pactvault.errors import PactvaultError, VerificationError
from pactvault.ledger.checkpoint import Checkpoint, open_checkpoint
from pactvault.ledger.merkle import leaf_hash
from pactvault.ledger.note import b64decode_strict, parse_verifier_key
from pactvault.ledger.proofs import verify_inclusion
from pactvault.ledger.records import EvidenceRecord

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "VerifiedBundle",
    "make_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT = "pactvault-proof-bundle/1"
MAX_PROOF_LENGTH = 64  # a tree of 2⁶⁴ leaves has a shorter audit path
_KEYS = {"format", "contract_id", "verifier_key", "checkpoint", "leaves"}
_OPTIONAL_KEYS = {"stepup_proofs"}
#: ``identity.mfa.proof.PROOF_TYPE`` (not imported: this module stays dependency-free).
STEPUP_PROOF_TYPE = "pactvault/step-up-proof"
_LEAF_KEYS = {"index", "record", "inclusion_proof"}


class BundleError(VerificationError):
    """A proof bundle does not verify; ``detail`` says which part and why."""

    slug = "invalid-proof-bundle"
    title = "Proof bundle rejected"


@dataclass(frozen=True)
class VerifiedBundle:
    """What a bundle proved: these records are in the log the trusted key signs."""

    contract_id: str
    checkpoint: Checkpoint
    records: tuple[tuple[int, EvidenceRecord], ...]
    final_document_sha256: str | None
    pdf_checked: bool
    #: (signature leaf index, step-up method, verified at) for every signature in the bundle.
    stepups: tuple[tuple[int, str, str], ...] = ()


def make_bundle(
    contract_id: str,
    verifier_key: str,
    checkpoint_note: str,
    leaves: list[tuple[int, bytes, list[bytes]]],
    stepup_proofs: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble a bundle from (leaf index, leaf data, inclusion proof) triples and the step-up
    proofs (canonical JSON) of the contract's signatures."""
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "contract_id": contract_id,
        "verifier_key": verifier_key,
        "checkpoint": checkpoint_note,
        "leaves": [
            {
                "index": index,
                "record": data.decode("utf-8"),
                "inclusion_proof": [base64.b64encode(h).decode("ascii") for h in proof],
            }
            for index, data, proof in leaves
        ],
    }
    if stepup_proofs:
        bundle["stepup_proofs"] = list(stepup_proofs)
    return bundle


def verify_bundle(
    bundle: Mapping[str, Any] | str | bytes,
    trusted_vkey: str,
    pdf_bytes: bytes | None = None,
) -> VerifiedBundle:
    """Verify a proof bundle offline against the log key you trust; BundleError if anything is
    off. ``pdf_bytes``, if given, must be the final document the ledger records."""
    data = _load(bundle)
    contract_id = _text(data, "contract_id")
    try:
        verifier = parse_verifier_key(trusted_vkey.strip())
    except PactvaultError as exc:
        raise BundleError(f"the trusted log key is not usable: {exc.detail}") from None
    if _text(data, "verifier_key").strip() != verifier.key_string():
        raise BundleError("the bundle names a different log key than the one you trust")
    try:
        checkpoint = open_checkpoint(
            _text(data, "checkpoint"), origin=verifier.name, verifiers=[verifier]
        ).checkpoint
    except PactvaultError as exc:
        raise BundleError(f"checkpoint rejected: {exc.detail}") from None

    records = [_verify_leaf(entry, n, contract_id, checkpoint) for n, entry in _leaves(data)]
    indexes = [index for index, _ in records]
    if len(set(indexes)) != len(indexes):
        raise BundleError("the bundle lists the same leaf twice")
    records.sort(key=lambda item: item[0])
    stepups = _verify_stepups(records, data.get("stepup_proofs", []))
    final = _final_document(records)
    if pdf_bytes is not None:
        if final is None:
            raise BundleError("the bundle records no document revision to compare the PDF with")
        digest = hashlib.sha256(pdf_bytes).hexdigest()
        if digest != final[1]:
            raise BundleError(
                f"the PDF's SHA-256 is {digest}, but the last document revision in the ledger "
                f"(leaf {final[0]}) is {final[1]}"
            )
    return VerifiedBundle(
        contract_id=contract_id,
        checkpoint=checkpoint,
        records=tuple(records),
        final_document_sha256=final[1] if final else None,
        pdf_checked=pdf_bytes is not None,
        stepups=stepups,
    )


def _load(bundle: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(bundle, str | bytes):
        try:
            bundle = json.loads(bundle)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BundleError("the bundle is not JSON") from None
    if not isinstance(bundle, Mapping):
        raise BundleError("the bundle is not a JSON object")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a {BUNDLE_FORMAT} bundle")
    if not _KEYS <= set(bundle) <= _KEYS | _OPTIONAL_KEYS:
        raise BundleError(
            f"the bundle must have the fields {sorted(_KEYS)} (and may have "
            f"{sorted(_OPTIONAL_KEYS)})"
        )
    return bundle


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BundleError(f"the bundle's {name} must be a non-empty string")
    return value


def _leaves(data: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    leaves = data.get("leaves")
    if not isinstance(leaves, list) or not leaves:
        raise BundleError("the bundle holds no evidence leaves")
    out = []
    for n, entry in enumerate(leaves):
        if not isinstance(entry, Mapping) or set(entry) != _LEAF_KEYS:
            raise BundleError(f"leaves[{n}] must have exactly the fields {sorted(_LEAF_KEYS)}")
        out.append((n, entry))
    return out


def _verify_leaf(
    entry: Mapping[str, Any], n: int, contract_id: str, checkpoint: Checkpoint
) -> tuple[int, EvidenceRecord]:
    index, record, proof = entry["index"], entry["record"], entry["inclusion_proof"]
    if type(index) is not int or index < 0:
        raise BundleError(f"leaves[{n}]: the index must be a non-negative integer")
    where = f"leaf {index}"
    if not isinstance(record, str):
        raise BundleError(f"{where}: the record must be a string")
    if not isinstance(proof, list) or len(proof) > MAX_PROOF_LENGTH:
        raise BundleError(f"{where}: the inclusion proof must be a list of hashes")
    data = record.encode("utf-8")
    try:
        evidence = EvidenceRecord.decode(data)
    except PactvaultError as exc:
        raise BundleError(f"{where}: {exc.detail}") from None
    if evidence.contract_id != contract_id:
        raise BundleError(
            f"{where} is evidence for contract {evidence.contract_id}, not {contract_id}"
        )
    hashes = []
    for j, element in enumerate(proof):
        try:
            hashes.append(b64decode_strict(element) if isinstance(element, str) else b"")
        except PactvaultError:
            hashes.append(b"")
        if len(hashes[-1]) != 32:
            raise BundleError(f"{where}: inclusion proof element {j} is not a base64 hash")
    if index >= checkpoint.size:
        raise BundleError(f"{where} is beyond the checkpoint's {checkpoint.size} leaves")
    try:
        verify_inclusion(leaf_hash(data), index, checkpoint.size, hashes, checkpoint.root_hash)
    except PactvaultError as exc:
        raise BundleError(
            f"{where}: {exc.detail} — the record or its index was altered, or the proof is "
            "for another leaf"
        ) from None
    return index, evidence


def _verify_stepups(
    records: list[tuple[int, EvidenceRecord]], proofs: object
) -> tuple[tuple[int, str, str], ...]:
    """Match each step-up proof to its signature record (see the module docstring)."""
    if not isinstance(proofs, list) or not all(isinstance(p, str) for p in proofs):
        raise BundleError("stepup_proofs must be a list of strings")
    by_hash = {hashlib.sha256(p.encode("utf-8")).hexdigest(): p for p in proofs}
    if len(by_hash) != len(proofs):
        raise BundleError("the bundle lists the same step-up proof twice")
    found = []
    signed_document: str | None = None
    for index, evidence in records:
        expected = evidence.stepup_proof_sha256
        if expected is not None:
            text = by_hash.pop(expected, None)
            if text is None:
                raise BundleError(
                    f"leaf {index}: the signature's step-up proof is not in the bundle"
                )
            proof = _stepup_fields(text, index)
            if proof["document_sha256"] != signed_document:
                raise BundleError(
                    f"leaf {index}: the step-up proof was made for document "
                    f"{proof['document_sha256']}, not the revision signed ({signed_document})"
                )
            found.append((index, proof["method"], proof["verified_at"]))
        if evidence.document_sha256 is not None:
            signed_document = evidence.document_sha256
    if by_hash:
        raise BundleError(f"{len(by_hash)} step-up proof(s) match no signature in the bundle")
    return tuple(found)


def _stepup_fields(text: str, index: int) -> dict[str, str]:
    try:
        proof = json.loads(text)
    except json.JSONDecodeError:
        proof = None
    if (
        not isinstance(proof, dict)
        or proof.get("type") != STEPUP_PROOF_TYPE
        or not all(isinstance(proof.get(k), str) for k in ("method", "document_sha256"))
        or not isinstance(proof.get("verified_at"), str)
    ):
        raise BundleError(f"leaf {index}: the step-up proof is not a pactvault step-up proof")
    return {k: proof[k] for k in ("method", "document_sha256", "verified_at")}


def _final_document(records: list[tuple[int, EvidenceRecord]]) -> tuple[int, str] | None:
    for index, evidence in reversed(records):
        if evidence.document_sha256 is not None:
            return index, evidence.document_sha256
    return None
