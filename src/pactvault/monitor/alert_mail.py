"""Alert emails: who is told, and what the message says.

An organisation's alert goes to every member whose role grants ``alert.read`` at the moment it is
raised (one delivery each, so one bouncing address does not hold up the others); a platform-wide
alert (the ledger, the journal, sign-in attacks that belong to no organisation) goes to the
operator's addresses (``PACTVAULT_ALERT_EMAILS``). Deliveries name their recipient by user id or
by the operator address's position, never by the address itself: the delivery log is shown to
administrators and the address is looked up again when the message is sent (a member who has left,
or lost the permission, in between is not written to).

The message is bilingual (简体中文 first, then English) and carries what the alert shows an
administrator — kind, severity, title, ids and hashes — plus a link to the alert's page. It never
carries contract content, personal data or secrets, because alert details never do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.access.roles import role_permissions
from pactvault.notify import Message
from pactvault.store.identity_models import Membership, User

__all__ = [
    "ALERT_READ",
    "EMAIL_CHANNEL",
    "alert_message",
    "alert_readers",
    "operator_endpoint",
    "recipient_address",
    "user_endpoint",
]

ALERT_READ = "alert.read"
EMAIL_CHANNEL = "email"
_USER = "user:"
_OPERATOR = "operator:"

_SEVERITY_ZH = {"info": "提示", "warning": "警告", "critical": "严重"}


def user_endpoint(user_id: str) -> str:
    return _USER + user_id


def operator_endpoint(index: int) -> str:
    return f"{_OPERATOR}{index}"


def alert_readers(session: Session, org_id: str) -> list[str]:
    """Ids of the organisation's active members whose role grants ``alert.read``, sorted."""
    rows = session.execute(
        select(Membership.user_id, Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id, User.status == "active")
    ).all()
    granted: dict[str, frozenset[str] | None] = {}
    readers = []
    for user_id, role in rows:
        if role not in granted:
            granted[role] = role_permissions(session, org_id, role)
        permissions = granted[role]
        if permissions is not None and ALERT_READ in permissions:
            readers.append(user_id)
    return sorted(readers)


def recipient_address(
    session: Session, endpoint: str, org_id: str | None, operator_emails: Sequence[str]
) -> str | None:
    """The address to write to now, or None if the recipient may no longer be told."""
    if endpoint.startswith(_OPERATOR):
        index = endpoint[len(_OPERATOR) :]
        if not index.isdigit() or int(index) >= len(operator_emails):
            return None
        return operator_emails[int(index)]
    if endpoint.startswith(_USER) and org_id is not None:
        user_id = endpoint[len(_USER) :]
        if user_id not in alert_readers(session, org_id):
            return None
        user = session.get(User, user_id)
        return user.email if user is not None else None
    return None


def alert_message(
    address: str, alert: dict[str, Any], public_url: str, delivery_id: str
) -> Message:
    """The bilingual email for one alert (``alert`` is the delivery's canonical payload)."""
    severity = str(alert.get("severity", ""))
    title = str(alert.get("title", ""))
    details = json.dumps(alert.get("details") or {}, ensure_ascii=False, indent=2, sort_keys=True)
    page = (
        f"{public_url.rstrip('/')}/organisation/alerts/{alert.get('id')}"
        if alert.get("org_id")
        else f"pactvault alerts show {alert.get('id')}"
    )
    body = "\n".join(
        [
            f"pactvault 安全告警（{_SEVERITY_ZH.get(severity, severity)}）：{title}",
            "",
            f"类型：{alert.get('kind')}",
            f"首次发现：{alert.get('created_at')}",
            f"查看与处理：{page}",
            "",
            f"pactvault security alert ({severity}): {title}",
            "",
            f"Kind: {alert.get('kind')}",
            f"First seen: {alert.get('created_at')}",
            f"Review and handle it: {page}",
            "",
            "详情 / Details:",
            details,
            "",
            "此邮件发给可查看告警的管理员。/ Sent to the administrators who may read alerts.",
        ]
    )
    return Message(
        to=address,
        subject=f"[pactvault] 安全告警 Security alert ({severity}): {title}"[:250],
        body=body,
        tags=(("Alert-Id", str(alert.get("id"))), ("Alert-Delivery", delivery_id)),
    )
