"""Bodies of the account, session, member, invitation and role routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pactvault.access.roles import RoleInfo
from pactvault.identity.people import InvitationInfo, MemberInfo
from pactvault.identity.sessions import SessionInfo


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    organisation_id: str | None = Field(default=None, max_length=36)


class SessionOut(BaseModel):
    """The signed-in session. The session token itself travels only in the HttpOnly cookie."""

    user_id: str
    org_id: str
    session_id: str
    expires_at: datetime
    csrf_token: str = Field(description="Send as X-CSRF-Token with every unsafe request")


class MeOut(BaseModel):
    user_id: str | None
    org_id: str
    role: str | None
    clearance: str
    permissions: list[str]
    kind: str


class PasswordChangeIn(Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class SessionInfoOut(BaseModel):
    id: str
    org_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, s: SessionInfo) -> SessionInfoOut:
        return cls(**s.__dict__)


class RevokedOut(BaseModel):
    revoked: int


class MemberOut(BaseModel):
    user_id: str
    email: str
    display_name: str
    role: str
    status: str
    joined_at: datetime
    clearance: str

    @classmethod
    def of(cls, m: MemberInfo) -> MemberOut:
        return cls(
            user_id=m.user_id,
            email=m.email,
            display_name=m.display_name,
            role=m.role,
            status=m.status,
            joined_at=m.joined_at,
            clearance=m.clearance,
        )


class MemberUpdateIn(Strict):
    role: str | None = Field(default=None, min_length=1, max_length=64)
    clearance: Literal["public", "internal", "confidential", "secret"] | None = None


class InvitationIn(Strict):
    email: str = Field(min_length=3, max_length=320)
    role: str = Field(min_length=1, max_length=64)


class InvitationOut(BaseModel):
    """An invitation; its token goes only to the invitee by email, never to the inviter."""

    id: str
    email: str
    role: str
    expires_at: datetime

    @classmethod
    def of(cls, i: InvitationInfo) -> InvitationOut:
        return cls(id=i.id, email=i.email, role=i.role, expires_at=i.expires_at)


class AcceptInvitationIn(Strict):
    token: str = Field(min_length=10, max_length=100)
    display_name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=1024)


class RoleIn(Strict):
    key: str = Field(min_length=2, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    permissions: list[str] = Field(min_length=1, max_length=100)


class RoleUpdateIn(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    permissions: list[str] = Field(min_length=1, max_length=100)


class RoleOut(BaseModel):
    key: str
    name: str
    permissions: list[str]
    builtin: bool

    @classmethod
    def of(cls, r: RoleInfo) -> RoleOut:
        return cls(key=r.key, name=r.name, permissions=list(r.permissions), builtin=r.builtin)


class UnlockOut(BaseModel):
    was_locked: bool
