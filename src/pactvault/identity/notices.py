"""Security notices: tell a person by email when their account's protection changed.

A second factor added or removed, recovery codes replaced or one used to sign in, the password
changed, a personal API token created: if it was not them, the sooner they know the better. The
notices are read from the audit journal — the one place every such change is already recorded,
in the same transaction as the change — so no identity code has to remember to send them, and a
change that rolled back is never announced.

The reader keeps a cursor (``monitor_cursors``, name ``security-notices``) and a lease
(``scheduled_jobs``), so one process sends and nothing is skipped if it dies. Delivery is at
least once: the cursor moves after each message, so a crash between sending and moving repeats
one notice rather than losing it. A new instance starts at the journal's head: history is not
announced. The message names what changed, when (UTC), from which address and client — never a
code, token or secret, which the journal does not hold either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.monitor.lease import JobLease
from pactvault.notify import Mailer, Message
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.detection_models import MonitorCursor
from pactvault.store.identity_models import User
from pactvault.store.models import AuditChainHead, AuditEvent

__all__ = ["NOTICES", "SecurityNotices"]

log = logging.getLogger("pactvault.notices")
CURSOR = "security-notices"

#: Journal actions that are announced to the account's owner: (简体中文, English).
NOTICES: dict[str, tuple[str, str]] = {
    "mfa.totp-enrolled": ("添加了身份验证器应用", "An authenticator app was added"),
    "mfa.totp-removed": ("移除了身份验证器应用", "The authenticator app was removed"),
    "mfa.passkey-registered": ("添加了通行密钥", "A passkey was added"),
    "mfa.passkey-removed": ("移除了通行密钥", "A passkey was removed"),
    "mfa.channel-enrolled": ("添加了验证码接收方式", "A sign-in code channel was added"),
    "mfa.channel-removed": ("移除了验证码接收方式", "A sign-in code channel was removed"),
    "mfa.recovery-codes-generated": ("生成了新的恢复码", "New recovery codes were created"),
    "mfa.recovery-code-used": ("使用恢复码登录", "A recovery code was used to sign in"),
    "user.password-change": ("修改了密码", "The password was changed"),
    "token.create": ("创建了个人 API 令牌", "A personal API token was created"),
}


@dataclass(frozen=True)
class _Notice:
    seq: int
    action: str
    user_id: str
    occurred_at: datetime
    ip: str | None
    user_agent: str | None


def _owner(event: AuditEvent) -> str | None:
    """Whose account the event changed (None: not an announced change, e.g. a refusal)."""
    if event.action == "token.create":
        owner = (event.details or {}).get("owner")
        return owner if isinstance(owner, str) else None
    return event.object_id if event.object_type == "user" else None


class SecurityNotices:
    def __init__(
        self,
        db: Database,
        mailer: Mailer,
        public_url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        batch: int = 200,
        lease_ttl: timedelta = timedelta(minutes=2),
    ) -> None:
        self._db = db
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._batch = batch
        self._lease = JobLease(db, CURSOR, ttl=lease_ttl)

    def run_due(self) -> int:
        """Send the notices the journal gained since the last run; how many were sent."""
        token = self._lease.try_acquire(self._clock(), interval=timedelta(0))
        if token is None:
            return 0  # another process is sending
        sent = 0
        outcome = "failed"
        try:
            sent = self._run()
            outcome = "ok"
        finally:
            self._lease.release(token, self._clock(), outcome=outcome, summary={"sent": sent})
        return sent

    def _run(self) -> int:
        sent = 0
        while True:
            with self._db.write() as session:
                cursor = self._cursor(session)
                rows = session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.seq > cursor, AuditEvent.action.in_(tuple(NOTICES)))
                    .order_by(AuditEvent.seq)
                    .limit(self._batch)
                ).scalars()
                notices = [
                    _Notice(e.seq, e.action, owner, e.occurred_at, e.ip, e.user_agent)
                    for e in rows
                    if (owner := _owner(e)) is not None
                ]
                head = session.execute(
                    select(AuditChainHead.last_seq).where(AuditChainHead.id == 1)
                ).scalar_one_or_none()
            if not notices:
                self._advance(head or 0)
                return sent
            for notice in notices:
                self._send(notice)
                self._advance(notice.seq)
                sent += 1

    def _cursor(self, session: Session) -> int:
        row = session.get(MonitorCursor, CURSOR)
        if row is None:
            head = session.get(AuditChainHead, 1)
            row = MonitorCursor(name=CURSOR, last_seq=head.last_seq if head else 0)
            session.add(row)
            session.flush()
        return row.last_seq

    def _advance(self, seq: int) -> None:
        with self._db.write() as session:
            row = session.get(MonitorCursor, CURSOR)
            if row is not None and seq > row.last_seq:
                row.last_seq = seq
                row.updated_at = self._clock()

    def _send(self, notice: _Notice) -> None:
        with self._db.read() as session:
            user = session.get(User, notice.user_id)
            address = user.email if user is not None and user.status == "active" else None
        if address is None:
            return  # the account is gone or disabled: nobody to tell
        zh, en = NOTICES[notice.action]
        when = notice.occurred_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        where = notice.ip or "-"
        client = (notice.user_agent or "-")[:200]
        page = f"{self._public_url}/account/security"
        body = "\n".join(
            [
                f"您的 pactvault 账户：{zh}。",
                f"时间：{when}　来源地址：{where}",
                f"客户端：{client}",
                f"如果这不是您本人的操作，请立即登录、修改密码并检查安全设置（{page}），"
                "并告知您组织的管理员。",
                "",
                f"Your pactvault account: {en}.",
                f"When: {when}   From: {where}",
                f"Client: {client}",
                f"If this was not you, sign in now, change your password and review: {page}",
                "and tell your organisation's administrator.",
            ]
        )
        self._mailer.send(
            Message(
                to=address,
                subject=f"[pactvault] 账户安全提醒 Security notice: {en}",
                body=body,
                tags=(("Security-Notice", notice.action), ("Journal-Seq", str(notice.seq))),
            )
        )
        log.info("security notice %s sent for journal entry %d", notice.action, notice.seq)
