"""Shared building blocks for the MFA tests (no tests here).

- ``make_mfa_kit``: the identity kit (``identity_kit``) plus a real local key service, the MFA
  digest secret from the key hierarchy, real senders (memory mailer, development SMS outbox),
  ``MfaService``, a ``LoginService`` with the second step and ``StepUpService``, all on the same
  fake clock. WebAuthn challenges can be queued so py_webauthn's recorded responses (whose
  challenges are fixed) go through our real ceremonies.
- ``SoftAuthenticator``: a software WebAuthn authenticator (EC P-256, ``none`` attestation) that
  signs whatever challenge it is given — real signatures, for flows no recorded fixture covers
  (a challenge derived from a document hash cannot be pre-recorded).
- ``SmtpTestServer``: a tiny SMTP server on loopback with STARTTLS and AUTH PLAIN, so the SMTP
  mailer is tested against a real TLS handshake with certificate verification.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import re
import secrets
import socketserver
import ssl
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from webauthn.helpers import encode_cbor

from identity_kit import Kit, make_kit
from pactvault.delivery.sms import FileOutboxSmsSender
from pactvault.identity.login import LoginService
from pactvault.identity.mfa import (
    EmailCodeSender,
    MfaService,
    RelyingParty,
    SmsCodeSender,
    StepUpService,
    totp,
)
from pactvault.identity.mfa.keyring import KEY_NAME
from pactvault.identity.principal import Principal
from pactvault.identity.throttle import ThrottlePolicy
from pactvault.keys.local import LocalKeyService, LocalKeyStore
from pactvault.keys.secrets import platform_secret

FIXTURES = Path(__file__).parent / "fixtures" / "webauthn"
RP = RelyingParty(id="localhost", origins=("http://localhost:5000",))
ORIGIN = RP.origins[0]


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ChallengeQueue:
    """WebAuthn challenges: queued ones first (recorded fixtures), then random ones."""

    def __init__(self) -> None:
        self.queued: list[bytes] = []

    def __call__(self) -> bytes:
        return self.queued.pop(0) if self.queued else secrets.token_bytes(32)


@dataclass
class MfaKit:
    base: Kit
    keys: LocalKeyService
    secret: bytes
    mfa: MfaService
    login: LoginService
    stepup: StepUpService
    sms: FileOutboxSmsSender
    challenges: ChallengeQueue

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.base.db

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self.base.clock

    def close(self) -> None:
        self.base.close()

    def events(self, action: str) -> list[Any]:
        return self.base.events(action)

    def last_email_code(self, to: str) -> str:
        for message in reversed(self.base.mailer.messages):
            if message.to == to:
                return _code_in(message.body)
        raise AssertionError(f"no email to {to}")

    def last_sms(self, to: str) -> str:
        for message in reversed(self.sms.messages()):
            if message.to == to:
                return message.text
        raise AssertionError(f"no SMS to {to}")

    def last_sms_code(self, to: str) -> str:
        return _code_in(self.last_sms(to))


def enrol_totp(kit: MfaKit, principal: Principal) -> bytes:
    """Enrol an authenticator app for ``principal``; returns its seed (the app's copy)."""
    setup = kit.mfa.begin_totp(principal)
    seed = base64.b32decode(setup.secret + "=" * (-len(setup.secret) % 8))
    kit.mfa.confirm_totp(principal, totp.code_at(seed, kit.clock.now))
    return seed


def wrong(code: str) -> str:
    """A code that is certainly not ``code`` (nor, in practice, a neighbouring step's)."""
    return f"{(int(code) + 500000) % 1000000:06d}"


def _code_in(text: str) -> str:
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)


def make_mfa_kit(
    database_url: str,
    tmp_path: Path,
    *,
    rp: RelyingParty | None = RP,
    mfa_throttle: ThrottlePolicy | None = None,
) -> MfaKit:
    base = make_kit(database_url)
    keys = LocalKeyService(LocalKeyStore(tmp_path / "keys", None).initialise())
    with base.db.write() as session:
        secret = platform_secret(session, keys, KEY_NAME)
    sms = FileOutboxSmsSender(tmp_path / "sms-outbox")
    challenges = ChallengeQueue()
    mfa = MfaService(
        base.db,
        base.access,
        keys,
        secret=secret,
        relying_party=rp,
        senders=[EmailCodeSender(base.mailer), SmsCodeSender(sms)],
        throttle=mfa_throttle,
        clock=base.clock,
        challenge_factory=challenges,
    )
    login = LoginService(
        base.db, base.access, base.sessions, base.hasher, base.policy, clock=base.clock, mfa=mfa
    )
    return MfaKit(
        base=base,
        keys=keys,
        secret=secret,
        mfa=mfa,
        login=login,
        stepup=StepUpService(base.db, mfa, clock=base.clock),
        sms=sms,
        challenges=challenges,
    )


