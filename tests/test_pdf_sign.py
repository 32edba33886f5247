"""PAdES signing: three signers, certification and locking, CJK stamps, images, B-LT, failures."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from itertools import pairwise
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.timestamps import TimeStamper

from pactvault.errors import ConflictError, SigningError, TimestampUnavailableError
from pactvault.pdf.inspect import inspect_pdf
from pactvault.pdf.sign import (
    Appearance,
    RevocationMaterial,
    SignatureField,
    prepare_fields,
    sign_pdf,
)
from pactvault.pdf.signer import KeySigner
from pactvault.pdf.validate import verify_pdf
from pdf_helpers import TestPki, build_pki, make_pdf, run_pdfsig

FIELDS = [
    SignatureField("buyer", 0, (40, 40, 240, 120)),
    SignatureField("seller", 0, (300, 40, 500, 120)),
    SignatureField("witness", -1, (40, 200, 240, 280), lock_document=True),
]


@dataclass
class Signed:
    pki: TestPki
    revisions: list[bytes]  # prepared, after signer 1, 2, 3


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return build_pki()


@pytest.fixture(scope="module")
def signed(pki: TestPki) -> Signed:
    prepared = prepare_fields(make_pdf([(595.0, 842.0), (595.0, 842.0)]), FIELDS)
    buyer, _ = pki.issue_signer("Alice Buyer", email="alice@example.com", organisation="ACME")
    seller, _ = pki.issue_signer("张三", subject_id="ID-0002")
    witness, _ = pki.issue_signer("Wendy Witness", subject_id="ID-0003", rsa_key=True)
    ts = pki.timestamper()
    r1 = sign_pdf(
        prepared,
        field_name="buyer",
        signer=buyer,
        timestamper=ts,
        certify=True,
        appearance=Appearance("Alice Buyer", "I agree", location="Berlin", locale="en"),
    )
    r2 = sign_pdf(
        r1,
        field_name="seller",
        signer=seller,
        timestamper=ts,
        appearance=Appearance("张三", "同意合同条款", location="北京"),
        revocation=RevocationMaterial(crls=[pki.crl_der()]),
    )
    r3 = sign_pdf(
        r2,
        field_name="witness",
        signer=witness,
        timestamper=ts,
        lock_document=True,
        appearance=Appearance("Wendy Witness", "Witnessed", locale="en"),
    )
    return Signed(pki, [prepared, r1, r2, r3])


def test_each_signature_is_a_new_revision_appended_to_the_previous_bytes(signed: Signed) -> None:
    revs = signed.revisions
    for older, newer in pairwise(revs):
        assert newer.startswith(older) and len(newer) > len(older)
    counts = [PdfFileReader(BytesIO(r)).xrefs.total_revisions for r in revs]
    assert counts[1:] == [counts[0] + 1, counts[0] + 2, counts[0] + 3]


def test_three_signatures_verify_with_the_right_modification_levels(signed: Signed) -> None:
    report = verify_pdf(signed.revisions[-1], trust_roots=[signed.pki.root])
    assert report.valid, report.to_dict()
    buyer, seller, witness = report.signatures
    assert [s.field_name for s in report.signatures] == ["buyer", "seller", "witness"]
    assert buyer.is_certification and not seller.is_certification and not witness.is_certification
    assert buyer.modification_level == "form-filling" and buyer.coverage == "entire-revision"
    assert seller.modification_level == "form-filling"
    assert witness.modification_level == "none" and witness.coverage == "entire-file"
    assert all(s.docmdp_ok and s.timestamp_valid and s.trusted for s in report.signatures)
    assert buyer.signer_email == "alice@example.com" and buyer.organisation == "ACME"
    assert seller.signer_name == "张三"
    assert buyer.timestamp_tsa is not None and "pactvault Test TSA" in buyer.timestamp_tsa


def test_certification_allows_form_filling_and_the_last_signature_locks(signed: Signed) -> None:
    reader = PdfFileReader(BytesIO(signed.revisions[-1]))
    sigs = reader.embedded_signatures
    assert sigs[0].docmdp_level == MDPPerm.FILL_FORMS
    assert sigs[1].docmdp_level is None
    assert sigs[2].docmdp_level == MDPPerm.NO_CHANGES
    assert str(sigs[0].sig_object["/SubFilter"]) == "/ETSI.CAdES.detached"


def test_fields_cannot_be_added_once_someone_has_signed(signed: Signed) -> None:
    with pytest.raises(ConflictError, match="before the first signature"):
        prepare_fields(signed.revisions[-1], [SignatureField("late", 0, (0, 0, 50, 50))])


def test_b_lt_embeds_the_crl_in_the_signed_revision(signed: Signed) -> None:
    reader = PdfFileReader(BytesIO(signed.revisions[2]))
    dss = reader.root["/DSS"]
    assert len(dss["/CRLs"]) == 1
    assert len(dss["/Certs"]) >= 3  # signer, issuing CA, root
    # The DSS is part of the seller's own revision, so the seller's signature covers it.
    assert "/DSS" not in PdfFileReader(BytesIO(signed.revisions[1])).root
    assert reader.embedded_signatures[-1].evaluate_signature_coverage().name == "ENTIRE_FILE"


def test_chinese_name_is_rendered_with_an_embedded_cjk_font(signed: Signed) -> None:
    reader = PdfFileReader(BytesIO(signed.revisions[-1]))
    seller = reader.embedded_signatures[1].sig_field
    fonts = seller["/AP"]["/N"]["/Resources"]["/Font"]
    font = next(iter(fonts.values())).get_object()
    assert "NotoSansCJK" in str(font["/BaseFont"])
    descriptor = font["/DescendantFonts"][0]["/FontDescriptor"]
    assert "/FontFile3" in descriptor  # the subset is embedded, not referenced
    to_unicode = font["/ToUnicode"].data.decode("ascii").lower()
    for char in "张三同意":
        assert f"{ord(char):04x}" in to_unicode


def test_inspect_reports_signatures_on_a_signed_file(signed: Signed) -> None:
    assert inspect_pdf(signed.revisions[-1], max_bytes=10**7).has_signatures


def _png() -> bytes:
    out = BytesIO()
    Image.new("RGBA", (120, 40), (200, 0, 0, 180)).save(out, "PNG")
    return out.getvalue()


def test_image_appearance_and_pinned_signing_time(pki: TestPki) -> None:
    signer, _ = pki.issue_signer("Seal Holder", subject_id="ID-0100")
    pdf = prepare_fields(make_pdf(), [SignatureField("seal", 0, (50, 50, 250, 150))])
    when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    out = sign_pdf(
        pdf,
        field_name="seal",
        signer=signer,
        timestamper=pki.timestamper(),
        signing_time=when,
        appearance=Appearance("Seal Holder", "Company seal", image=_png(), locale="en"),
    )
    report = verify_pdf(out, trust_roots=[pki.root])
    assert report.valid
    assert report.signatures[0].signing_time == when
    ap = PdfFileReader(BytesIO(out)).embedded_signatures[0].sig_field["/AP"]["/N"]
    assert "/XObject" in ap["/Resources"]


def test_image_must_be_png_or_jpeg(pki: TestPki) -> None:
    signer, _ = pki.issue_signer("X", subject_id="ID-0101")
    pdf = prepare_fields(make_pdf(), [SignatureField("s", 0, (50, 50, 250, 150))])
    with pytest.raises(SigningError, match="PNG or JPEG"):
        sign_pdf(
            pdf,
            field_name="s",
            signer=signer,
            timestamper=pki.timestamper(),
            appearance=Appearance("X", "r", image=b"GIF89a not really", locale="en"),
        )


class _BrokenTimeStamper(TimeStamper):
    async def async_timestamp(self, message_digest, md_algorithm):  # type: ignore[no-untyped-def]
        raise ConnectionError("TSA down")


def test_timestamp_failure_fails_closed(pki: TestPki) -> None:
    signer, _ = pki.issue_signer("Y", subject_id="ID-0102")
    pdf = prepare_fields(make_pdf(), [SignatureField("s", 0, (50, 50, 250, 150))])
    with pytest.raises(TimestampUnavailableError, match="timestamp"):
        sign_pdf(
            pdf,
            field_name="s",
            signer=signer,
            timestamper=_BrokenTimeStamper(),
            appearance=Appearance("Y", "r", locale="en"),
        )


def test_lock_flag_must_match_the_prepared_field(signed: Signed, pki: TestPki) -> None:
    signer, _ = pki.issue_signer("Z", subject_id="ID-0103")
    ts = pki.timestamper()
    with pytest.raises(SigningError, match="lock_document=True"):
        sign_pdf(
            signed.revisions[2],
            field_name="witness",
            signer=signer,
            timestamper=ts,
            appearance=Appearance("Z", "r", locale="en"),
        )
    with pytest.raises(SigningError, match="not prepared to lock"):
        sign_pdf(
            signed.revisions[1],
            field_name="seller",
            signer=signer,
            timestamper=ts,
            lock_document=True,
            appearance=Appearance("Z", "r", locale="en"),
        )
    with pytest.raises(SigningError, match="no signature field"):
        sign_pdf(
            signed.revisions[1],
            field_name="nope",
            signer=signer,
            timestamper=ts,
            appearance=Appearance("Z", "r", locale="en"),
        )


def test_cjk_text_without_a_cjk_font_is_a_clear_error(
    pki: TestPki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PACTVAULT_CJK_FONT", str(tmp_path / "missing.otf"))
    signer, _ = pki.issue_signer("李四", subject_id="ID-0104")
    pdf = prepare_fields(make_pdf(), [SignatureField("s", 0, (50, 50, 250, 150))])
    with pytest.raises(SigningError, match="CJK font"):
        sign_pdf(
            pdf,
            field_name="s",
            signer=signer,
            timestamper=pki.timestamper(),
            appearance=Appearance("李四", "同意"),
        )
    # Latin-only text still signs (zh-CN labels fall back to English, standard font).
    out = sign_pdf(
        pdf,
        field_name="s",
        signer=signer,
        timestamper=pki.timestamper(),
        appearance=Appearance("Li Si", "Agree"),
    )
    assert verify_pdf(out, trust_roots=[pki.root]).valid


def test_callable_backend_and_rsa_pss(pki: TestPki) -> None:
    """The HSM seam: a bare ``sign(data, hash)`` callable, here backed by a P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    from pactvault.pki.ca import issue_signer_certificate
    from pactvault.pki.identity import SubjectIdentity

    cert = issue_signer_certificate(
        key.public_key(),
        subject=SubjectIdentity("HSM User", "ID-0200"),
        issuer_certificate=pki.issuing,
        issuer_private_key=pki.issuing_key,
    )
    from cryptography.hazmat.primitives import hashes

    calls: list[str] = []

    def hsm_sign(data: bytes, hash_algorithm: str) -> bytes:
        calls.append(hash_algorithm)
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    signer = KeySigner.from_callable(hsm_sign, cert, pki.chain)
    pdf = prepare_fields(make_pdf(), [SignatureField("s", 0, (50, 50, 250, 150))])
    out = sign_pdf(
        pdf,
        field_name="s",
        signer=signer,
        timestamper=pki.timestamper(),
        appearance=Appearance("HSM User", "r", locale="en"),
    )
    assert calls == ["sha256"]  # exactly one signing operation: no dry run
    assert verify_pdf(out, trust_roots=[pki.root]).valid

    pss_signer, _ = pki.issue_signer("PSS User", subject_id="ID-0201", rsa_key=True)
    pss = KeySigner(pss_signer._private_key, pss_signer.certificate, pki.chain, prefer_pss=True)  # type: ignore[arg-type]
    out = sign_pdf(
        pdf,
        field_name="s",
        signer=pss,
        timestamper=pki.timestamper(),
        appearance=Appearance("PSS User", "r", locale="en"),
    )
    assert verify_pdf(out, trust_roots=[pki.root]).valid


