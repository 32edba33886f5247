"""``GET /api/v1/contracts``: the same reach, clearance and filters as the contract list page.

A list must never show the title of a contract its reader could not open: an administrator
cleared for ``internal`` does not see a ``confidential`` contract a colleague created, while the
owner (cleared for everything) does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pactvault.api.app import create_app
from pactvault.demo import sample_pdf
from pactvault.platform import Platform
from workflow_kit import Person, member, organisation


@pytest.fixture
def client(sqlite_platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_platform, maintenance_interval=3600)) as client:
        yield client


def _titles(person: Person, **query: str) -> list[str]:
    response = person.get("/api/v1/contracts", params=query)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"])
    return sorted(item["title"] for item in page["items"])


def _upload(person: Person, title: str, classification: str, signer: str) -> str:
    meta = {
        "title": title,
        "signers": [{"name": signer.split("@")[0].title(), "email": signer}],
        "classification": classification,
    }
    response = person.post(
        "/api/v1/contracts",
        files={"file": ("c.pdf", sample_pdf(), "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_the_list_hides_what_the_reader_is_not_cleared_for(
    client: TestClient, sqlite_platform: Platform
) -> None:
    owner = organisation(client, sqlite_platform, "Clearance Co", "owner@clearance.test")
    chief = member(owner, "chief@clearance.test", "admin", clearance="secret")
    _upload(chief, "Board merger", "confidential", "carol@example.test")
    _upload(chief, "Office lease", "internal", "dan@example.test")
    admin = member(owner, "admin@clearance.test", "admin", clearance="internal")

    assert _titles(chief) == ["Board merger", "Office lease"]
    assert _titles(admin) == ["Office lease"]
    assert _titles(admin, classification="confidential") == []
    # Filters over HTTP: search (title or party), party, classification, creation dates.
    assert _titles(chief, search="MERGER") == ["Board merger"]
    assert _titles(chief, search="dan@example") == ["Office lease"]
    assert _titles(chief, party="carol") == ["Board merger"]
    assert _titles(chief, classification="internal") == ["Office lease"]
    assert _titles(chief, created_from="2000-01-01T00:00:00+08:00") == [
        "Board merger",
        "Office lease",
    ]
    assert _titles(chief, created_before="2000-01-01T00:00:00Z") == []


@pytest.mark.parametrize(
    "query",
    [
        {"classification": "top"},
        {"status": "lost"},
        {"search": "x" * 201},
        {"created_from": "2025-01-01T00:00:00"},  # no time zone
        {"created_from": "yesterday"},
    ],
)
def test_bad_filters_get_a_problem_answer(
    client: TestClient, sqlite_platform: Platform, query: dict[str, str]
) -> None:
    owner = organisation(client, sqlite_platform, "Filters Co", "owner@filters.test")
    response = owner.get("/api/v1/contracts", params=query)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
