"""The approval gate inside ContractService.send; approvers may read what they approve."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from identity_kit import FAST, PASSWORD
from pactvault.access.decision import decide
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.contracts.access import contract_resource
from pactvault.contracts.approval_rules import Condition, RuleSpec, Step
from pactvault.contracts.approvals import ApprovalRequiredError
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.identity.principal import Principal
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent, Contract

SYSTEM = Actor(type="system", id="pytest")


@pytest.fixture
def platform(tmp_path, database_url: str) -> Iterator[Platform]:  # type: ignore[no-untyped-def]
    instance, _ = Platform.initialise(
        Settings(home=tmp_path / "data", database_url=database_url),
        mailer=MemoryMailer(),
        password_hasher=PasswordHasher(FAST),
    )
    try:
        yield instance
    finally:
        instance.close()


def sign_in(platform: Platform, email: str) -> Principal:
    return platform.sessions.authenticate(platform.login.login(email, PASSWORD, SYSTEM).token)


def member(platform: Platform, owner: Principal, email: str, role: str) -> Principal:
    platform.people.invite(owner, email, role)
    mailer: MemoryMailer = platform.mailer  # type: ignore[assignment]
    token = next(dict(m.tags)["Invitation-Token"] for m in mailer.messages if m.to == email)
    platform.people.accept_invitation(token, SYSTEM, account=NewAccount("M", PASSWORD))
    return sign_in(platform, email)


def test_send_waits_for_approval_and_the_approver_may_read_the_contract(
    platform: Platform,
) -> None:
    platform.people.create_organisation(SYSTEM, "Acme", "o@acme.test", NewAccount("O", PASSWORD))
    owner = sign_in(platform, "o@acme.test")
    manager = member(platform, owner, "m@acme.test", "contract_manager")
    approver = member(platform, owner, "a@acme.test", "approver")
    platform.approvals.rules.create_rule(
        owner,
        RuleSpec("everything", Condition(always=True), [Step("any", frozenset({"approver"}))]),
    )
    contract = platform.contracts.create(
        manager.actor(),
        owner.org_id,
        title="Supply",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="Buyer", email="buyer@example.test")],
        created_by_user_id=manager.user_id,
    )
    assert not decide(approver, "contract.read", _resource(platform, contract.id)).allowed

    with pytest.raises(ApprovalRequiredError):
        platform.contracts.send(manager.actor(), owner.org_id, contract.id)
    with platform.db.read() as s:
        assert s.get(Contract, contract.id).status == "draft"  # type: ignore[union-attr]
        refused = s.execute(
            select(AuditEvent).where(AuditEvent.action == "access.denied")
        ).scalars().all()
    assert any(e.details.get("status") == 409 for e in refused)

    facts = platform.contracts.approval_facts(owner.org_id, contract.id)
    request = platform.approvals.request(manager, facts, "please")
    # Asked to approve, the approver now reaches the contract as a party (.own).
    assert decide(approver, "contract.read", _resource(platform, contract.id)).allowed
    listed, _ = platform.contracts.list(owner.org_id, involving_user=approver.user_id)
    assert [c.id for c in listed] == [contract.id]

    platform.approvals.decide(approver, request.id, approve=True, comment="fine")
    sent = platform.contracts.send(manager.actor(), owner.org_id, contract.id)
    assert sent.status == "sent"
    with platform.db.read() as s:
        event = s.execute(
            select(AuditEvent).where(AuditEvent.action == "contract.send")
        ).scalar_one()
    assert event.details["approval_request_id"] == request.id


def _resource(platform: Platform, contract_id: str):  # type: ignore[no-untyped-def]
    with platform.db.read() as s:
        return contract_resource(s, contract_id)
