"""pactvault's own RFC 3161 timestamp authority: DER TimeStampReq in, DER TimeStampResp out.

``respond`` is fed raw bytes from the network, so it never raises on what a client sends: every
problem becomes a ``rejection`` response with the PKIFailureInfo bit RFC 3161 §2.4.2 assigns to
it. Only a broken *configuration* (detected in ``__init__``) raises.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from pactvault.crypto.der import OCTET_STRING, SET, sequence, set_of, tlv
from pactvault.pki.ca import random_serial_number
from pactvault.pki.identity import TSA_POLICY_OID
from pactvault.pki.signing import key_matches_certificate, signature_hash
from pactvault.tsa.asn1 import TimeStampResp

logger = logging.getLogger(__name__)

# Imprint hash algorithms we timestamp: OID → digest length. MD5 and SHA-1 are refused because a
# token over a collidable hash proves nothing about *which* document existed.
ACCEPTED_IMPRINT_ALGORITHMS: dict[str, int] = {
    "2.16.840.1.101.3.4.2.1": 32,  # sha256
    "2.16.840.1.101.3.4.2.2": 48,  # sha384
    "2.16.840.1.101.3.4.2.3": 64,  # sha512
    "2.16.840.1.101.3.4.2.8": 32,  # sha3-256
}

# A TimeStampReq is a few hundred bytes; refusing megabytes early keeps parsing cheap.
MAX_REQUEST_BYTES = 16 * 1024

# Constant DER pieces of every granted response.
_GRANTED = tsp.PKIStatusInfo({"status": "granted"}).dump()
_SIGNED_DATA_OID = cms.ContentType("signed_data").dump()
_TST_INFO_OID = cms.ContentType("tst_info").dump()
_INTEGER_ONE = core.Integer(1).dump()
_INTEGER_THREE = core.Integer(3).dump()


class _Rejected(Exception):
    """Internal: carries the failure bit and text for a rejection response."""

    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TimestampAuthority:
    """Issues RFC 3161 timestamp tokens signed by the TSA key.

    ``clock`` and ``serial_numbers`` are injectable so tests (and a future HSM-backed clock) can
    control genTime and serials; ``chain`` is what clients get alongside the TSA certificate
    when they set certReq, normally the issuing CA and the root.
    """

    def __init__(
        self,
        *,
        certificate: x509.Certificate,
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        chain: Sequence[x509.Certificate] = (),
        policy_oid: str = TSA_POLICY_OID,
        clock: Callable[[], datetime] = _utc_now,
        serial_numbers: Callable[[], int] = random_serial_number,
        accuracy: timedelta = timedelta(seconds=1),
    ) -> None:
        _require_timestamping_eku(certificate)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the TSA key must be an ECDSA or RSA key")
        if not key_matches_certificate(private_key, certificate.public_key()):
            raise ValueError("the TSA private key does not belong to the TSA certificate")
        if accuracy <= timedelta(0):
            raise ValueError("accuracy must be positive")
        self._hash = signature_hash(private_key)
        assert self._hash is not None  # ECDSA and RSA always hash explicitly
        self._hash_name = self._hash.name  # e.g. "sha256", also asn1crypto's name
        self._certificate = certificate
        self._private_key = private_key
        self._chain = tuple(chain)
        x509.ObjectIdentifier(policy_oid)  # raises ValueError if malformed
        self._policy = core.ObjectIdentifier(policy_oid)
        self._clock = clock
        self._serial_numbers = serial_numbers
        self._accuracy = accuracy

        # Everything that does not change between tokens is encoded once, here. Per token only
        # TSTInfo, two small attributes and the signature are encoded, and the outer layers are
        # assembled as DER bytes (pactvault.crypto.der): asn1crypto would otherwise re-encode the
        # whole token, certificates included, several times over (tens of ms per token, and
        # 100+ ms whenever some length happens to end in 0x80).
        asn1_cert = _to_asn1(certificate)
        ders: list[bytes] = []
        for cert in (certificate, *self._chain):
            der = cert.public_bytes(serialization.Encoding.DER)
            if der not in ders:
                ders.append(der)
        # [0] IMPLICIT CertificateSet: the members of a DER SET OF, sorted, under tag A0.
        self._certificates_der = tlv(0xA0, b"".join(sorted(ders)))
        self._tsa_name_der = asn1_x509.GeneralName(
            name="directory_name", value=asn1_cert.subject
        ).dump()
        sid_der = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": asn1_cert.issuer,
                    "serial_number": asn1_cert.serial_number,
                }
            }
        ).dump()
        digest_algorithm_der = algos.DigestAlgorithm({"algorithm": self._hash_name}).dump()
        self._digest_algorithms_der = set_of(digest_algorithm_der)
        # SignerInfo up to the signed attributes, and the signature algorithm after them.
        self._signer_info_head = _INTEGER_ONE + sid_der + digest_algorithm_der
        self._signature_algorithm_der = self._signature_algorithm().dump()
        self._constant_attributes = (
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump(),
            cms.CMSAttribute(
                {"type": "signing_certificate_v2", "values": [_signing_certificate_v2(asn1_cert)]}
            ).dump(),
        )

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    @property
    def policy_oid(self) -> str:
        return self._policy.dotted

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq; always returns a DER TimeStampResp."""
        try:
            request = _parse_request(request_der)
            self._check_request(request)
            token = self._issue(request)
        except _Rejected as rejected:
            return _rejection(rejected.fail_info, rejected.text)
        except Exception:
            # A bug or a broken clock/serial source, not the client's fault: say so in the
            # protocol (systemFailure) and keep the details in our log only.
            logger.exception("timestamp authority failed to issue a token")
            return _rejection("system_failure", "internal error")
        return sequence(_GRANTED, token)

    # -- request checks -------------------------------------------------------------------------

    def _check_request(self, request: tsp.TimeStampReq) -> None:
        if request["version"].native != "v1":
            raise _Rejected("bad_request", "unsupported TimeStampReq version")
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]
        expected_length = ACCEPTED_IMPRINT_ALGORITHMS.get(algorithm["algorithm"].dotted)
        if expected_length is None:
            raise _Rejected("bad_alg", "unsupported message imprint hash algorithm")
        if algorithm["parameters"].native is not None:
            raise _Rejected("bad_alg", "hash algorithm parameters must be absent or NULL")
        if len(imprint["hashed_message"].native) != expected_length:
            raise _Rejected("bad_alg", "message imprint length does not match its algorithm")
        policy = request["req_policy"]
        if policy.native is not None and policy.dotted != self._policy.dotted:
            raise _Rejected("unaccepted_policy", "requested policy is not offered by this TSA")
        extensions = request["extensions"]
        if extensions.native:
            # RFC 3161 §2.4.2: unsupported extensions, critical or not, must be refused.
            raise _Rejected("unaccepted_extensions", "request extensions are not supported")
        nonce = request["nonce"].native
        if nonce is not None and (nonce < 0 or nonce.bit_length() > 512):
            raise _Rejected("bad_request", "nonce must be a non-negative integer of <= 64 octets")

    # -- token ----------------------------------------------------------------------------------

    def _issue(self, request: tsp.TimeStampReq) -> bytes:
        """The DER TimeStampToken (a CMS ContentInfo) answering ``request``."""
        gen_time = self._clock()
        if gen_time.tzinfo is None:
            raise ValueError("TSA clock returned a naive datetime")
        gen_time = gen_time.astimezone(UTC)
        cert = self._certificate
        if not cert.not_valid_before_utc <= gen_time <= cert.not_valid_after_utc:
            # A token from outside the certificate's validity verifies nowhere; refuse loudly.
            raise ValueError("the TSA certificate is not valid at the current time")
        serial = self._serial_numbers()
        if not isinstance(serial, int) or serial <= 0 or serial.bit_length() > 159:
            raise ValueError("TSA serial number source returned an invalid value")

        tst_info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self._policy.dotted,
                # Echo the client's imprint unchanged; the parsed value was already checked.
                "message_imprint": tsp.MessageImprint.load(request["message_imprint"].dump()),
                "serial_number": serial,
                "gen_time": gen_time,
                "accuracy": _accuracy(self._accuracy),
                "nonce": request["nonce"].native,
                "tsa": asn1_x509.GeneralName.load(self._tsa_name_der),
            }
        )
        econtent = tst_info.dump()
        # DER: a SET OF is sorted by its members' encodings; verifiers re-encode strictly.
        attributes = b"".join(sorted(self._signed_attributes(econtent, gen_time)))
        # The signature covers the attributes encoded as a SET (RFC 5652 §5.4); in the
        # SignerInfo the same bytes carry the [0] IMPLICIT tag.
        signature = self._sign(tlv(SET, attributes))
        signer_info = sequence(
            self._signer_info_head,
            tlv(0xA0, attributes),
            self._signature_algorithm_der,
            tlv(OCTET_STRING, signature),
        )
        signed_data = sequence(
            # v3 because the encapsulated content type is not id-data (RFC 5652 §5.1).
            _INTEGER_THREE,
            self._digest_algorithms_der,
            sequence(_TST_INFO_OID, tlv(0xA0, tlv(OCTET_STRING, econtent))),
            self._certificates_der if request["cert_req"].native else b"",
            set_of(signer_info),
        )
        return sequence(_SIGNED_DATA_OID, tlv(0xA0, signed_data))

    def _signed_attributes(self, econtent: bytes, gen_time: datetime) -> list[bytes]:
        """DER of each signed attribute: content type, digest, signing time, ESSCertIDv2."""
        message_digest = hashlib.new(self._hash_name, econtent).digest()
        time_choice = "utc_time" if gen_time.year < 2050 else "generalized_time"  # RFC 5652 §11.3
        return [
            *self._constant_attributes,
            cms.CMSAttribute({"type": "message_digest", "values": [message_digest]}).dump(),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time(name=time_choice, value=gen_time)]}
            ).dump(),
        ]

    def _signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        if isinstance(self._private_key, ec.EllipticCurvePrivateKey):
            return algos.SignedDigestAlgorithm({"algorithm": f"{self._hash_name}_ecdsa"})
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})

    def _sign(self, data: bytes) -> bytes:
        assert self._hash is not None
        if isinstance(self._private_key, ec.EllipticCurvePrivateKey):
            return self._private_key.sign(data, ec.ECDSA(self._hash))
        return self._private_key.sign(data, padding.PKCS1v15(), self._hash)


