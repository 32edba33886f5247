"""The managing pages over HTTP: the contract list and page, approvals, the organisation admin.

Each flow runs on a real instance through the pages' forms (with their CSRF tokens) and checks
the outcome in the services — the contract was sent, the role changed, the alert acknowledged —
not only the text of the page. Permissions and tenants are checked as the pages answer them:
a member sees only their contracts, an auditor reads the journal and the alerts but no contract,
another organisation's ids answer exactly like missing ones. The ``Visitor`` checks every page
for untranslated keys and its language, so the tests in Chinese cover the catalog too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import select, update

from flows import invitation_tokens, sign_as
from manage_kit import Team, team
from matrix_workflows import PNG
from pactvault.contracts.reminders import REMIND_INTERVAL
from pactvault.contracts.service import SignerSpec
from pactvault.evidence.bundle import verify_bundle
from pactvault.identity.realname.providers import IdDocument
from pactvault.identity.realname.service import IdentityClaim
from pactvault.store.models import AuditEvent, Contract
from pactvault.tokens import SIGNING_PREFIX
from web_kit import Instance, Visitor, instance, visitor

CLAIM = IdentityClaim(name="张三明", id_number="110105199003071239", phone="13812345678")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    with instance(tmp_path_factory.mktemp("web-manage")) as inst:
        yield inst


@pytest.fixture(scope="module")
def a(site: Instance) -> Team:
    return team(site, "a")


@pytest.fixture(scope="module")
def b(site: Instance) -> Team:
    return team(site, "b", name="Other Co")


@pytest.fixture
def web(site: Instance) -> Iterator[Visitor]:
    yield from visitor(site.platform)


def as_(web: Visitor, t: Team, role: str) -> Visitor:
    web.client.cookies.clear()
    assert web.sign_in(t.emails[role]).status_code == 303
    return web


def flash(response: httpx.Response, web: Visitor) -> str:
    """Follow a form's redirect; the page it lands on (with its one-shot notice)."""
    assert response.status_code == 303, response.text
    return web.get(response.headers["location"]).text


