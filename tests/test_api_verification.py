"""Real-name verification over HTTP: members, reviewers, external signers, bad uploads, tenancy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from flows import invitation_tokens
from identity_kit import FAST
from pactvault.api.app import create_app, run_maintenance
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.realname.subjects import Subject
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.base import utcnow
from pactvault.store.realname_models import IdentityVerification, VerificationEvidence
from workflow_kit import (
    ID_NUMBER,
    NAME,
    PHONE,
    SYSTEM,
    Person,
    denials,
    events,
    image,
    journal_text,
    member,
    organisation,
)

ME = "/api/v1/me/verification"
ORG = "/api/v1/org/verifications"
SIGNER = "/api/v1/signer/verification"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
UPLOAD_LIMIT = 256 * 1024
CLAIM = {"name": NAME, "id_number": ID_NUMBER, "phone": PHONE}


@dataclass
class Org:
    owner: Person
    rita: Person  # administrator cleared for ID numbers: the reviewer
    adam: Person  # administrator at the default clearance (internal)
    alice: Person  # member
    bob: Person  # member


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    instance, _ = Platform.initialise(
        Settings(home=tmp_path / "data", database_url=database_url, max_upload_bytes=UPLOAD_LIMIT),
        mailer=MemoryMailer(),
        password_hasher=PasswordHasher(FAST),
    )
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, maintenance_interval=3600)) as c:
        yield c


@pytest.fixture
def org(client: TestClient, platform: Platform) -> Org:
    owner = organisation(client, platform, "Acme", "owner@acme.test")
    return Org(
        owner=owner,
        rita=member(owner, "rita@acme.test", "admin", clearance="confidential"),
        adam=member(owner, "adam@acme.test", "admin"),
        alice=member(owner, "alice@acme.test", "member"),
        bob=member(owner, "bob@acme.test", "member"),
    )


def documents(front: bytes | None = None, back: bytes | None = None) -> dict[str, object]:
    files = {"front": ("front.png", front or image("PNG"), "image/png")}
    if back is not None:
        files["back"] = ("back.jpg", back, "image/jpeg")
    return {"files": files}


def started(person: Person) -> str:
    response = person.post(ME, json=CLAIM)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submitted(person: Person) -> str:
    verification_id = started(person)
    response = person.post(f"{ME}/{verification_id}/documents", **documents())
    assert response.status_code == 200, response.text
    return verification_id


def evidence_rows(platform: Platform, verification_id: str) -> list[VerificationEvidence]:
    with platform.db.read() as s:
        return list(
            s.execute(
                select(VerificationEvidence).where(
                    VerificationEvidence.verification_id == verification_id
                )
            ).scalars()
        )


def blob_files(platform: Platform) -> set[Path]:
    return {p for p in platform.settings.blob_dir.rglob("*") if p.is_file()}


# -- a member, a reviewer ----------------------------------------------------------------------


def test_a_member_uploads_their_id_and_an_administrator_verifies_it(
    org: Org, platform: Platform
) -> None:
    providers = org.alice.get(ME).json()["providers"]
    assert providers == [{"name": "admin-review", "checks": ["document"]}]
    start = org.alice.post(ME, json=CLAIM)
    assert start.status_code == 201, start.text
    check = start.json()
    assert (check["provider"], check["method"], check["status"]) == (
        "admin-review",
        "document",
        "pending",
    )
    assert check["awaiting_documents"] is True
    verification_id = check["id"]

    status = org.alice.get(ME)
    assert status.status_code == 200
    assert (status.json()["verified"], status.json()["assurance_level"]) == (False, None)
    [item] = status.json()["items"]
    assert (item["name"], item["id_number"]) == ("张*明", "1****************9")
    assert item["documents"] == [] and item["phone"] is None  # a document check keeps no phone
    assert ID_NUMBER not in status.text and NAME not in status.text

    review = f"{ORG}/{verification_id}/review"
    early = org.rita.post(review, json={"decision": "approve"})
    assert early.status_code == 409 and "not been uploaded" in early.json()["detail"]

    front, back = image("PNG"), image("JPEG")
    uploaded = org.alice.post(f"{ME}/{verification_id}/documents", **documents(front, back))
    assert uploaded.status_code == 200, uploaded.text
    assert (uploaded.json()["status"], uploaded.json()["awaiting_documents"]) == ("pending", False)
    again = org.alice.post(f"{ME}/{verification_id}/documents", **documents())
    assert again.status_code == 409
    assert org.alice.get(ME).json()["items"][0]["documents"] == ["front", "back"]

    queue = org.rita.get(ORG, params={"status": "pending"}).json()
    assert [v["id"] for v in queue] == [verification_id]
    assert org.rita.get(ORG, params={"status": "verified"}).json() == []
    assert org.rita.get(ORG, params={"status": "weird"}).status_code == 422

    packet = org.rita.get(f"{ORG}/{verification_id}")
    assert packet.status_code == 200, packet.text
    body = packet.json()
    assert (body["name"]["value"], body["id_number"]["value"]) == (NAME, ID_NUMBER)
    assert body["id_number"]["masked"] is False
    kinds = {e["kind"]: e for e in body["evidence"]}
    assert set(kinds) == {"id-document-front", "id-document-back", "review-receipt"}

    download = org.rita.get(f"{ORG}/{verification_id}/documents/{kinds['id-document-front']['id']}")
    assert download.status_code == 200
    assert download.content == front
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment; filename=")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["cache-control"] == "no-store"

    decided = org.rita.post(review, json={"decision": "approve", "reason": "photo matches"})
    assert decided.status_code == 200, decided.text
    assert (decided.json()["status"], decided.json()["assurance_level"]) == (
        "verified",
        "verified-document",
    )
    twice = org.rita.post(review, json={"decision": "reject", "reason": "changed my mind"})
    assert twice.status_code == 409

    mine = org.alice.get(ME).json()
    assert (mine["verified"], mine["assurance_level"]) == (True, "verified-document")
    identity = platform.verification.current_identity(
        org.alice.principal.org_id, Subject.user(org.alice.user_id), actor=SYSTEM
    )
    assert identity is not None and identity.assurance_level == "verified-document"
    assert [e.object_id for e in events(platform, "realname.documents")] == [verification_id]
    assert [e.object_id for e in events(platform, "realname.verified")] == [verification_id]
    assert events(platform, "realname.evidence-read")
    journal = journal_text(platform)
    assert ID_NUMBER not in journal and NAME not in journal and PHONE not in journal


def test_a_rejection_says_why_and_the_member_may_start_again(org: Org) -> None:
    verification_id = submitted(org.alice)
    review = f"{ORG}/{verification_id}/review"
    assert org.rita.post(review, json={"decision": "reject"}).status_code == 422
    rejected = org.rita.post(review, json={"decision": "reject", "reason": "photo is blurry"})
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["reason"]) == (
        "rejected",
        "photo is blurry",
    )
    assert org.alice.get(ME).json()["verified"] is False
    assert org.alice.post(ME, json=CLAIM).status_code == 201


def test_an_uncleared_reviewer_sees_masked_fields_and_cannot_decide(
    org: Org, platform: Platform
) -> None:
    verification_id = submitted(org.alice)
    packet = org.adam.get(f"{ORG}/{verification_id}").json()
    assert (packet["id_number"]["value"], packet["id_number"]["masked"]) == (
        "1****************9",
        True,
    )
    assert packet["name"]["masked"] is False  # names are internal, within adam's clearance
    front = next(e for e in packet["evidence"] if e["kind"] == "id-document-front")
    before = denials(platform)
    assert org.adam.get(f"{ORG}/{verification_id}/documents/{front['id']}").status_code == 403
    refused = org.adam.post(f"{ORG}/{verification_id}/review", json={"decision": "approve"})
    assert refused.status_code == 403 and "clearance" in refused.json()["detail"]
    assert denials(platform) == before + 2
    assert org.rita.get(f"{ORG}/{verification_id}").json()["verification"]["status"] == "pending"

    # Reviewing is its own permission: a custom role can grant it without member.manage.
    role = {"key": "kyc", "name": "KYC desk", "permissions": ["identity.review"]}
    assert org.owner.post("/api/v1/org/roles", json=role).status_code == 201
    kyc = member(org.owner, "kyc@acme.test", "kyc", clearance="confidential")
    assert kyc.get("/api/v1/org/members").status_code == 403
    ok = kyc.post(f"{ORG}/{verification_id}/review", json={"decision": "approve"})
    assert ok.status_code == 200 and ok.json()["status"] == "verified"


def test_members_cannot_review_and_nobody_reviews_their_own_check(org: Org) -> None:
    theirs = submitted(org.alice)
    for path in (ORG, f"{ORG}/{theirs}"):
        assert org.bob.get(path).status_code == 403
    assert org.bob.post(f"{ORG}/{theirs}/review", json={"decision": "approve"}).status_code == 403
    own = submitted(org.rita)
    refused = org.rita.post(f"{ORG}/{own}/review", json={"decision": "approve"})
    assert refused.status_code == 403 and "your own" in refused.json()["detail"]
    assert org.owner.post(f"{ORG}/{own}/review", json={"decision": "approve"}).status_code == 200


def test_starting_again_replaces_a_check_that_still_waits_for_documents(
    org: Org, platform: Platform
) -> None:
    first = started(org.alice)
    second = started(org.alice)  # e.g. a typo in the first form
    items = {i["verification"]["id"]: i["verification"] for i in org.alice.get(ME).json()["items"]}
    assert items[first]["status"] == "expired" and "replaced" in items[first]["reason"]
    assert items[second]["awaiting_documents"] is True
    assert org.alice.post(f"{ME}/{first}/documents", **documents()).status_code == 409
    assert [e.object_id for e in events(platform, "realname.replaced")] == [first]
    assert org.alice.post(f"{ME}/{second}/documents", **documents()).status_code == 200
    blocked = org.alice.post(ME, json=CLAIM)  # now waiting for a reviewer: one at a time
    assert blocked.status_code == 409


def test_bad_claims_and_uploads_are_refused_and_nothing_is_stored(
    org: Org, platform: Platform
) -> None:
    bad_id = org.alice.post(ME, json=CLAIM | {"id_number": ID_NUMBER[:-1] + "0"})
    assert bad_id.status_code == 422
    assert org.alice.post(ME, json=CLAIM | {"provider": "nobody"}).status_code == 422
    assert org.alice.post(ME, json=CLAIM | {"check": "id_number"}).status_code == 422
    assert org.alice.post(ME, json=CLAIM | {"extra": 1}).status_code == 422
    assert org.alice.get(ME).json()["items"] == []

    verification_id = started(org.alice)
    path = f"{ME}/{verification_id}/documents"
    blobs_before = blob_files(platform)
    png = image("PNG")
    oversized = png + b"\x00" * (UPLOAD_LIMIT + 1)
    cases = [
        ({"front": ("id.pdf", b"%PDF-1.7\n%...", "application/pdf")}, 415),
        ({"front": ("id.gif", png, "image/gif")}, 415),
        ({"front": ("id.png", image("JPEG"), "image/png")}, 415),  # declared PNG, is JPEG
        ({"front": ("id.png", b"\x89PNG\r\n\x1a\nnot an image", "image/png")}, 422),
        ({"front": ("id.png", oversized, "image/png")}, 413),
        ({"back": ("back.jpg", image("JPEG"), "image/jpeg")}, 422),  # no front
        ({"front": ("id.png", png, "image/png"), "back": ("b", b"GIF89a", "image/jpeg")}, 422),
    ]
    for files, status in cases:
        response = org.alice.post(path, files=files)
        assert response.status_code == status, (files.keys(), response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert evidence_rows(platform, verification_id) == []
    assert blob_files(platform) == blobs_before
    assert org.alice.get(ME).json()["items"][0]["verification"]["awaiting_documents"] is True
    assert not events(platform, "realname.documents")


# -- other people and other tenants ------------------------------------------------------------


def test_other_members_and_tenants_see_nothing_and_are_audited(
    org: Org, client: TestClient, platform: Platform
) -> None:
    waiting = started(org.alice)
    before = denials(platform)
    crossed = org.bob.post(f"{ME}/{waiting}/documents", **documents())
    missing = org.bob.post(f"{ME}/{UNKNOWN}/documents", **documents())
    assert crossed.status_code == missing.status_code == 404
    assert crossed.json()["detail"] == missing.json()["detail"]
    assert denials(platform) == before + 2
    assert evidence_rows(platform, waiting) == []

    verification_id = submitted(org.bob)
    front = evidence_rows(platform, verification_id)[0].id
    intruder = organisation(client, platform, "Other Co", "boss@other.test")
    pairs = [
        ("GET", f"{ORG}/{verification_id}", f"{ORG}/{UNKNOWN}", {}),
        (
            "GET",
            f"{ORG}/{verification_id}/documents/{front}",
            f"{ORG}/{UNKNOWN}/documents/{front}",
            {},
        ),
        (
            "POST",
            f"{ORG}/{verification_id}/review",
            f"{ORG}/{UNKNOWN}/review",
            {"json": {"decision": "approve"}},
        ),
        ("POST", f"{ME}/{waiting}/documents", f"{ME}/{UNKNOWN}/documents", documents()),
    ]
    for method, foreign, unknown_path, kwargs in pairs:
        before = denials(platform)
        answer = intruder.call(method, foreign, **kwargs)
        unknown = intruder.call(method, unknown_path, **kwargs)
        assert answer.status_code == unknown.status_code == 404, (foreign, answer.text)
        assert answer.json()["detail"] == unknown.json()["detail"]
        assert denials(platform) == before + 2, f"{method} {foreign} was not audited"
    assert intruder.get(ORG).json() == []
    assert org.rita.get(f"{ORG}/{verification_id}").json()["verification"]["status"] == "pending"


# -- external signers --------------------------------------------------------------------------


def test_an_external_signer_verifies_through_their_signing_link(
    org: Org, client: TestClient, platform: Platform
) -> None:
    contract = platform.contracts.create(
        SYSTEM,
        org.owner.principal.org_id,
        title="Lease",
        pdf=sample_pdf(),
        signers=[
            SignerSpec(name="Zhang", email="zhang@ext.test"),
            SignerSpec(name="Li", email="li@ext.test"),
        ],
    )
    sent = platform.contracts.send(SYSTEM, org.owner.principal.org_id, contract.id)
    tokens = invitation_tokens(platform.mailer, contract.id)  # type: ignore[arg-type]
    zhang_id, li_id = (s.id for s in sorted(sent.signers, key=lambda s: s.position))
    zhang = {"Authorization": f"Bearer {tokens[zhang_id]}"}
    li = {"Authorization": f"Bearer {tokens[li_id]}"}

    assert client.post(SIGNER, json=CLAIM).status_code == 401
    forged = client.post(SIGNER, json=CLAIM, headers={"Authorization": "Bearer pvs_forged"})
    assert forged.status_code == 404
    start = client.post(SIGNER, json=CLAIM, headers=zhang)
    assert start.status_code == 201, start.text
    verification_id = start.json()["id"]
    assert (start.json()["subject_type"], start.json()["subject_id"]) == ("signer", zhang_id)

    not_theirs = client.post(f"{SIGNER}/{verification_id}/documents", headers=li, **documents())
    assert not_theirs.status_code == 404
    uploaded = client.post(f"{SIGNER}/{verification_id}/documents", headers=zhang, **documents())
    assert uploaded.status_code == 200, uploaded.text
    status = client.get(SIGNER, headers=zhang).json()
    assert status["items"][0]["id_number"] == "1****************9"
    assert client.get(SIGNER, headers=li).json()["items"] == []

    decided = org.rita.post(
        f"{ORG}/{verification_id}/review", json={"decision": "approve", "reason": "ok"}
    )
    assert decided.status_code == 200, decided.text
    assert client.get(SIGNER, headers=zhang).json()["assurance_level"] == "verified-document"
    identity = platform.verification.current_identity(
        org.owner.principal.org_id, Subject.signer(zhang_id, "zhang@ext.test"), actor=SYSTEM
    )
    assert identity is not None and identity.assurance_level == "verified-document"
    [start_event] = events(platform, "realname.start")
    assert (start_event.actor_type, start_event.actor_id) == ("signer", zhang_id)


# -- maintenance -------------------------------------------------------------------------------


def test_the_maintenance_loop_expires_overdue_checks(org: Org, platform: Platform) -> None:
    verification_id = submitted(org.alice)
    with platform.db.write() as s:
        row = s.get(IdentityVerification, verification_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
    run_maintenance(platform)
    with platform.db.read() as s:
        assert s.get(IdentityVerification, verification_id).status == "expired"  # type: ignore[union-attr]
        expired = s.execute(
            select(func.count())
            .select_from(IdentityVerification)
            .where(IdentityVerification.status == "expired")
        ).scalar_one()
    assert expired == 1
    assert [e.object_id for e in events(platform, "realname.expired")] == [verification_id]