# -- a software WebAuthn authenticator ----------------------------------------------------------


@dataclass
class SoftAuthenticator:
    """A platform-authenticator stand-in with a real P-256 key (``none`` attestation)."""

    rp_id: str = RP.id
    origin: str = ORIGIN
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, *, uv: bool, attested: bool) -> bytes:
        flags = 0x01 | (0x04 if uv else 0) | (0x40 if attested else 0)
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags])
        data += struct.pack(">I", self.sign_count)
        if attested:
            data += b"\x00" * 16 + struct.pack(">H", len(self.credential_id)) + self.credential_id
            data += self.cose_public_key()
        return data

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def register(self, options_json: str, *, uv: bool = True) -> dict[str, Any]:
        options = json.loads(options_json)
        client_data = self._client_data("webauthn.create", options["challenge"], self.origin)
        attestation = encode_cbor(
            {"fmt": "none", "attStmt": {}, "authData": self._auth_data(uv=uv, attested=True)}
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def assertion(
        self,
        options_json: str,
        *,
        uv: bool = True,
        origin: str | None = None,
        advance: int = 1,
    ) -> dict[str, Any]:
        """Sign the options' challenge; ``advance`` moves the counter (0 or negative: replay)."""
        options = json.loads(options_json)
        self.sign_count += advance
        client_data = self._client_data("webauthn.get", options["challenge"], origin or self.origin)
        auth_data = self._auth_data(uv=uv, attested=False)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
            "clientExtensionResults": {},
        }


# -- a loopback SMTP server with STARTTLS --------------------------------------------------------


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    auth: tuple[str, str] | None


class SmtpTestServer:
    """Just enough SMTP (RFC 5321) for a client: EHLO, STARTTLS, AUTH PLAIN, one message."""

    def __init__(self, tls_context: ssl.SSLContext | None, *, offer_starttls: bool = True):
        self.received: list[ReceivedMail] = []
        self.commands: list[str] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server._session(self, tls_context if offer_starttls else None)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _session(self, handler: socketserver.StreamRequestHandler, tls: ssl.SSLContext | None):  # type: ignore[no-untyped-def]
        conn = handler.connection
        reader, writer = handler.rfile, handler.wfile
        secure = False
        auth: tuple[str, str] | None = None
        sender, recipients = "", []

        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            writer.flush()

        say("220 localhost pactvault-test ESMTP")
        while True:
            raw = reader.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            self.commands.append(verb if verb != "AUTH" else "AUTH")
            if verb in ("EHLO", "HELO"):
                extensions = ["250-localhost", "250-AUTH PLAIN"]
                if tls is not None and not secure:
                    extensions.append("250-STARTTLS")
                for ext in extensions:
                    say(ext)
                say("250 8BITMIME")
            elif verb == "STARTTLS" and tls is not None and not secure:
                say("220 ready to start TLS")
                conn = tls.wrap_socket(conn, server_side=True)
                reader, writer = conn.makefile("rb"), conn.makefile("wb")
                secure = True
            elif verb == "AUTH":
                _, mechanism, payload = line.split(" ", 2)
                assert mechanism.upper() == "PLAIN"
                _, user, password = base64.b64decode(payload).split(b"\0")
                auth = (user.decode(), password.decode())
                say("235 authenticated")
            elif verb == "MAIL":
                sender = line.split(":", 1)[1].strip().strip("<>").split(" ")[0].strip("<>")
                say("250 ok")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                say("250 ok")
            elif verb == "DATA":
                say("354 end with <CRLF>.<CRLF>")
                data = b""
                while True:
                    chunk = reader.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.received.append(ReceivedMail(sender, recipients, data, secure, auth))
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("250 ok")
