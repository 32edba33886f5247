"""Sending and signing in a real browser: sender → two signers (one on a phone) → verify page.

The same harness as ``test_browser_web.py`` (uvicorn on loopback, Debian's Chromium through
Playwright; a console error, an uncaught exception or a CSP violation fails the test), with a
server of its own. The sender drags the fields onto the page rendered by PDF.js; each signer
opens the emailed link (read from the instance's ``MemoryMailer``), passes the emailed code,
scrolls the document to its end, draws a signature — the second with a finger, on a 375×667
phone, in Chinese — and signs; the public verify page then shows every signature valid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

import test_browser_web as harness
from flows import SENDER, invitation_tokens, make_org
from pactvault.audit.journal import Actor
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.store.models import Contract
from pdf_helpers import A4, make_pdf

site = harness.site  # the module-scoped server and browser (a fresh one for this module)
Site = harness.Site
#: Signing is a PAdES signature with a timestamp (and, for the last signer, the completion seal):
#: well under a second alone, much longer on a CI machine busy with other suites.
SIGNING_TIMEOUT = 120_000


def _drag(page: Page, source: Any, target: Any, dx: float, dy: float) -> None:
    """Drag ``source`` with the mouse and drop it at (dx, dy) inside ``target``."""
    start = source.bounding_box()
    box = target.bounding_box()
    assert start and box
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + dx / 2, box["y"] + dy / 2, steps=5)
    page.mouse.move(box["x"] + dx, box["y"] + dy, steps=5)
    page.mouse.up()


def _invitation_link(site: Site, email: str) -> str:
    for message in reversed(site.inst.mailer.messages):
        if message.to == email and "Signing-Token" in dict(message.tags):
            found = re.search(r"https?://\S+/sign#\S+", message.body)
            assert found
            return found.group(0)
    raise AssertionError(f"no signing invitation mailed to {email}")


def _code_for(site: Site, email: str) -> str:
    for message in reversed(site.inst.mailer.messages):
        found = re.search(r" is (\d{6,8})\.", message.body)
        if message.to == email and found:
            return found.group(1)
    raise AssertionError(f"no signing code mailed to {email}")


def _check(site: Site) -> None:
    assert not site.problems, "the browser reported problems:\n" + "\n".join(site.problems)


def _phone(site: Site) -> BrowserContext:
    context = site.browser.new_context(
        locale="zh-CN",
        viewport={"width": 375, "height": 667},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    context.set_default_timeout(15_000)
    return context


def _finger_stroke(page: Page, canvas: Any) -> None:
    """Draw with a finger: real touch events (Chrome DevTools Protocol), not a mouse."""
    box = canvas.bounding_box()
    assert box
    client = page.context.new_cdp_session(page)
    points = [
        (
            box["x"] + box["width"] * (0.15 + 0.07 * i),
            box["y"] + box["height"] * (0.6 - 0.05 * (i % 4)),
        )
        for i in range(10)
    ]
    x, y = points[0]
    client.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]}
    )
    for x, y in points[1:]:
        client.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    # Rest the finger before lifting it: a lift at speed starts a fling, and Chromium swallows
    # the next tap as the one that stops the fling — the sign button would then not react.
    page.wait_for_timeout(150)
    client.send(
        "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
    )
    client.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def _read_to_the_end(page: Page) -> None:
    pages = page.locator("[data-sign-viewer] .pdf-page")
    expect(pages.first).to_be_visible()
    for index in range(pages.count()):
        pages.nth(index).scroll_into_view_if_needed()
        page.wait_for_timeout(150)
    expect(page.locator("[data-sign-viewer]")).to_have_attribute("data-read", "true")


def test_send_then_two_signers_then_the_verify_page(site: Site, tmp_path: Path) -> None:
    inst = site.inst
    owner = inst.organisation()
    document = tmp_path / "lease.pdf"
    document.write_bytes(make_pdf([A4, A4, A4], text="Lease agreement"))
    first, second = "zhang.san@example.test", "li.si@example.test"

    # -- the sender ----------------------------------------------------------------------------
    site.problems.clear()
    context = site.context()
    try:
        page = site.new_page(context)
        harness.sign_in(site, page, owner)
        page.wait_for_url(site.url + "/home")
        page.goto(site.url + "/contracts/new")
        page.locator("[data-file]").set_input_files(str(document))
        page.locator("[data-pages] .pdf-page").first.scroll_into_view_if_needed()
        expect(page.locator("[data-pages] .pdf-page.drawn").first).to_be_visible()
        assert page.locator("[data-pages] .pdf-page").count() == 3
        rows = page.locator("[data-signer-row]")
        rows.nth(0).get_by_label("Name", exact=True).fill("Zhang San 张三")
        rows.nth(0).get_by_label("Email address", exact=True).fill(first)
        rows.nth(1).get_by_label("Name", exact=True).fill("Li Si")
        rows.nth(1).get_by_label("Email address", exact=True).fill(second)
        rows.nth(1).get_by_label("Signing order").fill("2")
        page.get_by_label("Title").fill("Lease 租赁合同")

        last = page.locator("[data-pages] .pdf-page").last
        last.evaluate("el => el.scrollIntoView({block: 'start'})")
        tools = page.locator("[data-tools]")
        tools.get_by_label("Fields for").select_option(index=0)
        _drag(page, tools.locator("[data-tool=signature]"), last, 150, 520)
        _drag(page, tools.locator("[data-tool=text]"), last, 150, 390)
        page.get_by_label("What to type (shown to the signer)").fill("Address")
        tools.get_by_label("Fields for").select_option(index=1)
        _drag(page, tools.locator("[data-tool=signature]"), last, 450, 520)
        _drag(page, tools.locator("[data-tool=date]"), last, 450, 390)
        fields = page.locator("[data-pages] .pdf-field")
        assert fields.count() == 4
        site.shot(page, "send-editor")
        page.get_by_role("button", name="Send for signing").click()
        page.wait_for_url(re.compile(r".*/contracts/[0-9a-f-]+/sent$"))
        expect(page.get_by_role("heading", name="Sent for signing")).to_be_visible()
        site.shot(page, "send-done")
    finally:
        context.close()
    _check(site)

    contract_id = page.url.split("/")[-2]
    with inst.platform.db.read() as session:
        contract = session.get(Contract, contract_id)
        assert contract is not None and contract.status == "sent"
        zhang, li = sorted(contract.signers, key=lambda s: s.routing_order)
        # Dropped on the third page where the mouse let go (A4 is 595 × 842 pt).
        assert zhang.field_page == 2 and li.field_page == 2
        x1, y1, x2, y2 = zhang.field_box
        assert 0 <= x1 < x2 <= 595 and 0 <= y1 < y2 <= 842 and x2 < li.field_box[0]
        assert [f["kind"] for f in zhang.extra_fields] == ["text"]
        assert zhang.extra_fields[0]["label"] == "Address"
        assert [f["kind"] for f in li.extra_fields] == ["date"]

    # -- signer 1, on a laptop ------------------------------------------------------------------
    site.problems.clear()
    context = site.context()
    try:
        page = site.new_page(context)
        link = _invitation_link(site, first)
        page.goto(link)
        page.wait_for_url(site.url + "/sign/contract")
        assert "#" not in page.url and "pvs_" not in page.url
        expect(page.get_by_role("heading", name="Lease 租赁合同")).to_be_visible()
        page.get_by_role("button", name="Email me a code").click()
        expect(page.get_by_label("Code")).to_be_visible()
        page.get_by_label("Code").fill(_code_for(site, first))
        page.get_by_role("button", name="Verify").click()
        button = page.locator("[data-sign-button]")
        expect(button).to_be_disabled()
        _read_to_the_end(page)
        expect(button).to_be_enabled()
        page.get_by_label("Address").fill("上海市浦东新区世纪大道 100 号")
        pad = page.locator("[data-pad]")
        pad.scroll_into_view_if_needed()
        box = pad.bounding_box()
        assert box
        page.mouse.move(box["x"] + 40, box["y"] + box["height"] * 0.6)
        page.mouse.down()
        for i in range(12):
            page.mouse.move(
                box["x"] + 60 + i * 25, box["y"] + box["height"] * (0.3 + 0.05 * (i % 5))
            )
        page.mouse.up()
        page.locator("input[name=consent]").check()
        site.shot(page, "sign-laptop")
        with page.expect_response("**/sign/sign", timeout=SIGNING_TIMEOUT):
            button.click()
        expect(page.get_by_role("heading", name="You have signed")).to_be_visible()
        assert page.locator("a[href='/sign/download']").count() == 1
    finally:
        context.close()
    _check(site)

    # -- signer 2, on a phone, in Chinese ----------------------------------------------------------
    site.problems.clear()
    context = _phone(site)
    try:
        page = site.new_page(context)
        page.goto(_invitation_link(site, second))
        page.wait_for_url(site.url + "/sign/contract")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        page.get_by_role("button", name="通过邮件发送验证码").tap()
        expect(page.get_by_label("验证码")).to_be_visible()
        page.get_by_label("验证码").fill(_code_for(site, second))
        page.get_by_role("button", name="验证").tap()
        _read_to_the_end(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the signing page scrolls sideways on a phone ({width}px)"
        pad = page.locator("[data-pad]")
        pad.scroll_into_view_if_needed()
        _finger_stroke(page, pad)
        page.locator("input[name=consent]").check()
        site.shot(page, "sign-phone")
        with page.expect_response("**/sign/sign", timeout=SIGNING_TIMEOUT):
            page.locator("[data-sign-button]").tap()
        expect(page.get_by_role("heading", name="您已签署")).to_be_visible()
        expect(page.get_by_text("各方均已签署")).to_be_visible()
        site.shot(page, "sign-phone-done")
    finally:
        context.close()
    _check(site)

    # -- anyone: the public verify page ------------------------------------------------------------
    with inst.platform.db.read() as session:
        assert session.get(Contract, contract_id).status == "completed"  # type: ignore[union-attr]
    org_id = zhang.org_id
    final = inst.platform.contracts.download(Actor.system(), org_id, contract_id)[1]
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(final)
    site.problems.clear()
    context = site.context()
    try:
        page = site.new_page(context)
        page.goto(site.url + "/verify")
        page.locator("[data-dropzone-input]").set_input_files(str(signed))
        result = page.locator('#verify-result [data-verdict="valid"]')
        result.wait_for()
        text = result.inner_text()
        assert "Every signature is valid" in text
        assert "Zhang San 张三" in text and "Li Si" in text
        assert result.locator("[data-signature]").count() == 3  # two signers + completion seal
        site.shot(page, "send-sign-verified")
    finally:
        context.close()
    _check(site)


def test_a_typed_signature_in_the_handwriting_face(site: Site) -> None:
    """Typing renders the name — Chinese included — in the vendored handwriting face (loaded
    from /static under the CSP), and that picture is what gets signed."""
    platform = site.inst.platform
    org_id = make_org(platform, "Typed Ltd")
    contract = platform.contracts.create(
        SENDER,
        org_id,
        title="Typed",
        pdf=sample_pdf(),
        signers=[SignerSpec("张三", "typed@example.test")],
    )
    platform.contracts.send(SENDER, org_id, contract.id)
    assert invitation_tokens(site.inst.mailer, contract.id)
    site.problems.clear()
    context = site.context()
    try:
        page = site.new_page(context)
        page.goto(_invitation_link(site, "typed@example.test"))
        page.get_by_role("button", name="Email me a code").click()
        expect(page.get_by_label("Code")).to_be_visible()
        page.get_by_label("Code").fill(_code_for(site, "typed@example.test"))
        page.get_by_role("button", name="Verify").click()
        _read_to_the_end(page)
        page.get_by_role("tab", name="Type").click()
        typed = page.get_by_label("Your name as you sign it")
        expect(typed).to_have_value("张三")
        typed.fill("张三 Zhang")
        page.wait_for_function(
            "text => document.fonts.check('48px \"Ma Shan Zheng\"', text)", arg="张三 Zhang"
        )
        inked = page.evaluate(
            """() => {
              const c = document.querySelector('[data-typed-preview]');
              const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0;
              for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
              return n;
            }"""
        )
        assert inked > 500, "the typed name was not drawn"
        page.locator("input[name=consent]").check()
        site.shot(page, "sign-typed")
        with page.expect_response("**/sign/sign", timeout=SIGNING_TIMEOUT):
            page.locator("[data-sign-button]").click()
        expect(page.get_by_role("heading", name="You have signed")).to_be_visible()
    finally:
        context.close()
    _check(site)
    assert platform.contracts.get(org_id, contract.id).status == "completed"
