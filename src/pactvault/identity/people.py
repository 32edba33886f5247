"""Organisations, their members, and invitations by email.

Accounts are global (one email, one password) and join organisations through memberships. An
invitation is a single-use, expiring capability token sent by email and stored only as its
SHA-256 digest; the inviter never sees it (the service mails it). External signers are not
members and need no account: they keep signing through their per-contract invitation.

Tenant isolation: every look-up by id is filtered on the caller's organisation, so another
tenant's id raises exactly the ``NotFoundError`` a missing id raises (and is audited as denied).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from pactvault.access.decision import LEVELS, AccessControl, cleared, require
from pactvault.access.roles import check_grant, role_permissions
from pactvault.audit.journal import Actor, record
from pactvault.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from pactvault.identity.members import normalise_email
from pactvault.identity.passwords import PasswordHasher, PasswordPolicy
from pactvault.identity.principal import Principal
from pactvault.notify import Mailer, Message
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import Invitation, Membership, User
from pactvault.store.models import Organisation
from pactvault.tokens import new_token, token_digest

INVITATION_PREFIX = "pvinv_"
INVITATION_LIFETIME = timedelta(days=7)
INVALID_INVITATION = "the invitation is invalid, used or expired"


@dataclass(frozen=True)
class NewAccount:
    display_name: str
    password: str
    #: Whether the account will have a second factor (8- instead of 15-character minimum).
    has_second_factor: bool = False


@dataclass(frozen=True)
class MemberInfo:
    user_id: str
    org_id: str
    email: str
    display_name: str
    role: str
    status: str
    joined_at: datetime
    clearance: str = "internal"


@dataclass(frozen=True)
class InvitationInfo:
    id: str
    org_id: str
    email: str
    role: str
    expires_at: datetime


def _valid_email(email: str) -> str:
    normalised = normalise_email(email)
    local, at, domain = normalised.partition("@")
    if not at or not local or "." not in domain or len(normalised) > 320 or " " in normalised:
        raise InvalidInputError("a valid email address is required")
    return normalised


def _display_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned or len(cleaned) > 200:
        raise InvalidInputError("the name must be 1 to 200 characters")
    return cleaned


class PeopleService:
    def __init__(
        self,
        db: Database,
        access: AccessControl,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        mailer: Mailer,
        *,
        public_url: str = "http://127.0.0.1:8000",
        clock: Callable[[], datetime] = utcnow,
        invitation_lifetime: timedelta = INVITATION_LIFETIME,
    ) -> None:
        self._db = db
        self._access = access
        self._hasher = hasher
        self._policy = policy
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._lifetime = invitation_lifetime

    # -- organisations ------------------------------------------------------------------------

    def create_organisation(
        self, actor: Actor, name: str, owner_email: str, owner: NewAccount
    ) -> MemberInfo:
        """Create an organisation with a new account as its owner.

        For the first-administrator setup and the operator CLI, whose callers already hold the
        authority (setup token, server access); it is not reachable with a member's rights.
        """
        org_name = " ".join((name or "").split())
        if not org_name or len(org_name) > 200:
            raise InvalidInputError("organisation name must be 1 to 200 characters")
        email = _valid_email(owner_email)
        display = _display_name(owner.display_name)
        password = self._policy.check(
            owner.password, has_second_factor=owner.has_second_factor, context=(email, display)
        )
        password_hash = self._hasher.hash(password)
        now = self._clock()
        with self._db.write() as s:
            if s.execute(select(User.id).where(User.email == email)).first():
                raise ConflictError("an account with this email address already exists")
            org = Organisation(name=org_name)
            user = User(
                email=email,
                display_name=display,
                password_hash=password_hash,
                password_changed_at=now,
            )
            s.add_all([org, user])
            s.flush()
            # The owner answers for every contract of the organisation: full clearance.
            member = Membership(
                org_id=org.id, user_id=user.id, role="owner", clearance="secret", created_at=now
            )
            s.add(member)
            s.flush()
            record(
                s,
                actor,
                "organisation.create",
                object_type="organisation",
                object_id=org.id,
                org_id=org.id,
                details={"owner": user.id},
            )
            return MemberInfo(user.id, org.id, email, display, "owner", user.status, now, "secret")

    # -- invitations ----------------------------------------------------------------------------

    def invite(
        self, principal: Principal, email: str, role: str, actor: Actor | None = None
    ) -> InvitationInfo:
        """Invite ``email`` with ``role``; the token goes only into the email."""
        actor = actor or principal.actor()
        address = _valid_email(email)
        now = self._clock()
        with (
            self._access.guard(actor, "member.invite", object_type="invitation"),
            self._db.write() as s,
        ):
            require(principal, "member.invite")
            granted = role_permissions(s, principal.org_id, role)
            if granted is None:
                raise InvalidInputError(f"there is no role {role!r}")
            check_grant(principal, granted)
            already = s.execute(
                select(Membership.id)
                .join(User, User.id == Membership.user_id)
                .where(Membership.org_id == principal.org_id, User.email == address)
            ).first()
            if already:
                raise ConflictError("this person is already a member")
            token, digest = new_token(INVITATION_PREFIX)
            row = Invitation(
                org_id=principal.org_id,
                email=address,
                role=role,
                token_sha256=digest,
                invited_by=actor.id,
                created_at=now,
                expires_at=now + self._lifetime,
            )
            s.add(row)
            s.flush()
            org_name = s.get(Organisation, principal.org_id).name  # type: ignore[union-attr]
            record(
                s,
                actor,
                "invitation.create",
                object_type="invitation",
                object_id=row.id,
                details={"role": role},
            )
            info = InvitationInfo(row.id, row.org_id, address, role, row.expires_at)
        # After the commit: an invitation that failed to save must not be mailed.
        self._mailer.send(
            Message(
                to=address,
                subject=f"You are invited to {org_name} on pactvault",
                body=(
                    f"You have been invited to join {org_name} on pactvault.\n\n"
                    f"Accept: {self._public_url}/invitations/accept#{token}\n\n"
                    f"The link works once and expires on {info.expires_at:%Y-%m-%d %H:%M} UTC."
                ),
                tags=(("Invitation", info.id), ("Invitation-Token", token)),
            )
        )
        return info

    def revoke_invitation(
        self, principal: Principal, invitation_id: str, actor: Actor | None = None
    ) -> None:
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor, "invitation.revoke", object_type="invitation", object_id=invitation_id
            ),
            self._db.write() as s,
        ):
            require(principal, "member.invite")
            row = s.get(Invitation, invitation_id)
            if row is None or row.org_id != principal.org_id:
                raise NotFoundError("invitation not found")
            if row.accepted_at is None:
                row.revoked_at = row.revoked_at or self._clock()
            record(s, actor, "invitation.revoke", object_type="invitation", object_id=invitation_id)

    def pending_invitations(self, principal: Principal) -> list[InvitationInfo]:
        self._access.authorize(principal, "member.invite")
        now = self._clock()
        with self._db.read() as s:
            rows = s.execute(
                select(Invitation)
                .where(
                    Invitation.org_id == principal.org_id,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > now,
                )
                .order_by(Invitation.created_at)
            ).scalars()
            return [InvitationInfo(r.id, r.org_id, r.email, r.role, r.expires_at) for r in rows]

    def accept_invitation(
        self,
        token: str,
        client: Actor,
        *,
        account: NewAccount | None = None,
        principal: Principal | None = None,
    ) -> MemberInfo:
        """Redeem an invitation, once.

        A new email needs ``account`` (name and password, checked against the policy). An email
        that already has an account must be signed in as that account (``principal``): holding
        the token alone must never be enough to take over an existing account.
        """
        failure = AuthenticationError(INVALID_INVITATION)
        if not token or not token.startswith(INVITATION_PREFIX) or len(token) > 100:
            raise failure
        digest = token_digest(token)
        now = self._clock()
        with self._db.read() as s:
            invitation = s.execute(
                select(Invitation).where(Invitation.token_sha256 == digest)
            ).scalar_one_or_none()
            if invitation is None or not self._open(invitation, now):
                raise failure
            existing = s.execute(
                select(User).where(User.email == invitation.email)
            ).scalar_one_or_none()
        password_hash = None
        display = None
        if existing is not None:
            if principal is None or principal.user_id != existing.id:
                raise AuthenticationError(
                    "an account with this email already exists; sign in to accept the invitation"
                )
        else:
            if account is None:
                raise InvalidInputError("choose your name and a password to create your account")
            display = _display_name(account.display_name)
            password = self._policy.check(
                account.password,
                has_second_factor=account.has_second_factor,
                context=(invitation.email, display),
            )
            password_hash = self._hasher.hash(password)
        with self._db.write() as s:
            # The conditional update is the single-use guarantee, also across processes.
            spent = s.execute(
                update(Invitation)
                .where(
                    Invitation.id == invitation.id,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > now,
                )
                .values(accepted_at=now)
            )
            if spent.rowcount != 1:  # type: ignore[attr-defined]
                raise failure
            if existing is not None:
                user = s.get(User, existing.id)
                assert user is not None
            else:
                if s.execute(select(User.id).where(User.email == invitation.email)).first():
                    raise ConflictError("an account with this email address was just created")
                user = User(
                    email=invitation.email,
                    display_name=display or "",
                    password_hash=password_hash,
                    password_changed_at=now,
                )
                s.add(user)
                s.flush()
            s.execute(
                update(Invitation)
                .where(Invitation.id == invitation.id)
                .values(accepted_user_id=user.id)
            )
            if s.execute(
                select(Membership.id).where(
                    Membership.org_id == invitation.org_id, Membership.user_id == user.id
                )
            ).first():
                raise ConflictError("you are already a member of this organisation")
            s.add(
                Membership(
                    org_id=invitation.org_id, user_id=user.id, role=invitation.role, created_at=now
                )
            )
            record(
                s,
                client.acting_as("user", user.id, invitation.org_id),
                "invitation.accept",
                object_type="invitation",
                object_id=invitation.id,
                details={"role": invitation.role, "new_account": existing is None},
            )
            return MemberInfo(
                user.id,
                invitation.org_id,
                user.email,
                user.display_name,
                invitation.role,
                user.status,
                now,
            )

    @staticmethod
    def _open(invitation: Invitation, now: datetime) -> bool:
        return (
            invitation.accepted_at is None
            and invitation.revoked_at is None
            and invitation.expires_at > now
        )

    # -- members ----------------------------------------------------------------------------------

    def list_members(self, principal: Principal) -> list[MemberInfo]:
        self._access.authorize(principal, "member.read")
        with self._db.read() as s:
            rows = s.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.org_id == principal.org_id)
                .order_by(Membership.created_at, User.email)
            ).all()
            return [self._info(m, u) for m, u in rows]

    def get_member(self, principal: Principal, user_id: str) -> MemberInfo:
        """One member; the caller themselves, or anyone with ``member.read``."""
        actor = principal.actor()
        with (
            self._access.guard(actor, "member.read", object_type="user", object_id=user_id),
            self._db.read() as s,
        ):
            if user_id != principal.user_id:
                require(principal, "member.read")
            membership, user = self._membership(s, principal.org_id, user_id)
            return self._info(membership, user)

    def change_role(
        self, principal: Principal, user_id: str, role: str, actor: Actor | None = None
    ) -> MemberInfo:
        actor = actor or principal.actor()
        with (
            self._access.guard(actor, "member.change-role", object_type="user", object_id=user_id),
            self._db.write() as s,
        ):
            require(principal, "member.manage")
            if user_id == principal.user_id:
                raise PermissionDeniedError("you cannot change your own role")
            membership, user = self._membership(s, principal.org_id, user_id)
            granted = role_permissions(s, principal.org_id, role)
            if granted is None:
                raise InvalidInputError(f"there is no role {role!r}")
            current = role_permissions(s, principal.org_id, membership.role) or frozenset()
            check_grant(principal, granted, current=current, target_user_id=user_id)
            if membership.role == "owner" and role != "owner":
                self._keep_an_owner(s, principal.org_id)
            before = membership.role
            membership.role = role
            record(
                s,
                actor,
                "member.change-role",
                object_type="user",
                object_id=user_id,
                details={"from": before, "to": role},
            )
            return self._info(membership, user)

    def set_clearance(
        self, principal: Principal, user_id: str, clearance: str, actor: Actor | None = None
    ) -> MemberInfo:
        """Set the classification level a member may read in clear (``member.manage``).

        Nobody can raise anyone above their own clearance, nor change their own.
        """
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor, "member.set-clearance", object_type="user", object_id=user_id
            ),
            self._db.write() as s,
        ):
            require(principal, "member.manage")
            if clearance not in LEVELS:
                raise InvalidInputError(f"clearance must be one of {', '.join(LEVELS)}")
            if user_id == principal.user_id:
                raise PermissionDeniedError("you cannot change your own clearance")
            if not cleared(principal.clearance, clearance):
                raise PermissionDeniedError("you cannot grant a clearance above your own")
            membership, user = self._membership(s, principal.org_id, user_id)
            before = membership.clearance
            membership.clearance = clearance
            record(
                s,
                actor,
                "member.set-clearance",
                object_type="user",
                object_id=user_id,
                details={"from": before, "to": clearance},
            )
            return self._info(membership, user)

    def remove_member(self, principal: Principal, user_id: str, actor: Actor | None = None) -> None:
        """Remove a member (``member.manage``), or leave the organisation oneself."""
        actor = actor or principal.actor()
        with (
            self._access.guard(actor, "member.remove", object_type="user", object_id=user_id),
            self._db.write() as s,
        ):
            leaving = user_id == principal.user_id
            if not leaving:
                require(principal, "member.manage")
            membership, _user = self._membership(s, principal.org_id, user_id)
            if not leaving:
                current = role_permissions(s, principal.org_id, membership.role) or frozenset()
                check_grant(principal, frozenset(), current=current)
            if membership.role == "owner":
                self._keep_an_owner(s, principal.org_id)
            record(
                s,
                actor,
                "member.remove",
                object_type="user",
                object_id=user_id,
                details={"role": membership.role, "left": leaving},
            )
            s.delete(membership)

    @staticmethod
    def _keep_an_owner(s, org_id: str) -> None:  # type: ignore[no-untyped-def]
        owners = s.execute(
            select(func.count())
            .select_from(Membership)
            .where(Membership.org_id == org_id, Membership.role == "owner")
        ).scalar_one()
        if owners <= 1:
            raise ConflictError("an organisation must keep at least one owner")

    @staticmethod
    def _membership(s, org_id: str, user_id: str) -> tuple[Membership, User]:  # type: ignore[no-untyped-def]
        row = s.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.org_id == org_id, Membership.user_id == user_id)
        ).first()
        if row is None:
            raise NotFoundError("member not found")
        return row[0], row[1]

    @staticmethod
    def _info(m: Membership, u: User) -> MemberInfo:
        return MemberInfo(
            u.id, m.org_id, u.email, u.display_name, m.role, u.status, m.created_at, m.clearance
        )
