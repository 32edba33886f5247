"""Idempotency keys: the first answer to a POST, replayed to its retries.

``key_hash`` is SHA-256 of the caller's credential and the ``Idempotency-Key`` they sent, so
neither a token nor a session cookie is stored, and two callers' keys never meet. ``fingerprint``
is SHA-256 of the request (method, path, query, content type, body): the same key with another
request is refused. An answer whose body holds a secret shown once is never stored
(``replayable`` False): its retries learn it was done, not what it said.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime

__all__ = ["IdempotencyRecord"]


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: in-flight while the first request runs; done once its answer is stored.
    state: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    replayable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