def test_key_must_match_certificate(pki: TestPki) -> None:
    _, cert = pki.issue_signer("Q", subject_id="ID-0300")
    with pytest.raises(SigningError, match="does not belong"):
        KeySigner(ec.generate_private_key(ec.SECP256R1()), cert, pki.chain)


def test_pdfsig_accepts_every_signature(signed: Signed, tmp_path: Path) -> None:
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed.revisions[-1])
    root_pem = signed.pki.root.public_bytes(serialization.Encoding.PEM)
    out = run_pdfsig(path, root_pem, tmp_path)
    assert out.count("Signature Validation: Signature is Valid.") == 3, out
    assert out.count("Signature Type: ETSI.CAdES.detached") == 3
    assert out.count("Signed Ranges: [0 - ") == 3
    assert "Total document signed" in out  # the last (locking) signature covers the whole file
    assert out.count("Certificate Validation: Certificate is Trusted.") == 3, out


# -- evidence and the reserved signature space --------------------------------------------------


def test_evidence_is_read_from_the_newest_signature_only(signed: Signed) -> None:
    from asn1crypto import parser as asn1_parser

    from pactvault.pdf.evidence import last_signature_evidence

    for count, revision in enumerate(signed.revisions[1:], start=1):
        evidence = last_signature_evidence(revision)
        sigs = PdfFileReader(BytesIO(revision)).embedded_signatures  # pyHanko's own ordering
        assert len(sigs) == count
        newest = sigs[-1]
        assert evidence.field_name == newest.field_name == ["buyer", "seller", "witness"][count - 1]
        _, _, _, header, body, _ = asn1_parser.parse(newest.pkcs7_content)  # DER, no padding
        assert evidence.signature_sha256 == hashlib.sha256(header + body).hexdigest()
        (token,) = [
            a["values"][0]
            for a in newest.signer_info["unsigned_attrs"]
            if a["type"].native == "signature_time_stamp_token"
        ]
        assert evidence.timestamp_token_sha256 == hashlib.sha256(token.dump()).hexdigest()


