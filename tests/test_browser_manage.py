"""The managing pages in a real browser: Debian's Chromium driven by Playwright, real uvicorn.

The server, the browser and the watch for console errors, uncaught exceptions and CSP
violations are ``test_browser_web``'s fixtures (``site``, ``page``): any such problem fails the
test. The organisations are built with ``manage_kit`` (members join through real invitations);
everything a test checks in the page, it also checks in the services.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from identity_kit import PASSWORD
from manage_kit import Team, team
from pactvault.contracts.service import SignerSpec
from pactvault.identity.people import NewAccount
from test_browser_web import Site, page, sign_in, site  # noqa: F401 (fixtures)


def _team(site: Site, tag: str) -> Team:  # noqa: F811
    return team(site.inst, f"{tag}-{uuid.uuid4().hex[:6]}")


def _sign_in_as(site: Site, page: Page, t: Team, role: str) -> None:  # noqa: F811
    page.context.clear_cookies()
    sign_in(site, page, t.emails[role])
    page.wait_for_url(site.url + "/home")


def test_an_admin_invites_a_member_and_changes_their_role(site: Site, page: Page) -> None:  # noqa: F811
    t = _team(site, "invite")
    _sign_in_as(site, page, t, "admin")
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Organisation"
    ).click()
    page.get_by_role("link", name="Members").first.click()
    page.wait_for_url(site.url + "/organisation/members")
    email = f"ivy-{uuid.uuid4().hex[:6]}@newcomer.test"
    invite = page.locator("#invite")
    invite.get_by_label("Email address").fill(email)
    invite.get_by_label("Role").select_option("member")
    invite.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_text("The invitation is on its way.")).to_be_visible()
    expect(page.locator(f'li[data-invitation="{email}"]')).to_be_visible()
    token = site.inst.invitation_token(email)
    assert token not in page.content()
    info = site.inst.platform.people.accept_invitation(
        token, t.principal("admin").actor(), account=NewAccount("Ivy", PASSWORD)
    )

    page.reload()
    row = page.locator(f'li[data-member="{email}"]')
    expect(row.locator("[data-role]")).to_have_text("Member")
    row.locator("summary").click()
    row.get_by_label("Role").select_option("approver")
    row.get_by_role("button", name="Change role").click()
    expect(page.get_by_text("The role is changed.")).to_be_visible()
    expect(page.locator(f'li[data-member="{email}"] [data-role]')).to_have_text("Approver")
    member = site.inst.platform.people.get_member(t.principal("owner"), info.user_id)
    assert member.role == "approver"
    site.shot(page, "organisation-members")


def test_filtering_the_contract_list_and_opening_a_timeline(site: Site, page: Page) -> None:  # noqa: F811
    t = _team(site, "list")
    t.contract("Office lease", signers=[SignerSpec(name="Zhang San", email="zhang@tenant.test")])
    sent = t.contract(
        "Supply agreement",
        signers=[SignerSpec(name="Bob Li", email="bob@supplier.test", organisation="Supplier Ltd")],
        send=True,
    )
    t.contract("Board minutes", signers=[SignerSpec(name="Carol", email="carol@bank.test")])
    _sign_in_as(site, page, t, "owner")
    page.goto(site.url + "/contracts")
    rows = page.locator("#contract-results tr[data-contract]")
    expect(rows).to_have_count(3)
    page.get_by_label("Search").fill("supplier")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Supply agreement")
    expect(page).to_have_url(re.compile(r"/contracts\?q=supplier"))  # shareable, back works
    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option("draft")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    expect(page.locator("#contract-results")).not_to_contain_text("Supply agreement")
    page.get_by_label("Status").select_option("sent")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    site.shot(page, "contract-list-filtered")

    rows.first.get_by_role("link", name="Supply agreement").click()
    page.wait_for_url(site.url + f"/contracts/{sent}")
    timeline = page.locator("#timeline")
    expect(timeline.locator('li[data-action="contract.create"]')).to_contain_text("Created")
    expect(timeline.locator('li[data-action="contract.send"]')).to_contain_text("Sent for signing")
    expect(timeline.locator('li[data-action="signer.invite"]')).to_contain_text("Bob Li")
    expect(page.locator('tr[data-signer="bob@supplier.test"]')).to_contain_text("Invited")
    assert "pvs_" not in page.content()
    site.shot(page, "contract-page")
    page.get_by_role("link", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert page.url == site.url + f"/contracts/{sent}"
    expect(page.get_by_role("heading", name="时间线")).to_be_visible()
    expect(page.locator('tr[data-signer="bob@supplier.test"]')).to_contain_text("已邀请")
    site.shot(page, "contract-page-zh-CN")


def test_the_list_and_a_contract_on_a_phone(site: Site) -> None:  # noqa: F811
    t = _team(site, "phone")
    contract_id = t.contract("Phone lease", send=True)
    context = site.context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    site.problems.clear()
    try:
        phone = site.new_page(context)
        sign_in(site, phone, t.emails["owner"])
        phone.wait_for_url(site.url + "/home")
        for path in ("/contracts", f"/contracts/{contract_id}", "/organisation/members"):
            phone.goto(site.url + path)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} scrolls sideways on a phone ({width}px)"
        site.shot(phone, "phone-contract")
    finally:
        context.close()
    assert not site.problems, "the browser reported problems:\n" + "\n".join(site.problems)


def test_an_approver_approves_and_the_manager_then_sends(site: Site, page: Page) -> None:  # noqa: F811
    platform = site.inst.platform
    t = _team(site, "approve")
    t.rule("Large orders", minor=10_000_00)
    contract_id = t.contract("Big order", amount_minor=25_000_00, currency="CNY")

    _sign_in_as(site, page, t, "contract_manager")
    page.goto(site.url + f"/contracts/{contract_id}")
    expect(page.get_by_text("needs approval before it can be sent")).to_be_visible()
    expect(page.get_by_role("button", name="Send for signing")).to_have_count(0)
    page.get_by_label("Note for the approvers (optional)").fill("Customer is waiting")
    page.get_by_role("button", name="Request approval").click()
    expect(page.get_by_text("Waiting for approval.")).to_be_visible()

    _sign_in_as(site, page, t, "approver")
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Approvals"
    ).click()
    inbox = page.locator("#inbox")
    inbox.get_by_role("link", name="Big order").click()
    expect(page.get_by_text("Customer is waiting")).to_be_visible()
    page.get_by_label("Comment (required to reject)").fill("Within budget")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_text("You approved the request.")).to_be_visible()
    expect(page.locator("#inbox")).to_contain_text("Nothing is waiting for you.")
    site.shot(page, "approval-inbox")

    _sign_in_as(site, page, t, "contract_manager")
    page.goto(site.url + f"/contracts/{contract_id}")
    expect(page.get_by_text("Approved in its current form")).to_be_visible()
    page.get_by_role("button", name="Send for signing").click()
    expect(page.locator("[data-status]").first).to_have_text("Sent")
    assert platform.contracts.get(t.org_id, contract_id).status == "sent"
    assert "pvs_" not in page.content()


def test_an_admin_acknowledges_an_alert(site: Site, page: Page) -> None:  # noqa: F811
    platform = site.inst.platform
    t = _team(site, "alert")
    raised = platform.alerts.raise_alert(
        "integrity.blob-mismatch",
        severity="critical",
        title="Document changed on disk",
        details={"contract_id": str(uuid.uuid4()), "version": 1},
        org_id=t.org_id,
    )
    _sign_in_as(site, page, t, "admin")
    page.goto(site.url + "/organisation")
    page.locator(".subnav").get_by_role("link", name="Alerts").click()
    page.get_by_role("link", name="Document changed on disk").click()
    page.wait_for_url(site.url + f"/organisation/alerts/{raised.alert.id}")
    handle = page.locator("#handle form").first
    handle.get_by_label("Note").fill("Restoring from backup")
    handle.get_by_role("button", name="Acknowledge: someone is on it").click()
    expect(page.get_by_text("The alert is acknowledged.")).to_be_visible()
    expect(page.locator("#alert [data-status]")).to_have_text("Acknowledged")
    detail = platform.alerts.get_alert(t.principal("admin"), raised.alert.id)
    assert detail.alert.status == "acknowledged" and detail.alert.note == "Restoring from backup"
    site.shot(page, "alert-acknowledged")
