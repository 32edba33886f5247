"""Request and response bodies of the REST API (these shape /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pactvault.identity.tokens import TokenInfo
from pactvault.store.models import AuditEvent, Contract, DocumentRevision, Signer

Classification = Literal["public", "internal", "confidential", "secret"]
FieldKind = Literal["signature", "date", "text", "seal"]


class FieldIn(BaseModel):
    """A field the signer completes with their signature (see ``contracts.fields``)."""

    model_config = ConfigDict(extra="forbid")

    kind: FieldKind = Field(
        description="signature (at most one; else page/box of the signer place it), date (the "
        "signing date, filled in for the signer), text (typed by the signer), seal (an "
        "organisation seal: not available yet; a required one cannot be completed)"
    )
    page: int = Field(default=-1, description="0-based page; -1 = last")
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="x1, y1, x2, y2 in PDF points; required except for signature"
    )
    required: StrictBool = Field(default=True, description="A text or seal field may be optional")
    label: str | None = Field(
        default=None, max_length=64, description="What to type, shown to the signer"
    )


class FieldOut(BaseModel):
    name: str
    kind: str
    page: int
    box: tuple[float, float, float, float]
    required: bool
    label: str | None


class SignerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=320)
    organisation: str | None = Field(default=None, max_length=64)
    routing_order: int = Field(default=1, ge=1, le=50, description="Same number = parallel group")
    page: int = Field(default=-1, description="0-based page of the signature field; -1 = last")
    box: tuple[float, float, float, float] | None = Field(
        default=None, description="x1, y1, x2, y2 in PDF points; omitted = placed automatically"
    )
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="Mainland China mobile number for SMS signing codes (stored encrypted)",
    )
    required_assurance: Literal[
        "basic", "verified-document", "verified-3-factor", "verified-4-factor", "verified-face"
    ] = Field(
        default="basic",
        description="Weakest identity check the signer's certificate may rest on; anything "
        "above basic means real-name verification (实名认证) before signing",
    )
    fields: list[FieldIn] = Field(
        default_factory=list,
        max_length=60,
        description="Date, text and seal fields (and optionally the signature field); "
        "omitted: one signature field at page/box",
    )


class ContractMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    message: str | None = Field(default=None, max_length=4000)
    expires_at: datetime | None = None
    signers: list[SignerIn] = Field(min_length=1, max_length=50)
    send: StrictBool = Field(default=False, description="Send immediately after creating")
    classification: Classification = Field(
        default="internal", description="Data classification level (分类分级)"
    )
    amount_minor: int | None = Field(
        default=None, ge=0, description="Contract value in minor units (fen for CNY)"
    )
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class SignerOut(BaseModel):
    id: str
    name: str
    email: str
    organisation: str | None
    routing_order: int
    status: str
    field_name: str
    viewed_at: datetime | None
    signed_at: datetime | None
    declined_at: datetime | None
    required_assurance: str = "basic"
    fields: list[FieldOut] = Field(
        default_factory=list, description="Date, text and seal fields beyond field_name"
    )

    @classmethod
    def of(cls, s: Signer) -> SignerOut:
        return cls(
            id=s.id,
            name=s.name,
            email=s.email,
            organisation=s.organisation,
            routing_order=s.routing_order,
            status=s.status,
            field_name=s.field_name,
            viewed_at=s.viewed_at,
            signed_at=s.signed_at,
            declined_at=s.declined_at,
            required_assurance=s.required_assurance,
            fields=[FieldOut(**f) for f in s.extra_fields or ()],
        )


class RevisionOut(BaseModel):
    version: int
    kind: str
    sha256: str
    size: int
    created_at: datetime

    @classmethod
    def of(cls, r: DocumentRevision) -> RevisionOut:
        return cls(
            version=r.version,
            kind=r.kind,
            sha256=r.plaintext_sha256,
            size=r.plaintext_size,
            created_at=r.created_at,
        )


class ContractOut(BaseModel):
    id: str
    title: str
    status: str
    status_reason: str | None
    created_at: datetime
    sent_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None
    current_version: int
    classification: str
    amount_minor: int | None
    currency: str | None
    created_by_user_id: str | None
    warnings: list[str]
    signers: list[SignerOut]
    revisions: list[RevisionOut]

    @classmethod
    def of(cls, c: Contract) -> ContractOut:
        return cls(
            id=c.id,
            title=c.title,
            status=c.status,
            status_reason=c.status_reason,
            created_at=c.created_at,
            sent_at=c.sent_at,
            completed_at=c.completed_at,
            expires_at=c.expires_at,
            current_version=c.current_version,
            classification=c.classification,
            amount_minor=c.amount_minor,
            currency=c.currency,
            created_by_user_id=c.created_by_user_id,
            warnings=list(c.content_warnings or []),
            signers=[SignerOut.of(s) for s in c.signers],
            revisions=[RevisionOut.of(r) for r in c.revisions],
        )


class ContractPage(BaseModel):
    items: list[ContractOut]
    total: int
    limit: int
    offset: int


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of what you read")
    consent: StrictBool = Field(description="Must be true: you agree to sign electronically")
    consent_text: str | None = Field(default=None, max_length=4000)
    reason: str | None = Field(default=None, max_length=200)
    signature_image_base64: str | None = Field(
        default=None, max_length=2_000_000, description="PNG/JPEG of a handwritten signature"
    )
    locale: str = Field(default="zh-CN", pattern=r"^(zh-CN|en)$")
    stepup_challenge_id: str = Field(
        min_length=1,
        max_length=36,
        description="The step-up challenge you verified for this document (POST /stepup first)",
    )
    field_values: dict[str, str] | None = Field(
        default=None,
        max_length=60,
        description="Your text fields (SignerOut.fields, kind text): name → text; dates are "
        "filled in for you",
    )


class StepUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["email", "sms", "passkey"] = Field(
        description="Where the signing code goes: the invited email address, or the mobile "
        "number the sender gave; or a passkey of your account (sign in to it first)"
    )


class StepUpOut(BaseModel):
    challenge_id: str
    method: str
    document_sha256: str = Field(description="The document the code is bound to")
    expires_at: datetime
    destination: str | None = Field(description="Masked address the code was sent to")
    passkey_options: dict[str, Any] | None = Field(
        default=None,
        description="PublicKeyCredentialRequestOptions; the challenge covers the document hash",
    )


class StepUpAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, min_length=4, max_length=12, pattern=r"^[0-9 ]+$")
    credential: dict[str, Any] | None = Field(
        default=None, description="PublicKeyCredential JSON of the passkey assertion"
    )


class StepUpVerifiedOut(BaseModel):
    challenge_id: str
    verified: bool
    proof_sha256: str = Field(description="SHA-256 of the proof kept with the signature")


class SignerView(BaseModel):
    contract_id: str
    title: str
    message: str | None
    status: str
    signer: SignerOut
    parties: list[SignerOut]
    document_sha256: str
    consent_text: str


class SignatureOut(BaseModel):
    id: str
    contract_id: str
    signer_id: str
    revision_version: int
    certificate_serial: str
    timestamp_time: datetime
    document_sha256: str
    stepup_proof_sha256: str | None = Field(
        default=None, description="The second-factor proof kept as evidence with this signature"
    )


class SetupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    setup_token: str = Field(min_length=10, max_length=200)
    organisation_name: str = Field(min_length=1, max_length=200)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


class TokenOut(BaseModel):
    token: str = Field(description="Shown once; only its hash is stored")
    token_id: str
    org_id: str


class TokenInfoOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, t: TokenInfo) -> TokenInfoOut:
        return cls(
            id=t.id,
            name=t.name,
            scopes=list(t.scopes),
            created_at=t.created_at,
            expires_at=t.expires_at,
            last_used_at=t.last_used_at,
        )


class AuditEventOut(BaseModel):
    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    entry_hash: str
    object_type: str | None = None
    object_id: str | None = None

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventOut:
        return cls(
            seq=e.seq,
            occurred_at=e.occurred_at,
            actor_type=e.actor_type,
            actor_id=e.actor_id,
            action=e.action,
            ip=e.ip,
            user_agent=e.user_agent,
            details=e.details,
            entry_hash=e.entry_hash,
            object_type=e.object_type,
            object_id=e.object_id,
        )
