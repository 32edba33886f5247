"""Reminding signers: when each was last sent a signing link, and how often they may be again.

A reminder re-sends a signer's invitation with a *new* signing token (the old link stops working),
so a sender can chase someone who lost the email without ever seeing a token. It is limited per
signer (``REMIND_INTERVAL``): a reminder button must not become a way to flood someone's inbox.

When a signer was last sent a link is read from the audit journal, not from a column of its own:
``signer.invite`` (their first link, when their group's turn came) and ``contract.remind`` (every
reminder, naming the signers it reached) are already recorded there in the same transaction as
the token they sent, so the journal is exactly the history the limit needs, and it cannot drift
from what really happened. The caller holds the contract's row lock while reading it, so two
concurrent reminders cannot both pass the limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.errors import PactvaultError
from pactvault.store.models import AuditEvent

#: The least time between two links sent to the same signer.
REMIND_INTERVAL = timedelta(hours=1)
INVITE_ACTION = "signer.invite"
REMIND_ACTION = "contract.remind"


@dataclass(frozen=True)
class Reminded:
    """What a reminder did: who got a new link now, who was skipped as reminded too recently."""

    contract_id: str
    reminded: tuple[str, ...]
    not_yet: tuple[str, ...]


class ReminderTooSoonError(PactvaultError):
    """Every signer still to sign was sent a link less than ``REMIND_INTERVAL`` ago.

    ``retry_after`` (whole seconds) is when the first of them may be reminded; interfaces send
    it as ``Retry-After``.
    """

    slug = "reminder-too-soon"
    status = 429
    title = "Reminded too recently"

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            "the signers were sent their link less than an hour ago; "
            f"you can remind them again in {minutes} minute(s)"
        )
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def last_links(session: Session, org_id: str, contract_id: str) -> dict[str, datetime]:
    """Signer id → when that signer was last sent a signing link (invitation or reminder)."""
    rows = session.execute(
        select(AuditEvent.action, AuditEvent.details, AuditEvent.occurred_at).where(
            AuditEvent.object_type == "contract",
            AuditEvent.object_id == contract_id,
            AuditEvent.org_id == org_id,
            AuditEvent.action.in_((INVITE_ACTION, REMIND_ACTION)),
        )
    ).all()
    last: dict[str, datetime] = {}
    for action, details, occurred_at in rows:
        for signer_id in _signers_named(action, details or {}):
            if signer_id not in last or occurred_at > last[signer_id]:
                last[signer_id] = occurred_at
    return last


def _signers_named(action: str, details: dict[str, object]) -> Iterable[str]:
    if action == INVITE_ACTION:
        named = details.get("signer_id")
        return [named] if isinstance(named, str) else []
    reminded = details.get("reminded")
    return [s for s in reminded if isinstance(s, str)] if isinstance(reminded, list) else []


def wait_left(last: datetime | None, now: datetime) -> timedelta:
    """How long until a signer last sent a link at ``last`` may be reminded (zero: now)."""
    if last is None:
        return timedelta(0)
    return max(timedelta(0), last + REMIND_INTERVAL - now)
