"""Text messages: the ``SmsSender`` interface, phone-number checks, and a DEVELOPMENT outbox.

There is no production SMS gateway in pactvault: deployments plug in their provider (Aliyun,
Tencent Cloud, Twilio, …) by implementing ``SmsSender.send``. ``FileOutboxSmsSender`` is for
development and tests ONLY: it writes each message to a file and delivers nothing, and every file
says so. Do not configure it where real people expect a text message.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pactvault.errors import InvalidInputError

_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_SEPARATORS = re.compile(r"[\s().\-]")
DEVELOPMENT_LABEL = "DEVELOPMENT OUTBOX - NOT DELIVERED"


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164, e.g. +8613800138000
    text: str


class SmsSender(Protocol):
    """What a gateway adapter implements; raise ``delivery.DeliveryError`` when it fails."""

    def send(self, message: SmsMessage) -> None: ...


def normalise_phone(number: str) -> str:
    """E.164 form (``+`` country code and digits) or ``InvalidInputError``.

    The country code is required: guessing it (e.g. assuming +86) would one day send a signing
    code to a stranger's phone.
    """
    compact = _SEPARATORS.sub("", number or "")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.match(compact):
        raise InvalidInputError(
            "enter the mobile number in international form with its country code, "
            "e.g. +86 138 0013 8000"
        )
    return compact


class FileOutboxSmsSender:
    """DEVELOPMENT ONLY — writes each SMS as a JSON file in ``directory``; delivers nothing."""

    development_only = True

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def send(self, message: SmsMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {
            "outbox": DEVELOPMENT_LABEL,
            "to": message.to,
            "text": message.text,
            "written_at": datetime.now(UTC).isoformat(),
        }
        data = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            # Names sort in writing order: nanosecond time, then a random tie-breaker.
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.sms.json"
            os.replace(tmp, self.directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def messages(self) -> list[SmsMessage]:
        """Everything in the outbox, oldest first (for the demo and tests)."""
        if not self.directory.exists():
            return []
        files = sorted(self.directory.glob("*.sms.json"))
        out = []
        for path in files:
            record = json.loads(path.read_text("utf-8"))
            out.append(SmsMessage(to=record["to"], text=record["text"]))
        return out
