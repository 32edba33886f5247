"""The public ledger endpoints, through HTTP, checked the way an outside client would."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pactvault.api.app import create_app
from pactvault.ledger import (
    EvidenceRecord,
    Ledger,
    leaf_hash,
    open_checkpoint,
    parse_verifier_key,
    verify_consistency,
    verify_inclusion,
)
from pactvault.ledger.checkpoint import Checkpoint
from pactvault.platform import Platform


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    yield TestClient(create_app(platform))  # no context manager: the maintenance loop stays off


def append(platform: Platform, start: int, count: int) -> None:
    records = [
        EvidenceRecord(
            "contract.sign",
            contract_id=str(uuid.UUID(int=start + i)),
            signature_sha256=hashlib.sha256(b"%d" % (start + i)).hexdigest(),
        )
        for i in range(count)
    ]
    with platform.db.write() as session:
        Ledger(session).append_batch(records)


def publish(client: TestClient, platform: Platform) -> Checkpoint:
    platform.ledger.publish_checkpoint()
    response = client.get("/ledger/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    vkey = client.get("/ledger/key").text.strip()
    origin = vkey.split("+")[0]
    verifier = parse_verifier_key(vkey)
    return open_checkpoint(response.text, origin=origin, verifiers=[verifier]).checkpoint


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


def problem(response, status: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()  # type: ignore[no-any-return]


def test_checkpoint_is_served_as_a_signed_note_only_once_published(
    client: TestClient, platform: Platform
) -> None:
    assert "no checkpoint" in problem(client.get("/ledger/checkpoint"), 404)["detail"]
    append(platform, 0, 3)
    checkpoint = publish(client, platform)
    assert checkpoint.size == 3 and checkpoint.origin == "127.0.0.1:8000/pactvault/log"
    assert client.get("/ledger/checkpoint").headers["cache-control"] == "no-cache"


def test_consistency_between_checkpoints_around_1000_appends(
    client: TestClient, platform: Platform
) -> None:
    append(platform, 0, 5)
    before = publish(client, platform)
    for batch in range(4):
        append(platform, 100 + 250 * batch, 250)
    after = publish(client, platform)
    assert after.size == before.size + 1000

    body = client.get(f"/ledger/proof/consistency?first={before.size}").json()
    assert (body["first"], body["second"]) == (before.size, after.size)
    verify_consistency(
        before.size, after.size, before.root_hash, after.root_hash, b64(body["hashes"])
    )

    history = client.get("/ledger/checkpoints").json()
    assert [c["tree_size"] for c in history["checkpoints"]] == [5, 1005]
    assert base64.b64decode(history["checkpoints"][1]["root_hash"]) == after.root_hash
    later = client.get("/ledger/checkpoints?from_size=6").json()["checkpoints"]
    assert [c["seq"] for c in later] == [history["checkpoints"][1]["seq"]]


def test_inclusion_proofs_by_index_and_by_leaf_hash(client: TestClient, platform: Platform) -> None:
    append(platform, 0, 21)
    checkpoint = publish(client, platform)
    leaves = client.get("/ledger/leaves?start=0&end=21").json()["leaves"]
    target = leaves[13]
    data = base64.b64decode(target["data"])
    assert base64.b64decode(target["leaf_hash"]) == leaf_hash(data)
    assert target["record"]["contract_id"] == str(uuid.UUID(int=13))

    by_index = client.get("/ledger/proof/inclusion?index=13").json()
    assert (by_index["leaf_index"], by_index["tree_size"]) == (13, 21)
    verify_inclusion(leaf_hash(data), 13, 21, b64(by_index["hashes"]), checkpoint.root_hash)

    digest = leaf_hash(data)
    for spelling in (
        digest.hex(),
        base64.urlsafe_b64encode(digest).decode(),
        base64.b64encode(digest).decode(),
    ):
        by_hash = client.get("/ledger/proof/inclusion", params={"leaf_hash": spelling}).json()
        assert by_hash == by_index
    # A client that forgets to escape "+" in base64 sends a space; it still finds its leaf.
    plus = next(leaf for leaf in leaves if "+" in leaf["leaf_hash"])
    raw = client.get(f"/ledger/proof/inclusion?leaf_hash={plus['leaf_hash']}").json()
    assert raw["leaf_index"] == plus["index"]

    smaller = client.get("/ledger/proof/inclusion?index=3&tree_size=8").json()
    assert smaller["tree_size"] == 8 and len(smaller["hashes"]) == 3


BAD_REQUESTS = [
    ("/ledger/proof/inclusion?index=21", 404, "not in the tree of 21 leaves"),
    ("/ledger/proof/inclusion?index=-1", 422, "not negative"),
    ("/ledger/proof/inclusion?index=1&tree_size=22", 422, "21 leaves, not 22"),
    ("/ledger/proof/inclusion?index=1&leaf_hash=AA", 422, "exactly one"),
    ("/ledger/proof/inclusion", 422, "exactly one"),
    ("/ledger/proof/inclusion?leaf_hash=zz", 422, "32 bytes"),
    ("/ledger/proof/inclusion?leaf_hash=" + "ab" * 32, 404, "no leaf with this hash"),
    ("/ledger/proof/inclusion?index=x", 422, "not valid"),
    ("/ledger/proof/consistency?first=0", 422, "0 < first"),
    ("/ledger/proof/consistency?first=5&second=4", 422, "0 < first"),
    ("/ledger/proof/consistency?first=5&second=99", 422, "21 leaves, not 99"),
    ("/ledger/leaves?start=0&end=1001", 422, "at most 1000"),
    ("/ledger/leaves?start=21", 404, "has 21 leaves"),
    ("/ledger/checkpoints?limit=0", 422, "limit"),
]


def test_bad_requests_get_problem_responses(client: TestClient, platform: Platform) -> None:
    append(platform, 0, 21)
    publish(client, platform)
    for path, status, detail in BAD_REQUESTS:
        assert detail in problem(client.get(path), status)["detail"], path


def test_ledger_endpoints_need_no_credentials_and_cannot_write(
    client: TestClient, platform: Platform
) -> None:
    append(platform, 0, 2)
    publish(client, platform)
    assert client.get("/ledger/key").text.startswith("127.0.0.1:8000/pactvault/log+")
    for path in ("/ledger/checkpoint", "/ledger/leaves", "/ledger/proof/inclusion"):
        assert client.post(path).status_code == 405
