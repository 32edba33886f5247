"""Bodies of the approval and real-name verification routes (these shape /openapi.json).

Inputs are strict (unknown fields refused) and bounded; the services validate meaning (roles that
exist, ID number checksums). Outputs carry personal data only as the service hands it out:
masked, unless the caller's clearance reaches it (the review packet).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from pactvault.contracts.approval_rules import (
    AmountThreshold,
    Condition,
    RuleInfo,
    RuleSpec,
    Step,
)
from pactvault.contracts.approvals import ApprovalRequestInfo, StepInfo
from pactvault.identity.personal_data import FieldView
from pactvault.identity.realname.service import (
    EvidenceInfo,
    ProviderInfo,
    ReviewPacket,
    SubjectStatus,
    VerificationInfo,
)

Level = Literal["public", "internal", "confidential", "secret"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- approval rules -----------------------------------------------------------------------------


class AmountIn(Strict):
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. CNY")
    minor: int = Field(ge=0, description="Threshold in minor units (fen for CNY): amount ≥ this")


class ConditionIn(Strict):
    """Holds if any clause holds: always, a classification level reached, an amount reached."""

    always: StrictBool = False
    min_classification: Level | None = None
    amounts: list[AmountIn] = Field(default_factory=list, max_length=20)

    def to_condition(self) -> Condition:
        return Condition(
            always=self.always,
            min_classification=self.min_classification,
            amounts=tuple(AmountThreshold(a.currency, a.minor) for a in self.amounts),
        )

    @classmethod
    def of(cls, c: Condition) -> ConditionIn:
        return cls(
            always=c.always,
            min_classification=c.min_classification,  # type: ignore[arg-type]
            amounts=[AmountIn(currency=a.currency, minor=a.minor) for a in c.amounts],
        )


class StepIn(Strict):
    """Approvers of one step: role keys and/or member ids; ``any`` one or ``all`` of them."""

    mode: Literal["any", "all"] = "any"
    roles: list[str] = Field(default_factory=list, max_length=50)
    user_ids: list[str] = Field(default_factory=list, max_length=50)

    def to_step(self) -> Step:
        return Step(mode=self.mode, roles=frozenset(self.roles), user_ids=frozenset(self.user_ids))

    @classmethod
    def of(cls, s: Step) -> StepIn:
        return cls(mode=s.mode, roles=sorted(s.roles), user_ids=sorted(s.user_ids))  # type: ignore[arg-type]


class RuleIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    enabled: StrictBool = True
    condition: ConditionIn
    steps: list[StepIn] = Field(min_length=1, max_length=10)

    def to_spec(self) -> RuleSpec:
        return RuleSpec(
            name=self.name,
            condition=self.condition.to_condition(),
            steps=[s.to_step() for s in self.steps],
            enabled=self.enabled,
        )


class RulePatch(Strict):
    """Change some parts of a rule; ``expected_version`` refuses to overwrite unseen changes."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: StrictBool | None = None
    condition: ConditionIn | None = None
    steps: list[StepIn] | None = Field(default=None, min_length=1, max_length=10)
    expected_version: int | None = Field(default=None, ge=1)

    def merged(self, current: RuleInfo) -> RuleSpec:
        return RuleSpec(
            name=self.name if self.name is not None else current.name,
            condition=(
                self.condition.to_condition() if self.condition is not None else current.condition
            ),
            steps=([s.to_step() for s in self.steps] if self.steps is not None else current.steps),
            enabled=self.enabled if self.enabled is not None else current.enabled,
        )


class RuleOut(BaseModel):
    id: str
    name: str
    version: int
    enabled: bool
    deleted: bool
    condition: ConditionIn
    steps: list[StepIn]
    changed_at: datetime

    @classmethod
    def of(cls, r: RuleInfo) -> RuleOut:
        return cls(
            id=r.id,
            name=r.name,
            version=r.version,
            enabled=r.enabled,
            deleted=r.deleted,
            condition=ConditionIn.of(r.condition),
            steps=[StepIn.of(s) for s in r.steps],
            changed_at=r.changed_at,
        )


# -- approval requests --------------------------------------------------------------------------


class ApprovalRequestIn(Strict):
    comment: str | None = Field(default=None, max_length=2000)


class WithdrawIn(Strict):
    comment: str | None = Field(default=None, max_length=2000)


class DecisionIn(Strict):
    decision: Literal["approve", "reject"]
    comment: str | None = Field(
        default=None, max_length=2000, description="Required when rejecting: say why"
    )


class ApproverOut(BaseModel):
    user_id: str
    decision: str | None
    comment: str | None
    decided_at: datetime | None


class StepOut(BaseModel):
    position: int
    rule_id: str
    rule_version: int
    mode: str
    roles: list[str]
    user_ids: list[str]
    status: str
    approvers: list[ApproverOut]
    completed_at: datetime | None

    @classmethod
    def of(cls, s: StepInfo) -> StepOut:
        return cls(
            position=s.position,
            rule_id=s.rule_id,
            rule_version=s.rule_version,
            mode=s.mode,
            roles=list(s.roles),
            user_ids=list(s.user_ids),
            status=s.status,
            approvers=[ApproverOut(**a.__dict__) for a in s.approvers],
            completed_at=s.completed_at,
        )


