"""The organisation's audit journal (``audit.read``): filters and pages, newest first.

The same entries as ``GET /api/v1/org/audit`` (the organisation's part of the hash-chained
journal). Auditors read it without reading contract content: entries name objects by id and
carry hashes, never documents (``contracts.service`` records hashes of titles, not titles).
Paging is by sequence number (``before``), so new entries arriving while someone reads never
shift a page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from pactvault.api.deps import Caller, PlatformDep
from pactvault.errors import InvalidInputError
from pactvault.store.models import AuditEvent
from pactvault.web.pages import PageRoute, translator
from pactvault.web.routes.contracts import member_names
from pactvault.web.routes.organisation import org_render
from pactvault.web.security import page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

AuditReader = Annotated[Caller, page_allow("audit.read")]
JOURNAL = "/organisation/journal"
PAGE_SIZE = 50
DETAILS_SHOWN = 400
ACTOR_TYPES = ("user", "signer", "api-token", "system", "anonymous", "operator-cli", "setup")


@dataclass(frozen=True)
class JournalFilters:
    action: str = ""
    actor_type: str = ""
    object_id: str = ""
    since: str = ""
    until: str = ""

    def url(self, **extra: object) -> str:
        values = {k: v for k, v in {**self.__dict__, **extra}.items() if v not in ("", None)}
        return JOURNAL + (f"?{urlencode(values)}" if values else "")

    @property
    def active(self) -> bool:
        return any(self.__dict__.values())


def _day(text: str, *, end: bool) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError("dates are written YYYY-MM-DD") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _details(details: dict[str, Any] | None) -> str:
    text = json.dumps(details or {}, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= DETAILS_SHOWN else text[: DETAILS_SHOWN - 1] + "…"


@router.get(JOURNAL)
def journal(
    request: Request,
    who: AuditReader,
    platform: PlatformDep,
    action: Annotated[str, Query(max_length=64)] = "",
    actor_type: Annotated[str, Query(max_length=32)] = "",
    object_id: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Entries of the caller's organisation; ``action`` is exact, or a prefix ending in ``*``."""
    filters = JournalFilters(action.strip(), actor_type, object_id.strip(), since, until)
    error = None
    rows: list[AuditEvent] = []
    names: dict[str, str] = {}
    try:
        if actor_type and actor_type not in ACTOR_TYPES:
            raise InvalidInputError("unknown actor type")
        query = select(AuditEvent).where(AuditEvent.org_id == who.org_id)
        if filters.action.endswith("*"):
            prefix = filters.action[:-1]
            query = query.where(AuditEvent.action.startswith(prefix, autoescape=True))
        elif filters.action:
            query = query.where(AuditEvent.action == filters.action)
        if actor_type:
            query = query.where(AuditEvent.actor_type == actor_type)
        if filters.object_id:
            query = query.where(AuditEvent.object_id == filters.object_id)
        start, end = _day(since, end=False), _day(until, end=True)
        if start is not None:
            query = query.where(AuditEvent.occurred_at >= start)
        if end is not None:
            query = query.where(AuditEvent.occurred_at < end)
        if before is not None:
            query = query.where(AuditEvent.seq < before)
        with platform.db.read() as session:
            rows = list(
                session.execute(query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE + 1))
                .scalars()
                .all()
            )
            users = {r.actor_id for r in rows if r.actor_type == "user" and r.actor_id}
            names = member_names(session, who.org_id, users)
    except InvalidInputError:
        error = translator(request)("manage.list.bad_filter")
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return org_render(
        request,
        "journal.html",
        {
            "entries": [(row, _details(row.details)) for row in rows],
            "names": names,
            "filters": filters,
            "actor_types": ACTOR_TYPES,
            "older": filters.url(before=rows[-1].seq) if more and rows else None,
            "newest": filters.url() if before is not None else None,
            "error": error,
        },
        status=422 if error else 200,
    )
