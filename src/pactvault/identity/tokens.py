"""API tokens and the one-time first-administrator setup token.

Tokens are shown once and stored as SHA-256 digests (``pactvault.tokens``). Authentication looks a
token up by digest and then compares digests in constant time, so neither the database nor the
timing of a failed comparison tells an attacker anything about valid tokens.

Two kinds of API token share the ``api_tokens`` table:
- organisation tokens (setup, operator, ``create``) with the coarse scopes of ``ALL_SCOPES``,
  mapped to permissions by ``access.permissions.LEGACY_SCOPES``;
- personal tokens of a user (``create_user_token``, marked by an ``api_token_owners`` row) whose
  scopes are permission names. Such a token can never do more than its owner can *now*: its
  permissions are its scopes intersected with the owner's current role, and it stops working when
  the owner is disabled or leaves the organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from pactvault.access.decision import AccessControl
from pactvault.access.permissions import is_known, legacy_permissions
from pactvault.audit.journal import Actor, record
from pactvault.errors import AuthenticationError, InvalidInputError, NotFoundError
from pactvault.identity.errors import ReauthenticationRequiredError
from pactvault.identity.members import active_member
from pactvault.identity.principal import Principal
from pactvault.identity.recent import require_recent_authentication
from pactvault.store.db import Database
from pactvault.store.identity_models import ApiTokenOwner
from pactvault.store.models import ApiToken, Organisation, SetupToken
from pactvault.tokens import API_PREFIX, SETUP_PREFIX, digests_equal, new_token, token_digest

__all__ = ["ALL_SCOPES", "IssuedToken", "Principal", "TokenInfo", "TokenService"]

SETUP_TOKEN_LIFETIME = timedelta(days=7)
ALL_SCOPES = ("contracts:read", "contracts:write", "admin")
USER_TOKEN_MAX_DAYS = 365


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    token_id: str
    org_id: str


class TokenService:
    def __init__(self, db: Database, access: AccessControl | None = None) -> None:
        self._db = db
        self._access = access or AccessControl(db)

    def create_setup_token(self) -> str | None:
        """Issue the setup token if no organisation exists yet and no unused token is pending.

        Returns ``None`` when the instance is already set up. Calling it again while a token is
        pending replaces it (the old one is spent), so an operator who lost the console output
        can get a new one by re-running ``pactvault init`` on the server.
        """
        with self._db.write() as session:
            if self._setup_done(session):
                return None
            now = datetime.now(UTC)
            for pending in session.execute(
                select(SetupToken).where(SetupToken.used_at.is_(None))
            ).scalars():
                pending.used_at = now
            token, digest = new_token(SETUP_PREFIX)
            session.add(SetupToken(token_sha256=digest, expires_at=now + SETUP_TOKEN_LIFETIME))
            record(session, Actor.system(), "setup.token-issued")
            return token

    def complete_setup(self, setup_token: str, organisation_name: str, actor: Actor) -> IssuedToken:
        """Spend the setup token: create the first organisation and its administrator token."""
        name = (organisation_name or "").strip()
        if not name or len(name) > 200:
            raise InvalidInputError("organisation name must be 1 to 200 characters")
        with self._db.write() as session:
            row = session.execute(
                select(SetupToken).where(SetupToken.token_sha256 == token_digest(setup_token or ""))
            ).scalar_one_or_none()
            now = datetime.now(UTC)
            if row is None or row.used_at is not None or row.expires_at <= now:
                raise AuthenticationError("the setup token is invalid, used or expired")
            if self._setup_done(session):
                raise AuthenticationError("the setup token is invalid, used or expired")
            row.used_at = now
            org = Organisation(name=name)
            session.add(org)
            session.flush()
            row.org_id = org.id
            issued = self._issue(session, org.id, "administrator", list(ALL_SCOPES), None)
            record(
                session,
                Actor(type="setup", ip=actor.ip, user_agent=actor.user_agent, org_id=org.id),
                "setup.complete",
                object_type="organisation",
                object_id=org.id,
                org_id=org.id,
                details={"token_id": issued.token_id},
            )
            return issued

    def create(
        self,
        principal: Principal,
        name: str,
        scopes: list[str],
        expires_in_days: int | None = 90,
        actor: Actor | None = None,
    ) -> IssuedToken:
        if "admin" not in principal.scopes:
            raise AuthenticationError("creating tokens needs the admin scope")
        unknown = set(scopes) - set(ALL_SCOPES)
        if unknown or not scopes:
            raise InvalidInputError(f"scopes must be a non-empty subset of {list(ALL_SCOPES)}")
        if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
            raise InvalidInputError("expires_in_days must be 1..3650")
        with self._db.write() as session:
            expires = (
                datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
            )
            issued = self._issue(session, principal.org_id, name[:200] or "token", scopes, expires)
            record(
                session,
                actor or principal.actor(),
                "token.create",
                object_type="api-token",
                object_id=issued.token_id,
                details={"scopes": sorted(scopes)},
            )
            return issued

    def revoke(self, principal: Principal, token_id: str, actor: Actor | None = None) -> None:
        """Revoke a token of the caller's organisation: its own, a personal token of the caller,
        or any with the ``admin`` scope / ``token.manage`` permission. Others answer not found."""
        manager = "admin" in principal.scopes or "token.manage" in principal.permissions
        actor = actor or principal.actor()
        with (
            self._access.guard(actor, "token.revoke", object_type="api-token", object_id=token_id),
            self._db.write() as session,
        ):
            if not manager and token_id != principal.token_id and principal.user_id is None:
                raise NotFoundError("token not found")
            row = session.get(ApiToken, token_id)
            if row is None or row.org_id != principal.org_id:
                raise NotFoundError("token not found")
            owner = session.get(ApiTokenOwner, token_id)
            own = token_id == principal.token_id or (
                owner is not None and owner.user_id == principal.user_id
            )
            if not (manager or own):
                raise NotFoundError("token not found")
            row.revoked_at = row.revoked_at or datetime.now(UTC)
            record(
                session,
                actor,
                "token.revoke",
                object_type="api-token",
                object_id=token_id,
            )

    def authenticate(self, token: str | None) -> Principal:
        failure = AuthenticationError("missing, invalid, expired or revoked API token")
        if not token or not token.startswith(API_PREFIX) or len(token) > 100:
            raise failure
        digest = token_digest(token)
        with self._db.read() as session:
            row = session.execute(
                select(ApiToken).where(ApiToken.token_sha256 == digest)
            ).scalar_one_or_none()
            if row is None or not digests_equal(row.token_sha256, digest):
                raise failure
            if row.revoked_at is not None:
                raise failure
            if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
                raise failure
            scopes = frozenset(row.scopes)
            owner = session.get(ApiTokenOwner, row.id)
            if owner is None:
                return Principal(
                    org_id=row.org_id,
                    token_id=row.id,
                    scopes=scopes,
                    permissions=legacy_permissions(scopes),
                    # Organisation tokens: full clearance only with full control (fail closed).
                    clearance="secret" if "admin" in scopes else "internal",
                )
            member = active_member(session, owner.user_id, row.org_id)
        if member is None:
            raise failure
        return Principal(
            org_id=row.org_id,
            token_id=row.id,
            scopes=scopes,
            user_id=member.user_id,
            role=member.role,
            permissions=scopes & member.permissions,
            clearance=member.clearance,
        )

    # -- personal tokens of users ----------------------------------------------------------------

    def create_user_token(
        self,
        principal: Principal,
        name: str,
        permissions: list[str],
        expires_in_days: int = 90,
        actor: Actor | None = None,
    ) -> IssuedToken:
        """A personal, expiring token limited to ``permissions`` (which the user must hold).

        Only a signed-in user (a session) can mint one: a leaked token cannot breed more tokens.
        """
        if principal.user_id is None or principal.session_id is None:
            raise AuthenticationError("sign in to create a personal API token")
        # A token outlives the session: minting one needs the password proven lately.
        try:
            require_recent_authentication(principal, datetime.now(UTC))
        except ReauthenticationRequiredError as refused:
            self._access.record_denial(
                actor or principal.actor(), "token.create", refused, object_type="api-token"
            )
            raise
        chosen = set(permissions)
        unknown = sorted(p for p in chosen if not is_known(p))
        if unknown or not chosen:
            raise InvalidInputError(
                "permissions must be a non-empty list of known permissions"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        beyond = chosen - principal.permissions
        if beyond:
            raise InvalidInputError(
                "a token cannot hold permissions you do not have: " + ", ".join(sorted(beyond))
            )
        if not 1 <= expires_in_days <= USER_TOKEN_MAX_DAYS:
            raise InvalidInputError(f"expires_in_days must be 1..{USER_TOKEN_MAX_DAYS}")
        with self._db.write() as session:
            expires = datetime.now(UTC) + timedelta(days=expires_in_days)
            issued = self._issue(
                session, principal.org_id, name[:200] or "token", sorted(chosen), expires
            )
            session.add(ApiTokenOwner(token_id=issued.token_id, user_id=principal.user_id))
            record(
                session,
                actor or principal.actor(),
                "token.create",
                object_type="api-token",
                object_id=issued.token_id,
                details={"scopes": sorted(chosen), "owner": principal.user_id},
            )
            return issued

    def list_user_tokens(self, principal: Principal) -> list[TokenInfo]:
        """The caller's own live personal tokens in this organisation."""
        if principal.user_id is None:
            return []
        now = datetime.now(UTC)
        with self._db.read() as session:
            rows = session.execute(
                select(ApiToken)
                .join(ApiTokenOwner, ApiTokenOwner.token_id == ApiToken.id)
                .where(
                    ApiTokenOwner.user_id == principal.user_id,
                    ApiToken.org_id == principal.org_id,
                    ApiToken.revoked_at.is_(None),
                )
                .order_by(ApiToken.created_at)
            ).scalars()
            return [
                TokenInfo(r.id, r.name, tuple(r.scopes), r.created_at, r.expires_at, r.last_used_at)
                for r in rows
                if r.expires_at is None or r.expires_at > now
            ]

    def operator_token(self, organisation_name: str, actor: Actor) -> IssuedToken:
        """Create an organisation and its admin token for the operator of this machine.

        Only the CLI calls this: whoever can read the data directory and unlock the root key
        already controls the instance, so this grants nothing new. It does not touch the
        first-administrator setup token (``pactvault demo`` uses it for its own organisation).
        """
        with self._db.write() as session:
            org = Organisation(name=organisation_name[:200])
            session.add(org)
            session.flush()
            issued = self._issue(session, org.id, "operator", list(ALL_SCOPES), None)
            record(
                session,
                actor,
                "token.operator-issued",
                object_type="organisation",
                object_id=org.id,
                org_id=org.id,
                details={"token_id": issued.token_id},
            )
            return issued

    @staticmethod
    def _setup_done(session) -> bool:  # type: ignore[no-untyped-def]
        return (
            session.execute(
                select(SetupToken.id).where(SetupToken.org_id.is_not(None)).limit(1)
            ).first()
            is not None
        )

    @staticmethod
    def _issue(
        session, org_id: str, name: str, scopes: list[str], expires: datetime | None
    ) -> IssuedToken:  # type: ignore[no-untyped-def]
        token, digest = new_token(API_PREFIX)
        row = ApiToken(
            org_id=org_id, name=name, token_sha256=digest, scopes=scopes, expires_at=expires
        )
        session.add(row)
        session.flush()
        return IssuedToken(token=token, token_id=row.id, org_id=org_id)