def test_space_is_reserved_to_fit_our_own_timestamps(pki: TestPki) -> None:
    signer, _ = pki.issue_signer("Rui", subject_id="ID-0105", rsa_key=True)
    pdf = prepare_fields(make_pdf(), [SignatureField("s", 0, (50, 50, 250, 150))])

    def reserved(timestamper: TimeStamper) -> tuple[int, int]:
        out = sign_pdf(
            pdf,
            field_name="s",
            signer=signer,
            timestamper=timestamper,
            appearance=Appearance("Rui", "Agree", locale="en"),
        )
        assert verify_pdf(out, trust_roots=[pki.root]).valid
        (sig,) = PdfFileReader(BytesIO(out)).embedded_signatures
        return len(sig.pkcs7_content), len(sig.pkcs7_content.rstrip(b"\0"))

    class Opaque(TimeStamper):  # a timestamper that cannot say how large its tokens are
        def __init__(self, inner: TimeStamper) -> None:
            super().__init__()
            self.inner = inner

        async def async_timestamp(self, message_digest, md_algorithm):  # type: ignore[no-untyped-def]
            return await self.inner.async_timestamp(message_digest, md_algorithm)

    tight, used = reserved(pki.timestamper())
    generous, _ = reserved(Opaque(pki.timestamper()))
    assert used < tight < used + 8 * 1024  # fits, with room for RSA-4096 keys
    assert generous > tight + 7 * 1024  # unknown TSAs get the old, generous allowance


