"""Recovery codes: ten single-use codes, shown once, stored as keyed digests.

Why HMAC-SHA256 under a server key and not argon2id: the codes are machine-generated with 50
bits of entropy each, not human-chosen, so a slow hash buys little; the key (held in the key
hierarchy, not the database) means a database dump allows no offline guessing at all; and a
keyed digest can be looked up directly, where argon2 would need up to ten slow verifications per
attempt (an easy denial-of-service). Online guessing is throttled like every second factor.

Codes use Crockford's base32 alphabet (no i, l, o, u), printed as ``xxxxx-xxxxx``; input is
case-insensitive, ignores spaces and dashes, and reads i/l as 1 and o as 0.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pactvault.identity.mfa.codes import keyed_digest
from pactvault.store.mfa_models import RecoveryCode

COUNT = 10
LENGTH = 10
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_READS_AS = str.maketrans({"i": "1", "l": "1", "o": "0"})


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise(code: str | None) -> str | None:
    """The canonical 10 characters, or ``None`` if ``code`` cannot be a recovery code."""
    compact = "".join((code or "").split()).replace("-", "").lower().translate(_READS_AS)
    if len(compact) != LENGTH or any(c not in ALPHABET for c in compact):
        return None
    return compact


class RecoveryCodes:
    def __init__(self, key: bytes, clock: Callable[[], datetime]) -> None:
        self._key = key
        self._clock = clock

    def _digest(self, user_id: str, normalised: str) -> str:
        return keyed_digest(self._key, "pactvault/recovery-code/v1", user_id, normalised)

    def replace(self, session: Session, user_id: str) -> list[str]:
        """Issue a fresh set; every earlier code (used or not) stops working."""
        self.clear(session, user_id)
        now = self._clock()
        codes = [new_code() for _ in range(COUNT)]
        session.add_all(
            RecoveryCode(
                user_id=user_id,
                code_hmac=self._digest(user_id, normalise(code) or ""),
                created_at=now,
            )
            for code in codes
        )
        session.flush()
        return codes

    def use(self, session: Session, user_id: str, code: str) -> bool:
        """Spend ``code`` if it is one of the user's unused codes."""
        canonical = normalise(code)
        # Digest even malformed input, so the time taken does not depend on its shape.
        digest = self._digest(user_id, canonical or "-")
        if canonical is None:
            return False
        # Looked up by the digest itself: an equality index match reveals nothing a timing
        # attacker could use, since the digest is keyed and unpredictable to them.
        spent = session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hmac == digest,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=self._clock())
            .execution_options(synchronize_session=False)
        )
        return spent.rowcount == 1  # type: ignore[attr-defined]

    def remaining(self, session: Session, user_id: str) -> int:
        return int(
            session.execute(
                select(func.count())
                .select_from(RecoveryCode)
                .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
            ).scalar_one()
        )

    def clear(self, session: Session, user_id: str) -> int:
        result = session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