def text(page: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def titles(page: str) -> list[str]:
    return [
        unescape(t) for t in re.findall(r'<a href="/contracts/[0-9a-f-]{36}">([^<]+)</a>', page)
    ]


# -- the contract list ----------------------------------------------------------------------------


def test_the_list_searches_and_filters(site: Instance, a: Team, web: Visitor) -> None:
    a.contract("租赁合同 Lease", signers=[SignerSpec(name="张三", email="zhang@tenant.test")])
    a.contract(
        "Supply agreement",
        signers=[SignerSpec(name="Bob Li", email="bob@supplier.test", organisation="Supplier Ltd")],
        send=True,
    )
    nobody = [SignerSpec(name="Carol", email="carol@bank.test")]
    a.contract("Board minutes", classification="confidential", signers=nobody)
    old = a.contract("Old lease", signers=nobody)
    with site.platform.db.write() as session:
        session.execute(
            update(Contract)
            .where(Contract.id == old)
            .values(created_at=datetime(2024, 5, 1, tzinfo=UTC))
        )
    as_(web, a, "owner")
    page = web.get("/contracts").text
    assert {"租赁合同 Lease", "Supply agreement", "Board minutes", "Old lease"} <= set(titles(page))
    assert titles(web.get("/contracts?q=LEASE").text) == ["租赁合同 Lease", "Old lease"]
    assert titles(web.get("/contracts?q=bob%40supplier").text) == ["Supply agreement"]
    assert titles(web.get("/contracts?party=supplier+ltd").text) == ["Supply agreement"]
    assert titles(web.get("/contracts?status=sent").text) == ["Supply agreement"]
    assert titles(web.get("/contracts?classification=confidential").text) == ["Board minutes"]
    assert titles(web.get("/contracts?created_to=2024-05-01").text) == ["Old lease"]
    assert "Old lease" not in titles(web.get("/contracts?created_from=2024-05-02").text)
    none = web.get("/contracts?q=nothing+of+the+kind").text
    assert titles(none) == [] and "No contract matches these filters." in none
    # Everything up to one's clearance: the administrator (internal) does not see, even by
    # title, a secret contract they have nothing to do with; the owner (secret) does.
    a.contract("Takeover plan", classification="secret", creator="owner", signers=nobody)
    assert "Takeover plan" in titles(web.get("/contracts?q=takeover").text)
    as_(web, a, "admin")
    assert titles(web.get("/contracts?q=takeover").text) == []
    assert "Supply agreement" in titles(web.get("/contracts").text)
    bad = web.get("/contracts?created_from=yesterday")
    assert bad.status_code == 422 and "Dates are written YYYY-MM-DD" in bad.text
    assert web.get("/contracts?status=lost").status_code == 422


def test_the_list_pages(site: Instance, web: Visitor) -> None:
    many = team(site, "pages")
    for n in range(23):
        many.contract(f"Contract {n:02d}")
    as_(web, many, "owner")
    first = web.get("/contracts").text
    assert len(titles(first)) == 20 and "Page 1 of 2" in first
    assert 'href="/contracts?page=2"' in first
    second = web.get("/contracts?page=2").text
    assert titles(second) == ["Contract 02", "Contract 01", "Contract 00"]
    filtered = web.get("/contracts?q=Contract&page=1").text
    assert 'href="/contracts?q=Contract&amp;page=2"' in filtered  # filters survive paging


def test_a_member_sees_only_their_own_contracts(a: Team, b: Team, web: Visitor) -> None:
    mine = a.contract(
        "Employment contract",
        creator="owner",
        signers=[SignerSpec(name="Member", email=a.emails["member"])],
        send=True,
    )
    theirs = a.contract("Not for members", creator="owner")
    as_(web, a, "member")
    assert titles(web.get("/contracts").text) == ["Employment contract"]
    page = web.get(f"/contracts/{mine}").text
    assert "Employment contract" in page
    # No action buttons for a member: they may read, not send, void or remind.
    assert "/void" not in page and "/remind" not in page and "/send" not in page
    assert "/edit" not in page
    assert web.get(f"/contracts/{theirs}").status_code == 403
    assert web.get(f"/contracts/{theirs}/document").status_code == 403
    # Another organisation's contract answers exactly like a contract that does not exist.
    foreign = b.contract("Foreign", creator="owner")
    for path in ("", "/document", "/evidence"):
        missing = web.get(f"/contracts/{uuid.uuid4()}{path}")
        hidden = web.get(f"/contracts/{foreign}{path}")
        assert missing.status_code == hidden.status_code == 404
        assert text(missing.text) == text(hidden.text)
        assert "Foreign" not in hidden.text


def test_an_auditor_reads_the_journal_and_alerts_but_no_contract(
    site: Instance, a: Team, web: Visitor
) -> None:
    contract_id = a.contract("Confidential pricing")
    raised = site.platform.alerts.raise_alert(
        "integrity.blob-missing",
        severity="critical",
        title="Document blob missing",
        details={"contract_id": contract_id, "version": 1},
        org_id=a.org_id,
    )
    as_(web, a, "auditor")
    for path in ("/contracts", f"/contracts/{contract_id}", f"/contracts/{contract_id}/document"):
        response = web.get(path)
        assert response.status_code == 403, path
        assert "Confidential pricing" not in response.text
        assert response.headers["content-type"].startswith("text/html")
    journal = web.get(f"/organisation/journal?object_id={contract_id}").text
    assert "contract.create" in journal and contract_id in journal
    assert "Confidential pricing" not in journal  # the journal holds a hash of the title
    alerts = web.get("/organisation/alerts").text
    assert "Document blob missing" in alerts
    detail = web.get(f"/organisation/alerts/{raised.alert.id}").text
    assert "integrity.blob-missing" in detail
    assert "/acknowledge" not in detail  # alert.read only
    assert web.post(f"/organisation/alerts/{raised.alert.id}/acknowledge").status_code == 403
    # The organisation pages an auditor has nothing to do with refuse.
    for path in ("/organisation/approval-rules", "/organisation/verifications", "/approvals/x"):
        assert web.get(path).status_code == 403, path


# -- the contract page ----------------------------------------------------------------------------


def test_the_contract_page_shows_progress_timeline_and_downloads(
    site: Instance, a: Team, web: Visitor
) -> None:
    platform = site.platform
    contract_id = a.contract(
        "Lease 租约",
        signers=[
            SignerSpec(name="Zhang San", email="zhang@tenant.test", routing_order=1),
            SignerSpec(name="Bob Li", email="bob@landlord.test", routing_order=2),
        ],
        send=True,
    )
    tokens = invitation_tokens(site.mailer, contract_id)
    sign_as(platform, next(iter(tokens.values())))
    as_(web, a, "contract_manager")
    page = web.get(f"/contracts/{contract_id}").text
    signers = re.findall(r'<tr data-signer="([^"]+)">(.*?)</tr>', page, re.S)
    status = {email: text(row) for email, row in signers}
    assert "Signed" in status["zhang@tenant.test"] and "Invited" in status["bob@landlord.test"]
    timeline = re.findall(r'<li data-action="([^"]+)">', page)
    assert timeline[0] == "contract.create"
    assert {"contract.send", "signer.invite", "signer.view", "contract.sign"} <= set(timeline)
    sign_entry = re.search(r'<li data-action="contract.sign">(.*?)</li>', page, re.S)
    assert sign_entry and "Zhang San" in sign_entry.group(1) and "from " in sign_entry.group(1)
    # Never a signing link or token on the sender's page.
    assert SIGNING_PREFIX not in page and not any(t in page for t in tokens.values())

    contract = platform.contracts.get(a.org_id, contract_id)
    for revision in contract.revisions:
        assert f"/contracts/{contract_id}/document?version={revision.version}" in page
    download = web.get(f"/contracts/{contract_id}/document?version=1")
    assert download.status_code == 200 and download.content.startswith(b"%PDF")
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["cache-control"] == "no-store"
    latest = web.get(f"/contracts/{contract_id}/document")
    assert latest.headers["x-document-sha256"] == contract.revisions[-1].plaintext_sha256

    bundle = web.get(f"/contracts/{contract_id}/evidence")
    assert bundle.status_code == 200
    assert bundle.headers["content-disposition"].startswith("attachment;")
    assert bundle.headers["x-content-type-options"] == "nosniff"
    proven = verify_bundle(bundle.content, platform.ledger.verifier_key())
    assert proven.contract_id == contract_id
    assert proven.final_document_sha256 == contract.revisions[-1].plaintext_sha256
    assert b"Lease" not in bundle.content  # hashes only, no content

    with platform.db.read() as session:
        downloads = (
            session.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "document.download", AuditEvent.object_id == contract_id
                )
            )
            .scalars()
            .all()
        )
    assert len(downloads) == 2 and all(
        e.actor_id == a.user_ids["contract_manager"] for e in downloads
    )


