"""The built-in identity provider: an organisation administrator reviews uploaded ID documents.

No outside service is involved, so this works on an air-gapped installation. The subject uploads
photos of their ID document (PNG/JPEG, validated in ``providers.IdDocument``); the check stays
``pending`` until a reviewer (permission ``identity.review``, clearance to read ID numbers)
approves or rejects it with a comment. The verification service enforces four-eyes: nobody
reviews their own verification.

The provider itself only shapes what is recorded: the receipt of the documents when the check
starts, and the reviewer's decision as a :class:`ProviderResult` with its own evidence, so an
approval is kept exactly like any provider's answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from pactvault.errors import InvalidInputError
from pactvault.identity.realname.providers import Evidence, ProviderResult, VerificationRequest
from pactvault.store.base import utcnow

__all__ = ["ADMIN_REVIEW", "AdminReviewProvider"]

ADMIN_REVIEW = "admin-review"
MAX_COMMENT = 2000


class AdminReviewProvider:
    """Document check decided by a human reviewer of the same organisation."""

    name = ADMIN_REVIEW
    checks = frozenset({"document"})

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock

    def verify(self, request: VerificationRequest) -> ProviderResult:
        """Accept the documents for review: always ``pending``; the receipt is the evidence."""
        if request.check != "document":
            raise InvalidInputError("administrator review checks ID documents only")
        if not any(document.side == "front" for document in request.documents):
            raise InvalidInputError("upload at least the front of the ID document")
        receipt = {
            "provider": ADMIN_REVIEW,
            "reference": request.reference,
            "documents": [
                {
                    "side": document.side,
                    "media_type": document.media_type,
                    "size": len(document.content),
                    "sha256": hashlib.sha256(document.content).hexdigest(),
                }
                for document in request.documents
            ],
        }
        return ProviderResult(
            status="pending",
            checked_at=self._clock(),
            provider_reference=request.reference,
            evidence=(Evidence.json("review-receipt", receipt),),
        )

    @staticmethod
    def decision(
        *,
        reference: str,
        approve: bool,
        comment: str,
        reviewer_user_id: str,
        at: datetime,
    ) -> ProviderResult:
        """The reviewer's decision as a provider result; a rejection must say why."""
        text = " ".join((comment or "").split())
        if len(text) > MAX_COMMENT:
            raise InvalidInputError(f"the review comment may be at most {MAX_COMMENT} characters")
        if not approve and not text:
            raise InvalidInputError("say why the documents are rejected")
        record = {
            "provider": ADMIN_REVIEW,
            "reference": reference,
            "decision": "approved" if approve else "rejected",
            "reviewer_user_id": reviewer_user_id,
            "comment": text,
            "decided_at": at,
        }
        return ProviderResult(
            status="verified" if approve else "rejected",
            checked_at=at,
            assurance_level="verified-document" if approve else None,
            provider_reference=reference,
            reason=text or None,
            evidence=(Evidence.json("review-decision", record),),
        )
