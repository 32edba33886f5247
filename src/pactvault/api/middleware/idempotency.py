"""``Idempotency-Key`` on API POSTs: a retried request gets the first answer, not a second effect.

An integrator whose connection dropped after sending a contract cannot know whether it was
created; with ``Idempotency-Key: <their id for the operation>`` it simply sends again:

* first time: the request runs and its answer (status, body, content type, ``Location``) is
  stored for 24 hours under SHA-256(credential ‖ key) — the caller's token or session cookie
  scopes the key and is never stored itself;
* the same key and the same request again: the stored answer, with ``Idempotent-Replayed: true``;
* the same key with a different request (method, path, query, content type or body): ``422``;
* the same key while the first request still runs: ``409`` (try again shortly) — unless the
  first died with its process (in flight for over 15 minutes), then the retry runs;
* a first answer of ``5xx`` is not kept: the retry runs again.

An answer that carries a secret shown once (an API token, recovery codes, a TOTP secret, a
session) is never stored: its retries get ``409 already-done`` instead of a copy of the secret.
Keys are 1–255 printable ASCII characters. Requests without the header are untouched; so is
anything but ``POST`` under ``/api/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy.exc
from sqlalchemy import delete
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pactvault.api.problems import PROBLEM_BASE, PROBLEM_JSON
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.idempotency_models import IdempotencyRecord

__all__ = ["HEADER", "KEEP_FOR", "IdempotencyKeys", "prune"]

HEADER = b"idempotency-key"
KEEP_FOR = timedelta(hours=24)
#: Far longer than any request may run (``request_timeout_seconds``), uploads included.
ABANDONED = timedelta(minutes=15)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: Response fields that hold something shown once: such answers are never stored.
_SECRET_FIELDS = re.compile(
    r"(token|secret|password|codes?|recovery_codes|otpauth_uri|.*_token|.*_secret)", re.I
)
_MAX_STORED = 1024 * 1024


def _holds_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and _SECRET_FIELDS.fullmatch(k)) or _holds_secret(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _credential(scope: Scope) -> str:
    """What scopes a key: the bearer token, else the session cookie, else the client address."""
    authorization = _header(scope, b"authorization")
    if authorization:
        return "auth:" + authorization
    cookie = _header(scope, b"cookie")
    if cookie:
        return "cookie:" + cookie
    client = scope.get("client") or ("-", 0)
    return f"anonymous:{client[0]}"


_BOUNDARY = re.compile(r";\s*boundary=\"?([^\";]+)\"?", re.I)


def _without_boundary(content_type: str, body: bytes) -> tuple[str, bytes]:
    """A multipart body as the same request whatever boundary the client drew for it."""
    found = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/") or found is None:
        return content_type, body
    boundary = found.group(1).encode("latin-1")
    return _BOUNDARY.sub("; boundary=-", content_type), body.replace(boundary, b"-")


def _problem(status: int, slug: str, detail: str, path: str) -> bytes:
    return json.dumps(
        {
            "type": PROBLEM_BASE + slug,
            "title": slug.replace("-", " ").capitalize(),
            "status": status,
            "detail": detail,
            "instance": path,
        }
    ).encode()


class IdempotencyKeys:
    def __init__(self, app: ASGIApp, db: Database, clock: Any = utcnow) -> None:
        self.app = app
        self.db = db
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, HEADER) if scope["type"] == "http" else None
        if key is None or scope["method"] != "POST" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not _KEY.fullmatch(key):
            detail = "Idempotency-Key must be 1 to 255 printable ASCII characters"
            await self._answer(send, 422, _problem(422, "invalid-input", detail, path))
            return
        body = await self._read_body(receive)
        content_type, framed = _without_boundary(_header(scope, b"content-type") or "", body)
        fingerprint = hashlib.sha256(
            b"\0".join(
                [
                    scope["method"].encode(),
                    path.encode(),
                    scope.get("query_string", b""),
                    content_type.encode(),
                    hashlib.sha256(framed).digest(),
                ]
            )
        ).hexdigest()
        key_hash = hashlib.sha256(f"{_credential(scope)}\0{key}".encode()).hexdigest()
        existing = self._claim(key_hash, fingerprint)
        if existing is not None:
            await self._replay(send, existing, fingerprint, path)
            return
        await self._run(scope, body, send, key_hash)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)
            elif message["type"] == "http.disconnect":
                return b"".join(chunks)

    def _claim(self, key_hash: str, fingerprint: str) -> IdempotencyRecord | None:
        """None if this request is the first (now marked in flight); else the stored record."""
        now = self.clock()
        with self.db.write() as session:
            row = session.get(IdempotencyRecord, key_hash)
            expired = row is not None and row.created_at + KEEP_FOR <= now
            # A first request still "in flight" long after any request could have finished died
            # with its process (its transaction rolled back): the key may be used again.
            abandoned = (
                row is not None and row.state == "in-flight" and row.created_at + ABANDONED <= now
            )
            if row is not None and (expired or abandoned):
                session.delete(row)
                session.flush()
                row = None
            if row is not None:
                session.expunge(row)
                return row
        try:
            with self.db.write() as session:
                session.add(
                    IdempotencyRecord(
                        key_hash=key_hash,
                        fingerprint=fingerprint,
                        state="in-flight",
                        replayable=True,
                        created_at=now,
                    )
                )
        except sqlalchemy.exc.IntegrityError:
            # The same key arrived twice at once: the other one is running.
            with self.db.read() as session:
                row = session.get(IdempotencyRecord, key_hash)
                if row is not None:
                    session.expunge(row)
                    return row
        return None

    async def _replay(
        self, send: Send, row: IdempotencyRecord, fingerprint: str, path: str
    ) -> None:
        if row.fingerprint != fingerprint:
            detail = "this Idempotency-Key was used for a different request"
            await self._answer(send, 422, _problem(422, "idempotency-key-reused", detail, path))
        elif row.state != "done":
            detail = "a request with this Idempotency-Key is still running; retry shortly"
            await self._answer(
                send, 409, _problem(409, "idempotency-key-in-use", detail, path), retry=1
            )
        elif not row.replayable or row.body is None or row.status_code is None:
            detail = "already done; its answer held a secret that is shown only once"
            await self._answer(send, 409, _problem(409, "already-done", detail, path))
        else:
            headers = [(b"content-type", (row.content_type or "application/json").encode())]
            if row.location:
                headers.append((b"location", row.location.encode("latin-1")))
            headers.append((b"idempotent-replayed", b"true"))
            await send(
                {"type": "http.response.start", "status": row.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": row.body})

    async def _run(self, scope: Scope, body: bytes, send: Send, key_hash: str) -> None:
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            self._finish(key_hash, status, headers, b"".join(chunks))

    def _finish(
        self, key_hash: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        with self.db.write() as session:
            row = session.get(IdempotencyRecord, key_hash)
            if row is None:
                return
            if status >= 500:
                session.delete(row)  # not an answer worth repeating: the retry runs again
                return
            found = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
            content_type = found.get("content-type", "")
            # Only JSON answers can be checked for secrets; anything else is not kept (fail
            # closed: a retry learns it was done, not what it said).
            replayable = len(body) <= _MAX_STORED and "json" in content_type
            if replayable:
                try:
                    replayable = not _holds_secret(json.loads(body or b"null"))
                except ValueError:
                    replayable = False
            row.state = "done"
            row.status_code = status
            row.content_type = content_type[:200] or None
            row.location = found.get("location")
            row.replayable = replayable
            row.body = body if replayable else None

    async def _answer(self, send: Send, status: int, body: bytes, retry: int | None = None) -> None:
        headers = [(b"content-type", PROBLEM_JSON.encode())]
        if retry is not None:
            headers.append((b"retry-after", str(retry).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def prune(db: Database, now: datetime | None = None) -> int:
    """Forget answers older than ``KEEP_FOR`` (maintenance)."""
    cutoff = (now or utcnow()) - KEEP_FOR
    with db.write() as session:
        return (
            session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
            ).rowcount
            or 0
        )
