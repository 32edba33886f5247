"""Checking a TimeStampResp against the request that asked for it — the client's half of RFC 3161.

pyHanko's ``TimeStamper`` only compares the nonce (and its mismatch branch itself crashes with
an AttributeError in 0.38). A token we embed in a contract must instead be proven to be *our
answer*: right imprint, right nonce, intact signature by a timeStamping certificate, bound to
that certificate by ESSCertID. Every failure raises :class:`TimestampUnavailableError` so the
signing flow stops instead of producing an untimestamped or wrongly timestamped document.
"""

from __future__ import annotations

import hashlib

from asn1crypto import cms, core, parser, tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.general import (
    CMSExtractionError,
    CMSStructuralError,
    extract_certificate_info,
    extract_signer_info,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import get_signing_cert_attr, validate_sig_integrity
from pyhanko_certvalidator import CertificateValidator, ValidationContext

from pactvault.crypto.der import EncodedContentInfo, encoded, has_der_lengths
from pactvault.errors import TimestampUnavailableError
from pactvault.tsa.asn1 import TimeStampResp

# What we accept for the CMS digest over TSTInfo: the same set the TSA accepts for imprints.
_SIGNER_DIGESTS = {"sha256", "sha384", "sha512", "sha3_256"}


def check_timestamp_response(
    response: bytes | core.Sequence,
    request: tsp.TimeStampReq,
    *,
    expected_certificate: asn1_x509.Certificate | None = None,
) -> cms.ContentInfo:
    """Return the TimeStampToken from ``response`` if it truly answers ``request``.

    ``expected_certificate`` pins the TSA certificate (used for the in-process authority, where
    we know exactly which certificate must have signed). ``response`` may be DER or any
    asn1crypto TimeStampResp object; it is re-read with our RFC-conformant spec so that
    rejections (which carry no token) can be reported as such.
    """
    try:
        der = response if isinstance(response, bytes) else encoded(response)
        _check(TimeStampResp.load(der, strict=True), request, expected_certificate)
        # Hand back a pristine parse of the token's exact bytes: the checks above walked the
        # tree, and asn1crypto re-encodes a walked tree over and over when pyHanko embeds it.
        return EncodedContentInfo.load(_token_der(der))
    except TimestampUnavailableError:
        raise
    except Exception as exc:
        # asn1crypto parses lazily; a structurally broken token surfaces here as any exception.
        raise TimestampUnavailableError("the timestamp response is malformed") from exc


async def check_timestamp_trust(
    token: cms.ContentInfo, validation_context: ValidationContext
) -> None:
    """Validate the TSA certificate's path to a trust anchor for the timeStamping purpose."""
    signed_data = token["content"]
    certs = extract_certificate_info(signed_data)
    validator = CertificateValidator(
        certs.signer_cert,
        intermediate_certs=list(certs.other_certs),
        validation_context=validation_context,
    )
    try:
        await validator.async_validate_usage(set(), {"time_stamping"})
    except Exception as exc:
        raise TimestampUnavailableError(
            "the timestamp authority's certificate is not trusted"
        ) from exc


def _token_der(response_der: bytes) -> bytes:
    """The TimeStampToken's exact bytes inside a (strictly parsed) DER TimeStampResp."""
    _, _, _, _, body, _ = parser.parse(response_der, strict=True)
    status = parser.parse(body)
    status_size = len(status[3]) + len(status[4]) + len(status[5])
    token = body[status_size:]
    parser.parse(token, strict=True)  # exactly one element, nothing after it
    if not has_der_lengths(token):  # a BER token from some remote TSA: embed it as DER
        token = cms.ContentInfo.load(token).dump(force=True)
    return token


def _check(
    response: TimeStampResp,
    request: tsp.TimeStampReq,
    expected_certificate: asn1_x509.Certificate | None,
) -> cms.ContentInfo:
    status_info = response["status"]
    status = status_info["status"].native
    if status not in ("granted", "granted_with_mods"):
        text = "; ".join(status_info["status_string"].native or [])
        failure = ", ".join(sorted(status_info["fail_info"].native or []))
        raise TimestampUnavailableError(
            f"the timestamp authority refused the request ({status}; {failure or 'no reason'}"
            f"{': ' + text if text else ''})"
        )
    token = response["time_stamp_token"]
    # (isinstance, not ``token.native``: converting the whole token to Python values costs
    # tens of milliseconds and makes asn1crypto re-encode it later.)
    if isinstance(token, core.Void) or token["content_type"].native != "signed_data":
        raise TimestampUnavailableError("the timestamp response carries no token")
    signed_data: cms.SignedData = token["content"]
    encap = signed_data["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampUnavailableError("the timestamp token does not contain a TSTInfo")
    econtent = encap["content"]
    if not isinstance(econtent, core.ParsableOctetString):
        raise TimestampUnavailableError("the timestamp token has no encapsulated TSTInfo")
    tst_info: tsp.TSTInfo = econtent.parsed

    _check_tst_info(tst_info, request)
    _check_signature(signed_data, bytes(econtent), expected_certificate)
    return token


def _check_tst_info(tst_info: tsp.TSTInfo, request: tsp.TimeStampReq) -> None:
    if tst_info["version"].native != "v1":
        raise TimestampUnavailableError("the timestamp token has an unsupported version")
    requested = request["message_imprint"]
    answered = tst_info["message_imprint"]
    same_algorithm = (
        answered["hash_algorithm"]["algorithm"].dotted
        == requested["hash_algorithm"]["algorithm"].dotted
    )
    if (
        not same_algorithm
        or answered["hashed_message"].native != requested["hashed_message"].native
    ):
        raise TimestampUnavailableError("the timestamp token covers a different message imprint")
    nonce = request["nonce"].native
    if nonce is not None and tst_info["nonce"].native != nonce:
        raise TimestampUnavailableError("the timestamp token carries the wrong nonce")
    policy = request["req_policy"]
    if policy.native is not None and tst_info["policy"].dotted != policy.dotted:
        raise TimestampUnavailableError("the timestamp token was issued under another policy")


def _check_signature(
    signed_data: cms.SignedData,
    econtent: bytes,
    expected_certificate: asn1_x509.Certificate | None,
) -> None:
    try:
        signer_info = extract_signer_info(signed_data)
        cert = extract_certificate_info(signed_data).signer_cert
    except CMSExtractionError:
        raise TimestampUnavailableError(
            "the timestamp token must have one signer and include its certificate"
        ) from None
    if expected_certificate is not None and cert.dump() != expected_certificate.dump():
        raise TimestampUnavailableError("the timestamp token was signed by an unexpected TSA")
    _check_tsa_certificate(cert)

    md_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    if md_algorithm not in _SIGNER_DIGESTS:
        raise TimestampUnavailableError("the timestamp token uses a weak digest algorithm")
    if isinstance(signer_info["signed_attrs"], core.Void):
        raise TimestampUnavailableError("the timestamp token has no signed attributes")
    if get_signing_cert_attr(signer_info["signed_attrs"]) is None:
        # RFC 3161 §2.4.2 / RFC 5816: the ESS signing-certificate attribute is mandatory; it
        # stops a token from being re-attributed to another certificate with the same key.
        raise TimestampUnavailableError(
            "the timestamp token lacks the signing-certificate attribute"
        )
    digest = hashlib.new(md_algorithm, econtent).digest()
    try:
        # Also checks the content-type attribute and that the ESSCertID matches ``cert``.
        intact, valid = validate_sig_integrity(
            signer_info, cert, expected_content_type="tst_info", actual_digest=digest
        )
    except (SignatureValidationError, CMSStructuralError) as exc:
        raise TimestampUnavailableError(
            f"the timestamp token's signature is invalid ({exc.failure_message})"
        ) from None
    if not (intact and valid):
        raise TimestampUnavailableError("the timestamp token's signature is invalid")


def _check_tsa_certificate(cert: asn1_x509.Certificate) -> None:
    """RFC 3161 §2.3: only a certificate with a critical, sole timeStamping EKU may sign tokens."""
    if cert.extended_key_usage_value is None or cert.extended_key_usage_value.native != [
        "time_stamping"
    ]:
        raise TimestampUnavailableError("the TSA certificate is not a timestamping certificate")
    if "extended_key_usage" not in cert.critical_extensions:
        raise TimestampUnavailableError("the TSA certificate's timeStamping EKU is not critical")
