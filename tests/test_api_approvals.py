"""Approval workflows over HTTP: rules, the send gate, requests, decisions, tenancy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from identity_kit import FAST
from pactvault.api.app import create_app
from pactvault.config import Settings
from pactvault.identity.passwords import PasswordHasher
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import Contract
from workflow_kit import (
    Person,
    denials,
    events,
    member,
    organisation,
    upload_contract,
)

RULES = "/api/v1/org/approval-rules"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@dataclass
class Org:
    owner: Person
    admin: Person
    manager: Person  # contract_manager: creates and sends
    ann: Person  # approver
    ben: Person  # approver
    cat: Person  # approver
    mia: Person  # plain member


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    instance, _ = Platform.initialise(
        Settings(home=tmp_path / "data", database_url=database_url),
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
        admin=member(owner, "admin@acme.test", "admin"),
        manager=member(owner, "manager@acme.test", "contract_manager"),
        ann=member(owner, "ann@acme.test", "approver"),
        ben=member(owner, "ben@acme.test", "approver"),
        cat=member(owner, "cat@acme.test", "approver"),
        mia=member(owner, "mia@acme.test", "member"),
    )


def big_deals_rule(steps: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {
        "name": "Big deals",
        "condition": {"amounts": [{"currency": "CNY", "minor": 1_000_000}]},
        "steps": steps or [{"mode": "any", "roles": ["approver"]}],
    }


def make_rule(org: Org, body: dict[str, object] | None = None) -> dict[str, object]:
    response = org.owner.post(RULES, json=body or big_deals_rule())
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def big_contract(org: Org) -> str:
    return upload_contract(org.manager, amount_minor=2_000_000, currency="CNY")


def status_of(platform: Platform, contract_id: str) -> str:
    with platform.db.read() as s:
        contract = s.get(Contract, contract_id)
        assert contract is not None
        return contract.status


# -- the whole flow ----------------------------------------------------------------------------


def test_a_rule_holds_sending_until_an_approver_approves(org: Org, platform: Platform) -> None:
    rule = make_rule(org)
    assert (rule["version"], rule["enabled"]) == (1, True)
    small = upload_contract(org.manager, amount_minor=999_999, currency="CNY")
    assert org.manager.post(f"/api/v1/contracts/{small}/send").status_code == 200
    nothing = org.manager.post(f"/api/v1/contracts/{small}/approvals")
    assert nothing.status_code == 409  # sent already; no approval to ask for

    contract_id = big_contract(org)
    refused = org.manager.post(f"/api/v1/contracts/{contract_id}/send")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/approval-required")
    assert status_of(platform, contract_id) == "draft"

    asked = org.manager.post(
        f"/api/v1/contracts/{contract_id}/approvals", json={"comment": "Q3 supply, please"}
    )
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert (request["status"], request["current_step"]) == ("pending", 1)
    assert request["rules"] == [{"id": rule["id"], "version": 1, "name": "Big deals"}]
    approvers = {a["user_id"] for a in request["steps"][0]["approvers"]}
    assert approvers == {org.ann.user_id, org.ben.user_id, org.cat.user_id}
    again = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals")
    assert again.status_code == 409  # one pending request per contract

    assert [r["id"] for r in org.ann.get("/api/v1/approvals").json()] == [request["id"]]
    assert org.ann.get(f"/api/v1/approvals/{request['id']}").status_code == 200
    # The approver may now read the contract it is asked about (a party, .own reach).
    assert org.ann.get(f"/api/v1/contracts/{contract_id}").status_code == 200
    assert org.manager.get("/api/v1/approvals").status_code == 403  # no contract.approve
    approve = {"decision": "approve", "comment": "within budget"}
    not_yours = org.manager.post(f"/api/v1/approvals/{request['id']}/decision", json=approve)
    assert not_yours.status_code == 403

    done = org.ann.post(f"/api/v1/approvals/{request['id']}/decision", json=approve)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved"
    decisions = {a["user_id"]: a for a in done.json()["steps"][0]["approvers"]}
    assert decisions[org.ann.user_id]["decision"] == "approved"
    assert decisions[org.ann.user_id]["comment"] == "within budget"
    assert decisions[org.ben.user_id]["decision"] is None
    twice = org.ann.post(f"/api/v1/approvals/{request['id']}/decision", json=approve)
    assert twice.status_code == 409  # a decision is made once
    late = org.ben.post(f"/api/v1/approvals/{request['id']}/decision", json=approve)
    assert late.status_code == 409  # the request is closed
    assert org.ben.get("/api/v1/approvals").json() == []

    sent = org.manager.post(f"/api/v1/contracts/{contract_id}/send")
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "sent"
    [send_event] = [e for e in events(platform, "contract.send") if e.object_id == contract_id]
    assert send_event.details["approval_request_id"] == request["id"]
    listed = org.manager.get(f"/api/v1/contracts/{contract_id}/approvals").json()
    assert [(r["id"], r["status"]) for r in listed] == [(request["id"], "approved")]
    assert [e.object_id for e in events(platform, "approval.completed")] == [request["id"]]


def test_a_rejection_needs_a_comment_and_keeps_the_contract_from_being_sent(
    org: Org, platform: Platform
) -> None:
    make_rule(org)
    contract_id = big_contract(org)
    request = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals").json()
    path = f"/api/v1/approvals/{request['id']}/decision"

    silent = org.ann.post(path, json={"decision": "reject"})
    assert silent.status_code == 422 and "why" in silent.json()["detail"]
    assert org.ann.get(f"/api/v1/approvals/{request['id']}").json()["status"] == "pending"
    odd = org.ann.post(path, json={"decision": "maybe", "comment": "hmm"})
    assert odd.status_code == 422

    rejected = org.ann.post(path, json={"decision": "reject", "comment": "price is too high"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    [event] = events(platform, "approval.rejected")
    assert event.object_id == request["id"] and event.details["comment"] == "price is too high"

    refused = org.manager.post(f"/api/v1/contracts/{contract_id}/send")
    assert refused.status_code == 409 and "rejected" in refused.json()["detail"]
    assert status_of(platform, contract_id) == "draft"
    retry = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals")
    assert retry.status_code == 201 and retry.json()["status"] == "pending"


def test_multi_step_approval_in_order_with_all_of_a_step(org: Org, platform: Platform) -> None:
    make_rule(
        org,
        big_deals_rule(
            [
                {"mode": "any", "user_ids": [org.ann.user_id]},
                {"mode": "all", "user_ids": [org.ben.user_id, org.cat.user_id]},
            ]
        ),
    )
    contract_id = big_contract(org)
    request = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals").json()
    assert [s["status"] for s in request["steps"]] == ["active", "waiting"]
    path = f"/api/v1/approvals/{request['id']}/decision"
    approve = {"decision": "approve"}

    early = org.ben.post(path, json=approve)
    assert early.status_code == 403 and "step 2" in early.json()["detail"]
    assert org.ben.get("/api/v1/approvals").json() == []  # not their turn yet

    first = org.ann.post(path, json=approve).json()
    assert (first["status"], first["current_step"]) == ("pending", 2)
    assert [r["id"] for r in org.ben.get("/api/v1/approvals").json()] == [request["id"]]
    second = org.ben.post(path, json=approve).json()
    assert (second["status"], second["current_step"]) == ("pending", 2)  # all: cat too
    held = org.manager.post(f"/api/v1/contracts/{contract_id}/send")
    assert held.status_code == 409 and "step 2 of 2" in held.json()["detail"]

    last = org.cat.post(path, json=approve).json()
    assert last["status"] == "approved"
    assert [s["status"] for s in last["steps"]] == ["approved", "approved"]
    assert org.manager.post(f"/api/v1/contracts/{contract_id}/send").status_code == 200
    assert len(events(platform, "approval.approved")) == 3


def test_withdrawing_a_request(org: Org, platform: Platform) -> None:
    make_rule(org)
    contract_id = big_contract(org)
    request = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals").json()
    path = f"/api/v1/approvals/{request['id']}/withdraw"

    assert org.ann.post(path).status_code == 403  # approvers cannot send, so cannot withdraw
    assert org.ann.get(f"/api/v1/approvals/{request['id']}").json()["status"] == "pending"
    withdrawn = org.manager.post(path, json={"comment": "wrong annex"})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert org.manager.post(path).status_code == 409
    assert org.ann.get("/api/v1/approvals").json() == []

    # Someone who may send any contract can clear a colleague's pending request.
    again = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals").json()
    by_admin = org.admin.post(f"/api/v1/approvals/{again['id']}/withdraw")
    assert by_admin.status_code == 200 and by_admin.json()["status"] == "withdrawn"
    assert [e.details["comment"] for e in events(platform, "approval.withdrawn")] == [
        "wrong annex",
        None,
    ]


def test_who_may_request_and_read_requests(org: Org) -> None:
    make_rule(org)
    contract_id = big_contract(org)
    other_manager = member(org.owner, "dan@acme.test", "contract_manager")
    # Requesting approval needs the right to send this contract.
    assert other_manager.post(f"/api/v1/contracts/{contract_id}/approvals").status_code == 403
    assert org.mia.post(f"/api/v1/contracts/{contract_id}/approvals").status_code == 403
    request = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals").json()
    # Reading one: requester, approvers, readers of every contract; not an unrelated manager.
    for person in (org.manager, org.ann, org.admin, org.owner):
        assert person.get(f"/api/v1/approvals/{request['id']}").status_code == 200
    assert other_manager.get(f"/api/v1/approvals/{request['id']}").status_code == 403
    assert other_manager.get(f"/api/v1/contracts/{contract_id}/approvals").status_code == 403


# -- rules -------------------------------------------------------------------------------------


def test_rules_are_versioned_and_validated(org: Org, platform: Platform) -> None:
    rule = make_rule(org)
    path = f"{RULES}/{rule['id']}"
    assert org.admin.get(path).json()["name"] == "Big deals"
    assert [r["id"] for r in org.admin.get(RULES).json()] == [rule["id"]]

    disabled = org.admin.patch(path, json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    assert (disabled.json()["version"], disabled.json()["enabled"]) == (2, False)
    assert disabled.json()["steps"] == rule["steps"]  # untouched parts are kept
    stale = org.owner.patch(path, json={"enabled": True, "expected_version": 1})
    assert stale.status_code == 409
    assert org.owner.patch(path, json={}).status_code == 422
    renamed = org.owner.patch(path, json={"name": "Large deals", "expected_version": 2})
    assert renamed.json()["version"] == 3

    unknown_role = big_deals_rule([{"mode": "any", "roles": ["nobody"]}])
    unknown_role["name"] = "Broken"
    assert org.owner.post(RULES, json=unknown_role).status_code == 422
    cannot_approve = big_deals_rule([{"mode": "any", "roles": ["member"]}])
    cannot_approve["name"] = "Broken"
    assert org.owner.post(RULES, json=cannot_approve).status_code == 422
    no_clause = {"name": "Broken", "condition": {}, "steps": rule["steps"]}
    assert org.owner.post(RULES, json=no_clause).status_code == 422
    negative = big_deals_rule()
    negative["condition"] = {"amounts": [{"currency": "CNY", "minor": -1}]}
    assert org.owner.post(RULES, json=negative).status_code == 422
    assert org.owner.post(RULES, json=big_deals_rule() | {"name": "large DEALS"}).status_code == 409
    assert [r["name"] for r in org.owner.get(RULES).json()] == ["Large deals"]

    assert org.owner.delete(path).status_code == 204
    assert org.owner.get(path).status_code == 404
    assert org.owner.get(RULES).json() == []
    versions = org.owner.get(f"{path}/versions").json()
    assert [(v["version"], v["deleted"]) for v in versions] == [
        (1, False),
        (2, False),
        (3, False),
        (4, True),
    ]
    changes = [e.action for e in events(platform, "approval.rule.update")]
    assert len(changes) == 2 and len(events(platform, "approval.rule.delete")) == 1


def test_only_approval_managers_see_and_change_rules(org: Org) -> None:
    rule = make_rule(org)
    for person in (org.ann, org.manager, org.mia):  # approvers included: least privilege
        assert person.get(RULES).status_code == 403
        assert person.get(f"{RULES}/{rule['id']}").status_code == 403
        assert person.post(RULES, json=big_deals_rule() | {"name": "Mine"}).status_code == 403
        assert person.delete(f"{RULES}/{rule['id']}").status_code == 403
    assert org.admin.get(RULES).status_code == 200


# -- other tenants -----------------------------------------------------------------------------


def test_another_tenants_ids_answer_like_missing_ones_and_are_audited(
    org: Org, client: TestClient, platform: Platform
) -> None:
    rule = make_rule(org)
    contract_id = big_contract(org)
    request = org.manager.post(f"/api/v1/contracts/{contract_id}/approvals").json()
    intruder = organisation(client, platform, "Other Co", "boss@other.test")
    approve = {"decision": "approve", "comment": "sure"}
    pairs = [
        ("GET", f"{RULES}/{rule['id']}", f"{RULES}/{UNKNOWN}", {}),
        ("PATCH", f"{RULES}/{rule['id']}", f"{RULES}/{UNKNOWN}", {"json": {"enabled": False}}),
        ("DELETE", f"{RULES}/{rule['id']}", f"{RULES}/{UNKNOWN}", {}),
        ("GET", f"{RULES}/{rule['id']}/versions", f"{RULES}/{UNKNOWN}/versions", {}),
        ("GET", f"/api/v1/approvals/{request['id']}", f"/api/v1/approvals/{UNKNOWN}", {}),
        (
            "POST",
            f"/api/v1/approvals/{request['id']}/decision",
            f"/api/v1/approvals/{UNKNOWN}/decision",
            {"json": approve},
        ),
        (
            "POST",
            f"/api/v1/approvals/{request['id']}/withdraw",
            f"/api/v1/approvals/{UNKNOWN}/withdraw",
            {},
        ),
        (
            "POST",
            f"/api/v1/contracts/{contract_id}/approvals",
            f"/api/v1/contracts/{UNKNOWN}/approvals",
            {},
        ),
        (
            "GET",
            f"/api/v1/contracts/{contract_id}/approvals",
            f"/api/v1/contracts/{UNKNOWN}/approvals",
            {},
        ),
    ]
    for method, foreign, missing, kwargs in pairs:
        before = denials(platform)
        crossed = intruder.call(method, foreign, **kwargs)
        unknown = intruder.call(method, missing, **kwargs)
        assert crossed.status_code == unknown.status_code == 404, (method, foreign, crossed.text)
        assert crossed.json()["detail"] == unknown.json()["detail"]
        assert denials(platform) == before + 2, f"{method} {foreign} was not audited"
    # Nothing changed in Acme.
    assert org.owner.get(f"{RULES}/{rule['id']}").json()["version"] == 1
    assert org.ann.get(f"/api/v1/approvals/{request['id']}").json()["status"] == "pending"
    assert intruder.get("/api/v1/approvals").json() == []
    assert intruder.get(RULES).json() == []
