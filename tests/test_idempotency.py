"""``Idempotency-Key``: a retried POST gets the first answer and has no second effect; a key is
scoped to its caller, bound to its request, never stores a secret, and expires."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pactvault.api.app import create_app
from pactvault.api.middleware.idempotency import KEEP_FOR, prune
from pactvault.demo import sample_pdf
from pactvault.platform import Platform
from pactvault.store.base import utcnow
from pactvault.store.idempotency_models import IdempotencyRecord
from pactvault.store.models import Contract


@pytest.fixture
def client(sqlite_platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_platform, maintenance_interval=3600)) as client:
        yield client


@pytest.fixture
def admin(client: TestClient, sqlite_platform: Platform) -> dict[str, str]:
    setup = sqlite_platform.tokens.create_setup_token()
    response = client.post(
        "/api/v1/setup", json={"setup_token": setup, "organisation_name": "Retry Ltd"}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _create(client: TestClient, headers: dict[str, str], title: str = "Loan 001"):  # type: ignore[no-untyped-def]
    meta = {"title": title, "signers": [{"name": "Bob", "email": "bob@example.test"}]}
    return client.post(
        "/api/v1/contracts",
        headers=headers,
        files={"file": ("c.pdf", sample_pdf(), "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )


def _contracts(platform: Platform) -> int:
    with platform.db.read() as s:
        return int(s.execute(select(func.count()).select_from(Contract)).scalar_one())


def test_a_retry_gets_the_first_answer_and_creates_nothing(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform
) -> None:
    keyed = {**admin, "Idempotency-Key": "loan-001-create"}
    first = _create(client, keyed)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = _create(client, keyed)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert _contracts(sqlite_platform) == 1
    # Another key is another operation.
    other = _create(client, {**admin, "Idempotency-Key": "loan-002-create"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert _contracts(sqlite_platform) == 2
    # Without the header nothing changes: two requests, two contracts.
    assert _create(client, admin).status_code == 201
    assert _create(client, admin).status_code == 201
    assert _contracts(sqlite_platform) == 4


def test_the_same_key_with_another_request_is_refused(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform
) -> None:
    keyed = {**admin, "Idempotency-Key": "k-1"}
    assert _create(client, keyed, "Loan A").status_code == 201
    reused = _create(client, keyed, "Loan B")
    assert reused.status_code == 422
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert reused.json()["type"].endswith("/idempotency-key-reused")
    assert _contracts(sqlite_platform) == 1


def test_keys_belong_to_their_caller_and_are_stored_hashed(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform
) -> None:
    assert _create(client, {**admin, "Idempotency-Key": "shared-name"}).status_code == 201
    # Another token using the same key runs its own request: keys belong to their caller.
    minted = client.post(
        "/api/v1/tokens", headers=admin, json={"name": "second", "scopes": ["admin"]}
    )
    assert minted.status_code == 201, minted.text
    second = {"Authorization": f"Bearer {minted.json()['token']}"}
    answer = _create(client, {**second, "Idempotency-Key": "shared-name"})
    assert answer.status_code == 201 and "idempotent-replayed" not in answer.headers
    assert _contracts(sqlite_platform) == 2
    with sqlite_platform.db.read() as s:
        rows = list(s.execute(select(IdempotencyRecord)).scalars())
    token = admin["Authorization"].split()[1]
    for row in rows:
        assert len(row.key_hash) == 64 and "shared-name" not in row.key_hash
        assert token not in row.key_hash


def test_an_answer_holding_a_secret_is_never_stored(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform
) -> None:
    keyed = {**admin, "Idempotency-Key": "mint-token-1"}
    body = {"name": "ci", "scopes": ["contracts:read"]}
    first = client.post("/api/v1/tokens", headers=keyed, json=body)
    assert first.status_code == 201, first.text
    secret = first.json()["token"]
    again = client.post("/api/v1/tokens", headers=keyed, json=body)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/already-done")
    assert secret not in again.text
    with sqlite_platform.db.read() as s:
        rows = list(s.execute(select(IdempotencyRecord)).scalars())
    assert all(secret.encode() not in (row.body or b"") for row in rows)
    assert any(not row.replayable for row in rows)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", 'a,b;c="d" e'])
def test_a_malformed_key_is_refused_before_anything_runs(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform, key: str
) -> None:
    response = _create(client, {**admin, "Idempotency-Key": key})
    assert response.status_code == 422
    assert _contracts(sqlite_platform) == 0


def test_a_failed_first_attempt_is_not_replayed_and_keys_expire(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform
) -> None:
    keyed = {**admin, "Idempotency-Key": "bad-then-good"}
    refused = client.post(
        "/api/v1/contracts/00000000-0000-4000-8000-000000000000/send", headers=keyed
    )
    assert refused.status_code == 404
    replayed = client.post(
        "/api/v1/contracts/00000000-0000-4000-8000-000000000000/send", headers=keyed
    )
    assert replayed.status_code == 404 and replayed.headers["idempotent-replayed"] == "true"
    assert prune(sqlite_platform.db, utcnow() + KEEP_FOR + timedelta(minutes=1)) >= 1
    with sqlite_platform.db.read() as s:
        assert s.execute(select(func.count()).select_from(IdempotencyRecord)).scalar_one() == 0


def test_a_first_request_that_died_in_flight_frees_its_key(
    client: TestClient, admin: dict[str, str], sqlite_platform: Platform
) -> None:
    keyed = {**admin, "Idempotency-Key": "crashed-once"}
    assert _create(client, keyed).status_code == 201
    with sqlite_platform.db.write() as s:  # as if the process died before storing the answer
        row = s.execute(select(IdempotencyRecord)).scalar_one()
        row.state, row.body, row.status_code = "in-flight", None, None
    busy = _create(client, keyed)
    assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
    with sqlite_platform.db.write() as s:
        row = s.execute(select(IdempotencyRecord)).scalar_one()
        row.created_at = utcnow() - timedelta(minutes=16)
    retried = _create(client, keyed)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