# -- KeySigner encodes the CMS itself: the bytes must be exactly pyHanko's ------------------------


@pytest.mark.parametrize("rsa_key", [False, True])
def test_key_signer_encodes_exactly_what_pyhanko_would(pki: TestPki, rsa_key: bool) -> None:
    import asyncio

    from asn1crypto import cms
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer

    signer, _ = pki.issue_signer("张三", subject_id="ID-0106", rsa_key=rsa_key)
    digest = hashlib.sha256(b"document").digest()
    settings = PdfCMSSignedAttributes(signing_time=datetime(2025, 3, 1, tzinfo=UTC))

    async def both() -> None:
        ours = await signer.signed_attrs(digest, "sha256", settings, use_pades=True)
        theirs = await Signer.signed_attrs(signer, digest, "sha256", settings, use_pades=True)
        assert ours.dump() == theirs.dump(force=True)
        signature = await signer.async_sign_raw(ours.dump(), "sha256")
        stamper = pki.timestamper()
        unsigned = await signer.unsigned_attrs("sha256", signature, ours, timestamper=stamper)
        assert unsigned is not None and [a["type"].native for a in unsigned] == [
            "signature_time_stamp_token"
        ]
        arguments = {
            "digest_algorithm": "sha256",
            "cms_version": "v1",
            "signed_attrs": ours,
            "signature": signature,
            "unsigned_attrs": unsigned,
            "encap_content_info": None,
        }
        mine = signer._package_signature(**arguments).dump()
        ours_sd = cms.ContentInfo.load(mine)["content"]
        theirs_sd = Signer._package_signature(signer, **arguments)["content"]
        for name in ("version", "digest_algorithms", "encap_content_info", "signer_infos"):
            assert ours_sd[name].dump() == theirs_sd[name].dump(), name
        # The same certificates (pyHanko lists the signer's own twice; we list it once).
        assert {c.chosen.dump() for c in ours_sd["certificates"]} == {
            c.chosen.dump() for c in theirs_sd["certificates"]
        }
        assert len(ours_sd["certificates"]) == 3  # signer, issuing CA, root
        assert_definite_minimal_lengths(mine)

    asyncio.run(both())


def assert_definite_minimal_lengths(der: bytes) -> None:
    """DER lengths throughout (asn1crypto's ``dump(force=True)`` would take ~50 s on a CMS)."""
    from pactvault.crypto.der import has_der_lengths

    assert has_der_lengths(der)
