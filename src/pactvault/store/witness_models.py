"""Tables of checkpoint witnessing (c2sp.org/tlog-witness): both sides of it.

An instance can be a *witness* for other logs, and its own ledger can ask *witnesses* to cosign
its checkpoints; the two roles share nothing but this module.

Witness side (``pactvault.ledger.witnessing``):

* ``witness_keys``: the instance's witness key (one row). Like the log key, the private half is
  sealed (AES-256-GCM) under a data key the key service wraps with the platform KEK, bound by its
  associated data to the row's name and public key.
* ``witnessed_logs``: per witnessed log (by origin), the latest checkpoint this witness cosigned —
  its size, root and the log-signed note as received. This row is the witness's whole promise
  ("never cosign two inconsistent views, never go backwards"), so the database guards it too:
  the size never shrinks, a size never changes root, and rows are never deleted (triggers, see
  migration 0011). Updates are compare-and-swap on the old size and root.

Log side (``pactvault.ledger.cosigning``):

* ``ledger_witness_state``: per configured witness (key name and key ID), the size it last
  cosigned for us (or told us in a 409 answer) and how the last request went — the error is a
  short description, never a URL or a response body.
* ``ledger_cosignatures``: every verified cosignature received, by the checkpoint (``seq``) it was
  asked for. ``signature`` is exactly what follows the key ID in the note line (the witness's
  8-byte timestamp and its Ed25519 signature), so the line can be rebuilt byte for byte; it is
  valid for every published checkpoint with the same size and root.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = ["LedgerCosignature", "LedgerWitnessState", "WitnessKey", "WitnessedLog"]

WITNESS_KEY_ID = 1  # one witness key per instance


class WitnessKey(Base):
    __tablename__ = "witness_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))  # the witness's key name
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw Ed25519, 32 bytes
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)  # WrappedKey.to_bytes()
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("id = 1", name="single"),)


class WitnessedLog(Base):
    __tablename__ = "witnessed_logs"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)  # the log-signed checkpoint last cosigned
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("tree_size >= 0", name="size_not_negative"),)


class LedgerWitnessState(Base):
    __tablename__ = "ledger_witness_state"

    witness_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    witness_key_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    cosigned_size: Mapped[int] = mapped_column(BigInteger, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive, reset on success


class LedgerCosignature(Base):
    __tablename__ = "ledger_cosignatures"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    checkpoint_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_checkpoints.seq")
    )
    witness_name: Mapped[str] = mapped_column(String(255))
    witness_key_id: Mapped[int] = mapped_column(BigInteger)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)  # u64 timestamp ‖ Ed25519 signature
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the witness's timestamp
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("checkpoint_seq", "witness_name", "witness_key_id"),
        Index("ix_ledger_cosignatures_tree_size", "tree_size"),
    )
