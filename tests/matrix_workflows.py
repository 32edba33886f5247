"""Authorisation-matrix builders for the approval and real-name verification routes (no tests).

``test_api_authorization.CASES`` uses these: each builds, for one (role, relation), the object a
call names — in org A for ``own`` and ``other``, in org B for ``foreign`` — and the call's body.
They take the matrix's ``World`` (duck-typed here, to avoid importing the test module).

What ``own`` and ``other`` mean per route, so that an *allowed* call really reaches the service
and succeeds, and a *denied* one is refused by the object's own rules:

- approval requests to read or withdraw: ``own`` — the caller created the contract, and asked
  for approval if their role may send it; ``other`` — nobody in particular created it and an
  owner or administrator asked. The approver is a dedicated member, so callers are never asked.
- approval requests to decide: ``contract.approve`` has no reach, so ``own`` and ``other`` are
  alike: a request every approving role of org A is asked to decide.
- verifications to review: a fresh member's (never the caller's: nobody reviews their own), with
  the document uploaded; the administrator is cleared for ID numbers (clearance is its own axis,
  tested in ``test_api_verification``).
- verification documents to upload: ``own`` — the caller's check waiting for its documents;
  ``other`` — another member's.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from PIL import Image
from sqlalchemy import select

from identity_kit import PASSWORD
from pactvault.audit.journal import Actor
from pactvault.contracts.approval_rules import AmountThreshold, Condition, RuleSpec, Step
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.identity.people import NewAccount
from pactvault.identity.principal import Principal
from pactvault.identity.realname.providers import IdDocument
from pactvault.identity.realname.service import IdentityClaim
from pactvault.store.realname_models import VerificationEvidence

SYSTEM = Actor(type="system", id="pytest-matrix")
CLIENT = Actor(type="anonymous", ip="203.0.113.9", user_agent="pytest-matrix")
Built = tuple[dict[str, str], dict[str, object]]
#: Contracts in these (test) currencies fall under the matrix's approval rules, and no others.
DECIDE, READ, NEVER = "XTS", "XXX", "XPT"
CLAIM = IdentityClaim(name="张三明", id_number="110105199003071239", phone="13812345678")
START = {"json": {"name": CLAIM.name, "id_number": CLAIM.id_number, "phone": CLAIM.phone}}
_setup: dict[str, dict[str, str]] = {}


def _png() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 40)).save(out, "PNG")
    return out.getvalue()


PNG = _png()
ID_FRONT = {"files": {"front": ("id-front.png", PNG, "image/png")}}


def _owner(w: Any, org: str) -> Principal:
    token = w.sessions["owner"].token if org == "a" else w.owner_b.token
    return w.platform.sessions.authenticate(token)  # type: ignore[no-any-return]


def _person(w: Any, org: str, role: str = "member") -> Principal:
    """A new member of org A (``"a"``) or org B (``"b"``), signed in."""
    email = f"{w.fresh('wf')}@{org}.test"
    w.platform.people.invite(_owner(w, org), email, role)
    token = next(
        dict(m.tags)["Invitation-Token"] for m in reversed(w.mailer.messages) if m.to == email
    )
    w.platform.people.accept_invitation(token, CLIENT, account=NewAccount("Wf", PASSWORD))
    issued = w.platform.login.login(email, PASSWORD, CLIENT)
    return w.platform.sessions.authenticate(issued.token)  # type: ignore[no-any-return]


def _rule(name: str, currencies: tuple[str, ...], step: Step) -> RuleSpec:
    amounts = tuple(AmountThreshold(c, 1) for c in currencies)
    return RuleSpec(name, Condition(amounts=amounts), [step])


def _prepared(w: Any) -> dict[str, str]:
    """Once per world: approval rules in both organisations, a cleared administrator."""
    if w.org_a not in _setup:
        rules = w.platform.approvals.rules
        approver_a = _person(w, "a", "approver")
        approver_b = _person(w, "b", "approver")
        everyone = Step("any", roles=frozenset({"owner", "admin", "approver"}))
        rules.create_rule(_owner(w, "a"), _rule("matrix-decide", (DECIDE,), everyone))
        dedicated = Step("any", user_ids=frozenset({approver_a.user_id or ""}))
        rules.create_rule(_owner(w, "a"), _rule("matrix-read", (READ,), dedicated))
        only_b = Step("any", user_ids=frozenset({approver_b.user_id or ""}))
        rules.create_rule(_owner(w, "b"), _rule("matrix", (DECIDE, READ), only_b))
        admin = w.sessions["admin"].user_id
        w.platform.people.set_clearance(_owner(w, "a"), admin, "confidential")
        _setup[w.org_a] = {"approver_a": approver_a.user_id or ""}
    return _setup[w.org_a]


def _draft(w: Any, org: str, currency: str, creator: str | None) -> str:
    contract = w.platform.contracts.create(
        SYSTEM,
        w.org_a if org == "a" else w.org_b,
        title="Matrix approval",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="Party", email="stranger@elsewhere.test")],
        created_by_user_id=creator,
        amount_minor=100,
        currency=currency,
    )
    return contract.id  # type: ignore[no-any-return]


def _request(w: Any, org: str, currency: str, creator: str | None, requester: Principal) -> str:
    contract_id = _draft(w, org, currency, creator)
    facts = w.platform.contracts.approval_facts(requester.org_id, contract_id)
    return w.platform.approvals.request(requester, facts).id  # type: ignore[no-any-return]


# -- approval rules ----------------------------------------------------------------------------


def new_rule_body(w: Any) -> dict[str, object]:
    return {
        "json": {
            "name": w.fresh("made-rule-"),
            "condition": {"amounts": [{"currency": NEVER, "minor": 1}]},
            "steps": [{"mode": "any", "roles": ["approver"]}],
        }
    }


def on_rule(body: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    """A fresh rule of org A (own, other) or org B (foreign) matching no matrix contract."""

    def build(w: Any, role: str, relation: str) -> Built:
        owner = _owner(w, "b" if relation == "foreign" else "a")
        step = Step("any", roles=frozenset({"approver"}))
        rule = w.platform.approvals.rules.create_rule(
            owner, _rule(w.fresh("matrix-rule-"), (NEVER,), step)
        )
        return {"rule_id": rule.id}, ({"json": body} if body else {})

    return build


# -- approval requests -------------------------------------------------------------------------


def on_draft_to_approve(w: Any, role: str, relation: str) -> Built:
    """A draft under an approval rule, created by the caller (own) or nobody (other)."""
    _prepared(w)
    org = "b" if relation == "foreign" else "a"
    creator = w.sessions[role].user_id if relation == "own" else None
    return {"contract_id": _draft(w, org, DECIDE, creator)}, {"json": {"comment": "matrix"}}


def on_approval_request(w: Any, role: str, relation: str) -> Built:
    """A pending request to read or withdraw (see the module notes for own and other)."""
    _prepared(w)
    if relation == "foreign":
        return {"request_id": _request(w, "b", READ, None, _owner(w, "b"))}, {}
    me = w.platform.sessions.authenticate(w.sessions[role].token)
    if relation == "own":
        may_send = role in ("owner", "admin", "contract_manager")
        requester = me if may_send else _owner(w, "a")
        return {"request_id": _request(w, "a", READ, me.user_id, requester)}, {}
    asker = w.sessions["admin" if role == "owner" else "owner"]
    other = w.platform.sessions.authenticate(asker.token)
    return {"request_id": _request(w, "a", READ, None, other)}, {}


def on_approval_to_decide(w: Any, role: str, relation: str) -> Built:
    """A request every approving role of org A is asked about (a manager's); org B's."""
    _prepared(w)
    body = {"json": {"decision": "approve", "comment": "matrix"}}
    if relation == "foreign":
        return {"request_id": _request(w, "b", DECIDE, None, _owner(w, "b"))}, body
    manager = w.platform.sessions.authenticate(w.sessions["contract_manager"].token)
    return {"request_id": _request(w, "a", DECIDE, manager.user_id, manager)}, body


# -- real-name verification --------------------------------------------------------------------


def _verification(w: Any, person: Principal, *, documents: bool) -> str:
    info = w.platform.verification.start_for_user(
        person, CLAIM, provider="admin-review", check="document", documents_later=True
    )
    if documents:
        w.platform.verification.submit_documents_for_user(
            person, info.id, [IdDocument("front", PNG)]
        )
    return info.id  # type: ignore[no-any-return]


def on_waiting_verification(w: Any, role: str, relation: str) -> Built:
    """A check waiting for its documents: the caller's, another member's, org B's."""
    if relation == "own":
        me = w.platform.sessions.authenticate(w.sessions[role].token)
        verification_id = _verification(w, me, documents=False)
    else:
        verification_id = _verification(
            w, _person(w, "b" if relation == "foreign" else "a"), documents=False
        )
    return {"verification_id": verification_id}, dict(ID_FRONT)


def on_verification(body: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    """A fresh member's check with its document uploaded, in org A or (foreign) org B."""

    def build(w: Any, role: str, relation: str) -> Built:
        _prepared(w)
        person = _person(w, "b" if relation == "foreign" else "a")
        verification_id = _verification(w, person, documents=True)
        return {"verification_id": verification_id}, ({"json": body} if body else {})

    return build


def on_evidence(w: Any, role: str, relation: str) -> Built:
    params, _ = on_verification()(w, role, relation)
    with w.platform.db.read() as s:
        evidence_id = s.execute(
            select(VerificationEvidence.id).where(
                VerificationEvidence.verification_id == params["verification_id"],
                VerificationEvidence.kind == "id-document-front",
            )
        ).scalar_one()
    return params | {"evidence_id": evidence_id}, {}
