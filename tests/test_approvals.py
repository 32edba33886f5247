"""Approval workflows: rules, requests, decisions, inbox and send gate, on both databases."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, update

from identity_kit import Kit, make_kit
from pactvault.contracts.approval_rules import (
    AmountThreshold,
    Condition,
    ContractFacts,
    RuleSpec,
    Step,
)
from pactvault.contracts.approvals import ApprovalRequiredError, ApprovalService
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from pactvault.identity.principal import Principal
from pactvault.store import approval_models
from pactvault.store.approval_models import ApprovalApprover, ApprovalRequest, ApprovalStep
from pactvault.store.identity_models import Membership
from pactvault.store.models import Base, Contract

CNY_1M = 100_000_000  # ¥1,000,000.00 in 分
ALWAYS = Condition(always=True)


@dataclass
class Org:
    """An organisation with the cast every test needs."""

    owner: Principal
    sender: Principal  # contract_manager: creates and sends, cannot approve
    ann: Principal  # approver
    ben: Principal  # approver
    mia: Principal  # member: no contract.approve


@pytest.fixture
def kit(database_url: str) -> Iterator[Kit]:
    instance = make_kit(database_url)
    yield instance
    instance.close()


@pytest.fixture
def approvals(kit: Kit) -> ApprovalService:
    return ApprovalService(kit.db, kit.access, clock=kit.clock)


@pytest.fixture
def org(kit: Kit) -> Org:
    owner = kit.organisation()
    return Org(
        owner=owner,
        sender=kit.member(owner, "sam@acme.test", "contract_manager"),
        ann=kit.member(owner, "ann@acme.test", "approver"),
        ben=kit.member(owner, "ben@acme.test", "approver"),
        mia=kit.member(owner, "mia@acme.test", "member"),
    )


def draft(
    kit: Kit,
    creator: Principal,
    *,
    classification: str = "internal",
    amount: int | None = None,
    currency: str | None = None,
    document: bytes = b"%PDF-1.7 version one",
) -> ContractFacts:
    """A draft contract row (the approval tables point at it) and its facts."""
    with kit.db.write() as s:
        row = Contract(
            org_id=creator.org_id, title="Supply agreement", status="draft", created_by="test"
        )
        s.add(row)
        s.flush()
        contract_id = row.id
    return ContractFacts(
        contract_id=contract_id,
        org_id=creator.org_id,
        title="Supply agreement",
        classification=classification,
        amount_minor=amount,
        currency=currency,
        created_by_user_id=creator.user_id,
        document_sha256=hashlib.sha256(document).hexdigest(),
    )


def rule(name: str = "Everything", *steps: Step, condition: Condition = ALWAYS) -> RuleSpec:
    return RuleSpec(name=name, condition=condition, steps=steps or (Step("any", {"approver"}),))


def send_gate(kit: Kit, approvals: ApprovalService, facts: ContractFacts) -> str | None:
    with kit.db.read() as s:
        return approvals.ensure_send_allowed(s, facts)


def count(kit: Kit, model: type) -> int:
    with kit.db.read() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def set_clearance(kit: Kit, user: Principal, level: str) -> Principal:
    with kit.db.write() as s:
        s.execute(
            update(Membership)
            .where(Membership.user_id == user.user_id, Membership.org_id == user.org_id)
            .values(clearance=level)
        )
    return replace(user, clearance=level)


# -- schema -------------------------------------------------------------------------------------


def test_the_migration_builds_exactly_the_approval_tables(kit: Kit) -> None:
    assert approval_models.ApprovalRule.__table__.metadata is Base.metadata
    mine = {name for name in Base.metadata.tables if name.startswith("approval_")}
    assert len(mine) == 5

    def only_mine(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in mine

    with kit.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": only_mine})
        drift = compare_metadata(context, Base.metadata)
    assert drift == []


# -- rules --------------------------------------------------------------------------------------


def test_rule_validation_refuses_bad_input_and_audits_it(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    manage = approvals.rules
    bad = [
        rule("x", Step("any", {"no-such-role"})),  # unknown role
        rule("x", Step("any", {"member"})),  # role without contract.approve
        rule("x", Step("any", set(), set())),  # nobody in the step
        rule("x", Step("some", {"approver"})),  # unknown mode
        rule("x", Step("any", set(), {org.mia.user_id or ""})),  # user cannot approve
        rule("x", Step("any", set(), {"00000000-0000-0000-0000-000000000000"})),  # not a member
        RuleSpec("x", ALWAYS, ()),  # no steps
        RuleSpec("x", Condition(), (Step("any", {"approver"}),)),  # no clause
        RuleSpec("", ALWAYS, (Step("any", {"approver"}),)),  # no name
        rule("x", condition=Condition(amounts=(AmountThreshold("CNY", -1),))),
        rule("x", condition=Condition(amounts=(AmountThreshold("yuan", 5),))),
        rule("x", condition=Condition(amounts=(AmountThreshold("CNY", True),))),  # type: ignore[arg-type]
        rule("x", condition=Condition(min_classification="top-secret")),
    ]
    for spec in bad:
        with pytest.raises(InvalidInputError):
            manage.create_rule(org.owner, spec)
    with pytest.raises(PermissionDeniedError):
        manage.create_rule(org.sender, rule())  # no approval.manage
    assert count(kit, approval_models.ApprovalRule) == 0
    denied = kit.events("access.denied")
    assert [e.details["status"] for e in denied] == [422] * len(bad) + [403]
    assert {e.details["action"] for e in denied} == {"approval.rule.create"}
    assert "no-such-role" in denied[0].details["reason"]


def test_rules_are_versioned_and_every_change_is_audited(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    manage = approvals.rules
    kit.roles.create_role(org.owner, "legal", "Legal", ["contract.approve", "contract.read.own"])
    v1 = manage.create_rule(org.owner, rule("Big deals"))
    assert (v1.version, v1.enabled) == (1, True)
    with pytest.raises(ConflictError):
        manage.create_rule(org.owner, rule("big deals"))  # names are unique, ignoring case
    v2 = manage.update_rule(
        org.owner, v1.id, rule("Big deals", Step("all", {"legal", "approver"})), expected_version=1
    )
    assert v2.version == 2 and v2.steps == (Step("all", frozenset({"legal", "approver"})),)
    with pytest.raises(ConflictError):  # a stale editor does not overwrite v2
        manage.update_rule(org.owner, v1.id, rule("Big deals"), expected_version=1)
    manage.delete_rule(org.owner, v1.id)
    assert manage.list_rules(org.owner) == []
    history = manage.rule_versions(org.owner, v1.id)
    assert [(v.version, v.deleted) for v in history] == [(1, False), (2, False), (3, True)]
    assert history[0].steps == (Step("any", frozenset({"approver"})),)
    with pytest.raises(NotFoundError):
        manage.update_rule(org.owner, v1.id, rule("Big deals"))
    actions = [
        (e.action, e.details["version"])
        for e in kit.events("approval.rule.create")
        + kit.events("approval.rule.update")
        + kit.events("approval.rule.delete")
    ]
    assert actions == [
        ("approval.rule.create", 1),
        ("approval.rule.update", 2),
        ("approval.rule.delete", 3),
    ]


def test_amount_and_classification_conditions(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    manage = approvals.rules
    money = manage.create_rule(
        org.owner,
        rule("Money", condition=Condition(amounts=(AmountThreshold("CNY", CNY_1M),))),
    )
    secret = manage.create_rule(
        org.owner, rule("Confidential", condition=Condition(min_classification="confidential"))
    )
    cases = [
        (dict(amount=CNY_1M - 1, currency="CNY"), set()),
        (dict(amount=CNY_1M, currency="CNY"), {money.id}),  # ≥, not >
        (dict(amount=CNY_1M * 10, currency="USD"), set()),  # another currency
        (dict(classification="confidential"), {secret.id}),
        (dict(classification="secret", amount=CNY_1M, currency="CNY"), {money.id, secret.id}),
        (dict(classification="public"), set()),
    ]
    with kit.db.read() as s:
        for facts_kwargs, expected in cases:
            facts = replace(draft(kit, org.sender), **_facts(facts_kwargs))
            assert {r.id for r in approvals.required_for(s, facts)} == expected, facts_kwargs
    manage.update_rule(
        org.owner,
        money.id,
        RuleSpec("Money", money.condition, money.steps, enabled=False),
    )
    with kit.db.read() as s:
        facts = replace(draft(kit, org.sender), amount_minor=CNY_1M, currency="CNY")
        assert approvals.required_for(s, facts) == []  # disabled rules do not apply
        with pytest.raises(InvalidInputError):  # facts we cannot reason about: refuse
            approvals.required_for(s, replace(facts, amount_minor=-5))
        with pytest.raises(InvalidInputError):
            approvals.required_for(s, replace(facts, classification="top-secret"))


def _facts(kwargs: dict[str, object]) -> dict[str, object]:
    names = {"amount": "amount_minor", "currency": "currency", "classification": "classification"}
    return {names[k]: v for k, v in kwargs.items()}


# -- requests and decisions ---------------------------------------------------------------------


def test_any_mode_one_approval_completes_and_opens_the_gate(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(org.owner, rule("Everything", Step("any", {"approver"})))
    facts = draft(kit, org.sender)
    # As ContractService.send will use it: the gate inside, the refusal audited outside.
    with (
        pytest.raises(ApprovalRequiredError) as blocked,
        approvals.refusals(org.sender.actor(), facts.contract_id),
        kit.db.write() as s,
    ):
        approvals.ensure_send_allowed(s, facts)
    assert blocked.value.slug == "approval-required" and blocked.value.status == 409
    refused = kit.events("access.denied")[-1]
    assert (refused.details["action"], refused.object_id) == ("contract.send", facts.contract_id)

    request = approvals.request(org.sender, facts, "please check the penalty clause")
    assert request.status == "pending" and request.current_step == 1
    # Owner holds contract.approve but is not in the step's roles; sender and creator excluded.
    assert {a.user_id for a in request.steps[0].approvers} == {org.ann.user_id, org.ben.user_id}
    assert [r.id for r in approvals.inbox(org.ann)] == [request.id]
    with kit.db.read() as s:
        assert approvals.approver_user_ids(s, facts.contract_id) == {
            org.ann.user_id,
            org.ben.user_id,
        }
    with pytest.raises(ApprovalRequiredError, match="pending"):
        send_gate(kit, approvals, facts)

    done = approvals.decide(org.ann, request.id, True, "looks fine")
    assert done.status == "approved" and done.closed_at is not None
    assert approvals.inbox(org.ben) == []
    assert send_gate(kit, approvals, facts) == request.id
    with pytest.raises(ConflictError):  # Ben's step is over: nothing left to decide
        approvals.decide(org.ben, request.id, True)
    with pytest.raises(ConflictError):
        approvals.request(org.sender, facts)  # already approved in this form
    approved = kit.events("approval.approved")
    assert [(e.actor_id, e.details["comment"]) for e in approved] == [
        (org.ann.user_id, "looks fine")
    ]
    assert [e.object_id for e in kit.events("approval.completed")] == [request.id]
    assert kit.events("approval.requested")[0].details["comment"] == (
        "please check the penalty clause"
    )


def test_all_mode_needs_every_eligible_approver_and_each_decides_once(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(org.owner, rule("Everything", Step("all", {"approver"})))
    facts = draft(kit, org.sender)
    request = approvals.request(org.sender, facts)
    after_ann = approvals.decide(org.ann, request.id, True)
    assert after_ann.status == "pending"
    with pytest.raises(ConflictError, match="already decided"):
        approvals.decide(org.ann, request.id, True)
    with pytest.raises(ApprovalRequiredError):
        send_gate(kit, approvals, facts)
    assert approvals.inbox(org.ann) == [] and len(approvals.inbox(org.ben)) == 1
    assert approvals.decide(org.ben, request.id, True).status == "approved"
    assert send_gate(kit, approvals, facts) == request.id
    denied = kit.events("access.denied")
    assert [(e.details["action"], e.details["status"]) for e in denied] == [
        ("approval.approve", 409)
    ]


def test_steps_are_decided_in_order(kit: Kit, approvals: ApprovalService, org: Org) -> None:
    kit.roles.create_role(org.owner, "legal", "Legal", ["contract.approve", "contract.read.own"])
    lena = kit.member(org.owner, "lena@acme.test", "legal")
    approvals.rules.create_rule(
        org.owner, rule("Two steps", Step("any", {"approver"}), Step("any", {"legal"}))
    )
    facts = draft(kit, org.sender)
    request = approvals.request(org.sender, facts)
    assert [s.status for s in request.steps] == ["active", "waiting"]
    assert approvals.inbox(lena) == []
    with pytest.raises(PermissionDeniedError, match="step 2"):
        approvals.decide(lena, request.id, True)  # step 1 has not been completed
    after_one = approvals.decide(org.ben, request.id, True)
    assert after_one.current_step == 2 and [s.status for s in after_one.steps] == [
        "approved",
        "active",
    ]
    with pytest.raises(ConflictError):
        approvals.decide(org.ben, request.id, True)  # decided already (on step 1)
    with pytest.raises(PermissionDeniedError):
        approvals.decide(org.ann, request.id, True)  # not an approver of step 2
    with pytest.raises(ApprovalRequiredError):
        send_gate(kit, approvals, facts)
    assert [r.id for r in approvals.inbox(lena)] == [request.id]
    assert approvals.decide(lena, request.id, True).status == "approved"
    assert send_gate(kit, approvals, facts) == request.id
    assert len(kit.events("approval.completed")) == 1
    assert len(kit.events("access.denied")) == 3


def test_four_eyes_the_requester_and_the_creator_cannot_approve(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    boss = kit.member(org.owner, "boss@acme.test", "admin")
    approvals.rules.create_rule(org.owner, rule("Admins", Step("any", {"admin", "owner"})))
    # The owner creates the contract, an admin asks for approval: both hold contract.approve
    # and have a role of the step, neither may approve; nobody else may → nothing is created.
    facts = draft(kit, org.owner)
    with pytest.raises(ConflictError, match="nobody who can approve"):
        approvals.request(boss, facts)
    assert count(kit, ApprovalRequest) == 0 and count(kit, ApprovalStep) == 0

    second_admin = kit.member(org.owner, "ada@acme.test", "admin")
    request = approvals.request(boss, facts)
    assert {a.user_id for a in request.steps[0].approvers} == {second_admin.user_id}
    for own in (boss, org.owner):
        with pytest.raises(PermissionDeniedError, match="four-eyes"):
            approvals.decide(own, request.id, True)
    assert approvals.get(boss, request.id).status == "pending"
    assert approvals.decide(second_admin, request.id, True).status == "approved"
    reasons = [e.details["reason"] for e in kit.events("access.denied")]
    assert "four-eyes" in reasons[-1] and "four-eyes" in reasons[-2]


def test_a_rejection_ends_the_request(kit: Kit, approvals: ApprovalService, org: Org) -> None:
    approvals.rules.create_rule(
        org.owner, rule("Two steps", Step("all", {"approver"}), Step("any", {"admin", "owner"}))
    )
    facts = draft(kit, org.sender)
    request = approvals.request(org.sender, facts)
    with pytest.raises(InvalidInputError, match="comment"):
        approvals.decide(org.ann, request.id, False)  # a rejection says why
    rejected = approvals.decide(org.ann, request.id, False, "penalty clause is unacceptable")
    assert rejected.status == "rejected"
    assert [s.status for s in rejected.steps] == ["rejected", "closed"]
    with pytest.raises(ConflictError, match="rejected"):
        approvals.decide(org.ben, request.id, True)
    with pytest.raises(ApprovalRequiredError, match="rejected"):
        send_gate(kit, approvals, facts)
    assert approvals.inbox(org.ben) == []
    event = kit.events("approval.rejected")[-1]
    assert event.details["comment"] == "penalty clause is unacceptable"
    with kit.db.read() as s:
        assert s.get(Contract, facts.contract_id).status == "draft"  # type: ignore[union-attr]
    # A new request can be made (after changing the contract, typically).
    assert approvals.request(org.sender, facts).status == "pending"


def test_another_tenants_request_is_not_found_and_audited(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(org.owner, rule())
    request = approvals.request(org.sender, draft(kit, org.sender))
    stranger = kit.organisation("Other Co", "boss@other.test")  # an owner: contract.approve
    with pytest.raises(NotFoundError) as foreign:
        approvals.decide(stranger, request.id, True)
    with pytest.raises(NotFoundError) as unknown:
        approvals.decide(stranger, "9b1e4c7e-0000-4000-8000-000000000000", True)
    assert str(foreign.value) == str(unknown.value) == "approval request not found"
    for call in (approvals.get, approvals.withdraw):
        with pytest.raises(NotFoundError):
            call(stranger, request.id)
    denied = [e for e in kit.events("access.denied") if e.object_id == request.id]
    assert len(denied) == 3 and all(e.details["status"] == 404 for e in denied)
    assert {e.org_id for e in denied} == {stranger.org_id}
    # Facts of another tenant's contract are refused the same way.
    with pytest.raises(NotFoundError):
        approvals.request(stranger, draft(kit, org.sender))
    assert kit.events("access.denied")[-1].details["status"] == 404
    assert approvals.get(org.sender, request.id).status == "pending"  # untouched


def test_a_member_without_contract_approve_cannot_decide(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(org.owner, rule())
    request = approvals.request(org.sender, draft(kit, org.sender))
    with pytest.raises(PermissionDeniedError):
        approvals.decide(org.mia, request.id, True)
    with pytest.raises(PermissionDeniedError):
        approvals.inbox(org.mia)
    # Ann is demoted after the request was made: her snapshot no longer lets her decide.
    kit.people.change_role(org.owner, org.ann.user_id or "", "member")
    demoted = kit.sign_in("ann@acme.test")
    with pytest.raises(PermissionDeniedError):
        approvals.decide(demoted, request.id, True)
    assert approvals.get(org.sender, request.id).steps[0].approvers[0].decision is None
    denied = kit.events("access.denied")
    assert [(e.actor_id, e.details["action"]) for e in denied] == [
        (org.mia.user_id, "approval.approve"),
        (org.mia.user_id, "contract.approve"),
        (org.ann.user_id, "approval.approve"),
    ]


def test_a_changed_document_needs_a_new_approval(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(org.owner, rule())
    facts = draft(kit, org.sender)
    request = approvals.request(org.sender, facts)
    approvals.decide(org.ann, request.id, True)
    assert send_gate(kit, approvals, facts) == request.id

    edited = replace(facts, document_sha256=hashlib.sha256(b"version two").hexdigest())
    with pytest.raises(ApprovalRequiredError, match="document changed"):
        send_gate(kit, approvals, edited)
    dearer = replace(facts, title="Supply agreement (amended)")
    with pytest.raises(ApprovalRequiredError, match="details"):
        send_gate(kit, approvals, dearer)

    second = approvals.request(org.sender, edited)
    # Edited again while pending: the pending request is superseded, not left dangling.
    third = approvals.request(
        org.sender, replace(facts, document_sha256=hashlib.sha256(b"v3").hexdigest())
    )
    assert approvals.get(org.sender, second.id).status == "superseded"
    assert [e.object_id for e in kit.events("approval.superseded")] == [second.id]
    with pytest.raises(ConflictError, match="already pending"):
        approvals.request(
            org.sender, replace(facts, document_sha256=hashlib.sha256(b"v3").hexdigest())
        )
    assert approvals.inbox(org.ann)[0].id == third.id


def test_rule_changes_do_not_alter_pending_requests(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    v1 = approvals.rules.create_rule(org.owner, rule("Everything", Step("any", {"approver"})))
    facts = draft(kit, org.sender)
    request = approvals.request(org.sender, facts)
    approvals.rules.update_rule(
        org.owner, v1.id, rule("Everything", Step("all", {"approver"}), Step("any", {"owner"}))
    )
    pending = approvals.get(org.sender, request.id)
    assert pending.rules[0].version == 1 and len(pending.steps) == 1
    assert pending.steps[0].mode == "any" and pending.steps[0].rule_version == 1
    assert approvals.decide(org.ann, request.id, True).status == "approved"
    assert send_gate(kit, approvals, facts) == request.id  # approved under the version it had

    # A rule added after the approval is not covered by it.
    approvals.rules.create_rule(org.owner, rule("Also", Step("any", {"owner"})))
    with pytest.raises(ApprovalRequiredError, match="added or changed"):
        send_gate(kit, approvals, facts)


def test_approvers_need_clearance_for_the_contracts_level(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(
        org.owner,
        rule(
            "Confidential",
            Step("any", {"approver"}),
            condition=Condition(min_classification="confidential"),
        ),
    )
    facts = draft(kit, org.sender, classification="confidential")
    with pytest.raises(ConflictError, match="nobody who can approve"):
        approvals.request(org.sender, facts)  # Ann and Ben hold only internal clearance
    ann = set_clearance(kit, org.ann, "confidential")
    request = approvals.request(org.sender, facts)
    assert {a.user_id for a in request.steps[0].approvers} == {ann.user_id}
    lowered = set_clearance(kit, org.ann, "internal")
    with pytest.raises(PermissionDeniedError, match="clearance"):
        approvals.decide(lowered, request.id, True)
    assert approvals.decide(ann, request.id, True).status == "approved"


def test_withdraw_is_for_the_requester(kit: Kit, approvals: ApprovalService, org: Org) -> None:
    approvals.rules.create_rule(org.owner, rule())
    facts = draft(kit, org.sender)
    request = approvals.request(org.sender, facts)
    with pytest.raises(PermissionDeniedError):
        approvals.withdraw(org.ann, request.id)
    withdrawn = approvals.withdraw(org.sender, request.id, "wrong annex attached")
    assert withdrawn.status == "withdrawn" and withdrawn.steps[0].status == "closed"
    with pytest.raises(ConflictError):
        approvals.withdraw(org.sender, request.id)
    with pytest.raises(ConflictError, match="withdrawn"):
        approvals.decide(org.ann, request.id, True)
    assert approvals.inbox(org.ann) == []
    assert kit.events("approval.withdrawn")[0].details["comment"] == "wrong annex attached"
    assert approvals.request(org.sender, facts).status == "pending"  # may ask again


def test_requesting_needs_the_right_to_send_and_a_rule(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    facts = draft(kit, org.sender)
    with pytest.raises(ConflictError, match="no approval rule"):
        approvals.request(org.sender, facts)
    assert send_gate(kit, approvals, facts) is None  # nothing applies: sending is allowed
    approvals.rules.create_rule(org.owner, rule())
    with pytest.raises(PermissionDeniedError):
        approvals.request(org.mia, facts)  # a member cannot send contracts
    other_sender = kit.member(org.owner, "otto@acme.test", "contract_manager")
    with pytest.raises(PermissionDeniedError):
        approvals.request(other_sender, facts)  # .own reach: not their contract
    with pytest.raises(InvalidInputError):
        approvals.request(org.sender, replace(facts, document_sha256="not-a-hash"))
    with pytest.raises(NotFoundError):  # facts naming no stored contract
        approvals.request(org.sender, replace(facts, contract_id=str(uuid.uuid4())))
    assert count(kit, ApprovalRequest) == 0 and count(kit, ApprovalApprover) == 0
    assert [e.details["status"] for e in kit.events("access.denied")] == [409, 403, 403, 422, 404]


def test_concurrent_requests_and_decisions_are_serialised(
    kit: Kit, approvals: ApprovalService, org: Org
) -> None:
    approvals.rules.create_rule(org.owner, rule("Everything", Step("all", {"approver"})))
    facts = draft(kit, org.sender)

    def together(*calls: Callable[[], Any]) -> list[Any]:
        barrier = threading.Barrier(len(calls))

        def run(call: Callable[[], Any]) -> Any:
            barrier.wait()
            try:
                return call()
            except ConflictError as exc:
                return exc

        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(run, calls))

    made = together(*[lambda: approvals.request(org.sender, facts)] * 2)
    assert sorted(type(r).__name__ for r in made) == ["ApprovalRequestInfo", "ConflictError"]
    assert count(kit, ApprovalRequest) == 1
    request_id = next(r.id for r in made if not isinstance(r, ConflictError))
    # Both approvals of an "all" step at once: neither may miss the other's decision.
    together(
        lambda: approvals.decide(org.ann, request_id, True),
        lambda: approvals.decide(org.ben, request_id, True),
    )
    assert approvals.get(org.sender, request_id).status == "approved"
    assert len(kit.events("approval.completed")) == 1
