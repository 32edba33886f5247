"""Email delivery over SMTP (``smtplib``), with TLS that cannot be silently skipped.

``security`` is one of:
- ``"starttls"`` (default, port 587): the session must be upgraded with STARTTLS before anything
  else is said; a server that does not offer it is refused, never used in the clear (a
  downgrade-stripping attacker would otherwise see every one-time code);
- ``"tls"`` (port 465): implicit TLS from the first byte;
- ``"none"``: plain SMTP, for a relay on the same host only. Credentials are never sent this way.

Certificates are verified against the system trust store (or the ``ssl_context`` given), with
host-name checking. Message tags (``X-Pactvault-*`` headers in the development outbox) are *not*
sent: they can carry capability tokens that belong only in the body the recipient reads.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from pactvault.delivery import DeliveryError
from pactvault.errors import InvalidInputError
from pactvault.notify import Message

Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "pactvault <no-reply@localhost>"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.security not in ("starttls", "tls", "none"):
            raise InvalidInputError("SMTP security must be 'starttls', 'tls' or 'none'")
        if not self.host or not 0 < self.port < 65536:
            raise InvalidInputError("SMTP host and a port in 1..65535 are required")
        if self.username and self.security == "none":
            raise InvalidInputError("refusing to send SMTP credentials over an unencrypted session")
        if bool(self.username) != bool(self.password):
            raise InvalidInputError("SMTP username and password go together")


class SmtpMailer:
    """A ``notify.Mailer`` that delivers through an SMTP server, one connection per message.

    One connection per message keeps the mailer stateless (safe to share between threads and
    processes); code and invitation mail is low-volume, so connection reuse is not worth a pool.
    """

    def __init__(self, settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None):
        self.settings = settings
        self._context = ssl_context or ssl.create_default_context()

    def build(self, message: Message) -> EmailMessage:
        """The RFC 5322 message that ``send`` transmits (exposed for tests and previews)."""
        email = EmailMessage()
        email["From"] = self.settings.sender
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False, usegmt=True)
        email["Message-ID"] = make_msgid(domain=_sender_domain(self.settings.sender))
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.body)
        return email

    def send(self, message: Message) -> None:
        email = self.build(message)
        s = self.settings
        try:
            if s.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self._context
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with client:
                client.ehlo()
                if s.security == "starttls":
                    if not client.has_extn("starttls"):
                        raise DeliveryError(
                            "the mail server does not offer STARTTLS; refusing to send in the clear"
                        )
                    client.starttls(context=self._context)
                    client.ehlo()
                if s.username and s.password:
                    client.login(s.username, s.password)
                refused = client.send_message(email)
        except DeliveryError:
            raise
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise DeliveryError(f"email delivery failed: {type(exc).__name__}") from exc
        if refused:
            raise DeliveryError("the mail server refused the recipient")


def _sender_domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rsplit("@", 1)[-1] if "@" in address else "localhost"