def test_voiding_needs_a_reason(site: Instance, a: Team, web: Visitor) -> None:
    contract_id = a.contract("To be voided", send=True)
    as_(web, a, "contract_manager")
    web.get(f"/contracts/{contract_id}")
    refused = web.post(f"/contracts/{contract_id}/void", {"reason": "  "})
    assert refused.status_code == 422
    assert "To be voided" in refused.text  # the page again, with the reason why
    assert site.platform.contracts.get(a.org_id, contract_id).status == "sent"
    page = flash(web.post(f"/contracts/{contract_id}/void", {"reason": "wrong party"}), web)
    assert "The contract is voided." in page and 'data-status="voided"' in page
    assert "wrong party" in page and '<li data-action="contract.void">' in page
    assert site.platform.contracts.get(a.org_id, contract_id).status == "voided"
    # Final: no more actions offered, and a second void is refused with the page.
    assert "/void" not in page
    again = web.post(f"/contracts/{contract_id}/void", {"reason": "again"})
    assert again.status_code == 409 and "To be voided" in again.text


def test_reminding_the_signers(
    site: Instance, a: Team, web: Visitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = site.platform
    contract_id = a.contract(
        "Remind me", signers=[SignerSpec(name="Dee", email="dee@client.test")], send=True
    )
    old = invitation_tokens(site.mailer, contract_id)
    as_(web, a, "contract_manager")
    page = web.get(f"/contracts/{contract_id}").text
    assert f'action="/contracts/{contract_id}/remind"' in page
    too_soon = web.post(f"/contracts/{contract_id}/remind")
    assert too_soon.status_code == 429 and int(too_soon.headers["retry-after"]) > 3500
    assert "You can remind them again in 60 minute(s)." in too_soon.text

    later = datetime.now(UTC) + REMIND_INTERVAL + timedelta(minutes=5)
    monkeypatch.setattr("pactvault.contracts.service.utcnow", lambda: later)
    monkeypatch.setattr("pactvault.audit.journal.utcnow", lambda: later)
    before = len(site.mailer.messages)
    page = flash(web.post(f"/contracts/{contract_id}/remind"), web)
    assert "Reminders sent" in page and '<li data-action="contract.remind">' in page
    sent = site.mailer.messages[before:]
    assert [m.to for m in sent] == ["dee@client.test"]
    new = invitation_tokens(site.mailer, contract_id)
    assert set(new.values()) != set(old.values())
    # The new link is nowhere in what the sender saw.
    assert not any(token in page for token in [*old.values(), *new.values()])
    assert SIGNING_PREFIX not in page
    # Another organisation's owner cannot remind this contract: it does not exist for them.
    signed_in_b = as_(web, team(site, "remind-b"), "owner")
    signed_in_b.get("/contracts")
    assert signed_in_b.post(f"/contracts/{contract_id}/remind").status_code == 404
    assert [m.to for m in site.mailer.messages[before:]].count("dee@client.test") == 1
    assert platform.contracts.get(a.org_id, contract_id).status == "sent"


def test_approval_then_sending_a_draft(site: Instance, a: Team, web: Visitor) -> None:
    platform = site.platform
    a.rule("Large supply", minor=50_000_00)
    contract_id = a.contract("Big order", amount_minor=80_000_00, currency="CNY")
    as_(web, a, "contract_manager")
    page = web.get(f"/contracts/{contract_id}").text
    assert "needs approval before it can be sent" in page
    assert f'href="/contracts/{contract_id}/edit"' in page  # the creator may edit the draft
    assert f'action="/contracts/{contract_id}/send"' not in page
    refused = web.post(f"/contracts/{contract_id}/send")  # sending anyway is refused
    assert refused.status_code == 409 and "Big order" in refused.text
    page = flash(web.post(f"/contracts/{contract_id}/approvals", {"comment": "urgent"}), web)
    assert "Approval requested" in page and "Waiting for approval" in page
    mine = web.get("/approvals").text
    assert "Big order" in mine and "Pending" in mine
    assert "Waiting for your decision" not in mine  # a contract manager approves nothing

    as_(web, a, "approver")
    inbox = web.get("/approvals").text
    request_id = re.search(r'<li data-request="([^"]+)">', inbox)
    assert request_id and "Big order" in inbox
    request_page = web.get(f"/approvals/{request_id.group(1)}").text
    assert "urgent" in request_page and "80,000.00 CNY" in request_page
    assert f'href="/contracts/{contract_id}"' in request_page  # the approver may read it
    assert web.get(f"/contracts/{contract_id}").status_code == 200
    rejected = web.post(f"/approvals/{request_id.group(1)}/decision", {"decision": "reject"})
    assert rejected.status_code == 422 and "Big order" in rejected.text  # a rejection says why
    done = flash(
        web.post(
            f"/approvals/{request_id.group(1)}/decision",
            {"decision": "approve", "comment": "fine"},
        ),
        web,
    )
    assert "You approved the request." in done and "Nothing is waiting for you." in done
    info = platform.approvals.get(a.principal("approver"), request_id.group(1))
    assert info.status == "approved"

    as_(web, a, "contract_manager")
    page = web.get(f"/contracts/{contract_id}").text
    assert "Approved in its current form" in page
    page = flash(web.post(f"/contracts/{contract_id}/send"), web)
    assert 'data-status="sent"' in page and "Each signer is getting their link" in page
    assert platform.contracts.get(a.org_id, contract_id).status == "sent"
    assert SIGNING_PREFIX not in page
    timeline = re.findall(r'<li data-action="([^"]+)">', page)
    assert {"approval.requested", "approval.approved", "approval.completed"} <= set(timeline)


def test_the_four_eyes_rule_shows_on_the_decision(site: Instance, a: Team, web: Visitor) -> None:
    """The owner may approve (their role is in the step) but not what they created and asked
    approval for: no decision form, and a forged decision is refused and changes nothing."""
    a.rule("Owners or approvers", minor=1, currency="USD", roles=("owner", "approver"))
    contract_id = a.contract("Own deal", creator="owner", amount_minor=100, currency="USD")
    request = site.platform.approvals.request(
        a.principal("owner"), site.platform.contracts.approval_facts(a.org_id, contract_id)
    )
    as_(web, a, "owner")
    inbox = web.get("/approvals").text.split("Requests you made")[0]
    assert request.id not in inbox
    page = web.get(f"/approvals/{request.id}").text
    assert "/decision" not in page and "Own deal" in page
    response = web.post(f"/approvals/{request.id}/decision", {"decision": "approve"})
    assert response.status_code == 403
    assert site.platform.approvals.get(a.principal("owner"), request.id).status == "pending"
    as_(web, a, "approver")
    assert request.id in web.get("/approvals").text
    # Another organisation's request answers exactly like a missing one, for every action.
    b = team(site, "four-eyes-b")
    b.rule("B rule", minor=1, currency="USD", roles=("approver",))
    b_contract = b.contract("B deal", amount_minor=100, currency="USD")
    foreign = site.platform.approvals.request(
        b.principal("contract_manager"),
        site.platform.contracts.approval_facts(b.org_id, b_contract),
    )
    for path in ("", "/decision", "/withdraw"):
        method = web.get if not path else web.post
        data = {"decision": "approve"} if path == "/decision" else None
        missing = method(f"/approvals/{uuid.uuid4()}{path}", *([data] if data else []))
        hidden = method(f"/approvals/{foreign.id}{path}", *([data] if data else []))
        # (an approver may not withdraw at all: refused before any id is looked at)
        expected = 403 if path == "/withdraw" else 404
        assert missing.status_code == hidden.status_code == expected, path
        assert text(missing.text) == text(hidden.text)
    assert site.platform.approvals.get(b.principal("owner"), foreign.id).status == "pending"


# -- the organisation -----------------------------------------------------------------------------


def test_inviting_changing_roles_and_removing_members(
    site: Instance, a: Team, web: Visitor
) -> None:
    platform = site.platform
    as_(web, a, "admin")
    page = web.get("/organisation/members").text
    for role in ("owner", "admin", "auditor"):
        assert f'data-member="{a.emails[role]}"' in page
    assert "/organisation/members/" + a.user_ids["admin"] + "/role" not in page  # not oneself
    before = len(site.mailer.messages)
    page = flash(
        web.post("/organisation/invitations", {"email": "new@a.test", "role": "member"}), web
    )
    assert "The invitation is on its way." in page and 'data-invitation="new@a.test"' in page
    token = site.invitation_token("new@a.test")
    assert token not in page and len(site.mailer.messages) == before + 1
    # An administrator cannot invite an owner (a role with a permission they lack).
    refused = web.post("/organisation/invitations", {"email": "boss@a.test", "role": "owner"})
    assert refused.status_code == 403 and 'data-invitation="boss@a.test"' not in refused.text
    invitation = next(
        i
        for i in platform.people.pending_invitations(a.principal("owner"))
        if i.email == "new@a.test"
    )
    flash(web.post(f"/organisation/invitations/{invitation.id}/revoke"), web)
    assert all(
        i.email != "new@a.test" for i in platform.people.pending_invitations(a.principal("owner"))
    )

    target = a.user_ids["member"]
    page = flash(web.post(f"/organisation/members/{target}/role", {"role": "approver"}), web)
    assert "The role is changed." in page
    assert platform.people.get_member(a.principal("owner"), target).role == "approver"
    flash(web.post(f"/organisation/members/{target}/role", {"role": "member"}), web)
    too_high = web.post(f"/organisation/members/{target}/clearance", {"clearance": "secret"})
    assert too_high.status_code == 403  # above the administrator's own clearance
    flash(web.post(f"/organisation/members/{target}/clearance", {"clearance": "public"}), web)
    assert platform.people.get_member(a.principal("owner"), target).clearance == "public"
    assert "That account was not locked." in flash(
        web.post(f"/organisation/members/{target}/unlock"), web
    )
    # Nobody changes their own role; an administrator cannot touch the owner.
    assert (
        web.post(f"/organisation/members/{a.user_ids['admin']}/role", {"role": "owner"}).status_code
        == 403
    )
    assert web.post(f"/organisation/members/{a.user_ids['owner']}/remove").status_code == 403
    assert platform.people.get_member(a.principal("owner"), a.user_ids["owner"]).role == "owner"
    # Another organisation's member answers like a missing one.
    b = team(site, "members-b")
    assert web.post(f"/organisation/members/{b.user_ids['member']}/remove").status_code == 404
    assert web.post(f"/organisation/members/{uuid.uuid4()}/remove").status_code == 404

    leaver = team(site, "leaver")
    as_(web, leaver, "owner")
    web.get("/organisation/members")
    page = flash(web.post(f"/organisation/members/{leaver.user_ids['auditor']}/remove"), web)
    assert "The member is removed" in page and leaver.emails["auditor"] not in page


def test_custom_roles_from_the_checklist(site: Instance, a: Team, web: Visitor) -> None:
    platform = site.platform
    as_(web, a, "admin")
    page = web.get("/organisation/roles").text
    assert 'value="org.manage" id="new-org.manage" disabled' in page  # cannot grant what one lacks
    created = web.post(
        "/organisation/roles",
        {"key": "reviewer", "name": "Reviewer", "permissions": ["identity.review", "member.read"]},
    )
    page = flash(created, web)
    assert "The role is created." in page and 'data-role-key="reviewer"' in page
    roles = {r.key: r for r in platform.roles.list_roles(a.principal("owner"))}
    assert set(roles["reviewer"].permissions) == {"identity.review", "member.read"}
    escalate = web.post(
        "/organisation/roles/reviewer", {"name": "Reviewer", "permissions": ["org.manage"]}
    )
    assert escalate.status_code == 403
    roles = {r.key: r for r in platform.roles.list_roles(a.principal("owner"))}
    assert "org.manage" not in roles["reviewer"].permissions
    flash(
        web.post(
            "/organisation/roles/reviewer", {"name": "Checker", "permissions": ["member.read"]}
        ),
        web,
    )
    roles = {r.key: r for r in platform.roles.list_roles(a.principal("owner"))}
    assert roles["reviewer"].name == "Checker" and roles["reviewer"].permissions == ("member.read",)
    bad = web.post("/organisation/roles", {"key": "Bad Key!", "permissions": ["member.read"]})
    assert bad.status_code == 422
    flash(web.post("/organisation/roles/reviewer/delete"), web)
    assert "reviewer" not in {r.key for r in platform.roles.list_roles(a.principal("owner"))}


def test_approval_rules_are_created_edited_versioned_and_deleted(
    site: Instance, a: Team, web: Visitor
) -> None:
    rules = site.platform.approvals.rules
    as_(web, a, "admin")
    web.get("/organisation/approval-rules")
    form = {
        "name": "Over a million",
        "enabled": "on",
        "currency1": "cny",
        "amount1": "1,000,000.50",
        "min_classification": "secret",
        "step1_mode": "any",
        "step1_roles": "approver",
        "step2_mode": "all",
        "step2_users": a.user_ids["owner"],
    }
    page = flash(web.post("/organisation/approval-rules", form), web)
    assert "The approval rule is created." in page
    rule = next(r for r in rules.list_rules(a.principal("owner")) if r.name == "Over a million")
    assert rule.condition.amounts[0].currency == "CNY"
    assert rule.condition.amounts[0].minor == 100_000_050
    assert rule.condition.min_classification == "secret"
    assert [s.mode for s in rule.steps] == ["any", "all"]
    assert rule.steps[1].user_ids == frozenset({a.user_ids["owner"]})
    assert 'value="1000000.50"' in page  # the edit form shows it back in major units

    for amount in ("1e6", "-5", "12.345", "lots"):
        refused = web.post(
            "/organisation/approval-rules", {**form, "name": f"Bad {amount}", "amount1": amount}
        )
        assert refused.status_code == 422, amount
        assert f'value="{amount}"' in refused.text  # what was typed is kept
    no_steps = web.post("/organisation/approval-rules", {"name": "No steps", "always": "on"})
    assert no_steps.status_code == 422
    assert {r.name for r in rules.list_rules(a.principal("owner"))} & {
        "No steps",
        "Bad 1e6",
    } == set()

    edit = {**form, "name": "Over a million", "amount1": "2000000", "expected_version": "1"}
    edit.pop("enabled")
    page = flash(web.post(f"/organisation/approval-rules/{rule.id}", edit), web)
    assert "saved as a new version" in page
    now = rules.get_rule(a.principal("owner"), rule.id)
    assert now.version == 2 and not now.enabled and now.condition.amounts[0].minor == 200_000_000
    assert re.findall(r'<li data-version="(\d+)">', page) == ["2", "1"]
    stale = web.post(f"/organisation/approval-rules/{rule.id}", edit)  # still says version 1
    assert stale.status_code == 409
    flash(web.post(f"/organisation/approval-rules/{rule.id}/delete"), web)
    assert rule.id not in {r.id for r in rules.list_rules(a.principal("owner"))}
    # Another organisation's rule answers like a missing one.
    foreign = team(site, "rules-b").rule()
    assert web.get(f"/organisation/approval-rules/{foreign}").status_code == 404
    assert web.get(f"/organisation/approval-rules/{uuid.uuid4()}").status_code == 404


def test_requiring_a_second_factor_of_everyone(site: Instance, web: Visitor) -> None:
    t = team(site, "mfa")
    as_(web, t, "admin")
    page = web.get("/organisation/security").text
    assert 'data-require-mfa="no"' in page and "/organisation/security/mfa" not in page
    assert web.post("/organisation/security/mfa", {"require": "yes"}).status_code == 403
    as_(web, t, "owner")
    web.get("/organisation/security")
    page = flash(web.post("/organisation/security/mfa", {"require": "yes"}), web)
    assert 'data-require-mfa="yes"' in page
    assert site.platform.mfa.org_requires_mfa(t.org_id)
    flash(web.post("/organisation/security/mfa", {"require": "no"}), web)
    assert not site.platform.mfa.org_requires_mfa(t.org_id)


def test_reviewing_a_real_name_verification(site: Instance, web: Visitor) -> None:
    platform = site.platform
    t = team(site, "review")
    subject = t.principal("member")
    started = platform.verification.start_for_user(
        subject, CLAIM, provider="admin-review", check="document", documents_later=True
    )
    platform.verification.submit_documents_for_user(subject, started.id, [IdDocument("front", PNG)])

    as_(web, t, "admin")  # clearance "internal": sees the claim masked, cannot review
    queue = web.get("/organisation/verifications").text
    assert started.id in queue and CLAIM.name not in queue
    page = web.get(f"/organisation/verifications/{started.id}").text
    assert CLAIM.id_number not in page and "masked" in page
    assert "/review" not in page and "<img" not in page
    evidence_id = re.findall(r"/evidence/([0-9a-f-]{36})", page)
    assert evidence_id == []

    as_(web, t, "owner")  # clearance "secret"
    page = web.get(f"/organisation/verifications/{started.id}").text
    assert CLAIM.name in page and CLAIM.id_number in page
    image = re.search(
        rf'<img src="(/organisation/verifications/{started.id}/evidence/[^"]+)"', page
    )
    assert image
    shown = web.get(image.group(1))
    assert shown.status_code == 200 and shown.content == PNG
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert shown.headers["cache-control"] == "no-store"
    assert "sandbox" in shown.headers["content-security-policy"]
    as_(web, t, "admin")
    assert web.get(image.group(1)).status_code == 403  # the image shows the ID number
    as_(web, t, "owner")
    web.get(f"/organisation/verifications/{started.id}")
    refused = web.post(f"/organisation/verifications/{started.id}/review", {"decision": "reject"})
    assert refused.status_code == 422  # a rejection says why
    page = flash(
        web.post(f"/organisation/verifications/{started.id}/review", {"decision": "approve"}), web
    )
    assert "The verification is approved." in page
    assert platform.verification.get(t.principal("owner"), started.id).status == "verified"
    # Another organisation's check answers like a missing one.
    other = team(site, "review-b")
    assert web.get(f"/organisation/verifications/{uuid.uuid4()}").status_code == 404
    foreign = platform.verification.start_for_user(
        other.principal("member"),
        CLAIM,
        provider="admin-review",
        check="document",
        documents_later=True,
    )
    assert web.get(f"/organisation/verifications/{foreign.id}").status_code == 404


def test_personal_api_tokens_are_shown_once(site: Instance, web: Visitor) -> None:
    platform = site.platform
    t = team(site, "tokens")
    as_(web, t, "contract_manager")
    page = web.get("/organisation/tokens").text
    assert "You have no API tokens." in page
    response = web.post(
        "/organisation/tokens",
        {"name": "CI", "permissions": ["contract.read.own"], "expires_in_days": "30"},
    )
    assert response.status_code == 200
    shown = re.search(r"<code data-api-token>([^<]+)</code>", response.text)
    assert shown and response.headers["cache-control"] == "no-store"
    principal = platform.tokens.authenticate(shown.group(1))
    assert principal.permissions == frozenset({"contract.read.own"})
    page = web.get("/organisation/tokens").text
    assert 'data-token="CI"' in page and shown.group(1) not in page
    beyond = web.post("/organisation/tokens", {"name": "x", "permissions": ["org.manage"]})
    assert beyond.status_code == 422
    token_id = platform.tokens.list_user_tokens(t.principal("contract_manager"))[0].id
    flash(web.post(f"/organisation/tokens/{token_id}/revoke"), web)
    assert platform.tokens.list_user_tokens(t.principal("contract_manager")) == []


def test_handling_an_alert(site: Instance, web: Visitor) -> None:
    platform = site.platform
    t = team(site, "alerts")
    raised = platform.alerts.raise_alert(
        "integrity.blob-mismatch",
        severity="warning",
        title="Document changed on disk",
        details={"contract_id": str(uuid.uuid4()), "version": 2},
        org_id=t.org_id,
    )
    as_(web, t, "admin")
    assert "Document changed on disk" in web.get("/organisation/alerts?severity=warning").text
    assert "Document changed on disk" not in web.get("/organisation/alerts?severity=critical").text
    assert "Document changed on disk" in web.get("/organisation/alerts?kind=integrity.*").text
    assert web.get("/organisation/alerts?kind=Not+A+Kind").status_code == 422
    web.get(f"/organisation/alerts/{raised.alert.id}")
    page = flash(
        web.post(f"/organisation/alerts/{raised.alert.id}/acknowledge", {"note": "on it"}), web
    )
    assert 'data-status="acknowledged"' in page and "on it" in page
    again = web.post(f"/organisation/alerts/{raised.alert.id}/acknowledge")
    assert again.status_code == 409 and "Document changed on disk" in again.text
    page = flash(web.post(f"/organisation/alerts/{raised.alert.id}/resolve"), web)
    assert 'data-status="resolved"' in page and "/resolve" not in page
    assert "Document changed on disk" not in web.get("/organisation/alerts").text  # unresolved
    assert "Document changed on disk" in web.get("/organisation/alerts?view=resolved").text
    # Another organisation's alert and a platform-wide one answer like a missing id.
    elsewhere = platform.alerts.raise_alert(
        "integrity.blob-missing",
        severity="critical",
        title="Elsewhere",
        details={"contract_id": str(uuid.uuid4())},
        org_id=team(site, "alerts-b").org_id,
    )
    platform_wide = platform.alerts.raise_alert(
        "integrity.audit-chain", severity="critical", title="Chain", details={"seq": 1}
    )
    missing = web.get(f"/organisation/alerts/{uuid.uuid4()}")
    for alert_id in (elsewhere.alert.id, platform_wide.alert.id):
        hidden = web.get(f"/organisation/alerts/{alert_id}")
        assert hidden.status_code == missing.status_code == 404
        assert text(hidden.text) == text(missing.text)


def test_the_journal_filters_and_pages(site: Instance, web: Visitor) -> None:
    t = team(site, "journal")
    for n in range(60):
        t.contract(f"Journal {n}")
    as_(web, t, "auditor")
    page = web.get("/organisation/journal?action=contract.create").text
    seqs = [int(s) for s in re.findall(r'<li data-seq="(\d+)"', page)]
    assert len(seqs) == 50 and seqs == sorted(seqs, reverse=True)
    older = re.search(r'<a rel="next" href="([^"]+)">', page)
    assert older
    rest = web.get(unescape(older.group(1))).text
    more = [int(s) for s in re.findall(r'<li data-seq="(\d+)"', rest)]
    assert len(more) == 10 and max(more) < min(seqs)
    prefix = web.get("/organisation/journal?action=invitation.*").text
    actions = re.findall(r'data-action="([^"]+)"', prefix)
    assert actions and all(action.startswith("invitation.") for action in actions)
    assert web.get("/organisation/journal?action=invitation_*").text.count("data-seq=") == 0
    assert (
        re.findall(
            r'data-action="([^"]+)"', web.get("/organisation/journal?actor_type=signer").text
        )
        == []
    )
    assert web.get("/organisation/journal?since=2024-13-01").status_code == 422
    assert web.get("/organisation/journal?until=2000-01-01").text.count("data-seq=") == 0


# -- both languages, forms, headers ---------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_detail_pages_in_both_languages(
    site: Instance, a: Team, web: Visitor, language: str
) -> None:
    contract_id = a.contract("Bilingual", send=True)
    raised = site.platform.alerts.raise_alert(
        "integrity.blob-missing",
        severity="info",
        title="Check",
        details={"contract_id": contract_id, "n": language},
        org_id=a.org_id,
    )
    rule_id = a.rule(f"Rule {language}")
    web.language = language
    as_(web, a, "owner")
    for path in (
        f"/contracts/{contract_id}",
        f"/organisation/alerts/{raised.alert.id}",
        f"/organisation/approval-rules/{rule_id}",
        "/organisation",
        "/organisation/members",
        "/organisation/roles",
        "/approvals",
    ):
        response = web.get(path)  # the Visitor fails on an untranslated key or a wrong language
        assert response.status_code == 200, path
    page = web.get(f"/contracts/{contract_id}").text
    expected = "时间线" if language == "zh-CN" else "Timeline"
    assert expected in page


