"""The RFC 3161 timestamp authority and the fail-closed pyHanko timestampers built on it."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import io
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pactvault.errors import TimestampUnavailableError
from pactvault.pki import ca
from pactvault.pki.identity import TSA_POLICY_OID
from pactvault.tsa.asn1 import TimeStampResp
from pactvault.tsa.authority import TimestampAuthority
from pactvault.tsa.client import http_timestamper, local_timestamper, timestamp_digest

GEN_TIME = datetime(2025, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
ISSUED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Tsa:
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def authority(self, **kwargs: object) -> TimestampAuthority:
        kwargs.setdefault("chain", [self.issuing, self.root])
        return TimestampAuthority(certificate=self.certificate, private_key=self.key, **kwargs)  # type: ignore[arg-type]


def build_tsa(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Tsa:
    root_key, issuing_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = ca.create_root_ca(root_key, now=ISSUED)
    issuing = ca.create_issuing_ca(
        issuing_key.public_key(), root_certificate=root, root_private_key=root_key, now=ISSUED
    )
    cert = ca.issue_tsa_certificate(
        key.public_key(),
        common_name="pactvault TSA",
        issuer_certificate=issuing,
        issuer_private_key=issuing_key,
        now=ISSUED,
    )
    return Tsa(root, issuing, issuing_key, cert, key)


@pytest.fixture(scope="module")
def tsa() -> Tsa:
    return build_tsa(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def rsa_tsa() -> Tsa:
    return build_tsa(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def request(
    digest: bytes | None = None,
    *,
    algorithm: str = "sha256",
    nonce: int | None = 0x1234567890ABCDEF,
    cert_req: bool = True,
    version: int = 1,
    policy: str | None = None,
) -> bytes:
    if digest is None:
        digest = hashlib.sha256(b"contract").digest()
    fields: dict[str, object] = {
        "version": version,
        "message_imprint": {
            "hash_algorithm": {"algorithm": algorithm},
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields).dump()


def parse(response_der: bytes) -> TimeStampResp:
    # asn1crypto's own TimeStampResp wrongly requires the token, so rejections need ours.
    response = TimeStampResp.load(response_der, strict=True)
    response.native  # noqa: B018 - parse everything: proves the DER is well-formed
    return response


def tst_info(response: TimeStampResp) -> tsp.TSTInfo:
    return response["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed


def fixed_clock() -> datetime:
    return GEN_TIME


# -- granted tokens -----------------------------------------------------------------------------


def test_granted_token_echoes_request_and_uses_injected_clock(tsa: Tsa) -> None:
    authority = tsa.authority(clock=fixed_clock, serial_numbers=lambda: 4242)
    digest = hashlib.sha256(b"the contract").digest()
    response = parse(authority.respond(request(digest, nonce=987654321)))

    assert response["status"]["status"].native == "granted"
    info = tst_info(response)
    assert info["version"].native == "v1"
    assert info["policy"].dotted == TSA_POLICY_OID
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["nonce"].native == 987654321
    assert info["serial_number"].native == 4242
    assert info["gen_time"].native == GEN_TIME
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info["tsa"].chosen.native["common_name"] == "pactvault TSA"


def test_token_signature_and_ess_cert_id_v2(tsa: Tsa) -> None:
    response = parse(tsa.authority(clock=fixed_clock).respond(request()))
    signed_data = response["time_stamp_token"]["content"]
    (signer_info,) = signed_data["signer_infos"]
    econtent = bytes(signed_data["encap_content_info"]["content"])
    attrs = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}

    assert attrs["content_type"].native == "tst_info"
    assert attrs["message_digest"].native == hashlib.sha256(econtent).digest()
    assert attrs["signing_time"].native == GEN_TIME.replace(microsecond=0)
    cert_der = tsa.certificate.public_bytes(serialization.Encoding.DER)
    (ess,) = attrs["signing_certificate_v2"]["certs"]
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"
    assert ess["cert_hash"].native == hashlib.sha256(cert_der).digest()
    assert ess["issuer_serial"]["serial_number"].native == tsa.certificate.serial_number
    sid = signer_info["sid"].chosen
    assert sid["serial_number"].native == tsa.certificate.serial_number

    # CMS signs the DER of the SET OF attributes: the [0] IMPLICIT tag re-tagged as SET.
    signed_bytes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    signature = signer_info["signature"].native
    tsa.certificate.public_key().verify(signature, signed_bytes, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    with pytest.raises(Exception):  # noqa: B017 - any InvalidSignature
        tsa.certificate.public_key().verify(  # type: ignore[call-arg]
            signature, signed_bytes + b"x", ec.ECDSA(hashes.SHA256())
        )


def test_cert_req_controls_embedded_certificates(tsa: Tsa) -> None:
    authority = tsa.authority()
    with_certs = parse(authority.respond(request(cert_req=True)))
    embedded = {c.chosen.dump() for c in with_certs["time_stamp_token"]["content"]["certificates"]}
    expected = {
        c.public_bytes(serialization.Encoding.DER) for c in (tsa.certificate, tsa.issuing, tsa.root)
    }
    assert embedded == expected
    without = parse(authority.respond(request(cert_req=False)))
    assert without["time_stamp_token"]["content"]["certificates"].native is None


def test_requested_policy_must_be_ours(tsa: Tsa) -> None:
    authority = tsa.authority()
    ours = parse(authority.respond(request(policy=TSA_POLICY_OID)))
    assert ours["status"]["status"].native == "granted"
    other = parse(authority.respond(request(policy="1.2.3.4.5")))
    assert other["status"]["status"].native == "rejection"
    assert other["status"]["fail_info"].native == {"unaccepted_policy"}


def test_serial_numbers_are_unique_across_calls(tsa: Tsa) -> None:
    authority = tsa.authority()
    # certReq off and no full .native walk: this test is about serials, keep it cheap.
    responses = [TimeStampResp.load(authority.respond(request(cert_req=False))) for _ in range(20)]
    serials = {tst_info(r)["serial_number"].native for r in responses}
    assert len(serials) == 20


@pytest.mark.parametrize("algorithm", ["sha384", "sha512", "sha3_256"])
def test_other_accepted_imprint_algorithms(tsa: Tsa, algorithm: str) -> None:
    digest = hashlib.new(algorithm, b"x").digest()
    response = parse(tsa.authority().respond(request(digest, algorithm=algorithm)))
    assert response["status"]["status"].native == "granted"
    assert tst_info(response)["message_imprint"]["hashed_message"].native == digest


def test_p384_tsa_signs_with_sha384() -> None:
    tsa = build_tsa(ec.generate_private_key(ec.SECP384R1()))
    signed_data = parse(tsa.authority().respond(request()))["time_stamp_token"]["content"]
    (signer_info,) = signed_data["signer_infos"]
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha384_ecdsa"
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha384"


def test_rsa_tsa_signs_pkcs1v15_sha256(rsa_tsa: Tsa) -> None:
    signed_data = parse(rsa_tsa.authority().respond(request()))["time_stamp_token"]["content"]
    (signer_info,) = signed_data["signer_infos"]
    signed_bytes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    rsa_tsa.certificate.public_key().verify(  # type: ignore[call-arg]
        signer_info["signature"].native, signed_bytes, padding.PKCS1v15(), hashes.SHA256()
    )


# -- rejections ---------------------------------------------------------------------------------


def _sha1_request() -> bytes:
    return request(hashlib.sha1(b"x").digest(), algorithm="sha1")


def _md5_request() -> bytes:
    return request(hashlib.md5(b"x").digest(), algorithm="md5")


def _extension_request() -> bytes:
    req = tsp.TimeStampReq.load(request())
    req["extensions"] = [{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]
    return req.dump()


@pytest.mark.parametrize(
    ("make_request", "fail_info"),
    [
        (_sha1_request, "bad_alg"),
        (_md5_request, "bad_alg"),
        (lambda: request(hashlib.sha256(b"x").digest()[:31]), "bad_alg"),
        (lambda: request(hashlib.sha512(b"x").digest(), algorithm="sha256"), "bad_alg"),
        (lambda: request(version=2), "bad_request"),
        (lambda: b"\x00garbage\xff" * 3, "bad_data_format"),
        (lambda: b"", "bad_data_format"),
        (lambda: request()[:-3], "bad_data_format"),
        (lambda: request() + b"\x00", "bad_data_format"),
        (_extension_request, "unaccepted_extensions"),
    ],
    ids=[
        "sha1",
        "md5",
        "truncated-imprint",
        "imprint-length-mismatch",
        "version-2",
        "garbage",
        "empty",
        "truncated-der",
        "trailing-bytes",
        "extensions",
    ],
)
def test_rejections_are_still_der_responses(
    tsa: Tsa, make_request: Callable[[], bytes], fail_info: str
) -> None:
    response = parse(tsa.authority().respond(make_request()))
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["fail_info"].native == {fail_info}
    assert response["status"]["status_string"].native
    assert response["time_stamp_token"].native is None


def test_internal_failure_becomes_system_failure_not_an_exception(tsa: Tsa) -> None:
    def broken_clock() -> datetime:
        raise RuntimeError("clock unplugged")

    response = parse(tsa.authority(clock=broken_clock).respond(request()))
    assert response["status"]["status"].native == "rejection"
    assert response["status"]["fail_info"].native == {"system_failure"}
    assert "unplugged" not in str(response["status"]["status_string"].native)


def test_expired_tsa_certificate_yields_system_failure(tsa: Tsa) -> None:
    def late() -> datetime:
        return tsa.certificate.not_valid_after_utc + timedelta(seconds=1)

    response = parse(tsa.authority(clock=late).respond(request()))
    assert response["status"]["fail_info"].native == {"system_failure"}


def test_constructor_requires_critical_sole_timestamping_eku(tsa: Tsa) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer_like = ca.issue_ocsp_responder_certificate(  # EKU OCSPSigning, not timeStamping
        key.public_key(),
        common_name="not a TSA",
        issuer_certificate=tsa.issuing,
        issuer_private_key=tsa.issuing_key,
        now=ISSUED,
    )
    with pytest.raises(ValueError, match="timeStamping"):
        TimestampAuthority(certificate=signer_like, private_key=key)

    non_critical = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=lax TSA"))
        .issuer_name(tsa.issuing.subject)
        .public_key(key.public_key())
        .serial_number(ca.random_serial_number())
        .not_valid_before(ISSUED)
        .not_valid_after(ISSUED + timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]), critical=False
        )
        .sign(tsa.issuing_key, hashes.SHA256())
    )
    with pytest.raises(ValueError, match="critical"):
        TimestampAuthority(certificate=non_critical, private_key=key)

    with pytest.raises(ValueError, match="does not belong"):
        TimestampAuthority(certificate=tsa.certificate, private_key=key)


# -- OpenSSL interoperability -------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_openssl_ts_verify_accepts_our_token(
    tsa: Tsa, rsa_tsa: Tsa, which: str, tmp_path: Path
) -> None:
    chosen = tsa if which == "ec" else rsa_tsa
    data = tmp_path / "contract.pdf"
    data.write_bytes(b"%PDF-1.7 pretend contract\n" * 100)
    (tmp_path / "root.pem").write_bytes(chosen.root.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "chain.pem").write_bytes(
        chosen.issuing.public_bytes(serialization.Encoding.PEM)
        + chosen.certificate.public_bytes(serialization.Encoding.PEM)
    )
    query = tmp_path / "req.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)],
        check=True,
        capture_output=True,
    )
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(chosen.authority().respond(query.read_bytes()))

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "ts", "-verify", "-data", str(path), "-in", str(reply),
             "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(tmp_path / "chain.pem")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    result = verify(data)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout
    other = tmp_path / "other.pdf"
    other.write_bytes(b"a different document")
    assert verify(other).returncode != 0


# -- pyHanko timestampers -----------------------------------------------------------------------


def test_local_timestamper_gives_pyhanko_a_verified_token(tsa: Tsa) -> None:
    digest = hashlib.sha256(b"audit journal head").digest()
    token_der = timestamp_digest(local_timestamper(tsa.authority(clock=fixed_clock)), digest)
    token = cms.ContentInfo.load(token_der)
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest
    assert info["gen_time"].native == GEN_TIME


def test_timestamp_digest_works_inside_a_running_event_loop(tsa: Tsa) -> None:
    digest = hashlib.sha384(b"x").digest()

    async def main() -> bytes:
        return timestamp_digest(local_timestamper(tsa.authority()), digest, "sha384")

    token = cms.ContentInfo.load(asyncio.run(main()))
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest


def test_local_timestamper_works_as_pyhanko_timestamper_for_rsa(rsa_tsa: Tsa) -> None:
    stamper = local_timestamper(rsa_tsa.authority())
    token = asyncio.run(stamper.async_dummy_response("sha256"))  # pyHanko's size estimation path
    assert token["content"]["encap_content_info"]["content_type"].native == "tst_info"


class _Tampering:
    """Stands in for a TimestampAuthority and lets a test corrupt one side of the exchange."""

    def __init__(
        self,
        inner: TimestampAuthority,
        *,
        request_hook: Callable[[tsp.TimeStampReq], None] | None = None,
        response_hook: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.certificate = inner.certificate
        self._inner = inner
        self._request_hook = request_hook
        self._response_hook = response_hook

    def respond(self, request_der: bytes) -> bytes:
        req = tsp.TimeStampReq.load(request_der)
        if self._request_hook:
            self._request_hook(req)
        response = self._inner.respond(req.dump())
        return self._response_hook(response) if self._response_hook else response


def _wrong_nonce(req: tsp.TimeStampReq) -> None:
    req["nonce"] = req["nonce"].native + 1


def _wrong_imprint(req: tsp.TimeStampReq) -> None:
    req["message_imprint"] = {
        "hash_algorithm": {"algorithm": "sha256"},
        "hashed_message": hashlib.sha256(b"another document").digest(),
    }


def _flip_signature_bit(response_der: bytes) -> bytes:
    response = TimeStampResp.load(response_der)
    signer_info = response["time_stamp_token"]["content"]["signer_infos"][0]
    signature = bytearray(signer_info["signature"].native)
    signature[-1] ^= 1
    signer_info["signature"] = bytes(signature)
    return response.dump(force=True)


def _strip_ess_attribute(response_der: bytes) -> bytes:
    response = TimeStampResp.load(response_der)
    signer_info = response["time_stamp_token"]["content"]["signer_infos"][0]
    kept = [a for a in signer_info["signed_attrs"] if a["type"].native != "signing_certificate_v2"]
    signer_info["signed_attrs"] = cms.CMSAttributes(kept)
    return response.dump(force=True)


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"request_hook": _wrong_nonce}, "nonce"),
        ({"request_hook": _wrong_imprint}, "imprint"),
        ({"request_hook": lambda r: r.__setitem__("version", 2)}, "refused"),
        ({"response_hook": _flip_signature_bit}, "signature"),
        ({"response_hook": _strip_ess_attribute}, "signing-certificate"),
        ({"response_hook": lambda der: der[:-10]}, "timestamp"),
        ({"response_hook": lambda der: b"\x30\x00"}, "timestamp"),
    ],
    ids=["nonce", "imprint", "rejection", "bad-signature", "no-ess", "truncated", "empty"],
)
def test_local_timestamper_fails_closed(tsa: Tsa, hooks: dict, message: str) -> None:
    stamper = local_timestamper(_Tampering(tsa.authority(), **hooks))  # type: ignore[arg-type]
    with pytest.raises(TimestampUnavailableError, match=message):
        timestamp_digest(stamper, hashlib.sha256(b"contract").digest())


def test_local_timestamper_pins_the_authority_certificate(tsa: Tsa) -> None:
    impostor = build_tsa(ec.generate_private_key(ec.SECP256R1())).authority()
    tampering = _Tampering(impostor)
    tampering.certificate = tsa.certificate  # claims to be our TSA, signs with another
    with pytest.raises(TimestampUnavailableError, match="unexpected TSA"):
        timestamp_digest(local_timestamper(tampering), hashlib.sha256(b"x").digest())  # type: ignore[arg-type]


# -- HTTP timestamper ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_http_timestamper_to_a_closed_port_fails_closed() -> None:
    stamper = http_timestamper(f"http://127.0.0.1:{_closed_port()}/tsa", timeout=1.0)
    with pytest.raises(TimestampUnavailableError):
        timestamp_digest(stamper, hashlib.sha256(b"x").digest())


@pytest.fixture
def tsa_server(tsa: Tsa) -> Iterator[str]:
    """A throw-away loopback RFC 3161 endpoint answering with our authority."""
    authority = tsa.authority()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/broken":
                self.send_response(500)
                self.end_headers()
                return
            answer = authority.respond(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_timestamper_round_trip_with_trust_roots(tsa: Tsa, tsa_server: str) -> None:
    digest = hashlib.sha256(b"over http").digest()
    stamper = http_timestamper(f"{tsa_server}/tsa", timeout=5, trust_roots=[tsa.root])
    token = cms.ContentInfo.load(timestamp_digest(stamper, digest))
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == digest


def test_http_timestamper_rejects_untrusted_tsa_and_http_errors(tsa: Tsa, tsa_server: str) -> None:
    digest = hashlib.sha256(b"over http").digest()
    stranger_root = ca.create_root_ca(ec.generate_private_key(ec.SECP256R1()))
    untrusting = http_timestamper(f"{tsa_server}/tsa", timeout=5, trust_roots=[stranger_root])
    with pytest.raises(TimestampUnavailableError, match="not trusted"):
        timestamp_digest(untrusting, digest)
    with pytest.raises(TimestampUnavailableError):
        timestamp_digest(http_timestamper(f"{tsa_server}/broken", timeout=5), digest)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_reads_our_rejection(tsa: Tsa, tmp_path: Path) -> None:
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(tsa.authority().respond(b"definitely not a request"))
    result = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(reply), "-text"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Status: Rejected" in result.stdout
    assert "wrong format" in result.stdout


def test_pyhanko_signs_a_pdf_with_the_local_timestamper(tsa: Tsa) -> None:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from pactvault.pki.identity import SubjectIdentity

    def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = ca.issue_signer_certificate(
        signer_key.public_key(),
        subject=SubjectIdentity("张三", "user-9", email="zhangsan@example.test"),
        issuer_certificate=tsa.issuing,
        issuer_private_key=tsa.issuing_key,
    )
    writer = PdfFileWriter()
    writer.insert_page(
        PageObject(
            contents=writer.add_object(generic.StreamObject(stream_data=b"")),
            media_box=generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)]),
        )
    )
    blank = io.BytesIO()
    writer.write(blank)
    blank.seek(0)
    signer = signers.SimpleSigner(
        signing_cert=asn1(signer_cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            signer_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
        cert_registry=SimpleCertificateStore.from_certs([asn1(tsa.issuing), asn1(tsa.root)]),
    )
    signed = signers.sign_pdf(
        IncrementalPdfFileWriter(blank),
        signers.PdfSignatureMetadata(field_name="Signature1"),
        signer=signer,
        timestamper=local_timestamper(tsa.authority()),
    )
    (embedded,) = PdfFileReader(signed).embedded_signatures
    trust = ValidationContext(trust_roots=[asn1(tsa.root)])
    status = validate_pdf_signature(embedded, trust, ts_validation_context=trust)
    assert status.bottom_line
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid
    assert status.timestamp_validity.trusted


# -- encoding (the token is assembled from DER pieces, see pactvault.crypto.der) ---------------


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_responses_and_tokens_are_canonical_der(tsa: Tsa, rsa_tsa: Tsa, which: str) -> None:
    authority = (tsa if which == "ec" else rsa_tsa).authority()
    # Several tokens: serials, nonces and signature lengths vary, and with them length fields.
    # (asn1crypto's forced re-encoding takes ~0.3 s per token, so only a few.)
    for index in range(4):
        der = authority.respond(request(nonce=index * 0x1F3D5B79 + 1, cert_req=index == 0))
        assert TimeStampResp.load(der).dump(force=True) == der  # asn1crypto re-encodes the same
        signed_data = TimeStampResp.load(der)["time_stamp_token"]["content"]
        assert signed_data["version"].native == "v3"
        assert isinstance(signed_data["certificates"], core.Void) == (index != 0)


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_local_timestamper_bounds_its_token_size(tsa: Tsa, rsa_tsa: Tsa, which: str) -> None:
    authority = (tsa if which == "ec" else rsa_tsa).authority()
    stamper = local_timestamper(authority)
    hint = stamper.token_size_hint()  # type: ignore[attr-defined]
    token = asyncio.run(stamper.async_timestamp(hashlib.sha256(b"x").digest(), "sha256"))
    assert len(token.dump()) < hint < len(token.dump()) + 4096
    assert http_timestamper("http://127.0.0.1:9/").token_size_hint() is None  # type: ignore[attr-defined]
