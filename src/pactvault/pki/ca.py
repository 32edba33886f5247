"""Certificate profiles of the pactvault hierarchy: root CA → issuing CA → end entities.

Pure functions: keys and certificates in, ``cryptography.x509`` certificates out. Persisting keys
and certificates, and deciding who gets one, is ``pki.authority``'s job.

The profiles follow RFC 5280 and what the verifiers our users actually run accept: pyHanko's
certvalidator, poppler's ``pdfsig`` (NSS), Adobe Acrobat and OpenSSL. Every rule that is not
obvious carries its reason next to it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pactvault.errors import InvalidInputError
from pactvault.pki.identity import SubjectIdentity
from pactvault.pki.signing import (
    IssuerPrivateKey,
    PublicKey,
    key_matches_certificate,
    signature_hash,
)

# Verifiers disagree on which EKU marks a document-signing certificate, so a signer certificate
# carries all that matter: NSS (pdfsig, Firefox, Okular) and Acrobat accept emailProtection;
# RFC 9336 id-kp-documentSigning is the standard one; Acrobat also honours the Adobe Authentic
# Documents OID. The extension stays non-critical so software that knows none of them still
# treats the certificate as a plain signing certificate.
DOCUMENT_SIGNING_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
ADOBE_AUTHENTIC_DOCUMENTS_EKU = ObjectIdentifier("1.2.840.113583.1.1.5")
SIGNER_EKUS: tuple[ObjectIdentifier, ...] = (
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    DOCUMENT_SIGNING_EKU,
    ADOBE_AUTHENTIC_DOCUMENTS_EKU,
)

# notBefore is back-dated this much so that a verifier whose clock runs slightly behind ours
# does not see a freshly issued certificate as "not yet valid".
CLOCK_SKEW = timedelta(minutes=5)

_SERIAL_BITS = 159


def random_serial_number() -> int:
    """A positive 159-bit serial from the OS CSPRNG.

    CA/B Forum rules ask for at least 64 random bits; 159 bits with the top bit forced keeps the
    DER INTEGER at exactly 20 octets (the RFC 5280 maximum) and never zero or negative.
    """
    return secrets.randbits(_SERIAL_BITS - 1) | (1 << (_SERIAL_BITS - 1))


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 over the DER encoding: how certificates are referenced in evidence."""
    return cert.fingerprint(hashes.SHA256()).hex()


# -- certificate authorities ------------------------------------------------------------------


def create_root_ca(
    private_key: IssuerPrivateKey,
    *,
    common_name: str = "pactvault Root CA",
    organisation: str | None = None,
    validity: timedelta = timedelta(days=3650 * 2),
    now: datetime | None = None,
) -> x509.Certificate:
    """A self-signed trust anchor that may sign CA certificates and CRLs, nothing else."""
    now = _now(now)
    public_key = private_key.public_key()
    name = _ca_name(common_name, organisation)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + _positive(validity))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(private_key, signature_hash(private_key))


def create_issuing_ca(
    public_key: PublicKey,
    *,
    root_certificate: x509.Certificate,
    root_private_key: IssuerPrivateKey,
    common_name: str = "pactvault Issuing CA",
    organisation: str | None = None,
    crl_url: str | None = None,
    validity: timedelta = timedelta(days=3650),
    now: datetime | None = None,
) -> x509.Certificate:
    """The online CA that signs end-entity certificates.

    ``pathlen:0`` means a leaked issuing key can mint leaves but never another CA. ``crl_url`` is
    where the *root's* CRL is published, since the root is what would revoke this certificate.
    """
    builder = _issued(
        public_key,
        subject=_ca_name(common_name, organisation),
        issuer_certificate=root_certificate,
        issuer_private_key=root_private_key,
        validity=validity,
        now=now,
    )
    builder = builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True
    ).add_extension(_ca_key_usage(), critical=True)
    builder = _add_revocation_pointers(builder, crl_url=crl_url, ocsp_url=None)
    return builder.sign(root_private_key, signature_hash(root_private_key))


# -- end entities -----------------------------------------------------------------------------


def issue_signer_certificate(
    public_key: PublicKey,
    *,
    subject: SubjectIdentity,
    issuer_certificate: x509.Certificate,
    issuer_private_key: IssuerPrivateKey,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    validity: timedelta = timedelta(days=365 * 2),
    now: datetime | None = None,
    serial_number: int | None = None,
) -> x509.Certificate:
    """A certificate for a person's (or an organisation's seal) PDF signatures.

    digitalSignature + nonRepudiation (contentCommitment) is the key usage PAdES/eIDAS
    validators expect for signatures that express consent; there is deliberately no
    keyEncipherment, so the key can never be used to decrypt anything.
    """
    if not isinstance(subject, SubjectIdentity):
        raise InvalidInputError("subject must be a SubjectIdentity")
    builder = _issued(
        public_key,
        subject=_subject_name(subject),
        issuer_certificate=issuer_certificate,
        issuer_private_key=issuer_private_key,
        validity=validity,
        now=now,
        serial_number=serial_number,
    )
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_end_entity_key_usage(non_repudiation=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(SIGNER_EKUS)), critical=False)
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(ObjectIdentifier(oid), None) for oid in subject.policy_oids]
            ),
            critical=False,
        )
    )
    if subject.email is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(subject.email)]), critical=False
        )
    builder = _add_revocation_pointers(builder, crl_url=crl_url, ocsp_url=ocsp_url)
    return builder.sign(issuer_private_key, signature_hash(issuer_private_key))


