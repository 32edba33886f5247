"""Structured logs: one JSON object per line, carrying the request id, and no secrets.

Log shippers parse lines, not prose, and an incident is followed by its request id: the API
middleware puts the id in ``REQUEST_ID`` (a context variable, so it also reaches the threads sync
endpoints run on) and every line logged while serving that request carries it.

What must never appear: tokens, cookies, passwords, query strings, bodies. The access log is built
from an allow-list of fields (``api/middleware/hygiene.py``) and never sees headers or raw URLs;
other messages pass through :func:`redact`, a last line of defence that masks anything shaped
like one of our bearer secrets or an ``Authorization`` value should a message ever include one.

Nothing here configures logging on import: ``configure_json_logging`` is for the process that
owns the console (the ``pactvault run`` command); tests and embedding applications keep theirs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("pactvault_request_id", default=None)
ACCESS_LOGGER = "pactvault.access"

_SECRETS = (
    # Our bearer secrets all look like pv<kind>_<random>: pva_, pvs_, pvsess_, pvsetup_, pvinv_...
    re.compile(r"\bpv[a-z]{0,8}_[A-Za-z0-9_\-]{6,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+"),
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(REDACTED, text)
    return text


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", ...}`` on one line.

    A record may carry ``fields`` (a dict, via ``extra={"fields": ...}``): those are added as
    top-level keys verbatim, so only ever pass values built for the log (the access log does).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        # json.dumps escapes newlines: a message can never forge a second log line.
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


def configure_json_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send everything logged under ``pactvault.*`` to ``stream`` (stdout) as JSON lines."""
    logger = logging.getLogger("pactvault")
    for handler in list(logger.handlers):
        if getattr(handler, "_pactvault_json", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._pactvault_json = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # one line per event, not a second copy from the root logger
