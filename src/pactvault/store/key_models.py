"""Tables of the key hierarchy. No column ever holds a plaintext key.

* ``key_encryption_keys``: one or more KEKs per organisation, each sealed (AES-256-GCM) by the root
  key of the key store, with the KEK's own identity bound into the seal's associated data so a
  wrapped KEK copied to another row or organisation fails to open.
* ``signing_keys``: private keys as PKCS#8 DER sealed under an organisation KEK, next to the public
  key (needed in clear to build certificates and verify signatures).

``org_id`` is a plain string, not a foreign key to ``organisations``: the platform's own CA/TSA keys
live under the reserved ``_platform`` namespace, which is not an organisation row.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = [
    "KEK_STATES",
    "SIGNING_ALGORITHMS",
    "SIGNING_PURPOSES",
    "KeyEncryptionKey",
    "SigningKey",
]

KEK_STATES = ("active", "retired", "destroyed")
SIGNING_ALGORITHMS = ("ec-p256", "rsa-3072")
SIGNING_PURPOSES = ("signer", "seal", "ca-root", "ca-issuing", "tsa", "ocsp")


def _new_id() -> str:
    return str(uuid.uuid4())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class KeyEncryptionKey(Base):
    """An organisation's key-encryption key, sealed by the root key (``root_key_version``).

    ``active``: wraps new keys. ``retired``: only unwraps existing ones. ``destroyed``: the wrapped
    bytes are kept for the record but the service refuses to use it (crypto-shredding).
    """

    __tablename__ = "key_encryption_keys"
    __table_args__ = (
        UniqueConstraint("org_id", "version", name="uq_key_encryption_keys_org_id_version"),
        CheckConstraint(_in("state", KEK_STATES), name="state"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    root_key_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SigningKey(Base):
    """A signing key pair; the private half only as PKCS#8 DER sealed under ``kek_id``."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # Purposes are validated by the key service, not by a CHECK: adding one must not need a
        # migration. Algorithms are a CHECK because the loader depends on them.
        CheckConstraint(_in("algorithm", SIGNING_ALGORITHMS), name="algorithm"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(ForeignKey("key_encryption_keys.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
