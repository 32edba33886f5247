"""Revocation status as CRLs (RFC 5280 §5) and OCSP responses (RFC 6960).

Pure: the caller supplies which serials are revoked (``RevokedEntry``) or a lookup function
(``status_lookup``); this module only encodes and signs. ``build_ocsp_response`` takes raw bytes
from the network and always answers with DER, because an OCSP client expects an OCSPResponse
even when its request was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from pactvault.errors import InvalidInputError
from pactvault.pki.ca import authority_key_identifier
from pactvault.pki.signing import IssuerPrivateKey, key_matches_certificate, signature_hash

# RFC 8954 §2.1: nonces longer than 32 octets must be refused (they are a DoS / collision aid).
MAX_OCSP_NONCE_LENGTH = 32

RevocationReason = x509.ReasonFlags


@dataclass(frozen=True)
class RevokedEntry:
    """One line of a CRL."""

    serial_number: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None


@dataclass(frozen=True)
class CertificateStatus:
    """What the certificate database knows about one serial number."""

    status: Literal["good", "revoked", "unknown"]
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None


def build_crl(
    *,
    issuer_certificate: x509.Certificate,
    issuer_private_key: IssuerPrivateKey,
    revoked: Iterable[RevokedEntry],
    crl_number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    """A complete (not delta) CRL signed by ``issuer_certificate``'s key.

    CRLNumber is mandatory in RFC 5280 CRLs and lets clients discard a replayed older CRL; the
    AKI lets them find the right issuer key after a CA key rollover.
    """
    if not key_matches_certificate(issuer_private_key, issuer_certificate.public_key()):
        raise InvalidInputError("the issuer private key does not belong to the issuer certificate")
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise InvalidInputError("crl_number must be a non-negative integer of at most 20 octets")
    this_update = _aware("this_update", this_update)
    next_update = _aware("next_update", next_update)
    if next_update <= this_update:
        raise InvalidInputError("next_update must be after this_update")

    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(authority_key_identifier(issuer_certificate), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(_revoked_certificate(entry))
    return builder.sign(issuer_private_key, signature_hash(issuer_private_key))


def _revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial_number)
        .revocation_date(_aware("revoked_at", entry.revoked_at))
    )
    # RFC 5280 §5.3.1: "unspecified" SHOULD be expressed by omitting the reason code.
    if entry.reason is not None and entry.reason is not x509.ReasonFlags.unspecified:
        revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
    return revoked.build()


def build_ocsp_response(
    request_der: bytes,
    *,
    issuer_certificate: x509.Certificate,
    responder_certificate: x509.Certificate,
    responder_private_key: IssuerPrivateKey,
    status_lookup: Callable[[int], CertificateStatus],
    now: datetime | None = None,
    validity: timedelta = timedelta(hours=1),
) -> bytes:
    """Answer one DER OCSPRequest with a DER OCSPResponse.

    ``responder_certificate`` is either ``issuer_certificate`` itself or a delegated responder
    certificate issued by it (with the OCSPSigning EKU). A wrong configuration here raises,
    because answering with a response every client rejects would hide the mistake; anything
    wrong with the *request* becomes an unsuccessful OCSP response instead.
    """
    delegated = responder_certificate != issuer_certificate
    if delegated:
        _check_delegated_responder(responder_certificate, issuer_certificate)
    if not key_matches_certificate(responder_private_key, responder_certificate.public_key()):
        raise InvalidInputError("the responder private key does not belong to its certificate")
    if validity <= timedelta(0):
        raise InvalidInputError("validity must be positive")

    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
        name_hash = request.issuer_name_hash
        key_hash = request.issuer_key_hash
        serial = request.serial_number
        nonce = _request_nonce(request)
    except Exception:
        # Anything the parser refuses (garbage, several requests, unknown hash) is the
        # client's fault and gets the status RFC 6960 reserves for it.
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)

    if not _is_our_issuer(issuer_certificate, algorithm.name, name_hash, key_hash):
        # We are only authoritative for certificates of this one issuer.
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

    status = status_lookup(serial)
    this_update = _aware("now", now) if now is not None else datetime.now(UTC)
    this_update = this_update.replace(microsecond=0)
    cert_status, revoked_at, reason = _cert_status(status)

    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=serial,
            algorithm=algorithm,
            cert_status=cert_status,
            this_update=this_update,
            next_update=this_update + validity,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder_certificate)
    )
    if delegated:
        # Clients need the delegated certificate to see that the issuer authorised it.
        builder = builder.certificates([responder_certificate])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(responder_private_key, signature_hash(responder_private_key))
    return response.public_bytes(serialization.Encoding.DER)


def _request_nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None
    if not 1 <= len(nonce) <= MAX_OCSP_NONCE_LENGTH:
        raise ValueError("OCSP nonce length out of range")
    return nonce


def _is_our_issuer(
    issuer_certificate: x509.Certificate, hash_name: str, name_hash: bytes, key_hash: bytes
) -> bool:
    """Compare the request's CertID hashes with the issuer's (RFC 6960 §4.1.1).

    The key hash is over the subjectPublicKey BIT STRING value only, not the whole SPKI.
    """
    spki = asn1_keys.PublicKeyInfo.load(
        issuer_certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    expected_name = hashlib.new(hash_name, issuer_certificate.subject.public_bytes()).digest()
    expected_key = hashlib.new(hash_name, bytes(spki["public_key"])).digest()
    return hmac.compare_digest(expected_name, name_hash) and hmac.compare_digest(
        expected_key, key_hash
    )


def _cert_status(
    status: CertificateStatus,
) -> tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]:
    if status.status == "good":
        return ocsp.OCSPCertStatus.GOOD, None, None
    if status.status == "revoked":
        if status.revoked_at is None:
            raise InvalidInputError("a revoked status needs revoked_at")
        reason = status.reason
        if reason is x509.ReasonFlags.unspecified:
            reason = None
        return ocsp.OCSPCertStatus.REVOKED, _aware("revoked_at", status.revoked_at), reason
    return ocsp.OCSPCertStatus.UNKNOWN, None, None


def _check_delegated_responder(
    responder_certificate: x509.Certificate, issuer_certificate: x509.Certificate
) -> None:
    """RFC 6960 §4.2.2.2: a delegate must be issued directly by the CA and carry OCSPSigning."""
    if responder_certificate.issuer != issuer_certificate.subject:
        raise InvalidInputError("the OCSP responder certificate is not issued by this issuer")
    try:
        responder_certificate.verify_directly_issued_by(issuer_certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InvalidInputError(
            "the OCSP responder certificate is not signed by this issuer"
        ) from exc
    try:
        eku = responder_certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku.value:
        raise InvalidInputError("the OCSP responder certificate lacks the OCSPSigning EKU")


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def _aware(field: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInputError(f"{field} must be timezone-aware")
    return value.astimezone(UTC)
