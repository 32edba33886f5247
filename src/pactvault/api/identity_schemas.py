"""Bodies of the account, session, member, invitation and role routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pactvault.access.roles import RoleInfo
from pactvault.identity.people import InvitationInfo, MemberInfo
from pactvault.identity.sessions import SessionInfo


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    organisation_id: str | None = Field(default=None, max_length=36)


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


# -- sign-in second step and MFA enrolment ------------------------------------------------------


class LoginOut(BaseModel):
    """What a password sign-in leads to. ``status`` says which fields are set:

    - ``signed-in``: the session (cookie set) — ``user_id`` … ``csrf_token``;
    - ``mfa-required``: finish with ``POST /auth/mfa`` — ``challenge``, ``methods``,
      ``passkey_options``;
    - ``mfa-enrolment-required``: the organisation requires a second factor and the member has
      none — enrol under ``/me/mfa`` with ``X-Enrolment-Token: <enrolment_token>``, then
      ``POST /auth/mfa/enrolment/finish``.
    """

    status: Literal["signed-in", "mfa-required", "mfa-enrolment-required"]
    user_id: str | None = None
    org_id: str | None = None
    session_id: str | None = None
    expires_at: datetime | None = None
    csrf_token: str | None = None
    challenge: str | None = None
    methods: list[str] | None = None
    passkey_options: str | None = Field(
        default=None, description="PublicKeyCredentialRequestOptions JSON for a passkey"
    )
    enrolment_token: str | None = None


class LoginCodeIn(Strict):
    challenge: str = Field(min_length=1, max_length=200)
    channel: Literal["email", "sms"]


class CodeSentOut(BaseModel):
    channel: str
    destination: str = Field(description="Masked address the code went to")


class SecondFactorIn(Strict):
    challenge: str = Field(min_length=1, max_length=200)
    method: Literal["totp", "recovery", "email", "sms", "passkey"]
    response: str | dict[str, object] = Field(
        description="The code typed, or the PublicKeyCredential JSON of a passkey assertion"
    )


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    device_type: str
    backed_up: bool


class MfaStatusOut(BaseModel):
    totp: bool
    passkeys: list[PasskeyOut]
    email: str | None = Field(description="Masked address of an active email-code channel")
    sms: str | None = Field(description="Masked number of an active SMS-code channel")
    recovery_codes_left: int
    methods: list[str]
    org_requires_mfa: bool


class TotpSetupOut(BaseModel):
    """Shown once: scan ``uri`` as a QR code, or type ``secret`` into the authenticator app."""

    factor_id: str
    secret: str
    uri: str


class CodeIn(Strict):
    code: str = Field(min_length=4, max_length=40)


class FactorEnrolledOut(BaseModel):
    method: str
    factor_id: str
    recovery_codes: list[str] | None = Field(
        default=None, description="Only with the first factor: shown once, keep them offline"
    )


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class PasskeyRegistrationIn(Strict):
    credential: dict[str, object] = Field(description="PublicKeyCredential JSON (attestation)")
    name: str = Field(default="", max_length=64)


class ChannelIn(Strict):
    channel: Literal["email", "sms"]
    destination: str | None = Field(
        default=None, max_length=320, description="Mobile number (sms); email defaults to yours"
    )


class ChannelSetupOut(BaseModel):
    channel_id: str
    channel: str
    destination: str
    expires_at: datetime


class MfaPolicyIn(Strict):
    require_mfa: StrictBool


class MfaPolicyOut(BaseModel):
    require_mfa: bool


Assurance = Literal[
    "basic", "verified-document", "verified-3-factor", "verified-4-factor", "verified-face"
]


class SigningPolicyIn(Strict):
    min_signer_assurance: Assurance


class SigningPolicyOut(BaseModel):
    min_signer_assurance: str


class ReauthenticateIn(Strict):
    password: str = Field(min_length=1, max_length=1024)
