"""Delivering codes: the SMTP mailer against a real TLS handshake on loopback, the development
SMS outbox, phone numbers and masking."""

from __future__ import annotations

import json
import ssl
import stat
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from mfa_kit import SmtpTestServer, self_signed_certificate
from pactvault.delivery import DeliveryError
from pactvault.delivery.sms import (
    DEVELOPMENT_LABEL,
    FileOutboxSmsSender,
    SmsMessage,
    normalise_phone,
)
from pactvault.delivery.smtp import SmtpMailer, SmtpSettings
from pactvault.errors import InvalidInputError
from pactvault.identity.mfa.codes import mask_email, mask_phone
from pactvault.notify import Message

MESSAGE = Message(
    to="olive@acme.test",
    subject="Your pactvault sign-in code",
    body="Your code is 482913.\n您的验证码为 482913。",
    tags=(("Invitation-Token", "pvi_must_not_leak"),),
)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting only the server's self-signed certificate)."""
    cert, key = self_signed_certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_smtp_upgrades_with_starttls_before_authenticating(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, client_context = tls
    with SmtpTestServer(server_context) as server:
        settings = SmtpSettings(
            "127.0.0.1",
            server.port,
            username="pactvault",
            password="relay-password",
            sender="pactvault <no-reply@sign.example>",
            timeout=10,
        )
        assert "relay-password" not in repr(settings)
        SmtpMailer(settings, ssl_context=client_context).send(MESSAGE)
    [mail] = server.received
    assert mail.tls and mail.auth == ("pactvault", "relay-password")
    assert mail.recipients == ["olive@acme.test"] and mail.sender == "no-reply@sign.example"
    assert server.commands.index("STARTTLS") < server.commands.index("AUTH")
    parsed = message_from_bytes(mail.data, policy=default)
    assert parsed["Subject"] == MESSAGE.subject and parsed["Auto-Submitted"] == "auto-generated"
    assert "您的验证码为 482913" in parsed.get_content()
    # Outbox tags (which can carry capability tokens) never travel over SMTP.
    assert b"pvi_must_not_leak" not in mail.data and b"X-Pactvault" not in mail.data


def test_smtp_refuses_untrusted_certificates_and_missing_starttls(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_context, _ = tls
    # The system trust store does not know our self-signed certificate.
    with SmtpTestServer(server_context) as server, pytest.raises(DeliveryError, match="SSLCert"):
        SmtpMailer(SmtpSettings("127.0.0.1", server.port, timeout=10)).send(MESSAGE)
    assert server.received == []
    with SmtpTestServer(None) as plain:
        settings = SmtpSettings("127.0.0.1", plain.port, username="u", password="p", timeout=10)
        with pytest.raises(DeliveryError, match="STARTTLS"):
            SmtpMailer(settings).send(MESSAGE)
    assert plain.received == [] and "AUTH" not in plain.commands


def test_plain_smtp_only_for_a_local_relay_without_credentials() -> None:
    with pytest.raises(InvalidInputError):
        SmtpSettings("relay.internal", 25, security="none", username="u", password="p")
    with pytest.raises(InvalidInputError):
        SmtpSettings("relay.internal", 587, username="u")  # a password must go with it
    with SmtpTestServer(None) as relay:
        SmtpMailer(SmtpSettings("127.0.0.1", relay.port, security="none", timeout=10)).send(MESSAGE)
    [mail] = relay.received
    assert not mail.tls and mail.auth is None


def test_development_sms_outbox_is_private_and_labelled(tmp_path: Path) -> None:
    outbox = FileOutboxSmsSender(tmp_path / "sms")
    assert outbox.development_only
    outbox.send(SmsMessage("+8613800138000", "验证码 111111"))
    outbox.send(SmsMessage("+8613800138001", "验证码 222222"))
    assert [m.text for m in outbox.messages()] == ["验证码 111111", "验证码 222222"]
    assert stat.S_IMODE((tmp_path / "sms").stat().st_mode) == 0o700
    for path in (tmp_path / "sms").glob("*.sms.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text("utf-8"))["outbox"] == DEVELOPMENT_LABEL


def test_phone_numbers_and_masking() -> None:
    assert normalise_phone("+86 138-0013-8000") == "+8613800138000"
    assert normalise_phone("0086 (138) 0013 8000") == "+8613800138000"
    for refused in ("13800138000", "+0123456789", "+86 138 0013 8000 12345", "", "+86abc"):
        with pytest.raises(InvalidInputError):
            normalise_phone(refused)
    assert mask_phone("+8613800138000") == "+86*******8000"
    assert mask_email("olive.owner@acme.test") == "o***r@acme.test"
    assert mask_email("ab@acme.test") == "a***@acme.test"
