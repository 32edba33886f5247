"""Tables of personal data (field-level encrypted) and real-name verification.

Nothing here holds personal data in clear: a ``personal_data`` row keeps the value sealed
under its own data key (wrapped by the organisation's KEK) and, for exact-match search, an
HMAC-SHA256 under the organisation's index key — never a plain hash. The index root key itself is
stored only wrapped. Verification rows point at those fields; evidence files (ID document images,
provider responses) live in the encrypted blob store and are referenced like document revisions.

Importable on its own: foreign keys to other modules' tables are written as strings.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = [
    "IdentityVerification",
    "PersonalDataField",
    "PersonalDataIndexKey",
    "VerificationEvidence",
]


def new_id() -> str:
    return str(uuid.uuid4())


class PersonalDataIndexKey(Base):
    """The organisation's index root key, wrapped by its KEK; search keys are derived from it.

    Per organisation (not one platform secret) so that destroying a tenant's KEK also makes its
    search hashes unlinkable forever — the index cannot outlive the data it indexes.
    """

    __tablename__ = "personal_data_index_keys"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PersonalDataField(Base):
    """One personal-data value of one subject (a user, an external signer)."""

    __tablename__ = "personal_data"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    owner_type: Mapped[str] = mapped_column(String(16))  # user | signer
    owner_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # name | id_number | phone | bank_card | email
    level: Mapped[str] = mapped_column(String(16))  # public | internal | confidential | secret
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    search_hash: Mapped[str] = mapped_column(String(64))  # hex HMAC-SHA256, never a plain hash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_personal_data_search", "org_id", "kind", "search_hash"),
        Index("ix_personal_data_owner", "org_id", "owner_type", "owner_id"),
        CheckConstraint("owner_type IN ('user', 'signer')", name="owner_type"),
        CheckConstraint(
            "kind IN ('name', 'id_number', 'phone', 'bank_card', 'email')", name="kind"
        ),
        CheckConstraint("level IN ('public', 'internal', 'confidential', 'secret')", name="level"),
    )


class IdentityVerification(Base):
    """One real-name check of one subject: what was claimed, by which provider, with what result.

    ``status`` moves pending → verified | rejected | expired, and verified → expired when its
    validity ends; nothing else. ``expires_at`` is the review deadline while pending and the end
    of validity once verified.
    """

    __tablename__ = "identity_verifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    subject_type: Mapped[str] = mapped_column(String(16))  # user | signer
    subject_id: Mapped[str] = mapped_column(String(36))
    provider: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))  # document | id_number | bank_card | face
    status: Mapped[str] = mapped_column(String(16), default="pending")
    assurance_level: Mapped[str | None] = mapped_column(String(32), nullable=True)
    provider_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    name_field_id: Mapped[str] = mapped_column(ForeignKey("personal_data.id"))
    id_number_field_id: Mapped[str] = mapped_column(ForeignKey("personal_data.id"))
    phone_field_id: Mapped[str | None] = mapped_column(
        ForeignKey("personal_data.id"), nullable=True
    )
    bank_card_field_id: Mapped[str | None] = mapped_column(
        ForeignKey("personal_data.id"), nullable=True
    )
    email_field_id: Mapped[str | None] = mapped_column(
        ForeignKey("personal_data.id"), nullable=True
    )
    requested_by: Mapped[str] = mapped_column(String(140))  # "<actor type>:<actor id>"
    reviewer_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_identity_verifications_subject", "org_id", "subject_type", "subject_id"),
        Index("ix_identity_verifications_status", "status", "expires_at"),
        CheckConstraint("subject_type IN ('user', 'signer')", name="subject_type"),
        CheckConstraint("status IN ('pending', 'verified', 'rejected', 'expired')", name="status"),
        CheckConstraint(
            "status != 'verified' OR assurance_level IS NOT NULL", name="verified_has_level"
        ),
    )


class VerificationEvidence(Base):
    """An evidence file of a verification, encrypted in the blob store (like a document revision).

    ``kind`` says what it is: an uploaded ID document image, a face image, a provider's response.
    """

    __tablename__ = "identity_evidence"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    verification_id: Mapped[str] = mapped_column(
        ForeignKey("identity_verifications.id"), index=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[str] = mapped_column(String(32))
    media_type: Mapped[str] = mapped_column(String(100))
    blob_key: Mapped[str] = mapped_column(String(300))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    plaintext_size: Mapped[int] = mapped_column(BigInteger)
    plaintext_sha256: Mapped[str] = mapped_column(String(64))
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
