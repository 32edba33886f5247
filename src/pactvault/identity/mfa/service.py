"""Managing one's second factors, the organisation MFA requirement, and checking a factor.

``MfaService`` is what interfaces call to enrol and remove factors (TOTP app, passkeys, email or
SMS codes, recovery codes) and to set an organisation's requirement; ``LoginService`` and
``StepUpService`` use its ``check_*`` methods and components inside their own transactions.

Who may call what:
- enrolling works for a signed-in user (``Principal`` of a session) and for an ``Enrollee``
  (the restricted grant a login yields when the organisation requires MFA and the member has
  none);
- removing a factor needs a full session, and the last factor stays while any organisation of the
  user requires MFA;
- API tokens never manage factors (a leaked token must not be able to add its own phone).

Every enrolment, removal, failure and lockout is audited. Wrong codes are counted and recorded
in the same transaction that checked them, and the error is raised only after it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl
from pactvault.audit.journal import Actor, record
from pactvault.delivery import DeliveryError
from pactvault.delivery.sms import normalise_phone
from pactvault.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from pactvault.identity.errors import TooManyAttemptsError
from pactvault.identity.mfa import channels, factors, grants
from pactvault.identity.mfa.codes import mask, sha256_hex
from pactvault.identity.mfa.errors import SecondFactorError
from pactvault.identity.mfa.grants import Enrollee
from pactvault.identity.mfa.keyring import DigestKeys
from pactvault.identity.mfa.otp import CodeSender, IssuedCode, OneTimeCodes, enrolment_message
from pactvault.identity.mfa.passkeys import (
    PasskeyInfo,
    PasskeyRejected,
    Passkeys,
    RelyingParty,
    VerifiedAssertion,
)
from pactvault.identity.mfa.passkeys import count as passkey_count
from pactvault.identity.mfa.recovery import RecoveryCodes
from pactvault.identity.mfa.throttling import DEFAULT_MFA_THROTTLE, AttemptGuard, subject_key
from pactvault.identity.mfa.totp_store import TotpFactors, TotpSetup
from pactvault.identity.principal import Principal
from pactvault.identity.recent import require_recent_authentication
from pactvault.identity.throttle import ThrottlePolicy
from pactvault.keys.service import KeyService
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import User

#: Who may enrol factors: a signed-in user, or the holder of an enrolment grant.
Account = Principal | Enrollee

#: Codes sent to one subject within the throttle window (15 minutes) before sending pauses:
#: enough for enrolment, sign-ins and resends, too few for message bombing or SMS toll fraud.
SEND_LIMIT = 10


@dataclass(frozen=True)
class MfaStatus:
    totp: bool
    passkeys: list[PasskeyInfo]
    email: str | None  # masked destination of an active channel
    sms: str | None
    recovery_codes_left: int
    methods: list[str]
    org_requires_mfa: bool


@dataclass(frozen=True)
class FactorEnrolled:
    """A factor became active. The first one comes with recovery codes, shown exactly once."""

    method: str
    factor_id: str
    recovery_codes: list[str] | None = None


@dataclass(frozen=True)
class ChannelSetup:
    channel_id: str
    channel: str
    destination: str  # masked
    expires_at: datetime


@dataclass(frozen=True)
class FactorCheck:
    """The outcome of checking one factor inside a caller's transaction."""

    ok: bool
    method: str
    reason: str = "ok"
    details: dict[str, Any] | None = None
    assertion: VerifiedAssertion | None = None


