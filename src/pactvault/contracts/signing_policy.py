"""An organisation's signing policy: the weakest identity check any of its signers may rest on.

Each signer of a contract carries a ``required_assurance`` chosen by the sender; the
organisation's minimum raises it for every contract, open ones included (a stricter policy takes
effect at the next signature, never retroactively on signatures already made). ``basic`` — the
platform default — is control of the invited address, proven again by the step-up code at
signing; anything above is real-name verification (实名认证, ``identity.realname``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl
from pactvault.audit.journal import Actor, record
from pactvault.identity.principal import Principal
from pactvault.identity.realname.providers import ASSURANCE_LEVELS, assurance_rank
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.policy_models import SigningPolicy

DEFAULT_MINIMUM = "basic"


def minimum_in(session: Session, org_id: str) -> str:
    """The organisation's minimum signer assurance, inside the caller's transaction."""
    row = session.get(SigningPolicy, org_id)
    return DEFAULT_MINIMUM if row is None else row.min_signer_assurance


def effective(required: str, minimum: str) -> str:
    """The stronger of a signer's own requirement and the organisation's minimum."""
    return max(required, minimum, key=assurance_rank)


class SigningPolicyService:
    def __init__(
        self, db: Database, access: AccessControl, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._access = access
        self._clock = clock

    def minimum(self, org_id: str) -> str:
        with self._db.read() as session:
            return minimum_in(session, org_id)

    def set_minimum(self, principal: Principal, minimum: str, actor: Actor | None = None) -> str:
        """Set the organisation's minimum (``org.manage``); audited with the previous value."""
        actor = actor or principal.actor()
        self._access.authorize(principal, "org.manage", actor=actor)
        assurance_rank(minimum)  # InvalidInputError for an unknown level
        with self._db.write() as session:
            row = session.get(SigningPolicy, principal.org_id, with_for_update=True)
            previous = DEFAULT_MINIMUM if row is None else row.min_signer_assurance
            if row is None:
                row = SigningPolicy(org_id=principal.org_id)
                session.add(row)
            row.min_signer_assurance = minimum
            row.updated_at = self._clock()
            row.updated_by = actor.id
            session.flush()
            record(
                session,
                actor,
                "org.signing-policy-changed",
                object_type="organisation",
                object_id=principal.org_id,
                org_id=principal.org_id,
                details={"min_signer_assurance": minimum, "previous": previous},
            )
        return minimum


__all__ = ["ASSURANCE_LEVELS", "SigningPolicyService", "effective", "minimum_in"]
