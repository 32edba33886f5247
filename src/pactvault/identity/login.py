"""Password sign-in, password changes and administrator unlocks.

Enumeration resistance: an unknown email, a disabled account, an account without a membership and
a wrong password all end in the same ``LoginFailedError`` after the same work — the same two
database transactions (throttle reservation, then the outcome) and one argon2id verification,
against a dummy hash when there is no account. Throttle keys exist for unknown emails too.

The argon2 work runs *between* the two transactions, so no database write lock is held while
hashing; the reservation made in the first one is what keeps parallel guesses within the limit.

The second step. A correct password opens a session only for an account without second factors
in an organisation that does not require one. Otherwise ``login`` returns:
- ``MfaRequired``: a single-use challenge token (5 minutes, stored as its SHA-256) and the
  methods the account can finish with; ``complete_mfa`` checks the factor (throttled per user and
  per address, at most ``MAX_CHALLENGE_FAILURES`` wrong answers per challenge) and opens the
  session; ``send_login_code`` mails or texts a one-time code for the challenge;
- ``MfaEnrolmentRequired``: the organisation requires MFA and the member has none. The enrolment
  token only lets ``MfaService`` enrol a factor; ``finish_enrolment`` then opens the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, require
from pactvault.audit.journal import Actor, record
from pactvault.errors import AuthenticationError, InvalidInputError, NotFoundError
from pactvault.identity.errors import LoginFailedError, TooManyAttemptsError
from pactvault.identity.members import active_member, normalise_email
from pactvault.identity.mfa import factors, grants
from pactvault.identity.mfa.errors import ChallengeGoneError, SecondFactorError
from pactvault.identity.mfa.otp import login_message
from pactvault.identity.mfa.service import SEND_LIMIT, FactorCheck, MfaService
from pactvault.identity.mfa.throttling import subject_key
from pactvault.identity.passwords import PasswordHasher, PasswordPolicy
from pactvault.identity.principal import Principal
from pactvault.identity.sessions import IssuedSession, SessionService
from pactvault.identity.throttle import LoginThrottler, ThrottlePolicy, account_key, ip_key
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import Membership, User
from pactvault.store.mfa_models import (
    EnrolmentGrant,
    LoginChallenge,
    OtpChannel,
    Passkey,
    TotpFactor,
)
from pactvault.tokens import digests_equal, new_token, token_digest

#: Longer inputs are refused before any hashing (argon2 accepts them, but they are not passwords).
MAX_LOGIN_INPUT = 1024
MFA_CHALLENGE_PREFIX = "pvmfa_"
MFA_CHALLENGE_LIFETIME = timedelta(minutes=5)
#: Wrong answers one challenge survives; then it is burned and the password step starts again.
MAX_CHALLENGE_FAILURES = 5
#: One-time codes one challenge may send (a resend or two, not a message bomb).
MAX_CODES_PER_CHALLENGE = 3


@dataclass(frozen=True)
class MfaRequired:
    """The password was right; finish with ``complete_mfa(challenge, method, response)``."""

    challenge: str  # shown once, never stored
    methods: list[str]  # e.g. ["passkey", "totp", "sms", "recovery"]
    expires_at: datetime
    #: ``PublicKeyCredentialRequestOptions`` JSON for ``navigator.credentials.get`` (passkey).
    passkey_options: str | None = None


@dataclass(frozen=True)
class MfaEnrolmentRequired:
    """The organisation requires MFA and the member has none: enrol first, then
    ``finish_enrolment``. The token works with ``MfaService.enrollee`` and nothing else."""

    enrolment_token: str  # shown once, never stored
    user_id: str
    org_id: str
    expires_at: datetime
    methods: list[str]  # what can be enrolled on this server


@dataclass(frozen=True)
class CodeSent:
    channel: str
    destination: str  # masked
    expires_at: datetime


LoginOutcome = IssuedSession | MfaRequired | MfaEnrolmentRequired


@dataclass
class _Account:
    user_id: str
    password_hash: str | None
    status: str


class LoginService:
    def __init__(
        self,
        db: Database,
        access: AccessControl,
        sessions: SessionService,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        *,
        throttle: ThrottlePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        mfa: MfaService | None = None,
    ) -> None:
        """Without ``mfa`` the second step still applies (accounts with factors get
        ``MfaRequired``) but can never be completed: fail closed, never skip the factor."""
        self._db = db
        self._access = access
        self._sessions = sessions
        self._hasher = hasher
        self._policy = policy
        self._clock = clock
        self._mfa = mfa
        self.throttle_policy = throttle or ThrottlePolicy()
        self._throttler = LoginThrottler(self.throttle_policy, clock)

    def login(
        self, email: str, password: str, client: Actor, *, org_id: str | None = None
    ) -> LoginOutcome:
        """Verify email + password for ``org_id`` (default: the first organisation joined).

        Returns a session, or ``MfaRequired`` / ``MfaEnrolmentRequired`` when a second step is
        due. Raises ``LoginFailedError`` (always the same message) or ``TooManyAttemptsError``.
        """
        address = normalise_email(email)
        acct, addr = account_key(address), ip_key(client.ip)
        anonymous = Actor(type="anonymous", ip=client.ip, user_agent=client.user_agent)
        with self._db.write() as s:
            wait = self._throttler.reserve(
                s,
                [
                    (acct, self.throttle_policy.account_max_failures),
                    (addr, self.throttle_policy.ip_max_failures),
                ],
            )
            if wait is not None:
                record(
                    s,
                    anonymous,
                    "auth.login-throttled",
                    details={"account": acct[5:21], "retry_after": wait},
                )
            account = None
            if wait is None:
                row = s.execute(
                    select(User.id, User.password_hash, User.status).where(User.email == address)
                ).first()
                if row is not None:
                    account = _Account(row.id, row.password_hash, row.status)
        if wait is not None:
            raise TooManyAttemptsError(wait)

        too_long = len(password or "") > MAX_LOGIN_INPUT or len(address) > 320
        matched = self._hasher.verify(
            None if account is None or too_long else account.password_hash,
            "" if too_long else (password or ""),
        )
        reason = None
        if account is None:
            reason = "unknown-account"
        elif not matched:
            reason = "wrong-password"
        elif account.status != "active":
            reason = "disabled"

        with self._db.write() as s:
            membership = None
            if reason is None and account is not None:
                query = select(Membership).where(Membership.user_id == account.user_id)
                if org_id is not None:
                    query = query.where(Membership.org_id == org_id)
                membership = s.execute(
                    query.order_by(Membership.created_at).limit(1)
                ).scalar_one_or_none()
                if membership is None:
                    reason = "no-membership"
            if reason is not None or account is None or membership is None:
                record(
                    s,
                    anonymous,
                    "auth.login-failed",
                    object_type="user" if account else None,
                    object_id=account.user_id if account else None,
                    details={"account": acct[5:21], "reason": reason},
                )
                issued = None
            else:
                self._throttler.succeeded(s, acct, addr)
                if account.password_hash and self._hasher.needs_rehash(account.password_hash):
                    user = s.get(User, account.user_id)
                    assert user is not None
                    user.password_hash = self._hasher.hash(password)
                issued = self._second_step(s, account.user_id, membership.org_id, client)
        if issued is None:
            raise LoginFailedError()
        return issued

    # -- the second step ----------------------------------------------------------------------

    def _second_step(self, s: Session, user_id: str, org_id: str, client: Actor) -> LoginOutcome:
        """After a correct password: a session, a factor challenge, or enrolment first."""
        actor = client.acting_as("user", user_id, org_id)
        now = self._clock()
        methods = factors.active_methods(s, user_id)
        if methods:
            token, digest = new_token(MFA_CHALLENGE_PREFIX)
            options = None
            webauthn_digest = None
            if "passkey" in methods and self._mfa is not None:
                prepared = self._mfa.login_passkey_options(s, user_id)
                if prepared is not None:
                    options, webauthn_digest = prepared
            row = LoginChallenge(
                token_sha256=digest,
                user_id=user_id,
                org_id=org_id,
                methods=methods,
                webauthn_challenge_sha256=webauthn_digest,
                failures=0,
                codes_sent=0,
                created_at=now,
                expires_at=now + MFA_CHALLENGE_LIFETIME,
            )
            s.add(row)
            s.flush()
            record(
                s,
                actor,
                "auth.mfa-required",
                object_type="user",
                object_id=user_id,
                details={"challenge_id": row.id, "methods": methods},
            )
            return MfaRequired(token, methods, row.expires_at, options)
        if factors.org_requires_mfa(s, org_id):
            token, enrollee = grants.issue(s, user_id, org_id, now)
            record(
                s,
                actor,
                "auth.mfa-enrolment-required",
                object_type="user",
                object_id=user_id,
                details={"grant_id": enrollee.grant_id},
            )
            return MfaEnrolmentRequired(
                token, user_id, org_id, enrollee.expires_at, self._enrollable()
            )
        issued = self._sessions.create(s, user_id, org_id, client)
        record(s, actor, "auth.login", object_type="session", object_id=issued.session_id)
        return issued

    def _enrollable(self) -> list[str]:
        if self._mfa is None:
            return []
        methods = ["passkey"] if self._mfa.passkeys is not None else []
        return [*methods, "totp", *(c for c in ("sms", "email") if c in self._mfa.senders)]

    def complete_mfa(
        self, challenge: str, method: str, response: str | dict[str, Any], client: Actor
    ) -> IssuedSession:
        """Finish a login with a second factor and open the session.

        ``method`` is one of ``MfaRequired.methods``; ``response`` is the code typed (totp,
        recovery, email, sms) or the ``PublicKeyCredential`` JSON (passkey). Raises
        ``ChallengeGoneError`` (expired, used, burned or unknown challenge),
        ``SecondFactorError`` (wrong, replayed or spent factor) or ``TooManyAttemptsError``.
        """
        anonymous = Actor(type="anonymous", ip=client.ip, user_agent=client.user_agent)
        now = self._clock()
        error: Exception | None = None
        issued: IssuedSession | None = None
        with self._db.write() as s:
            row = self._open_challenge(s, challenge, now)
            if row is None:
                record(s, anonymous, "mfa.failed", details={"reason": "invalid-challenge"})
                error = ChallengeGoneError()
            elif self._mfa is None or method not in row.methods:
                reason = "mfa-unavailable" if self._mfa is None else "method-not-offered"
                record(
                    s,
                    client.acting_as("user", row.user_id, row.org_id),
                    "mfa.failed",
                    object_type="user",
                    object_id=row.user_id,
                    details={"method": str(method)[:16], "reason": reason},
                )
                error = (
                    AuthenticationError("second-factor verification is not available")
                    if self._mfa is None
                    else InvalidInputError("this sign-in cannot be completed with that method")
                )
            else:
                actor = client.acting_as("user", row.user_id, row.org_id)
                key = subject_key("user", row.user_id)
                wait = self._mfa.guard.reserve(s, key, client.ip)
                if wait is not None:
                    record(
                        s,
                        actor,
                        "mfa.throttled",
                        object_type="user",
                        object_id=row.user_id,
                        details={"method": method, "retry_after": wait},
                    )
                    error = TooManyAttemptsError(wait)
                else:
                    check = self._mfa.check_login_factor(
                        s,
                        row.user_id,
                        method,
                        response,
                        challenge_id=row.id,
                        webauthn_challenge_sha256=row.webauthn_challenge_sha256,
                    )
                    if check.ok:
                        issued = self._finish(s, row, now, client, actor, key, method, check)
                        if issued is None:
                            error = ChallengeGoneError()
                    else:
                        error = self._challenge_failed(s, row, now, actor, method, check.reason)
        if error is not None:
            raise error
        assert issued is not None
        return issued

    def _finish(
        self,
        s: Session,
        row: LoginChallenge,
        now: datetime,
        client: Actor,
        actor: Actor,
        key: str,
        method: str,
        check: FactorCheck,
    ) -> IssuedSession | None:
        spent = s.execute(
            update(LoginChallenge)
            .where(LoginChallenge.id == row.id, LoginChallenge.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        gone = spent.rowcount != 1  # type: ignore[attr-defined]
        if gone or active_member(s, row.user_id, row.org_id) is None:
            record(
                s,
                actor,
                "mfa.failed",
                object_type="user",
                object_id=row.user_id,
                details={"method": method, "reason": "challenge-or-membership-gone"},
            )
            return None
        assert self._mfa is not None
        self._mfa.guard.succeeded(s, key, client.ip)
        issued = self._sessions.create(s, row.user_id, row.org_id, client)
        if method == "recovery":
            record(
                s,
                actor,
                "mfa.recovery-code-used",
                object_type="user",
                object_id=row.user_id,
                details=dict(check.details or {}),
            )
        record(
            s,
            actor,
            "auth.mfa-login",
            object_type="session",
            object_id=issued.session_id,
            details={"method": method, "challenge_id": row.id, **(check.details or {})},
        )
        return issued

    def _challenge_failed(
        self, s: Session, row: LoginChallenge, now: datetime, actor: Actor, method: str, reason: str
    ) -> Exception:
        row.failures += 1
        burned = row.failures >= MAX_CHALLENGE_FAILURES
        if burned:
            row.used_at = now
        s.flush()
        record(
            s,
            actor,
            "mfa.failed",
            object_type="user",
            object_id=row.user_id,
            details={"method": method, "reason": reason, "failures": row.failures},
        )
        if burned:
            record(
                s,
                actor,
                "mfa.challenge-burned",
                object_type="user",
                object_id=row.user_id,
                details={"challenge_id": row.id},
            )
            return ChallengeGoneError()
        return SecondFactorError()

    def send_login_code(self, challenge: str, channel: str, client: Actor) -> CodeSent:
        """Email or text a one-time code for this sign-in (a new code replaces the last)."""
        if self._mfa is None:
            raise AuthenticationError("second-factor verification is not available")
        now = self._clock()
        error: Exception | None = None
        issued = None
        with self._db.write() as s:
            row = self._open_challenge(s, challenge, now)
            if row is None:
                error = ChallengeGoneError()
            elif channel not in ("email", "sms") or channel not in row.methods:
                error = InvalidInputError(f"this sign-in cannot use {channel!r} codes")
            elif row.codes_sent >= MAX_CODES_PER_CHALLENGE:
                error = TooManyAttemptsError(int((row.expires_at - now).total_seconds()) + 1)
            else:
                actor = client.acting_as("user", row.user_id, row.org_id)
                send_key = "mfa-send:" + subject_key("user", row.user_id)
                wait = self._mfa.guard.reserve_sends(s, send_key, client.ip, SEND_LIMIT)
                if wait is not None:
                    record(
                        s,
                        actor,
                        "mfa.throttled",
                        object_type="user",
                        object_id=row.user_id,
                        details={"stage": "send", "channel": channel, "retry_after": wait},
                    )
                    error = TooManyAttemptsError(wait)
                else:
                    row.codes_sent += 1
                    issued = self._mfa.issue_login_code(s, row.user_id, row.id, channel)
                    record(
                        s,
                        actor,
                        "mfa.code-sent",
                        object_type="user",
                        object_id=row.user_id,
                        details={"channel": channel, "destination": issued.masked},
                    )
        if error is not None:
            raise error
        assert issued is not None
        minutes = int(self._mfa.codes.lifetime.total_seconds() // 60)
        self._mfa.deliver(issued, *login_message(issued.code, minutes), actor=client)
        return CodeSent(channel, issued.masked, issued.expires_at)

    def finish_enrolment(self, enrolment_token: str, client: Actor) -> IssuedSession:
        """Spend the enrolment grant once a factor was enrolled under it; open the session."""
        now = self._clock()
        error: Exception | None = None
        issued: IssuedSession | None = None
        with self._db.write() as s:
            grant = grants.spend(s, enrolment_token, now)
            if grant is None:
                error = AuthenticationError(grants.INVALID_GRANT)
            else:
                actor = client.acting_as("user", grant.user_id, grant.org_id)
                if not self._enrolled_since(s, grant):
                    # Raised inside: rolls the spend back so the grant can still be used.
                    raise InvalidInputError("set up a second factor first")
                if active_member(s, grant.user_id, grant.org_id) is None:
                    error = AuthenticationError(grants.INVALID_GRANT)
                else:
                    issued = self._sessions.create(s, grant.user_id, grant.org_id, client)
                    record(
                        s,
                        actor,
                        "auth.mfa-login",
                        object_type="session",
                        object_id=issued.session_id,
                        details={"method": "enrolment", "grant_id": grant.id},
                    )
        if error is not None:
            raise error
        assert issued is not None
        return issued

    @staticmethod
    def _enrolled_since(s: Session, grant: EnrolmentGrant) -> bool:
        """A factor confirmed during this grant (a pre-existing one would have meant an
        ordinary ``MfaRequired`` login, which must not be bypassed through a grant)."""
        if not factors.has_second_factor(s, grant.user_id):
            return False
        totp_at = s.execute(
            select(TotpFactor.confirmed_at).where(TotpFactor.user_id == grant.user_id)
        ).scalar_one_or_none()
        passkey_at = s.execute(
            select(Passkey.created_at)
            .where(Passkey.user_id == grant.user_id)
            .order_by(Passkey.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        channel_at = s.execute(
            select(OtpChannel.confirmed_at)
            .where(OtpChannel.user_id == grant.user_id, OtpChannel.confirmed_at.is_not(None))
            .order_by(OtpChannel.confirmed_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        return any(
            t is not None and t >= grant.created_at for t in (totp_at, passkey_at, channel_at)
        )

    @staticmethod
    def _open_challenge(s: Session, token: str | None, now: datetime) -> LoginChallenge | None:
        if not token or not token.startswith(MFA_CHALLENGE_PREFIX) or len(token) > 100:
            return None
        digest = token_digest(token)
        row = s.execute(
            select(LoginChallenge).where(LoginChallenge.token_sha256 == digest).with_for_update()
        ).scalar_one_or_none()
        if row is None or not digests_equal(row.token_sha256, digest):
            return None
        if row.used_at is not None or row.expires_at <= now:
            return None
        return row

    def change_password(
        self,
        principal: Principal,
        current: str,
        new: str,
        *,
        has_second_factor: bool,
        actor: Actor | None = None,
    ) -> None:
        """Change one's own password (proving the current one); other sessions are ended."""
        actor = actor or principal.actor()
        context = self._confirm_password(principal, current, actor, "user.password-change")
        password = self._policy.check(new, has_second_factor=has_second_factor, context=context)
        new_hash = self._hasher.hash(password)
        with self._db.write() as s:
            user = s.get(User, principal.user_id)
            assert user is not None
            user.password_hash = new_hash
            user.password_changed_at = self._clock()
            ended = self._sessions.revoke_all_for_user(s, user.id, keep=principal.session_id)
            record(
                s,
                actor,
                "user.password-change",
                object_type="user",
                object_id=user.id,
                details={"sessions_ended": ended},
            )

    def reauthenticate(
        self, principal: Principal, password: str, actor: Actor | None = None
    ) -> None:
        """Prove the password again in this session ("sudo mode", ``identity.recent``)."""
        if principal.session_id is None:
            raise InvalidInputError("only a signed-in session can re-authenticate")
        actor = actor or principal.actor()
        self._confirm_password(principal, password, actor, "session.reauthenticate")
        with self._db.write() as s:
            self._sessions.mark_reauthenticated(s, principal.session_id, self._clock())
            record(
                s,
                actor,
                "session.reauthenticated",
                object_type="session",
                object_id=principal.session_id,
            )

    def _confirm_password(
        self, principal: Principal, password: str, actor: Actor, action: str
    ) -> tuple[str, str]:
        """Check the signed-in user's password, throttled and audited like a sign-in: a stolen
        session must not become a password-guessing oracle. Returns (email, display name)."""
        if principal.user_id is None:
            raise InvalidInputError("this needs a signed-in user, not an API token")
        with self._db.write() as s:
            user = s.get(User, principal.user_id)
            assert user is not None
            acct, addr = account_key(user.email), ip_key(actor.ip)
            wait = self._throttler.reserve(
                s,
                [
                    (acct, self.throttle_policy.account_max_failures),
                    (addr, self.throttle_policy.ip_max_failures),
                ],
            )
            if wait is not None:
                record(s, actor, f"{action}-throttled", details={"retry_after": wait})
            context, stored = (user.email, user.display_name), user.password_hash
        if wait is not None:
            raise TooManyAttemptsError(wait)
        too_long = len(password or "") > MAX_LOGIN_INPUT
        matched = self._hasher.verify(stored, "" if too_long else (password or ""))
        with self._db.write() as s:
            if matched:
                self._throttler.succeeded(s, acct, addr)
            else:
                record(
                    s,
                    actor,
                    f"{action}-failed",
                    object_type="user",
                    object_id=principal.user_id,
                    details={"reason": "wrong-password"},
                )
        if not matched:
            raise LoginFailedError()
        return context

    def unlock_account(
        self, principal: Principal, user_id: str, actor: Actor | None = None
    ) -> bool:
        """An administrator lifts a member's login lockout; True if one was in force."""
        actor = actor or principal.actor()
        with (
            self._access.guard(actor, "auth.unlock", object_type="user", object_id=user_id),
            self._db.write() as s,
        ):
            require(principal, "member.manage")
            row = s.execute(
                select(User.email)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.org_id == principal.org_id, User.id == user_id)
            ).first()
            if row is None:
                raise NotFoundError("member not found")
            was_locked = self._throttler.clear(s, account_key(row.email))
            # The second step has its own counters; an unlock lifts both.
            was_locked = self._throttler.clear(s, subject_key("user", user_id)) or was_locked
            record(
                s,
                actor,
                "auth.unlock",
                object_type="user",
                object_id=user_id,
                details={"was_locked": was_locked},
            )
            return was_locked

    def unlock_address(self, ip: str, actor: Actor) -> bool:
        """The operator lifts an address's lockout (CLI; instance-wide, so no org permission)."""
        with self._db.write() as s:
            key = ip_key(ip)
            was_locked = self._throttler.clear(s, key)
            record(s, actor, "auth.unlock-address", details={"key": key, "was_locked": was_locked})
            return was_locked

    def prune_throttles(self) -> int:
        with self._db.write() as s:
            return self._throttler.prune(s)
