"""One-time codes sent by email or SMS: issue, deliver through a pluggable sender, verify once.

A code is 6 random digits, valid for 5 minutes, for one purpose and context (a login challenge,
a channel being enrolled, a step-up challenge). At rest it is only a keyed digest that also
covers its context and, for step-up, the document hash: the same digits typed for another
login or another document do not verify. A code is spent by its first correct use, burned after
``max_attempts`` wrong ones, and superseded when a newer code is sent for the same context.

Sending happens *after* the issuing transaction commits (a code that failed to save must not be
delivered); senders implement ``CodeSender``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pactvault.delivery.sms import SmsMessage, SmsSender
from pactvault.identity.mfa.codes import (
    OTP_DIGITS,
    clean_numeric,
    keyed_digest,
    mask,
    numeric_code,
    same_digest,
)
from pactvault.notify import Mailer, Message
from pactvault.store.mfa_models import OtpCode, new_id

CODE_LIFETIME = timedelta(minutes=5)
MAX_ATTEMPTS = 5
CHANNELS = ("email", "sms")


class CodeSender(Protocol):
    """Delivers a code's text to a destination on one channel (``email`` or ``sms``)."""

    channel: str

    def send(self, destination: str, subject: str, text: str) -> None: ...


class EmailCodeSender:
    channel = "email"

    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer

    def send(self, destination: str, subject: str, text: str) -> None:
        self._mailer.send(Message(to=destination, subject=subject, body=text))


class SmsCodeSender:
    channel = "sms"

    def __init__(self, sms: SmsSender) -> None:
        self._sms = sms

    def send(self, destination: str, subject: str, text: str) -> None:
        self._sms.send(SmsMessage(to=destination, text=text))


@dataclass(frozen=True)
class IssuedCode:
    """A code to deliver (``code`` never leaves memory except in the message itself)."""

    code_id: str
    code: str
    channel: str
    destination: str
    masked: str
    expires_at: datetime
    code_hmac: str


@dataclass(frozen=True)
class SpentCode:
    code_id: str
    channel: str
    masked: str
    code_hmac: str


class OneTimeCodes:
    def __init__(
        self,
        key: bytes,
        clock: Callable[[], datetime],
        *,
        lifetime: timedelta = CODE_LIFETIME,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._key = key
        self._clock = clock
        self.lifetime = lifetime
        self.max_attempts = max_attempts

    def _digest(
        self, purpose: str, context_id: str, code_id: str, binding: tuple[str, ...], code: str
    ) -> str:
        return keyed_digest(
            self._key, "pactvault/otp/v1", purpose, context_id, code_id, *binding, code
        )

    def issue(
        self,
        session: Session,
        *,
        purpose: str,
        context_id: str,
        channel: str,
        destination: str,
        binding: tuple[str, ...] = (),
    ) -> IssuedCode:
        """A new code for ``context_id``; any earlier open code for it stops working."""
        now = self._clock()
        self._close_open(session, purpose, context_id, now)
        code = numeric_code()
        code_id = new_id()
        digest = self._digest(purpose, context_id, code_id, binding, code)
        row = OtpCode(
            id=code_id,
            purpose=purpose,
            context_id=context_id,
            channel=channel,
            destination_masked=mask(channel, destination),
            code_hmac=digest,
            attempts=0,
            created_at=now,
            expires_at=now + self.lifetime,
        )
        session.add(row)
        session.flush()
        return IssuedCode(
            code_id, code, channel, destination, row.destination_masked, row.expires_at, digest
        )

    def verify(
        self,
        session: Session,
        *,
        purpose: str,
        context_id: str,
        code: str,
        binding: tuple[str, ...] = (),
        channel: str | None = None,
    ) -> SpentCode | None:
        """Spend the open code of ``context_id`` (sent on ``channel``, if given) if ``code`` is
        it; ``None`` otherwise. A wrong guess counts against the code; the last allowed wrong
        guess burns it.
        """
        now = self._clock()
        query = select(OtpCode).where(
            OtpCode.purpose == purpose,
            OtpCode.context_id == context_id,
            OtpCode.used_at.is_(None),
        )
        if channel is not None:
            query = query.where(OtpCode.channel == channel)
        row = session.execute(
            query.order_by(OtpCode.created_at.desc())
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is None or row.expires_at <= now:
            return None
        typed = clean_numeric(code, OTP_DIGITS)
        expected = self._digest(purpose, context_id, row.id, binding, typed or "-")
        if typed is not None and same_digest(expected, row.code_hmac):
            spent = session.execute(
                update(OtpCode)
                .where(OtpCode.id == row.id, OtpCode.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if spent.rowcount == 1:  # type: ignore[attr-defined]
                return SpentCode(row.id, row.channel, row.destination_masked, row.code_hmac)
            return None
        row.attempts += 1
        if row.attempts >= self.max_attempts:
            row.used_at = now
        session.flush()
        return None

    def _close_open(self, session: Session, purpose: str, context_id: str, now: datetime) -> None:
        session.execute(
            update(OtpCode)
            .where(
                OtpCode.purpose == purpose,
                OtpCode.context_id == context_id,
                OtpCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )


# -- message texts (bilingual: the product serves Chinese companies) ---------------------------


def login_message(code: str, minutes: int) -> tuple[str, str]:
    return (
        "Your pactvault sign-in code",
        f"Your pactvault sign-in code is {code}. It expires in {minutes} minutes. "
        "Never share it: nobody from pactvault will ask you for it.\n"
        f"您的 pactvault 登录验证码为 {code}，{minutes} 分钟内有效。请勿告知他人。",
    )


def enrolment_message(code: str, minutes: int) -> tuple[str, str]:
    return (
        "Confirm where pactvault sends your codes",
        f"Your pactvault confirmation code is {code}. It expires in {minutes} minutes. "
        "If you did not ask to receive sign-in codes here, ignore this message.\n"
        f"您的 pactvault 确认码为 {code}，{minutes} 分钟内有效。如非本人操作，请忽略。",
    )


def stepup_message(code: str, document_sha256: str, minutes: int) -> tuple[str, str]:
    prefix = document_sha256[:12]
    return (
        "Your pactvault signing code",
        f"Your pactvault code to sign the document with SHA-256 {prefix}… is {code}. "
        f"It expires in {minutes} minutes. Enter it only if you are signing this document now.\n"
        f"您正在签署文件（SHA-256 {prefix}…），意愿认证验证码为 {code}，{minutes} 分钟内有效。"
        "如非本人操作，请勿提供。",
    )
