"""Building blocks for the managing pages' tests (no tests here): an organisation with one member
of each built-in role, contracts made through the service, approval rules.

Shared by the TestClient page tests (``test_web_manage.py``) and the browser tests, so both see
the same kind of organisation: members join by the real invitation flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from identity_kit import CLIENT, PASSWORD
from pactvault.audit.journal import Actor
from pactvault.contracts.approval_rules import AmountThreshold, Condition, RuleSpec, Step
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.identity.people import NewAccount
from pactvault.identity.principal import Principal
from web_kit import Instance

ROLES = ("admin", "contract_manager", "approver", "member", "auditor")
SYSTEM = Actor(type="system", id="pytest-manage")


@dataclass
class Team:
    """An organisation: its owner and one member per role, by role (``owner`` included)."""

    inst: Instance
    org_id: str
    emails: dict[str, str]
    user_ids: dict[str, str] = field(default_factory=dict)

    def principal(self, role: str) -> Principal:
        issued = self.inst.platform.login.login(self.emails[role], PASSWORD, CLIENT)
        return self.inst.platform.sessions.authenticate(issued.token)  # type: ignore[union-attr]

    def contract(
        self,
        title: str = "Supply agreement",
        *,
        creator: str | None = "contract_manager",
        signers: list[SignerSpec] | None = None,
        classification: str = "internal",
        amount_minor: int | None = None,
        currency: str | None = None,
        send: bool = False,
    ) -> str:
        platform = self.inst.platform
        actor = SYSTEM
        contract = platform.contracts.create(
            actor,
            self.org_id,
            title=title,
            pdf=sample_pdf(),
            signers=signers or [SignerSpec(name="Bob Li", email="bob@supplier.test")],
            created_by_user_id=self.user_ids[creator] if creator else None,
            classification=classification,
            amount_minor=amount_minor,
            currency=currency,
        )
        if send:
            platform.contracts.send(actor, self.org_id, contract.id)
        return contract.id

    def rule(
        self,
        name: str = "Big deals",
        minor: int = 1_000_000,
        currency: str = "CNY",
        roles: tuple[str, ...] = ("approver",),
    ) -> str:
        spec = RuleSpec(
            name=name,
            condition=Condition(amounts=(AmountThreshold(currency, minor),)),
            steps=[Step(mode="any", roles=frozenset(roles))],
        )
        rule = self.inst.platform.approvals.rules.create_rule(self.principal("owner"), spec)
        return rule.id


def team(inst: Instance, tag: str, name: str = "Acme Ltd") -> Team:
    """A new organisation named ``name`` whose members' addresses end in ``@<tag>.test``."""
    platform = inst.platform
    owner = f"owner@{tag}.test"
    platform.people.create_organisation(SYSTEM, name, owner, NewAccount("Olive", PASSWORD))
    built = Team(inst, "", {"owner": owner})
    principal = built.principal("owner")
    built.org_id = principal.org_id
    assert principal.user_id is not None
    built.user_ids["owner"] = principal.user_id
    for role in ROLES:
        email = f"{role.replace('_', '-')}@{tag}.test"
        platform.people.invite(principal, email, role)
        info = platform.people.accept_invitation(
            inst.invitation_token(email),
            CLIENT,
            account=NewAccount(role.replace("_", " ").title(), PASSWORD),
        )
        built.emails[role] = email
        built.user_ids[role] = info.user_id
    return built
