"""Offline verification: tampering, unauthorised updates, trust, revocation, garbage."""

from __future__ import annotations

import json
import os
from io import BytesIO

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from pactvault.errors import VerificationError
from pactvault.pdf.sign import (
    Appearance,
    RevocationMaterial,
    SignatureField,
    prepare_fields,
    sign_pdf,
)
from pactvault.pdf.validate import verify_pdf
from pactvault.pki.ca import create_root_ca
from pdf_helpers import TestPki, build_pki, make_pdf


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return build_pki()


def _sign_one(
    pki: TestPki,
    *,
    lock: bool = False,
    revocation: RevocationMaterial | None = None,
    name: str = "Carol Signer",
    subject_id: str = "ID-0001",
) -> bytes:
    signer, _ = pki.issue_signer(name, subject_id=subject_id)
    field = SignatureField("s", 0, (50, 50, 250, 150), lock_document=lock)
    pdf = prepare_fields(make_pdf(), [field])
    return sign_pdf(
        pdf,
        field_name="s",
        signer=signer,
        timestamper=pki.timestamper(),
        lock_document=lock,
        revocation=revocation,
        appearance=Appearance(name, "Agree", locale="en"),
    )


@pytest.fixture(scope="module")
def locked(pki: TestPki) -> bytes:
    return _sign_one(pki, lock=True, revocation=RevocationMaterial(crls=[pki.crl_der()]))


def test_untouched_signature_is_valid_with_revocation_evidence(locked: bytes, pki: TestPki) -> None:
    report = verify_pdf(locked, trust_roots=[pki.root])
    assert report.valid and report.problems == []
    sig = report.signatures[0]
    assert sig.revocation == "good"
    assert sig.coverage == "entire-file" and not sig.modified_after
    assert sig.chain[0].endswith("Country: CN") and "Root" in sig.chain[-1]
    assert sig.timestamp_time is not None and sig.signing_time is not None
    json.dumps(report.to_dict())  # JSON-ready


def test_one_changed_byte_in_the_signed_range_breaks_integrity(locked: bytes, pki: TestPki) -> None:
    offset = locked.index(b"Contract page 1")
    tampered = bytearray(locked)
    tampered[offset] = ord("K")  # "Kontract": same length, still parseable
    report = verify_pdf(bytes(tampered), trust_roots=[pki.root])
    sig = report.signatures[0]
    assert not report.valid and not sig.intact
    assert any("integrity" in p for p in sig.problems)


def test_update_after_the_locking_signature_is_reported(locked: bytes, pki: TestPki) -> None:
    writer = IncrementalPdfFileWriter(BytesIO(locked))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    new_content = writer.add_object(
        generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 400 Td (Price: 1 EUR) Tj ET")
    )
    page[pdf_name("/Contents")] = new_content
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    report = verify_pdf(out.getvalue(), trust_roots=[pki.root])
    sig = report.signatures[0]
    assert sig.intact and sig.signature_valid  # the signed bytes are untouched...
    assert sig.modified_after and not report.valid  # ...but the document is not
    assert sig.coverage == "entire-revision" and sig.docmdp_ok is False
    assert any("modified after" in p for p in sig.problems)


def test_annotation_added_after_the_lock_is_reported(locked: bytes, pki: TestPki) -> None:
    writer = IncrementalPdfFileWriter(BytesIO(locked))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    note = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Text"),
                pdf_name("/Rect"): generic.ArrayObject(
                    map(generic.NumberObject, (300, 300, 320, 320))
                ),
                pdf_name("/Contents"): generic.TextStringObject("void"),
            }
        )
    )
    page[pdf_name("/Annots")] = generic.ArrayObject([*page.get("/Annots", ()), note])
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    assert verify_pdf(out.getvalue(), trust_roots=[pki.root]).signatures[0].modified_after


def test_unknown_root_is_untrusted(locked: bytes) -> None:
    other_root = create_root_ca(ec.generate_private_key(ec.SECP256R1()), common_name="Other Root")
    report = verify_pdf(locked, trust_roots=[other_root])
    sig = report.signatures[0]
    assert sig.intact and sig.signature_valid and not sig.trusted and not report.valid
    assert sig.revocation == "not-checked"
    assert any("trusted root" in p for p in sig.problems)


def test_revoked_signer_with_embedded_crl_is_revoked(pki: TestPki) -> None:
    local = build_pki()
    signer, cert = local.issue_signer("Mallory", subject_id="ID-0666")
    local.revoke(cert)
    pdf = prepare_fields(make_pdf(), [SignatureField("s", 0, (50, 50, 250, 150))])
    out = sign_pdf(
        pdf,
        field_name="s",
        signer=signer,
        timestamper=local.timestamper(),
        revocation=RevocationMaterial(crls=[local.crl_der()]),
        appearance=Appearance("Mallory", "r", locale="en"),
    )
    sig = verify_pdf(out, trust_roots=[local.root]).signatures[0]
    assert sig.revocation == "revoked" and not sig.valid
    assert any("revoked" in p for p in sig.problems)


def test_missing_revocation_data_soft_and_hard_fail(pki: TestPki) -> None:
    out = _sign_one(pki, name="Dave", subject_id="ID-0004")  # B-T only, no DSS
    soft = verify_pdf(out, trust_roots=[pki.root])
    assert soft.valid and soft.signatures[0].revocation == "unknown"
    hard = verify_pdf(out, trust_roots=[pki.root], revocation_mode="hard-fail")
    assert not hard.valid and not hard.signatures[0].trusted
    assert hard.signatures[0].revocation == "unknown"


def test_unsigned_pdf_has_no_signatures() -> None:
    report = verify_pdf(make_pdf(), trust_roots=[build_pki().root])
    assert report.problems == ["no signatures"] and not report.valid


@pytest.mark.parametrize("data", [b"", os.urandom(3000), b"%PDF-1.7\n" + os.urandom(3000)])
def test_garbage_raises_verification_error(data: bytes, pki: TestPki) -> None:
    with pytest.raises(VerificationError):
        verify_pdf(data, trust_roots=[pki.root])
