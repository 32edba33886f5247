"""Tables of approval workflows (审批流程): rules with their version history, and requests.

A rule's current definition lives in ``approval_rules``; every change (including creation,
enabling, disabling and deletion) also appends an immutable row to ``approval_rule_versions``, so
the definition a request was created under can always be shown. A request never reads the rule
again after it is created: its steps and the eligible approvers of each step are copied into
``approval_steps`` and ``approval_approvers`` at request time, which is what keeps a pending
request on the rule version it was created under.

Importable on its own (string foreign keys to the core tables), so the integrator decides where it
is registered with the metadata.
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
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

REQUEST_STATUSES = ("pending", "approved", "rejected", "withdrawn", "superseded")
STEP_STATUSES = ("waiting", "active", "approved", "rejected", "closed")
STEP_MODES = ("any", "all")
DECISIONS = ("approved", "rejected")


def new_id() -> str:
    return str(uuid.uuid4())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ApprovalRule(Base):
    """The current definition of one organisation's rule (the newest version)."""

    __tablename__ = "approval_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Deleted rules stay as rows: requests and versions refer to them.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``{"always": bool, "min_classification": str | None, "amounts": [{currency, minor}]}``
    condition: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``[{"mode": "any" | "all", "roles": [...], "user_ids": [...]}, ...]`` in order.
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApprovalRuleVersion(Base):
    """One immutable version of a rule, written by every change."""

    __tablename__ = "approval_rule_versions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    rule_id: Mapped[str] = mapped_column(ForeignKey("approval_rules.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean)
    deleted: Mapped[bool] = mapped_column(Boolean)
    condition: Mapped[dict[str, Any]] = mapped_column(JSON)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The audit actor id that made the change (a user id or an API token id).
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)

    __table_args__ = (UniqueConstraint("rule_id", "version"),)


class ApprovalRequest(Base):
    """A request to approve one contract in one exact form (document and facts)."""

    __tablename__ = "approval_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    #: The document revision the approvers were asked about.
    document_sha256: Mapped[str] = mapped_column(String(64))
    #: Digest of every fact the rules and the approvers saw (document, title, amount, level).
    facts_sha256: Mapped[str] = mapped_column(String(64))
    #: The facts the rules were matched on, shown to approvers (the title stays on the contract).
    classification: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: ``contract_id`` while pending, NULL afterwards. NULLs never collide in a unique column on
    #: SQLite or PostgreSQL, so this allows one pending request per contract, race-free.
    open_contract_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    #: 1-based position of the step being decided (once closed: the step decided last).
    current_step: Mapped[int] = mapped_column(Integer, default=1)
    step_count: Mapped[int] = mapped_column(Integer)
    #: The rule versions this request was created under: ``[{"id", "version", "name"}]``.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    requester_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    requester_token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    #: The contract's creating account: excluded from approving (four-eyes), like the requester.
    contract_owner_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id"), nullable=True
    )
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),)


class ApprovalStep(Base):
    """One step of a request, as the rule defined it when the request was created."""

    __tablename__ = "approval_steps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("approval_requests.id"))
    position: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(ForeignKey("approval_rules.id"))
    rule_version: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(8))
    roles: Mapped[list[str]] = mapped_column(JSON)
    user_ids: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("request_id", "position"),
        CheckConstraint(_in("mode", STEP_MODES), name="mode"),
        CheckConstraint(_in("status", STEP_STATUSES), name="status"),
    )


class ApprovalApprover(Base):
    """An eligible approver of one step (snapshotted at request time) and their decision."""

    __tablename__ = "approval_approvers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    step_id: Mapped[str] = mapped_column(ForeignKey("approval_steps.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("step_id", "user_id"),
        CheckConstraint("decision IS NULL OR " + _in("decision", DECISIONS), name="decision"),
    )


__all__ = [
    "DECISIONS",
    "REQUEST_STATUSES",
    "STEP_MODES",
    "STEP_STATUSES",
    "ApprovalApprover",
    "ApprovalRequest",
    "ApprovalRule",
    "ApprovalRuleVersion",
    "ApprovalStep",
]
