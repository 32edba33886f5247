"""Tables of multi-factor authentication, the login second step and step-up before signing.

Nothing here is a usable secret at rest:
- TOTP seeds are sealed (AES-256-GCM) under a per-factor data key wrapped by the platform KEK;
- recovery codes and one-time codes are stored as HMAC-SHA256 under a server key that lives in
  the key hierarchy (``keys.secrets.platform_secret``), never in clear in this database;
- login challenges and enrolment grants are random 256-bit tokens stored as SHA-256 digests;
- WebAuthn challenges are stored as SHA-256 digests (they are not secret, but a digest is all
  the comparison needs), passkeys as credential id + COSE public key, which are public.

Importable on its own: foreign keys name their tables as strings.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime

__all__ = [
    "EnrolmentGrant",
    "LoginChallenge",
    "MfaOrgPolicy",
    "OtpChannel",
    "OtpCode",
    "Passkey",
    "PasskeyRegistration",
    "RecoveryCode",
    "StepUpChallenge",
    "TotpFactor",
]


def new_id() -> str:
    return str(uuid.uuid4())


class TotpFactor(Base):
    """A user's authenticator-app seed (one per user): ``pending`` until a first code confirms it.

    ``last_used_step`` is the RFC 6238 time step of the last accepted code: a code is accepted
    only for a later step, so each (user, step) is accepted once.
    """

    __tablename__ = "mfa_totp"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16))  # pending | active
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    algorithm: Mapped[str] = mapped_column(String(16))
    digits: Mapped[int] = mapped_column(Integer)
    period: Mapped[int] = mapped_column(Integer)
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RecoveryCode(Base):
    """One single-use recovery code, as HMAC-SHA256 under the server key."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OtpChannel(Base):
    """Where a user receives one-time codes (``email`` or ``sms``); active once confirmed.

    One row per user and channel: a new phone number replaces a pending one, and an active one
    must be removed before another is enrolled (so a stolen session cannot quietly redirect it).
    """

    __tablename__ = "mfa_otp_channels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("user_id", "channel"),)


class OtpCode(Base):
    """A one-time code sent by email/SMS for ``purpose`` (login, enrol, stepup) of ``context_id``.

    ``code_hmac`` binds the code to its context (and, for step-up, the document hash); a code
    is spent by its first correct use, by ``max attempts`` wrong ones, or by a newer code.
    """

    __tablename__ = "mfa_otp_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    purpose: Mapped[str] = mapped_column(String(16))
    context_id: Mapped[str] = mapped_column(String(36), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    destination_masked: Mapped[str] = mapped_column(String(64))
    code_hmac: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Passkey(Base):
    """A WebAuthn credential: public data only (id, COSE public key, signature counter)."""

    __tablename__ = "mfa_passkeys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary)
    credential_id_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36))
    attestation_format: Mapped[str] = mapped_column(String(32))
    device_type: Mapped[str] = mapped_column(String(32))
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PasskeyRegistration(Base):
    """A pending registration ceremony: its challenge's digest, single use, short-lived."""

    __tablename__ = "mfa_passkey_registrations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    challenge_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoginChallenge(Base):
    """The state between a correct password and the second factor (single use, 5 minutes)."""

    __tablename__ = "mfa_login_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    methods: Mapped[list[str]] = mapped_column(JSON)
    webauthn_challenge_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    codes_sent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EnrolmentGrant(Base):
    """A restricted, short-lived credential that only allows enrolling a second factor.

    Issued instead of a session to members of an organisation that requires MFA while they
    have none; spent when the enrolment completes and a real session is issued.
    """

    __tablename__ = "mfa_enrolment_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MfaOrgPolicy(Base):
    """An organisation's MFA requirement; no row means "not required"."""

    __tablename__ = "mfa_org_policies"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class StepUpChallenge(Base):
    """One step-up ("real intention", 意愿认证) verification for one document hash.

    ``subject_type`` is ``user`` (an account) or ``signer`` (an external signer known only by
    their invitation). ``nonce`` makes each challenge unique; for passkeys the WebAuthn challenge
    is SHA-256(nonce ‖ document hash). Once verified, the canonical proof is kept here and
    ``consumed_at`` marks the one signature it was spent on.
    """

    __tablename__ = "mfa_stepup_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    document_sha256: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str] = mapped_column(String(64))
    destination_masked: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    proof_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    consumed_for: Mapped[str | None] = mapped_column(String(100), nullable=True)
