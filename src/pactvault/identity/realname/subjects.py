"""Who is verified (``Subject``) and what a successful verification yields (``VerifiedIdentity``).

Kept apart from the service so that certificate code can use these types without pulling in the
database layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pactvault.errors import InvalidInputError

__all__ = ["SUBJECT_TYPES", "Subject", "VerifiedIdentity"]

SUBJECT_TYPES: tuple[str, ...] = ("user", "signer")


@dataclass(frozen=True)
class Subject:
    """An account (``user``) or an external signer (``signer``: signer id plus email address).

    A signer's verification is bound to the email address it was made under: if the contract's
    signer is later changed to another address, the old verification no longer applies.
    """

    type: str
    id: str
    email: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.type not in SUBJECT_TYPES:
            raise InvalidInputError(f"subject type must be one of: {', '.join(SUBJECT_TYPES)}")
        if not isinstance(self.id, str) or not 0 < len(self.id) <= 36:
            raise InvalidInputError("subject id must be 1 to 36 characters")
        if self.type == "signer" and not self.email:
            raise InvalidInputError("a signer subject needs the signer's email address")

    @classmethod
    def user(cls, user_id: str) -> Subject:
        return cls("user", user_id)

    @classmethod
    def signer(cls, signer_id: str, email: str) -> Subject:
        return cls("signer", signer_id, email)


@dataclass(frozen=True)
class VerifiedIdentity:
    """The current real-name verification of a subject: what certificate issuance requires.

    ``name`` is the verified legal name (it goes into the certificate's commonName); the ID
    number is only ever carried masked.
    """

    verification_id: str
    org_id: str
    subject: Subject
    name: str
    masked_id_number: str
    assurance_level: str
    provider: str
    method: str
    verified_at: datetime
    expires_at: datetime
