"""From audit journal entries to what the rules count.

``observe`` is pure: one journal entry in, the observations of every ``count`` and ``link`` rule
out (a rule, the key it counts under, the item it counts distinctly). The stateful rules (new
network, unusual hours) need history and live in ``detection``; ``subject_of`` and ``is_access``
are shared with them.

Keys: ``user:<id>``, ``token:<id>``, ``signer:<id>`` for actors (the audit actor of a browser
session is its user, of an API call its token); ``ip:<address or /64>`` for addresses;
``acct:<digest prefix>`` for an email address someone tried to sign in as (the journal keeps a
digest prefix, never the address); ``<object type>:<id>`` for what a privilege change changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pactvault.monitor.networks import address_key
from pactvault.monitor.rules.catalog import (
    CONFIDENTIAL_LEVELS,
    DOWNLOAD_ACTIONS,
    EDIT_ACTIONS,
    OTP_FAILURE_ACTIONS,
    PRIVILEGE_ACTIONS,
)
from pactvault.store.models import AuditEvent

__all__ = ["JournalEvent", "Observed", "is_confidential_access", "observe", "subject_of"]

ACTOR_PREFIXES = {"user": "user", "api-token": "token", "signer": "signer"}
MAX_PART = 100


@dataclass(frozen=True)
class JournalEvent:
    """The fields of an audit entry the rules look at."""

    seq: int
    occurred_at: datetime
    action: str
    actor_type: str
    actor_id: str | None = None
    org_id: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: AuditEvent) -> JournalEvent:
        return cls(
            seq=row.seq,
            occurred_at=row.occurred_at,
            action=row.action,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            org_id=row.org_id,
            object_type=row.object_type,
            object_id=row.object_id,
            ip=row.ip,
            details=dict(row.details or {}),
        )


@dataclass(frozen=True)
class Observed:
    rule: str
    key: str
    item: str
    org_id: str | None
    seq: int
    occurred_at: datetime
    #: Where and who, for the automatic actions: the address and the acting user/token/signer.
    ip: str | None
    actor: str | None


def subject_of(event: JournalEvent) -> str | None:
    """``user:<id>`` / ``token:<id>`` / ``signer:<id>`` of the actor; None for anyone else."""
    prefix = ACTOR_PREFIXES.get(event.actor_type)
    if prefix is None or not event.actor_id:
        return None
    return f"{prefix}:{event.actor_id[:MAX_PART]}"


def is_confidential_access(event: JournalEvent, level_of: Callable[[str], str | None]) -> bool:
    """A user or token reading the bytes of a confidential or secret contract."""
    return (
        event.action in DOWNLOAD_ACTIONS
        and event.actor_type in ("user", "api-token")
        and event.object_type == "contract"
        and event.object_id is not None
        and level_of(event.object_id) in CONFIDENTIAL_LEVELS
    )


def observe(event: JournalEvent) -> list[Observed]:
    """The observations of the ``count`` and ``link`` rules for one journal entry."""
    actor = subject_of(event)
    ip = address_key(event.ip)
    out: list[Observed] = []

    def add(rule: str, key: str | None, item: str | None, org_id: str | None) -> None:
        if key and item:
            out.append(
                Observed(
                    rule,
                    key[:120],
                    item[:120],
                    org_id,
                    event.seq,
                    event.occurred_at,
                    event.ip,
                    actor,
                )
            )

    action = event.action
    by_actor = actor if event.actor_type in ("user", "api-token") else None
    if action in DOWNLOAD_ACTIONS and by_actor:
        add("mass-download", by_actor, event.object_id, event.org_id)
    elif action == "contract.void" and by_actor:
        add("repeated-voids", by_actor, event.object_id, event.org_id)
    elif action in EDIT_ACTIONS and by_actor:
        add("repeated-edits", by_actor, str(event.seq), event.org_id)
    elif action == "auth.login-failed":
        account = str(event.details.get("account") or "")[:MAX_PART]
        add("failed-logins-account", f"acct:{account}" if account else None, str(event.seq), None)
        add("failed-logins-ip", ip, str(event.seq), None)
        add("password-spraying", ip, account or None, None)
    elif action in OTP_FAILURE_ACTIONS:
        # Per person (the account or signer the code was for) and per address, in the org.
        person = actor if event.actor_type in ("user", "signer") else None
        add("otp-failures", person, str(event.seq), event.org_id)
        add("otp-failures", ip, str(event.seq), event.org_id)
    if action in PRIVILEGE_ACTIONS and _is_privilege_change(event):
        # Object ids are unique except rule names: the organisation keeps them apart.
        target = f"{event.object_type or 'object'}:{(event.object_id or '-')[:MAX_PART]}"
        if event.object_type == "monitor-rule":
            target = f"{target}@{event.org_id or 'platform'}"
        add("privilege-change", target, str(event.seq), event.org_id)
    if action == "alert.raised" and str(event.details.get("kind", "")).startswith("integrity."):
        add("integrity-failure", f"alert:{event.object_id}", event.object_id, event.org_id)
    return out


def _is_privilege_change(event: JournalEvent) -> bool:
    if event.action == "token.create":
        # Organisation tokens (no owner) hold organisation-wide power; personal tokens can
        # never exceed their owner's role, so they are not a privilege change.
        return "owner" not in event.details
    return True