def issue_tsa_certificate(
    public_key: PublicKey,
    *,
    common_name: str,
    organisation: str | None = None,
    issuer_certificate: x509.Certificate,
    issuer_private_key: IssuerPrivateKey,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    validity: timedelta = timedelta(days=3650),
    now: datetime | None = None,
) -> x509.Certificate:
    """The RFC 3161 timestamp authority's certificate.

    RFC 3161 §2.3: the EKU extension MUST be critical and contain id-kp-timeStamping only;
    OpenSSL's ``ts -verify`` and pyHanko both refuse a TSA certificate that breaks this.
    """
    builder = _issued(
        public_key,
        subject=_ca_name(common_name, organisation),
        issuer_certificate=issuer_certificate,
        issuer_private_key=issuer_private_key,
        validity=validity,
        now=now,
    )
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_end_entity_key_usage(non_repudiation=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    )
    builder = _add_revocation_pointers(builder, crl_url=crl_url, ocsp_url=ocsp_url)
    return builder.sign(issuer_private_key, signature_hash(issuer_private_key))


def issue_ocsp_responder_certificate(
    public_key: PublicKey,
    *,
    common_name: str,
    issuer_certificate: x509.Certificate,
    issuer_private_key: IssuerPrivateKey,
    validity: timedelta = timedelta(days=365),
    now: datetime | None = None,
) -> x509.Certificate:
    """A delegated OCSP signer (RFC 6960 §4.2.2.2).

    id-pkix-ocsp-nocheck tells clients not to check the responder's own revocation status, which
    would otherwise be circular; in exchange the certificate is kept short-lived.
    """
    builder = _issued(
        public_key,
        subject=_ca_name(common_name, None),
        issuer_certificate=issuer_certificate,
        issuer_private_key=issuer_private_key,
        validity=validity,
        now=now,
    )
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_end_entity_key_usage(non_repudiation=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
    )
    return builder.sign(issuer_private_key, signature_hash(issuer_private_key))


# -- shared building blocks -------------------------------------------------------------------


def _issued(
    public_key: PublicKey,
    *,
    subject: x509.Name,
    issuer_certificate: x509.Certificate,
    issuer_private_key: IssuerPrivateKey,
    validity: timedelta,
    now: datetime | None,
    serial_number: int | None = None,
) -> x509.CertificateBuilder:
    """Builder pre-filled with what every certificate below the root has in common.

    The validity window is clamped into the issuer's: a certificate that outlives its issuer
    is rejected by strict path validators (and by Acrobat) once the issuer expires.
    """
    if not key_matches_certificate(issuer_private_key, issuer_certificate.public_key()):
        raise InvalidInputError("the issuer private key does not belong to the issuer certificate")
    now = _now(now)
    issuer_start = issuer_certificate.not_valid_before_utc
    issuer_end = issuer_certificate.not_valid_after_utc
    not_before = max(now - CLOCK_SKEW, issuer_start)
    not_after = min(now + _positive(validity), issuer_end)
    if not_after <= not_before or now >= issuer_end:
        raise InvalidInputError("the issuer certificate has expired; renew the CA first")
    if serial_number is None:
        serial_number = random_serial_number()
    elif not isinstance(serial_number, int) or not 0 < serial_number.bit_length() <= _SERIAL_BITS:
        raise InvalidInputError("serial_number must be a positive integer of at most 159 bits")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_certificate.subject)
        .public_key(public_key)
        .serial_number(serial_number)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(issuer_certificate), critical=False)
    )


def authority_key_identifier(issuer_certificate: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI equal to the issuer's SKI, so path builders can pick the right key after a rollover."""
    try:
        ski = issuer_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_certificate.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _add_revocation_pointers(
    builder: x509.CertificateBuilder, *, crl_url: str | None, ocsp_url: str | None
) -> x509.CertificateBuilder:
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            ),
            critical=False,
        )
    return builder


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _end_entity_key_usage(*, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_name(common_name: str, organisation: str | None) -> x509.Name:
    if not common_name or not common_name.strip():
        raise InvalidInputError("common_name must not be empty")
    attributes: list[tuple[ObjectIdentifier, str]] = []
    if organisation:
        attributes.append((NameOID.ORGANIZATION_NAME, organisation))
    attributes.append((NameOID.COMMON_NAME, common_name))
    return _name(attributes)


def _subject_name(subject: SubjectIdentity) -> x509.Name:
    """C, O, CN, serialNumber — CN as UTF8String so names like 张三 survive intact."""
    attributes: list[tuple[ObjectIdentifier, str]] = []
    if subject.country:
        attributes.append((NameOID.COUNTRY_NAME, subject.country))
    if subject.organisation:
        attributes.append((NameOID.ORGANIZATION_NAME, subject.organisation))
    attributes.append((NameOID.COMMON_NAME, subject.common_name))
    attributes.append((NameOID.SERIAL_NUMBER, subject.subject_id))
    return _name(attributes)


def _name(attributes: list[tuple[ObjectIdentifier, str]]) -> x509.Name:
    try:
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    except ValueError as exc:  # e.g. an attribute longer than its X.520 upper bound
        raise InvalidInputError(str(exc)) from None


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(microsecond=0)
    if now.tzinfo is None:
        raise InvalidInputError("now must be timezone-aware")
    return now.astimezone(UTC).replace(microsecond=0)


def _positive(validity: timedelta) -> timedelta:
    if validity <= timedelta(0):
        raise InvalidInputError("validity must be positive")
    return validity