# -- helpers ------------------------------------------------------------------------------------


def _require_timestamping_eku(certificate: x509.Certificate) -> None:
    """RFC 3161 §2.3: the TSA certificate's EKU is critical and is id-kp-timeStamping alone."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise ValueError("the TSA certificate has no extended key usage extension") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ValueError("the TSA certificate needs a critical EKU with only id-kp-timeStamping")


def _parse_request(request_der: bytes) -> tsp.TimeStampReq:
    if not isinstance(request_der, bytes | bytearray | memoryview):
        raise _Rejected("bad_data_format", "request must be DER bytes")
    data = bytes(request_der)
    if not data or len(data) > MAX_REQUEST_BYTES:
        raise _Rejected("bad_data_format", "request is empty or too large")
    try:
        request = tsp.TimeStampReq.load(data, strict=True)
        request.native  # noqa: B018 - asn1crypto parses lazily; force it to surface errors now
    except Exception:
        raise _Rejected("bad_data_format", "request is not a DER TimeStampReq") from None
    return request


def _rejection(fail_info: str, text: str) -> bytes:
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({fail_info}),
        }
    )
    return TimeStampResp({"status": status}).dump()


def _accuracy(accuracy: timedelta) -> tsp.Accuracy:
    micros_total = accuracy // timedelta(microseconds=1)
    seconds, rest = divmod(micros_total, 1_000_000)
    millis, micros = divmod(rest, 1000)
    # Zero-valued fields are omitted: millis and micros are INTEGER (1..999) in RFC 3161.
    value: dict[str, int] = {}
    if seconds:
        value["seconds"] = seconds
    if millis:
        value["millis"] = millis
    if micros:
        value["micros"] = micros
    return tsp.Accuracy(value)


def _signing_certificate_v2(cert: asn1_x509.Certificate) -> tsp.SigningCertificateV2:
    """ESSCertIDv2 (RFC 5035) binding the token to the exact TSA certificate, hash = SHA-256."""
    return tsp.SigningCertificateV2(
        {
            "certs": [
                {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "cert_hash": hashlib.sha256(cert.dump()).digest(),
                    "issuer_serial": {
                        "issuer": [asn1_x509.GeneralName(name="directory_name", value=cert.issuer)],
                        "serial_number": cert.serial_number,
                    },
                }
            ]
        }
    )


def _to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return _load_cert(certificate.public_bytes(serialization.Encoding.DER))


def _load_cert(der: bytes) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(der)