class RuleRefOut(BaseModel):
    id: str
    version: int
    name: str


class ApprovalRequestOut(BaseModel):
    """An approval request, bound to the contract's facts and document hash when it was made."""

    id: str
    contract_id: str
    document_sha256: str
    status: str
    current_step: int
    steps: list[StepOut]
    rules: list[RuleRefOut]
    requester_user_id: str | None
    comment: str | None
    classification: str
    amount_minor: int | None
    currency: str | None
    created_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, r: ApprovalRequestInfo) -> ApprovalRequestOut:
        return cls(
            id=r.id,
            contract_id=r.contract_id,
            document_sha256=r.document_sha256,
            status=r.status,
            current_step=r.current_step,
            steps=[StepOut.of(s) for s in r.steps],
            rules=[RuleRefOut(id=x.id, version=x.version, name=x.name) for x in r.rules],
            requester_user_id=r.requester_user_id,
            comment=r.comment,
            classification=r.classification,
            amount_minor=r.amount_minor,
            currency=r.currency,
            created_at=r.created_at,
            closed_at=r.closed_at,
        )


# -- real-name verification ---------------------------------------------------------------------


class VerificationStartIn(Strict):
    """Start a real-name check. The built-in provider (``admin-review``) checks ID documents,
    uploaded next to ``…/{id}/documents``; an administrator then decides."""

    name: str = Field(min_length=1, max_length=100, repr=False)
    id_number: str = Field(min_length=1, max_length=40, repr=False)
    phone: str | None = Field(default=None, max_length=40, repr=False)
    provider: str = Field(default="admin-review", min_length=1, max_length=64)
    check: Literal["document", "id_number", "bank_card", "face_liveness"] | None = Field(
        default=None, description="Omitted: the provider's only check"
    )


class VerificationOut(BaseModel):
    id: str
    subject_type: str
    subject_id: str
    provider: str
    method: str
    status: str
    assurance_level: str | None
    reason: str | None
    awaiting_documents: bool
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime

    @classmethod
    def of(cls, v: VerificationInfo) -> VerificationOut:
        return cls(
            id=v.id,
            subject_type=v.subject_type,
            subject_id=v.subject_id,
            provider=v.provider,
            method=v.method,
            status=v.status,
            assurance_level=v.assurance_level,
            reason=v.reason,
            awaiting_documents=v.awaiting_documents,
            created_at=v.created_at,
            decided_at=v.decided_at,
            expires_at=v.expires_at,
        )


class OwnVerificationOut(BaseModel):
    """One's own check: status and assurance, and what was claimed — masked."""

    verification: VerificationOut
    name: str
    id_number: str
    phone: str | None
    documents: list[str]

    @classmethod
    def of(cls, s: SubjectStatus) -> OwnVerificationOut:
        return cls(
            verification=VerificationOut.of(s.verification),
            name=s.name,
            id_number=s.id_number,
            phone=s.phone,
            documents=list(s.documents),
        )


class ProviderOut(BaseModel):
    name: str
    checks: list[str]

    @classmethod
    def of(cls, p: ProviderInfo) -> ProviderOut:
        return cls(name=p.name, checks=list(p.checks))


class VerificationStatusOut(BaseModel):
    """The caller's current standing and history, newest first."""

    verified: bool
    assurance_level: str | None = Field(description="Of the strongest unexpired verification")
    items: list[OwnVerificationOut]
    providers: list[ProviderOut]


class FieldOut(BaseModel):
    value: str
    masked: bool
    level: str

    @classmethod
    def of(cls, f: FieldView) -> FieldOut:
        return cls(value=f.value, masked=f.masked, level=f.level)


class EvidenceOut(BaseModel):
    id: str
    kind: str
    media_type: str
    size: int
    created_at: datetime

    @classmethod
    def of(cls, e: EvidenceInfo) -> EvidenceOut:
        return cls(
            id=e.id, kind=e.kind, media_type=e.media_type, size=e.size, created_at=e.created_at
        )


class ReviewPacketOut(BaseModel):
    """What a reviewer sees; name and ID number in clear only as far as their clearance goes."""

    verification: VerificationOut
    name: FieldOut
    id_number: FieldOut
    evidence: list[EvidenceOut]

    @classmethod
    def of(cls, p: ReviewPacket) -> ReviewPacketOut:
        return cls(
            verification=VerificationOut.of(p.verification),
            name=FieldOut.of(p.name),
            id_number=FieldOut.of(p.id_number),
            evidence=[EvidenceOut.of(e) for e in p.evidence],
        )


class ReviewIn(Strict):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(
        default=None, max_length=2000, description="Required when rejecting; kept as evidence"
    )
