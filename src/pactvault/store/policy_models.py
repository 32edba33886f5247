"""Organisation signing policy: the weakest identity check any of its signers may rest on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime

ASSURANCE_CHECK = (
    "min_signer_assurance IN ('basic', 'verified-document', 'verified-3-factor', "
    "'verified-4-factor', 'verified-face')"
)


class SigningPolicy(Base):
    """No row means the platform default, ``basic`` (control of the invited address)."""

    __tablename__ = "org_signing_policies"
    __table_args__ = (CheckConstraint(ASSURANCE_CHECK, name="assurance_known"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    min_signer_assurance: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
