"""Password sign-in, password changes and administrator unlocks.

Enumeration resistance: an unknown email, a disabled account, an account without a membership and
a wrong password all end in the same ``LoginFailedError`` after the same work — the same two
database transactions (throttle reservation, then the outcome) and one argon2id verification,
against a dummy hash when there is no account. Throttle keys exist for unknown emails too.

The argon2 work runs *between* the two transactions, so no database write lock is held while
hashing; the reservation made in the first one is what keeps parallel guesses within the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from pactvault.access.decision import AccessControl, require
from pactvault.audit.journal import Actor, record
from pactvault.errors import InvalidInputError, NotFoundError
from pactvault.identity.errors import LoginFailedError, TooManyAttemptsError
from pactvault.identity.members import normalise_email
from pactvault.identity.passwords import PasswordHasher, PasswordPolicy
from pactvault.identity.principal import Principal
from pactvault.identity.sessions import IssuedSession, SessionService
from pactvault.identity.throttle import LoginThrottler, ThrottlePolicy, account_key, ip_key
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import Membership, User

#: Longer inputs are refused before any hashing (argon2 accepts them, but they are not passwords).
MAX_LOGIN_INPUT = 1024


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
    ) -> None:
        self._db = db
        self._access = access
        self._sessions = sessions
        self._hasher = hasher
        self._policy = policy
        self._clock = clock
        self.throttle_policy = throttle or ThrottlePolicy()
        self._throttler = LoginThrottler(self.throttle_policy, clock)

    def login(
        self, email: str, password: str, client: Actor, *, org_id: str | None = None
    ) -> IssuedSession:
        """Verify email + password and open a session in ``org_id`` (default: the first joined).

        Raises ``LoginFailedError`` (always the same message) or ``TooManyAttemptsError``.
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
                issued = self._sessions.create(s, account.user_id, membership.org_id, client)
                record(
                    s,
                    client.acting_as("user", account.user_id, membership.org_id),
                    "auth.login",
                    object_type="session",
                    object_id=issued.session_id,
                )
        if issued is None:
            raise LoginFailedError()
        return issued

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
        if principal.user_id is None:
            raise InvalidInputError("this needs a signed-in user, not an API token")
        actor = actor or principal.actor()
        with self._db.read() as s:
            user = s.get(User, principal.user_id)
            assert user is not None
            context = (user.email, user.display_name)
            stored = user.password_hash
        if not self._hasher.verify(stored, current or ""):
            raise LoginFailedError()
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
