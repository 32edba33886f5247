"""Telling people things: invitations to sign, completion notices.

``Mailer`` is the seam; the embedded default is a development *outbox* that writes each message as
an ``.eml`` file under the data directory (clearly marked as not delivered) so a newcomer can open
invitations without a mail server. SMTP delivery arrives with the identity issue.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    body: str
    # Tags let the outbox reader (demo, tests) find a message without parsing prose.
    tags: tuple[tuple[str, str], ...] = ()


class Mailer(Protocol):
    def send(self, message: Message) -> None: ...


class OutboxMailer:
    """Development mailer: one ``.eml`` per message in ``directory`` (mode 0700)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: Message) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        email = EmailMessage()
        email["To"] = message.to
        email["From"] = "pactvault <no-reply@localhost>"
        email["Subject"] = message.subject
        email["X-Pactvault-Outbox"] = "development - not delivered"
        for name, value in message.tags:
            email[f"X-Pactvault-{name}"] = value
        email.set_content(message.body)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(email.as_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.directory / f"{uuid.uuid4()}.eml")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class MemoryMailer:
    """Keeps messages in a list: for callers that deliver them some other way (and tests)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)
