"""Query parameters shared by the routes, strict where lax parsing would mislead.

* Offsets, sequence numbers and versions end up in SQL comparisons; a number beyond a signed
  64-bit integer would make the database driver fail (a 500) instead of finding nothing. Bounding
  them in the schema makes that a clean 422 and tells clients the range.
* Times are ISO 8601 with a time zone, as documented. Pydantic's lax mode would also read
  ``since=0.5`` as half a second after 1970 — a filter silently meaning something else than the
  client wrote — so anything but an ISO 8601 text is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator
from starlette.convertors import Convertor, register_url_convertor

__all__ = ["MAX_INDEX", "IsoDateTime", "Offset", "SequenceAfter", "UuidTextConvertor"]

#: Far beyond any real count, and within SQLite's and PostgreSQL's signed 64-bit integers.
MAX_INDEX = 2**62

Offset = Annotated[int, Query(ge=0, le=MAX_INDEX, description="How many items to skip")]
SequenceAfter = Annotated[int, Query(ge=0, le=MAX_INDEX, description="Entries after this one")]


def _iso_8601(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            "expected an ISO 8601 date and time, e.g. 2026-05-01T12:00:00+08:00"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError("the time needs a time zone, e.g. +08:00 or Z")
    return parsed


#: An ISO 8601 date and time with a zone; nothing else (see the module docstring).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]


class UuidTextConvertor(Convertor[str]):
    """``{name:uuid_text}``: a path segment that is a UUID in text form, kept as text.

    Ids are UUIDs; where a literal path sits beside an id route (``/sessions/revoke-all`` beside
    ``/sessions/{session_id}``), matching only UUIDs keeps the literal out of the id route, so a
    405's ``Allow`` names only what the path really serves.
    """

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


# Registered when the api package is first imported, before any route path is compiled.
register_url_convertor("uuid_text", UuidTextConvertor())