def test_every_form_of_the_managing_pages_carries_the_csrf_token(
    site: Instance, a: Team, web: Visitor
) -> None:
    contract_id = a.contract("Forms", send=True)
    alert = site.platform.alerts.raise_alert(
        "integrity.blob-missing",
        severity="info",
        title="Forms",
        details={"contract_id": contract_id, "forms": 1},
        org_id=a.org_id,
    )
    rule_id = a.rule("Forms rule")
    as_(web, a, "owner")
    forms = 0
    for path in (
        f"/contracts/{contract_id}",
        "/organisation/members",
        "/organisation/roles",
        "/organisation/approval-rules",
        f"/organisation/approval-rules/{rule_id}",
        "/organisation/security",
        "/organisation/tokens",
        f"/organisation/alerts/{alert.alert.id}",
    ):
        page = web.get(path).text
        for form in re.findall(r'<form method="post".*?</form>', page, re.S):
            forms += 1
            assert 'name="csrf_token"' in form, f"{path}: {form[:120]}"
        assert "style=" not in page and not re.search(r"\son[a-z]+=", page)
    assert forms >= 15


def test_the_contract_page_names_no_internal_ids_of_other_tenants(
    site: Instance, a: Team, b: Team, web: Visitor
) -> None:
    """A member of B reaching A's journal or member list gets only B's."""
    as_(web, b, "owner")
    members = web.get("/organisation/members").text
    assert a.emails["owner"] not in members and b.emails["owner"] in members
    journal = web.get("/organisation/journal").text
    assert a.org_id not in journal
    for user_id in a.user_ids.values():
        assert user_id not in journal
