"""Database tables of the signing core.

Secrets never land in a column in plaintext: tokens are stored as SHA-256 digests (they are 256-bit
random values, so a fast hash is the right tool; passwords, which are not, come with argon2id in the
identity service), document bytes live encrypted in the blob store, private keys are wrapped by the
key service (``key_models``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pactvault.store import (
    approval_models,  # noqa: F401  (registers the approval tables)
    detection_models,  # noqa: F401  (registers detection state, responses, rate limits)
    idempotency_models,  # noqa: F401  (registers stored answers to retried POSTs)
    identity_models,  # noqa: F401  (registers the identity tables)
    ledger_models,  # noqa: F401  (registers the ledger tables)
    ledger_ops_models,  # noqa: F401  (registers the ledger operation tables)
    mfa_models,  # noqa: F401  (registers second factors, one-time codes, step-up challenges)
    monitor_models,  # noqa: F401  (registers alerts, deliveries and job leases)
    policy_models,  # noqa: F401  (registers organisation signing policies)
    realname_models,  # noqa: F401  (registers real-name, personal data)
    witness_models,  # noqa: F401  (registers witness keys, witnessed logs, cosignatures)
)
from pactvault.store.base import Base, UTCDateTime, utcnow
from pactvault.store.key_models import KeyEncryptionKey, SigningKey

__all__ = [
    "ApiToken",
    "AuditChainHead",
    "AuditEvent",
    "Base",
    "Certificate",
    "Contract",
    "DocumentRevision",
    "KeyEncryptionKey",
    "Organisation",
    "SetupToken",
    "Signature",
    "Signer",
    "SigningKey",
    "SystemState",
]


def new_id() -> str:
    return str(uuid.uuid4())


class Organisation(Base):
    """A tenant. Every business row carries ``org_id`` and every query filters on it."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A bearer token for the REST API, stored only as its SHA-256 digest."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SetupToken(Base):
    """The one-time token printed at first start that lets the first administrator in.

    There is no default password anywhere: whoever holds this token (shown once on the console of
    the machine that ran ``pactvault init``) creates the first organisation and its admin token.
    """

    __tablename__ = "setup_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Set when the token completed set-up: from then on no new setup token is ever issued.
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Contract(Base):
    __tablename__ = "contracts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="draft", index=True)
    created_by: Mapped[str] = mapped_column(String(100))
    #: The account that created it (None for organisation API tokens): decides ``.own`` reach.
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id"), nullable=True, index=True
    )
    #: Data classification (分类分级): public < internal < confidential < secret.
    classification: Mapped[str] = mapped_column(String(16), default="internal")
    #: The contract's value in minor units of ``currency``, for approval rules; optional.
    amount_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    content_warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Bumped on every state change; concurrent writers that read the same value collide on it.
    lock_version: Mapped[int] = mapped_column(Integer, default=0)

    signers: Mapped[list[Signer]] = relationship(
        back_populates="contract", order_by="(Signer.routing_order, Signer.position)"
    )
    revisions: Mapped[list[DocumentRevision]] = relationship(
        back_populates="contract", order_by="DocumentRevision.version"
    )

    __mapper_args__ = {"version_id_col": lock_version}  # noqa: RUF012
    __table_args__ = (
        CheckConstraint(
            "classification IN ('public', 'internal', 'confidential', 'secret')",
            name="classification",
        ),
        CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount_not_negative"),
    )


class Signer(Base):
    __tablename__ = "signers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    organisation: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The signer's mobile number for SMS signing codes: a personal_data row (encrypted, masked).
    phone_field_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The weakest identity check this signer's certificate may rest on (realname.providers
    # ASSURANCE_LEVELS): "basic" = control of the invited address, proven by the step-up code.
    required_assurance: Mapped[str] = mapped_column(String(32), default="basic")
    routing_order: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    field_name: Mapped[str] = mapped_column(String(100))
    field_page: Mapped[int] = mapped_column(Integer, default=-1)
    field_box: Mapped[list[float]] = mapped_column(JSON)
    # The signer's date, text and seal fields (``contracts.fields``), beyond the signature field.
    extra_fields: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    invitation_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    invitation_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decline_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    consent_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    consent_document_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    contract: Mapped[Contract] = relationship(back_populates="signers")

    __table_args__ = (UniqueConstraint("contract_id", "position"),)


class DocumentRevision(Base):
    """One version of a contract's PDF. The bytes are in the encrypted blob store."""

    __tablename__ = "document_revisions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # original | prepared | signed
    signer_id: Mapped[str | None] = mapped_column(ForeignKey("signers.id"), nullable=True)
    blob_key: Mapped[str] = mapped_column(String(300))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    plaintext_size: Mapped[int] = mapped_column(BigInteger)
    plaintext_sha256: Mapped[str] = mapped_column(String(64))
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    contract: Mapped[Contract] = relationship(back_populates="revisions")

    __table_args__ = (UniqueConstraint("contract_id", "version"),)


class Signature(Base):
    """Evidence of one signer's signature: hashes and public material only."""

    __tablename__ = "signatures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    signer_id: Mapped[str] = mapped_column(ForeignKey("signers.id"), unique=True)
    revision_version: Mapped[int] = mapped_column(Integer)
    field_name: Mapped[str] = mapped_column(String(100))
    certificate_serial: Mapped[str] = mapped_column(ForeignKey("certificates.serial"))
    signing_key_id: Mapped[str] = mapped_column(String(36))
    document_sha256_before: Mapped[str] = mapped_column(String(64))
    document_sha256_after: Mapped[str] = mapped_column(String(64))
    timestamp_time: Mapped[datetime] = mapped_column(UTCDateTime())
    timestamp_token_sha256: Mapped[str] = mapped_column(String(64))
    certification: Mapped[bool] = mapped_column(Boolean, default=False)
    locks_document: Mapped[bool] = mapped_column(Boolean, default=False)
    # "Real intention" evidence: the step-up proof (canonical JSON) spent on this signature, and
    # its SHA-256, which the signature's ledger leaf and audit entry also carry.
    stepup_proof: Mapped[str | None] = mapped_column(Text, nullable=True)
    stepup_proof_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Certificate(Base):
    """Every certificate our CA issued (public material), with its revocation status."""

    __tablename__ = "certificates"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)  # lowercase hex
    kind: Mapped[str] = mapped_column(String(32), index=True)  # root|issuing|signer|seal|tsa|ocsp
    issuer_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str] = mapped_column(Text)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    signing_key_id: Mapped[str] = mapped_column(String(36))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SystemState(Base):
    """Small named values of the instance (active CA certificates, CRL numbers)."""

    __tablename__ = "system_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit journal.

    No code path updates or deletes these rows, and the migration installs database triggers that
    refuse UPDATE and DELETE, so even a buggy caller cannot rewrite history silently.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(32))  # api-token | signer | system | setup
    actor_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(400), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_org_seq", "org_id", "seq"),
    )


class AuditChainHead(Base):
    """The single row that serialises appends to the audit chain (locked FOR UPDATE)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