class MfaService:
    def __init__(
        self,
        db: Database,
        access: AccessControl,
        keys: KeyService,
        *,
        secret: bytes,
        relying_party: RelyingParty | None,
        senders: Iterable[CodeSender] = (),
        throttle: ThrottlePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        challenge_factory: Callable[[], bytes] | None = None,
    ) -> None:
        """``secret``: 32 random bytes, i.e. ``platform_secret(session, keys, keyring.KEY_NAME)``.

        ``relying_party`` ``None`` disables passkeys (e.g. a public URL on a bare IP address).
        """
        self._db = db
        self._access = access
        self._clock = clock
        digest_keys = DigestKeys(secret)
        self.totp = TotpFactors(keys, clock)
        self.recovery = RecoveryCodes(digest_keys.recovery, clock)
        self.codes = OneTimeCodes(digest_keys.otp, clock)
        self.passkeys = (
            Passkeys(relying_party, clock, challenge_factory=challenge_factory)
            if relying_party is not None
            else None
        )
        self.senders = {sender.channel: sender for sender in senders}
        self.guard = AttemptGuard(throttle or DEFAULT_MFA_THROTTLE, clock)

    # -- reading ------------------------------------------------------------------------------

    def status(self, account: Account) -> MfaStatus:
        user_id = _user_id(account)
        with self._db.read() as s:
            active = channels.active(s, user_id)
            passkeys = self.passkeys.describe(s, user_id) if self.passkeys is not None else []
            return MfaStatus(
                totp=self.totp.is_active(s, user_id),
                passkeys=passkeys,
                email=mask("email", active["email"].destination) if "email" in active else None,
                sms=mask("sms", active["sms"].destination) if "sms" in active else None,
                recovery_codes_left=self.recovery.remaining(s, user_id),
                methods=factors.active_methods(s, user_id),
                org_requires_mfa=factors.org_requires_mfa(s, account.org_id),
            )

    def has_second_factor(self, user_id: str) -> bool:
        """For ``PasswordPolicy.check(has_second_factor=…)``: 8 characters instead of 15."""
        with self._db.read() as s:
            return factors.has_second_factor(s, user_id)

    def enrollee(self, token: str | None) -> Enrollee:
        """Authenticate an enrolment-grant token (``AuthenticationError`` if not live)."""
        with self._db.read() as s:
            return grants.authenticate(s, token, self._clock())

    # -- TOTP ---------------------------------------------------------------------------------

    def begin_totp(self, account: Account, actor: Actor | None = None) -> TotpSetup:
        actor = actor or account.actor()
        with self._guarded(actor, "mfa.totp-enrol", account) as s:
            user = self._check_account(s, account)
            setup = self.totp.begin(s, user.id, user.email)
            record(s, actor, "mfa.totp-enrolment-started", object_type="user", object_id=user.id)
            return setup

    def confirm_totp(
        self, account: Account, code: str, actor: Actor | None = None
    ) -> FactorEnrolled:
        """Activate the pending TOTP factor with a first valid code from the app."""
        actor = actor or account.actor()
        key = subject_key("user", _user_id(account))
        wait: int | None = None
        result: FactorEnrolled | None = None
        with self._guarded(actor, "mfa.totp-enrol", account) as s:
            user = self._check_account(s, account)
            wait = self._reserve(s, key, actor, "totp")
            if wait is None:
                if self.totp.verify(s, user.id, code, pending=True):
                    self.totp.activate(s, user.id)
                    self.guard.succeeded(s, key, actor.ip)
                    result = FactorEnrolled("totp", user.id, self._first_codes(s, user.id, actor))
                    record(s, actor, "mfa.totp-enrolled", object_type="user", object_id=user.id)
                else:
                    _failed(s, actor, user.id, "totp", "wrong-code", stage="enrolment")
        return _outcome(wait, result)

    def remove_totp(self, principal: Principal, actor: Actor | None = None) -> None:
        actor = actor or principal.actor()
        with self._guarded(actor, "mfa.totp-remove", principal) as s:
            user_id = self._check_full_session(s, principal)
            if not self.totp.is_active(s, user_id):
                raise NotFoundError("no authenticator app is set up")
            self._keep_a_factor(s, user_id, removing="totp")
            self.totp.remove(s, user_id)
            self._after_removal(s, user_id)
            record(s, actor, "mfa.totp-removed", object_type="user", object_id=user_id)

    # -- recovery codes ------------------------------------------------------------------------

    def regenerate_recovery_codes(self, account: Account, actor: Actor | None = None) -> list[str]:
        """Ten new codes, shown once; every earlier code stops working."""
        actor = actor or account.actor()
        with self._guarded(actor, "mfa.recovery-codes", account) as s:
            user = self._check_account(s, account)
            if not factors.has_second_factor(s, user.id):
                raise ConflictError("set up a second factor before creating recovery codes")
            codes = self.recovery.replace(s, user.id)
            record(
                s,
                actor,
                "mfa.recovery-codes-generated",
                object_type="user",
                object_id=user.id,
                details={"count": len(codes), "reason": "requested"},
            )
            return codes

    # -- passkeys ------------------------------------------------------------------------------

    def begin_passkey(self, account: Account, actor: Actor | None = None) -> str:
        """Creation options (JSON) for ``navigator.credentials.create()``."""
        passkeys = self._require_passkeys()
        actor = actor or account.actor()
        with self._guarded(actor, "mfa.passkey-register", account) as s:
            user = self._check_account(s, account)
            options = passkeys.registration_options(s, user.id, user.email, user.display_name)
            record(
                s, actor, "mfa.passkey-registration-started", object_type="user", object_id=user.id
            )
            return options

    def finish_passkey(
        self,
        account: Account,
        response: str | dict[str, Any],
        name: str = "",
        actor: Actor | None = None,
    ) -> FactorEnrolled:
        passkeys = self._require_passkeys()
        actor = actor or account.actor()
        rejected: PasskeyRejected | None = None
        result: FactorEnrolled | None = None
        with self._guarded(actor, "mfa.passkey-register", account) as s:
            user = self._check_account(s, account)
            try:
                row = passkeys.finish_registration(s, user.id, response, name)
            except PasskeyRejected as exc:
                rejected = exc
                record(
                    s,
                    actor,
                    "mfa.passkey-rejected",
                    object_type="user",
                    object_id=user.id,
                    details={"reason": exc.reason},
                )
            else:
                result = FactorEnrolled("passkey", row.id, self._first_codes(s, user.id, actor))
                record(
                    s,
                    actor,
                    "mfa.passkey-registered",
                    object_type="user",
                    object_id=user.id,
                    details={
                        "passkey_id": row.id,
                        "aaguid": row.aaguid,
                        "attestation": row.attestation_format,
                        "device_type": row.device_type,
                    },
                )
        if rejected is not None or result is None:
            raise InvalidInputError("the passkey could not be registered; please try again")
        return result

    def remove_passkey(
        self, principal: Principal, passkey_id: str, actor: Actor | None = None
    ) -> None:
        passkeys = self._require_passkeys()
        actor = actor or principal.actor()
        with self._guarded(actor, "mfa.passkey-remove", principal) as s:
            user_id = self._check_full_session(s, principal)
            if not any(p.id == passkey_id for p in passkeys.describe(s, user_id)):
                raise NotFoundError("passkey not found")
            self._keep_a_factor(s, user_id, removing="passkey")
            passkeys.remove(s, user_id, passkey_id)
            self._after_removal(s, user_id)
            record(
                s,
                actor,
                "mfa.passkey-removed",
                object_type="user",
                object_id=user_id,
                details={"passkey_id": passkey_id},
            )

    # -- email / SMS codes ---------------------------------------------------------------------

    def begin_channel(
        self,
        account: Account,
        channel: str,
        destination: str | None = None,
        actor: Actor | None = None,
    ) -> ChannelSetup:
        """Send a confirmation code to the account's email, or to the given mobile number."""
        self._sender(channel)
        phone = normalise_phone(destination or "") if channel == "sms" else None
        actor = actor or account.actor()
        key = "mfa-send:" + subject_key("user", _user_id(account))
        wait: int | None = None
        with self._guarded(actor, "mfa.channel-enrol", account) as s:
            user = self._check_account(s, account)
            wait = self.guard.reserve_sends(s, key, actor.ip, SEND_LIMIT)
            if wait is not None:
                record(
                    s,
                    actor,
                    "mfa.throttled",
                    object_type="user",
                    object_id=user.id,
                    details={"stage": "send", "channel": channel, "retry_after": wait},
                )
                issued = None
            else:
                target = phone or user.email
                row = channels.begin(s, user.id, channel, target, self._clock())
                issued = self.codes.issue(
                    s,
                    purpose="enrol",
                    context_id=row.id,
                    channel=channel,
                    destination=row.destination,
                    binding=(row.destination,),
                )
                record(
                    s,
                    actor,
                    "mfa.channel-enrolment-started",
                    object_type="user",
                    object_id=user.id,
                    details={"channel": channel, "destination": issued.masked},
                )
        if issued is None:
            raise TooManyAttemptsError(wait or 1)
        minutes = int(self.codes.lifetime.total_seconds() // 60)
        self.deliver(issued, *enrolment_message(issued.code, minutes), actor=actor)
        return ChannelSetup(row.id, channel, issued.masked, issued.expires_at)

    def confirm_channel(
        self, account: Account, channel_id: str, code: str, actor: Actor | None = None
    ) -> FactorEnrolled:
        actor = actor or account.actor()
        key = subject_key("user", _user_id(account))
        wait: int | None = None
        result: FactorEnrolled | None = None
        with self._guarded(actor, "mfa.channel-enrol", account) as s:
            user = self._check_account(s, account)
            row = channels.pending(s, user.id, channel_id)
            wait = self._reserve(s, key, actor, row.channel)
            if wait is None:
                spent = self.codes.verify(
                    s, purpose="enrol", context_id=row.id, code=code, binding=(row.destination,)
                )
                if spent is not None:
                    row.confirmed_at = self._clock()
                    self.guard.succeeded(s, key, actor.ip)
                    result = FactorEnrolled(
                        row.channel, row.id, self._first_codes(s, user.id, actor)
                    )
                    record(
                        s,
                        actor,
                        "mfa.channel-enrolled",
                        object_type="user",
                        object_id=user.id,
                        details={"channel": row.channel, "destination": spent.masked},
                    )
                else:
                    _failed(s, actor, user.id, row.channel, "wrong-code", stage="enrolment")
        return _outcome(wait, result)

    def remove_channel(
        self, principal: Principal, channel_id: str, actor: Actor | None = None
    ) -> None:
        actor = actor or principal.actor()
        with self._guarded(actor, "mfa.channel-remove", principal) as s:
            user_id = self._check_full_session(s, principal)
            active = channels.active(s, user_id)
            removing = next((c for c, row in active.items() if row.id == channel_id), None)
            if removing is not None:
                self._keep_a_factor(s, user_id, removing=removing)
            row = channels.remove(s, user_id, channel_id)
            self._after_removal(s, user_id)
            record(
                s,
                actor,
                "mfa.channel-removed",
                object_type="user",
                object_id=user_id,
                details={"channel": row.channel},
            )

    def deliver(self, issued: IssuedCode, subject: str, text: str, *, actor: Actor) -> None:
        """Send a committed code; a failure is audited and raised (the code simply expires)."""
        try:
            self._sender(issued.channel).send(issued.destination, subject, text)
        except DeliveryError:
            with self._db.write() as s:
                record(
                    s,
                    actor,
                    "mfa.code-delivery-failed",
                    details={"channel": issued.channel, "destination": issued.masked},
                )
            raise

    # -- organisation requirement ------------------------------------------------------------

    def set_org_requirement(
        self, principal: Principal, require: bool, actor: Actor | None = None
    ) -> None:
        """Require (or stop requiring) a second factor of every member (``org.manage``)."""
        actor = actor or principal.actor()
        self._access.authorize(principal, "org.manage", actor=actor)
        with self._db.write() as s:
            previous = factors.set_org_requirement(
                s, principal.org_id, bool(require), actor.id, self._clock()
            )
            record(
                s,
                actor,
                "mfa.org-policy-changed",
                object_type="organisation",
                object_id=principal.org_id,
                details={"require_mfa": bool(require), "previous": previous},
            )

    def org_requires_mfa(self, org_id: str) -> bool:
        with self._db.read() as s:
            return factors.org_requires_mfa(s, org_id)

    # -- checks for the login second step (inside the caller's transaction) --------------------

    def login_passkey_options(self, session: Session, user_id: str) -> tuple[str, str] | None:
        """Request options for a login, and the digest of their challenge to store."""
        if self.passkeys is None:
            return None
        challenge = self.passkeys.new_challenge()
        options = self.passkeys.authentication_options(session, user_id, challenge)
        return options, sha256_hex(challenge)

    def check_login_factor(
        self,
        session: Session,
        user_id: str,
        method: str,
        response: str | dict[str, Any],
        *,
        challenge_id: str,
        webauthn_challenge_sha256: str | None,
    ) -> FactorCheck:
        if method == "passkey":
            if self.passkeys is None or webauthn_challenge_sha256 is None:
                return FactorCheck(False, method, "passkeys-unavailable")
            try:
                assertion = self.passkeys.verify_assertion(
                    session, user_id, response, webauthn_challenge_sha256
                )
            except PasskeyRejected as exc:
                return FactorCheck(False, method, exc.reason)
            return FactorCheck(
                True, method, details={"passkey_id": assertion.passkey_id}, assertion=assertion
            )
        if not isinstance(response, str):
            return FactorCheck(False, method, "malformed-response")
        if method == "totp":
            ok = self.totp.verify(session, user_id, response)
            return FactorCheck(ok, method, "ok" if ok else "wrong-or-replayed-code")
        if method == "recovery":
            if not self.recovery.use(session, user_id, response):
                return FactorCheck(False, method, "wrong-or-used-code")
            left = self.recovery.remaining(session, user_id)
            return FactorCheck(True, method, details={"recovery_codes_left": left})
        if method in ("email", "sms"):
            spent = self.codes.verify(
                session,
                purpose="login",
                context_id=challenge_id,
                code=response,
                binding=(user_id,),
                channel=method,
            )
            if spent is None:
                return FactorCheck(False, method, "wrong-or-expired-code")
            return FactorCheck(True, method, details={"destination": spent.masked})
        return FactorCheck(False, method, "unknown-method")

    def issue_login_code(
        self, session: Session, user_id: str, challenge_id: str, channel: str
    ) -> IssuedCode:
        self._sender(channel)
        row = channels.active(session, user_id).get(channel)
        if row is None:
            raise InvalidInputError(f"no {channel} codes are set up for this account")
        return self.codes.issue(
            session,
            purpose="login",
            context_id=challenge_id,
            channel=channel,
            destination=row.destination,
            binding=(user_id,),
        )

    # -- helpers -------------------------------------------------------------------------------

    @contextmanager
    def _guarded(self, actor: Actor, action: str, account: Account) -> Iterator[Session]:
        """A write unit of work whose denials (403/404) are audited after the rollback.

        A session must have proven the password recently (``identity.recent``): changing one's
        factors is what a thief holding an old session cookie would do first.
        """
        with (
            self._access.guard(actor, action, object_type="user", object_id=account.user_id),
            self._db.write() as s,
        ):
            if isinstance(account, Principal):
                require_recent_authentication(account, self._clock())
            yield s

    def _reserve(self, s: Session, key: str, actor: Actor, method: str) -> int | None:
        wait = self.guard.reserve(s, key, actor.ip)
        if wait is not None:
            record(
                s,
                actor,
                "mfa.throttled",
                object_type="user",
                object_id=actor.id,
                details={"method": method, "retry_after": wait},
            )
        return wait

    def _check_account(self, s: Session, account: Account) -> User:
        """The account's user row, refusing API tokens, disabled users and spent grants."""
        user_id = _user_id(account)
        if isinstance(account, Principal) and account.session_id is None:
            raise PermissionDeniedError("second factors are managed from a signed-in session")
        if isinstance(account, Enrollee) and not grants.still_open(s, account, self._clock()):
            raise AuthenticationError(grants.INVALID_GRANT)
        user = s.get(User, user_id)
        if user is None or user.status != "active":
            raise AuthenticationError("your session has ended; please sign in again")
        return user

    def _check_full_session(self, s: Session, principal: Principal) -> str:
        if not isinstance(principal, Principal) or principal.session_id is None:
            raise PermissionDeniedError("removing a second factor needs a signed-in session")
        return self._check_account(s, principal).id

    def _keep_a_factor(self, s: Session, user_id: str, *, removing: str) -> None:
        """Refuse to remove the last factor while an organisation of the user requires MFA."""
        remaining = [m for m in factors.primary_methods(s, user_id) if m != removing]
        if removing == "passkey" and passkey_count(s, user_id) > 1:
            remaining.append("passkey")
        if not remaining and factors.any_org_requires_mfa(s, user_id):
            raise ConflictError(
                "your organisation requires a second factor; add another one before removing this"
            )

    def _after_removal(self, s: Session, user_id: str) -> None:
        """Without any factor left, recovery codes have nothing to recover: drop them."""
        if not factors.has_second_factor(s, user_id):
            self.recovery.clear(s, user_id)

    def _first_codes(self, s: Session, user_id: str, actor: Actor) -> list[str] | None:
        if self.recovery.remaining(s, user_id):
            return None
        codes = self.recovery.replace(s, user_id)
        record(
            s,
            actor,
            "mfa.recovery-codes-generated",
            object_type="user",
            object_id=user_id,
            details={"count": len(codes), "reason": "first-factor"},
        )
        return codes

    def _require_passkeys(self) -> Passkeys:
        if self.passkeys is None:
            raise InvalidInputError("passkeys are not available on this server")
        return self.passkeys

    def _sender(self, channel: str) -> CodeSender:
        sender = self.senders.get(channel)
        if sender is None:
            raise InvalidInputError(f"{channel} codes are not available on this server")
        return sender


def _user_id(account: Account) -> str:
    if account.user_id is None:
        raise InvalidInputError("this needs a signed-in user, not an API token")
    return account.user_id


def _failed(
    s: Session, actor: Actor, user_id: str, method: str, reason: str, **details: Any
) -> None:
    record(
        s,
        actor,
        "mfa.failed",
        object_type="user",
        object_id=user_id,
        details={"method": method, "reason": reason, **details},
    )


def _outcome(wait: int | None, result: FactorEnrolled | None) -> FactorEnrolled:
    if wait is not None:
        raise TooManyAttemptsError(wait)
    if result is None:
        raise SecondFactorError()
    return result


__all__ = [
    "Account",
    "ChannelSetup",
    "FactorCheck",
    "FactorEnrolled",
    "MfaService",
    "MfaStatus",
]
