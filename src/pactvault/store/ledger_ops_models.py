"""Tables that run the evidence ledger (``pactvault.ledger.service``): its keys, a lookup index
over the leaves, and the record of audit-journal anchors.

* ``ledger_keys``: the log's Ed25519 signing key, one row per role. The private key is never
  stored in clear: it is sealed (AES-256-GCM) under a data key that the key service wraps with
  the platform KEK (org ``_platform``), bound to the row by its associated data.
* ``ledger_leaf_index``: leaf index → leaf hash, event type and contract, derived from
  ``ledger_leaves`` (which only holds the canonical record bytes) so that proofs by leaf hash and
  a contract's evidence need one indexed read. It is a cache: it can always be rebuilt from the
  leaves, and nothing is *verified* against it.
* ``ledger_anchors``: when each audit-journal anchor was committed and at which leaf; it drives
  the schedule. Verification reads the anchors from the leaves themselves, never from here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = ["LedgerAnchor", "LedgerKey", "LedgerLeafIndex"]

KEY_ROLES = ("log",)

# On SQLite an INTEGER primary key is the rowid itself (no second index), as in ledger_models.
_LEAF_INDEX = BigInteger().with_variant(Integer, "sqlite")


class LedgerKey(Base):
    __tablename__ = "ledger_keys"

    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))  # the key name: the log's origin
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw Ed25519, 32 bytes
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)  # WrappedKey.to_bytes()
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("role IN ('log')", name="role"),)


class LedgerLeafIndex(Base):
    __tablename__ = "ledger_leaf_index"

    leaf_index: Mapped[int] = mapped_column(_LEAF_INDEX, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary, index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    contract_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class LedgerAnchor(Base):
    __tablename__ = "ledger_anchors"

    leaf_index: Mapped[int] = mapped_column(_LEAF_INDEX, primary_key=True, autoincrement=False)
    audit_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    audit_hash: Mapped[str] = mapped_column(String(64))
    anchored_at: Mapped[datetime] = mapped_column(UTCDateTime())
