"""Certificate profiles, CRLs and OCSP of pactvault's own CA (pure functions, no database)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, RevokedError

from pactvault.errors import InvalidInputError
from pactvault.pki import ca
from pactvault.pki.identity import (
    ASSURANCE_POLICY_OIDS,
    PACTVAULT_OID_ARC,
    SEAL_POLICY_OID,
    TSA_POLICY_OID,
    SubjectIdentity,
)
from pactvault.pki.revocation import (
    CertificateStatus,
    RevokedEntry,
    build_crl,
    build_ocsp_response,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CRL_URL = "http://pki.example.test/issuing.crl"
ROOT_CRL_URL = "http://pki.example.test/root.crl"
OCSP_URL = "http://pki.example.test/ocsp"
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
ADOBE_AUTHENTIC_DOCUMENTS = x509.ObjectIdentifier("1.2.840.113583.1.1.5")


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Hierarchy:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    root_key, issuing_key = p256(), p256()
    root = ca.create_root_ca(root_key, organisation="pactvault test", now=NOW)
    issuing = ca.create_issuing_ca(
        issuing_key.public_key(),
        root_certificate=root,
        root_private_key=root_key,
        organisation="pactvault test",
        crl_url=ROOT_CRL_URL,
        now=NOW,
    )
    return Hierarchy(root_key, root, issuing_key, issuing)


def issue_signer(
    pki: Hierarchy, subject: SubjectIdentity | None = None, **kwargs: object
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = p256()
    kwargs.setdefault("now", NOW)
    cert = ca.issue_signer_certificate(
        key.public_key(),
        subject=subject or SubjectIdentity("Alice Example", "user-1", email="alice@example.test"),
        issuer_certificate=pki.issuing,
        issuer_private_key=pki.issuing_key,
        **kwargs,  # type: ignore[arg-type]
    )
    return key, cert


def ext(cert: x509.Certificate | x509.CertificateRevocationList, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def validate(
    cert: x509.Certificate,
    *,
    pki: Hierarchy,
    at: datetime = NOW,
    **context: object,
) -> object:
    """Run pyhanko-certvalidator for a signing certificate, as pyHanko does when verifying."""
    validation_context = ValidationContext(
        trust_roots=[to_asn1(pki.root)],
        moment=at,
        **context,  # type: ignore[arg-type]
    )
    validator = CertificateValidator(
        to_asn1(cert),
        intermediate_certs=[to_asn1(pki.issuing)],
        validation_context=validation_context,
    )
    return asyncio.run(validator.async_validate_usage({"digital_signature", "non_repudiation"}))


# -- identity and OIDs ------------------------------------------------------------------------


def test_oids_live_under_our_uuid_arc_and_are_distinct() -> None:
    assert PACTVAULT_OID_ARC.startswith("2.25.")
    all_oids = [*ASSURANCE_POLICY_OIDS.values(), SEAL_POLICY_OID, TSA_POLICY_OID]
    assert len(set(all_oids)) == len(all_oids)
    for oid in all_oids:
        assert oid.startswith(PACTVAULT_OID_ARC + ".")
        x509.ObjectIdentifier(oid)  # well-formed
    assert f"{PACTVAULT_OID_ARC}.2.1" == TSA_POLICY_OID
    assert ASSURANCE_POLICY_OIDS["basic"].startswith(f"{PACTVAULT_OID_ARC}.1.1.")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"common_name": ""},
        {"common_name": "x" * 65},
        {"subject_id": "ü-not-printable"},
        {"country": "china"},
        {"email": "not an email"},
        {"email": "张@example.test"},
        {"assurance_level": "platinum"},
        {"kind": "robot"},
    ],
)
def test_subject_identity_rejects_bad_values(kwargs: dict[str, str]) -> None:
    values = {"common_name": "Alice", "subject_id": "user-1", **kwargs}
    with pytest.raises(InvalidInputError):
        SubjectIdentity(**values)  # type: ignore[arg-type]


# -- CA profiles ------------------------------------------------------------------------------


def test_root_ca_profile(pki: Hierarchy) -> None:
    root = pki.root
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = ext(root, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(pki.root_key.public_key())
    assert root.not_valid_before_utc == NOW - ca.CLOCK_SKEW


def test_issuing_ca_profile(pki: Hierarchy) -> None:
    issuing = pki.issuing
    issuing.verify_directly_issued_by(pki.root)
    bc = ext(issuing, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(issuing, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert ext(issuing, x509.SubjectKeyIdentifier).value.digest
    aki = ext(issuing, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(pki.root, x509.SubjectKeyIdentifier).value.digest
    (point,) = ext(issuing, x509.CRLDistributionPoints).value
    assert point.full_name == [x509.UniformResourceIdentifier(ROOT_CRL_URL)]


def test_issuing_ca_without_crl_url_has_no_distribution_point(pki: Hierarchy) -> None:
    other = ca.create_issuing_ca(
        p256().public_key(), root_certificate=pki.root, root_private_key=pki.root_key, now=NOW
    )
    with pytest.raises(x509.ExtensionNotFound):
        ext(other, x509.CRLDistributionPoints)


def test_issuing_ca_refuses_a_root_key_that_does_not_match(pki: Hierarchy) -> None:
    with pytest.raises(InvalidInputError):
        ca.create_issuing_ca(
            p256().public_key(), root_certificate=pki.root, root_private_key=p256(), now=NOW
        )


# -- end-entity profiles ----------------------------------------------------------------------


def test_signer_profile(pki: Hierarchy) -> None:
    _, cert = issue_signer(pki, crl_url=CRL_URL, ocsp_url=OCSP_URL)
    cert.verify_directly_issued_by(pki.issuing)

    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign)
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca

    eku = ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku.value
    assert DOCUMENT_SIGNING in eku.value
    assert ADOBE_AUTHENTIC_DOCUMENTS in eku.value

    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["alice@example.test"]
    assert not cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)

    policies = [
        p.policy_identifier.dotted_string for p in ext(cert, x509.CertificatePolicies).value
    ]
    assert policies == [ASSURANCE_POLICY_OIDS["basic"]]

    (point,) = ext(cert, x509.CRLDistributionPoints).value
    assert point.full_name == [x509.UniformResourceIdentifier(CRL_URL)]
    (access,) = ext(cert, x509.AuthorityInformationAccess).value
    assert access.access_method == x509.AuthorityInformationAccessOID.OCSP
    assert access.access_location == x509.UniformResourceIdentifier(OCSP_URL)

    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(pki.issuing, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.SubjectKeyIdentifier).value.digest


def test_signer_without_urls_or_email_omits_those_extensions(pki: Hierarchy) -> None:
    _, cert = issue_signer(pki, SubjectIdentity("Bob", "user-2"))
    for cls in (
        x509.SubjectAlternativeName,
        x509.CRLDistributionPoints,
        x509.AuthorityInformationAccess,
    ):
        with pytest.raises(x509.ExtensionNotFound):
            ext(cert, cls)


def test_seal_carries_seal_marker_and_assurance_policy(pki: Hierarchy) -> None:
    seal = SubjectIdentity(
        "ACME Contracts Seal",
        "seal-7",
        kind="seal",
        organisation="ACME Ltd",
        country="GB",
        assurance_level="high",
    )
    _, cert = issue_signer(pki, seal)
    policies = {
        p.policy_identifier.dotted_string for p in ext(cert, x509.CertificatePolicies).value
    }
    assert policies == {ASSURANCE_POLICY_OIDS["high"], SEAL_POLICY_OID}
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "ACME Ltd"
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "GB"


def test_chinese_common_name_round_trips_as_utf8string(pki: Hierarchy) -> None:
    subject = SubjectIdentity("张三", "7f1c-user", country="CN", email="zhangsan@example.test")
    _, cert = issue_signer(pki, subject)
    reloaded = x509.load_der_x509_certificate(cert.public_bytes(serialization.Encoding.DER))
    (cn,) = reloaded.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn.value == "张三"
    assert cn._type == _ASN1Type.UTF8String
    (serial,) = reloaded.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    assert serial.value == "7f1c-user"
    assert to_asn1(reloaded).subject.native["common_name"] == "张三"


def test_signer_chain_validates_with_certvalidator(pki: Hierarchy) -> None:
    _, cert = issue_signer(pki, SubjectIdentity("张三", "user-3"))
    path = validate(cert, pki=pki, at=NOW + timedelta(days=1))
    assert path.leaf.dump() == to_asn1(cert).dump()  # type: ignore[attr-defined]
    assert len(path) == 3  # type: ignore[arg-type]


def test_certvalidator_rejects_signer_from_another_root(pki: Hierarchy) -> None:
    stranger_root_key, stranger_key = p256(), p256()
    stranger_root = ca.create_root_ca(stranger_root_key, now=NOW)
    stranger = ca.create_issuing_ca(
        stranger_key.public_key(),
        root_certificate=stranger_root,
        root_private_key=stranger_root_key,
        now=NOW,
    )
    cert = ca.issue_signer_certificate(
        p256().public_key(),
        subject=SubjectIdentity("Mallory", "m-1"),
        issuer_certificate=stranger,
        issuer_private_key=stranger_key,
        now=NOW,
    )
    with pytest.raises(PathBuildingError):
        validate(cert, pki=Hierarchy(stranger_root_key, pki.root, stranger_key, stranger))


def test_issuing_with_a_key_that_does_not_match_the_issuer_is_refused(pki: Hierarchy) -> None:
    with pytest.raises(InvalidInputError):
        ca.issue_signer_certificate(
            p256().public_key(),
            subject=SubjectIdentity("Mallory", "m-1"),
            issuer_certificate=pki.issuing,
            issuer_private_key=pki.root_key,
            now=NOW,
        )


def test_end_entity_never_outlives_its_issuer(pki: Hierarchy) -> None:
    short_key = p256()
    short_issuer = ca.create_issuing_ca(
        short_key.public_key(),
        root_certificate=pki.root,
        root_private_key=pki.root_key,
        validity=timedelta(days=30),
        now=NOW,
    )
    cert = ca.issue_signer_certificate(
        p256().public_key(),
        subject=SubjectIdentity("Alice", "user-1"),
        issuer_certificate=short_issuer,
        issuer_private_key=short_key,
        validity=timedelta(days=365 * 2),
        now=NOW + timedelta(days=1),
    )
    assert cert.not_valid_after_utc == short_issuer.not_valid_after_utc
    assert cert.not_valid_before_utc == NOW + timedelta(days=1) - ca.CLOCK_SKEW
    # No end entity from the default profiles outlives the (longer-lived) default issuer either.
    _, normal = issue_signer(pki)
    assert normal.not_valid_after_utc == NOW + timedelta(days=365 * 2)
    assert normal.not_valid_after_utc <= pki.issuing.not_valid_after_utc


def test_issuing_from_an_expired_issuer_is_refused(pki: Hierarchy) -> None:
    with pytest.raises(InvalidInputError, match="expired"):
        issue_signer(pki, now=pki.issuing.not_valid_after_utc + timedelta(days=1))


def test_explicit_serial_number_is_used_and_bounded(pki: Hierarchy) -> None:
    _, cert = issue_signer(pki, serial_number=0x1234)
    assert cert.serial_number == 0x1234
    with pytest.raises(InvalidInputError):
        issue_signer(pki, serial_number=0)
    with pytest.raises(InvalidInputError):
        issue_signer(pki, serial_number=1 << 160)


def test_rsa_hierarchy_signs_with_sha256_rsa_and_validates() -> None:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuing_key = p256()
    root = ca.create_root_ca(root_key, now=NOW)
    issuing = ca.create_issuing_ca(
        issuing_key.public_key(), root_certificate=root, root_private_key=root_key, now=NOW
    )
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = ca.issue_signer_certificate(
        signer_key.public_key(),
        subject=SubjectIdentity("RSA Person", "rsa-1"),
        issuer_certificate=issuing,
        issuer_private_key=issuing_key,
        now=NOW,
    )
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert isinstance(issuing.public_key(), ec.EllipticCurvePublicKey)
    root_key.public_key().verify(
        issuing.signature, issuing.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256()
    )
    validate(cert, pki=Hierarchy(root_key, root, issuing_key, issuing))  # type: ignore[arg-type]


def test_p384_issuer_signs_with_sha384() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    root = ca.create_root_ca(key, now=NOW)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)


def test_tsa_profile(pki: Hierarchy) -> None:
    cert = ca.issue_tsa_certificate(
        p256().public_key(),
        common_name="pactvault TSA",
        organisation="pactvault test",
        issuer_certificate=pki.issuing,
        issuer_private_key=pki.issuing_key,
        crl_url=CRL_URL,
        now=NOW,
    )
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_encipherment
    assert ext(cert, x509.CRLDistributionPoints).value[0].full_name[0].value == CRL_URL


def test_ocsp_responder_profile(pki: Hierarchy) -> None:
    cert = ca.issue_ocsp_responder_certificate(
        p256().public_key(),
        common_name="pactvault OCSP",
        issuer_certificate=pki.issuing,
        issuer_private_key=pki.issuing_key,
        now=NOW,
    )
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert ext(cert, x509.OCSPNoCheck).value == x509.OCSPNoCheck()
    assert ext(cert, x509.KeyUsage).value.digital_signature
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)


def test_serial_numbers_and_fingerprints(pki: Hierarchy) -> None:
    serials = {ca.random_serial_number() for _ in range(200)}
    assert len(serials) == 200
    assert all(s > 0 and s.bit_length() == 159 for s in serials)
    der = pki.root.public_bytes(serialization.Encoding.DER)
    assert ca.certificate_fingerprint(pki.root) == hashlib.sha256(der).hexdigest()


# -- OpenSSL interoperability -----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_signer_and_tsa_chains(pki: Hierarchy, tmp_path: Path) -> None:
    _, signer = issue_signer(pki, crl_url=CRL_URL, ocsp_url=OCSP_URL)
    tsa = ca.issue_tsa_certificate(
        p256().public_key(),
        common_name="pactvault TSA",
        issuer_certificate=pki.issuing,
        issuer_private_key=pki.issuing_key,
        now=NOW,
    )
    for name, cert in {
        "root": pki.root,
        "issuing": pki.issuing,
        "signer": signer,
        "tsa": tsa,
    }.items():
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def openssl_verify(*extra: str) -> subprocess.CompletedProcess[str]:
        at = str(int((NOW + timedelta(days=1)).timestamp()))
        return subprocess.run(
            [
                "openssl",
                "verify",
                "-attime",
                at,
                "-CAfile",
                str(tmp_path / "root.pem"),
                "-untrusted",
                str(tmp_path / "issuing.pem"),
                *extra,
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    ok = openssl_verify(str(tmp_path / "signer.pem"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = openssl_verify("-purpose", "timestampsign", str(tmp_path / "tsa.pem"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Honesty check: the same call must fail for a certificate without the timeStamping EKU.
    refused = openssl_verify("-purpose", "timestampsign", str(tmp_path / "signer.pem"))
    assert refused.returncode != 0


# -- CRL --------------------------------------------------------------------------------------


def make_crl(
    pki: Hierarchy, revoked: list[RevokedEntry], *, issuer: str = "issuing", number: int = 7
) -> x509.CertificateRevocationList:
    cert, key = (pki.issuing, pki.issuing_key) if issuer == "issuing" else (pki.root, pki.root_key)
    return build_crl(
        issuer_certificate=cert,
        issuer_private_key=key,
        revoked=revoked,
        crl_number=number,
        this_update=NOW,
        next_update=NOW + timedelta(days=1),
    )


def test_crl_lists_revoked_serial_with_reason_and_verifies(pki: Hierarchy) -> None:
    revoked_at = NOW - timedelta(hours=2)
    crl = make_crl(
        pki,
        [
            RevokedEntry(0xABC, revoked_at, x509.ReasonFlags.key_compromise),
            RevokedEntry(0xDEF, revoked_at, x509.ReasonFlags.unspecified),
            RevokedEntry(0x123, revoked_at),
        ],
        number=42,
    )
    assert crl.is_signature_valid(pki.issuing.public_key())
    assert not crl.is_signature_valid(pki.root.public_key())
    assert crl.issuer == pki.issuing.subject
    assert ext(crl, x509.CRLNumber).value.crl_number == 42
    aki = ext(crl, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(pki.issuing, x509.SubjectKeyIdentifier).value.digest
    assert crl.last_update_utc == NOW and crl.next_update_utc == NOW + timedelta(days=1)

    entry = crl.get_revoked_certificate_by_serial_number(0xABC)
    assert entry is not None
    assert entry.revocation_date_utc == revoked_at
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    for serial in (0xDEF, 0x123):  # "unspecified" and no reason both omit the extension
        plain = crl.get_revoked_certificate_by_serial_number(serial)
        assert plain is not None
        with pytest.raises(x509.ExtensionNotFound):
            plain.extensions.get_extension_for_class(x509.CRLReason)
    assert crl.get_revoked_certificate_by_serial_number(0x999) is None


def test_crl_rejects_inverted_dates(pki: Hierarchy) -> None:
    with pytest.raises(InvalidInputError):
        build_crl(
            issuer_certificate=pki.issuing,
            issuer_private_key=pki.issuing_key,
            revoked=[],
            crl_number=1,
            this_update=NOW,
            next_update=NOW - timedelta(minutes=1),
        )


def test_certvalidator_hard_fail_uses_the_crl(pki: Hierarchy) -> None:
    _, good = issue_signer(pki, crl_url=CRL_URL)
    _, bad = issue_signer(pki, crl_url=CRL_URL)
    revoked_at = NOW - timedelta(hours=1)
    crls = [
        make_crl(pki, [RevokedEntry(bad.serial_number, revoked_at, x509.ReasonFlags.superseded)]),
        make_crl(pki, [], issuer="root"),
    ]
    crl_ders = [c.public_bytes(serialization.Encoding.DER) for c in crls]
    at = NOW + timedelta(hours=1)
    validate(good, pki=pki, at=at, crls=crl_ders, revocation_mode="hard-fail")
    with pytest.raises(RevokedError):
        validate(bad, pki=pki, at=at, crls=crl_ders, revocation_mode="hard-fail")
    # Without any CRL, hard-fail must refuse even the good certificate.
    with pytest.raises(PathValidationError):
        validate(good, pki=pki, at=at, crls=[], revocation_mode="hard-fail")


# -- OCSP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def responder(pki: Hierarchy) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = p256()
    cert = ca.issue_ocsp_responder_certificate(
        key.public_key(),
        common_name="pactvault OCSP",
        issuer_certificate=pki.issuing,
        issuer_private_key=pki.issuing_key,
        now=NOW,
    )
    return key, cert


REVOKED_AT = NOW - timedelta(days=1)


def lookup(serial: int) -> CertificateStatus:
    statuses = {
        1001: CertificateStatus("good"),
        1002: CertificateStatus("revoked", REVOKED_AT, x509.ReasonFlags.key_compromise),
    }
    return statuses.get(serial, CertificateStatus("unknown"))


def ocsp_request(
    pki: Hierarchy, serial: int, *, nonce: bytes | None = None, algorithm: hashes.HashAlgorithm
) -> bytes:
    _, cert = issue_signer(pki, serial_number=serial)
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, pki.issuing, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def answer(
    pki: Hierarchy,
    request: bytes,
    responder: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
) -> ocsp.OCSPResponse:
    key, cert = responder or (pki.issuing_key, pki.issuing)
    der = build_ocsp_response(
        request,
        issuer_certificate=pki.issuing,
        responder_certificate=cert,
        responder_private_key=key,
        status_lookup=lookup,
        now=NOW,
    )
    return ocsp.load_der_ocsp_response(der)


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()], ids=["sha1", "sha256"])
def test_ocsp_good_with_nonce_and_delegated_responder(
    pki: Hierarchy, responder: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], algorithm
) -> None:
    nonce = bytes(range(16))
    response = answer(pki, ocsp_request(pki, 1001, nonce=nonce, algorithm=algorithm), responder)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == 1001
    assert response.this_update_utc == NOW
    assert response.next_update_utc == NOW + timedelta(hours=1)
    assert isinstance(response.hash_algorithm, type(algorithm))
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    # The delegated responder certificate travels with the response and signed it.
    assert response.certificates == [responder[1]]
    assert response.responder_key_hash == ext(responder[1], x509.SubjectKeyIdentifier).value.digest
    responder[1].public_key().verify(  # type: ignore[call-arg]
        response.signature,
        response.tbs_response_bytes,
        ec.ECDSA(response.signature_hash_algorithm),
    )


def test_ocsp_revoked_and_unknown_signed_by_the_ca_itself(pki: Hierarchy) -> None:
    revoked = answer(pki, ocsp_request(pki, 1002, algorithm=hashes.SHA256()))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_time_utc == REVOKED_AT
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    assert revoked.certificates == []  # the CA answers for itself: nothing extra to embed
    with pytest.raises(x509.ExtensionNotFound):
        revoked.extensions.get_extension_for_class(x509.OCSPNonce)
    pki.issuing.public_key().verify(  # type: ignore[call-arg]
        revoked.signature, revoked.tbs_response_bytes, ec.ECDSA(revoked.signature_hash_algorithm)
    )

    unknown = answer(pki, ocsp_request(pki, 1003, algorithm=hashes.SHA256()))
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01\x01", b"not der at all"])
def test_ocsp_malformed_request(pki: Hierarchy, garbage: bytes) -> None:
    response = answer(pki, garbage)
    assert response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_oversized_nonce_is_malformed(pki: Hierarchy) -> None:
    request = ocsp_request(pki, 1001, nonce=b"n" * 33, algorithm=hashes.SHA256())
    assert answer(pki, request).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_request_for_another_issuer_is_unauthorized(pki: Hierarchy) -> None:
    # Same serial, but the CertID hashes point at the root instead of the issuing CA.
    _, cert = issue_signer(pki, serial_number=1001)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, pki.root, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    assert answer(pki, request).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_ocsp_refuses_a_responder_not_issued_by_the_issuer(pki: Hierarchy) -> None:
    key = p256()
    foreign = ca.issue_ocsp_responder_certificate(
        key.public_key(),
        common_name="rogue OCSP",
        issuer_certificate=pki.root,
        issuer_private_key=pki.root_key,
        now=NOW,
    )
    with pytest.raises(InvalidInputError):
        answer(pki, ocsp_request(pki, 1001, algorithm=hashes.SHA256()), (key, foreign))
