"""Proving a second factor again after a rule asked for it (the ``step-up`` response).

While a ``step-up`` response is in force for a user, their sensitive requests are refused with
``step-up-required`` (``monitor.guard``). They clear it here, from their signed-in session, with
an authenticator code, a recovery code, or a one-time code sent to their account email or
confirmed mobile number. Guesses count on the same per-person and per-address counters as every
other second factor (``identity.mfa.throttling``), and each wrong one is audited as ``mfa.failed``
(``stage: monitor-step-up``), so brute-forcing this check is itself caught by ``otp-failures``.

An API token cannot prove a second factor: a token's ``step-up`` was already turned into a
suspension when it was applied (``responses.plan``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from pactvault.audit.journal import Actor, record
from pactvault.delivery.sms import normalise_phone
from pactvault.errors import AuthenticationError, ConflictError, InvalidInputError
from pactvault.identity.errors import TooManyAttemptsError
from pactvault.identity.members import normalise_email
from pactvault.identity.mfa import channels
from pactvault.identity.mfa.errors import SecondFactorError
from pactvault.identity.mfa.service import SEND_LIMIT, MfaService
from pactvault.identity.mfa.throttling import subject_key
from pactvault.identity.principal import Principal
from pactvault.monitor.responses import ResponseService
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import User

__all__ = ["METHODS", "MonitorStepUp", "StepUpCodeSent"]

METHODS = ("totp", "recovery", "email", "sms")
PURPOSE = "monitor-stepup"


@dataclass(frozen=True)
class StepUpCodeSent:
    channel: str
    destination: str  # masked
    expires_at: datetime


def _message(code: str, minutes: int) -> tuple[str, str]:
    return (
        "Your pactvault security check code",
        f"Unusual activity on your pactvault account needs a fresh check. Your code is {code}; "
        f"it expires in {minutes} minutes. If you did not ask for it, tell your administrator.\n"
        f"您的 pactvault 账户出现异常活动，需要再次验证身份。验证码为 {code}，"
        f"{minutes} 分钟内有效。如非本人操作，请联系管理员。",
    )


class MonitorStepUp:
    def __init__(
        self,
        db: Database,
        responses: ResponseService,
        mfa: Callable[[], MfaService],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._responses = responses
        self._mfa = mfa  # built after the platform's identity keys are open
        self._clock = clock

    @staticmethod
    def _user(principal: Principal) -> str:
        if principal.user_id is None or principal.session_id is None:
            raise AuthenticationError("a security check needs a signed-in user, not an API token")
        return principal.user_id

    def pending(self, principal: Principal) -> bool:
        return self._responses.step_up_pending(self._user(principal))

    def send_code(self, principal: Principal, channel: str, client: Actor) -> StepUpCodeSent:
        """Send a one-time code to the account email (``email``) or confirmed mobile (``sms``)."""
        user_id = self._user(principal)
        if channel not in ("email", "sms"):
            raise InvalidInputError("codes are sent by 'email' or 'sms'")
        if not self._responses.step_up_pending(user_id):
            raise ConflictError("no security check is required of you now")
        mfa = self._mfa()
        if channel not in mfa.senders:
            raise InvalidInputError(f"this server cannot send {channel} codes")
        actor = client.acting_as("user", user_id, principal.org_id)
        error: Exception | None = None
        with self._db.write() as s:
            destination = self._destination(s, user_id, channel)
            wait = mfa.guard.reserve_sends(
                s, "mfa-send:" + subject_key("user", user_id), client.ip, SEND_LIMIT
            )
            if wait is not None:
                record(
                    s,
                    actor,
                    "mfa.throttled",
                    object_type="user",
                    object_id=user_id,
                    details={"stage": "monitor-step-up-send", "retry_after": wait},
                )
                error = TooManyAttemptsError(wait)
            else:
                issued = mfa.codes.issue(
                    s,
                    purpose=PURPOSE,
                    context_id=user_id,
                    channel=channel,
                    destination=destination,
                    binding=(user_id,),
                )
                record(
                    s,
                    actor,
                    "mfa.code-sent",
                    object_type="user",
                    object_id=user_id,
                    details={"channel": channel, "destination": issued.masked, "stage": PURPOSE},
                )
        if error is not None:
            raise error
        minutes = int(mfa.codes.lifetime.total_seconds() // 60)
        mfa.deliver(issued, *_message(issued.code, minutes), actor=actor)
        return StepUpCodeSent(channel, issued.masked, issued.expires_at)

    @staticmethod
    def _destination(s: Session, user_id: str, channel: str) -> str:
        if channel == "email":
            user = s.get(User, user_id)
            if user is None or "@" not in (user.email or ""):
                raise InvalidInputError("your account has no email address to send a code to")
            return normalise_email(user.email)
        sms = channels.active(s, user_id).get("sms")
        if sms is None:
            raise InvalidInputError("you have no confirmed mobile number")
        return normalise_phone(sms.destination)

    def prove(self, principal: Principal, method: str, code: str, client: Actor) -> int:
        """Check the factor; on success the user's step-up requirements end (returns how many).

        Raises ``SecondFactorError`` (wrong code), ``TooManyAttemptsError``, or ``ConflictError``
        when no check is required.
        """
        user_id = self._user(principal)
        if method not in METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(METHODS)}")
        if not isinstance(code, str) or not 1 <= len(code) <= 64:
            raise InvalidInputError("send the code you were given")
        mfa = self._mfa()
        actor = client.acting_as("user", user_id, principal.org_id)
        key = subject_key("user", user_id)
        error: Exception | None = None
        lifted = 0
        if not self._responses.step_up_pending(user_id):
            raise ConflictError("no security check is required of you now")
        with self._db.write() as s:
            wait = mfa.guard.reserve(s, key, client.ip)
            if wait is not None:
                record(
                    s,
                    actor,
                    "mfa.throttled",
                    object_type="user",
                    object_id=user_id,
                    details={"stage": PURPOSE, "method": method, "retry_after": wait},
                )
                error = TooManyAttemptsError(wait)
            else:
                ok, reason = self._check(s, mfa, user_id, method, code)
                if ok:
                    mfa.guard.succeeded(s, key, client.ip)
                    lifted = self._responses.satisfied_step_up(s, user_id, actor)
                    record(
                        s,
                        actor,
                        "monitor.step-up-verified",
                        object_type="user",
                        object_id=user_id,
                        details={"method": method, "lifted": lifted},
                    )
                else:
                    # Recorded in this transaction, raised after it commits: a wrong guess
                    # must never be rolled back with the error it causes.
                    record(
                        s,
                        actor,
                        "mfa.failed",
                        object_type="user",
                        object_id=user_id,
                        details={"method": method, "reason": reason, "stage": PURPOSE},
                    )
                    error = SecondFactorError()
        if error is not None:
            raise error
        self._responses.notify_changed()
        return lifted

    @staticmethod
    def _check(
        s: Session, mfa: MfaService, user_id: str, method: str, code: str
    ) -> tuple[bool, str]:
        if method in ("totp", "recovery"):
            check = mfa.check_login_factor(
                s, user_id, method, code, challenge_id=user_id, webauthn_challenge_sha256=None
            )
            return check.ok, check.reason
        spent = mfa.codes.verify(
            s, purpose=PURPOSE, context_id=user_id, code=code, binding=(user_id,), channel=method
        )
        return spent is not None, "ok" if spent is not None else "wrong-or-expired-code"
