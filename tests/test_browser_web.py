"""The pages in a real browser: Debian's Chromium driven by Playwright, against a real server.

The module starts uvicorn on a loopback port with a fresh data directory (public URL
``http://localhost:<port>``, so passkeys work: WebAuthn refuses bare IP addresses) and one
headless Chromium. Every page a test opens is watched: a console error, an uncaught exception or
a Content-Security-Policy violation fails the test. Screenshots are the test artefacts:
they go to ``$PACTVAULT_TEST_ARTIFACTS/web/<test module>/`` (default: ``test-artifacts/`` in the
checkout, ignored by git), so a CI run leaves them for a person to look at.

A missing Chromium fails the module with a clear message: these tests are not skipped.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from identity_kit import CLIENT as _CLIENT
from identity_kit import PASSWORD
from pactvault.api.app import create_app
from web_kit import Instance, instance, totp_code

CHROMIUM = "/usr/bin/chromium"
#: Where screenshots are kept when $PACTVAULT_TEST_ARTIFACTS is not set: the checkout, not /tmp.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@dataclass
class Site:
    inst: Instance
    url: str
    browser: Browser
    shots: Path
    problems: list[str] = field(default_factory=list)

    def context(self, **options: object) -> BrowserContext:
        context = self.browser.new_context(locale="en-US", **options)  # type: ignore[arg-type]
        context.set_default_timeout(10_000)
        return context

    def watch(self, page: Page) -> Page:
        """Collect console errors, page errors and CSP violations of ``page``."""

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" or "Content Security Policy" in message.text:
                self.problems.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        return page

    def new_page(self, context: BrowserContext) -> Page:
        page = self.watch(context.new_page())
        # CSP violations also raise an event in the page: report it to the console as an error.
        page.add_init_script(path=str(Path(__file__).parent / "fixtures" / "csp_watch.js"))
        return page

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium package "
            "(`scripts/bootstrap.sh test` installs it)",
            pytrace=False,
        )
    port = _free_port()
    artifacts = os.environ.get("PACTVAULT_TEST_ARTIFACTS") or ARTIFACTS
    shots = Path(artifacts) / "web" / request.module.__name__
    shots.mkdir(parents=True, exist_ok=True)
    with instance(
        tmp_path_factory.mktemp("browser"), public_url=f"http://localhost:{port}"
    ) as inst:
        app = create_app(inst.platform, maintenance_interval=3600)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
                )
                try:
                    yield Site(inst, f"http://localhost:{port}", browser, shots)
                finally:
                    browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def page(site: Site) -> Iterator[Page]:
    context = site.context()
    site.problems.clear()
    try:
        yield site.new_page(context)
    finally:
        context.close()
    assert not site.problems, "the browser reported problems:\n" + "\n".join(site.problems)


def sign_in(site: Site, page: Page, email: str) -> None:
    page.goto(site.url + "/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_totp_enrolment_sign_out_and_sign_in_with_the_second_step(site: Site, page: Page) -> None:
    email = site.inst.organisation()
    sign_in(site, page, email)
    page.wait_for_url(site.url + "/home")
    expect(page.get_by_role("heading", name="Hello, Olive")).to_be_visible()
    page.get_by_role("link", name="Account security").first.click()
    page.get_by_role("button", name="Add an authenticator app").click()
    qr = page.locator("img.qr")
    qr.wait_for()
    # The QR code is an image from its own address: it must actually load (CSP, cookie, type).
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    site.shot(page, "totp-setup")
    key = page.locator("[data-totp-secret]").get_attribute("data-totp-secret")
    assert key and re.fullmatch(r"[A-Z2-7]{32}", key)
    import base64

    secret = base64.b32decode(key + "=" * (-len(key) % 8))
    page.get_by_label("Code from the app").fill(totp_code(secret))
    page.get_by_role("button", name="Confirm").click()
    codes = page.locator("[data-recovery-codes] code")
    codes.first.wait_for()
    assert codes.count() == 10
    page.get_by_role("link", name="I have saved them").click()
    page.wait_for_url(site.url + "/account/security")
    expect(page.get_by_text("A second factor protects your account.")).to_be_visible()

    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url(site.url + "/sign-in")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    sign_in(site, page, email)
    page.wait_for_url(site.url + "/sign-in/verify")
    assert "pvmfa_" not in page.url
    page.get_by_label("6-digit code from your app").fill(totp_code(secret, steps_ahead=1))
    page.locator("form:has(input[value=totp])").get_by_role("button", name="Continue").click()
    page.wait_for_url(site.url + "/home")
    expect(page.get_by_role("heading", name="Hello, Olive")).to_be_visible()


def test_switching_to_chinese(site: Site, page: Page) -> None:
    page.goto(site.url + "/sign-in")
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert page.url == site.url + "/sign-in"
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    expect(page.get_by_label("电子邮箱")).to_be_visible()
    site.shot(page, "sign-in-zh-CN")
    page.get_by_role("link", name="验证文件").first.click()
    expect(page.get_by_role("heading", name="验证已签名的文件")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Verify a signed document")).to_be_visible()
    assert page.url == site.url + "/verify"


def test_the_verify_page_checks_a_signed_pdf(site: Site, page: Page, tmp_path: Path) -> None:
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(site.inst.signed_pdf("Zhang San 张三", "Bob Li"))
    page.goto(site.url + "/verify")
    # Choosing the file is enough: verify.js submits it, htmx swaps in the result.
    page.locator("[data-dropzone-input]").set_input_files(str(signed))
    result = page.locator('#verify-result [data-verdict="valid"]')
    result.wait_for()
    assert page.url == site.url + "/verify"  # no page load: only the result changed
    text = result.inner_text()
    assert "Every signature is valid" in text
    assert "Zhang San 张三" in text and "Bob Li" in text and "UTC" in text
    assert result.locator("[data-signature]").count() == 3
    site.shot(page, "verify-valid")


def test_sign_in_on_a_phone_sized_screen(site: Site) -> None:
    email = site.inst.organisation()
    context = site.context(
        viewport={"width": 375, "height": 667},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    site.problems.clear()
    try:
        page = site.new_page(context)
        page.goto(site.url + "/sign-in")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the sign-in page scrolls sideways on a phone ({width}px)"
        button = page.get_by_role("button", name="Sign in")
        box = button.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["height"] >= 44
        site.shot(page, "sign-in-phone")
        page.get_by_label("Email address").tap()
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        button.tap()
        page.wait_for_url(site.url + "/home")
        for path in ("/home", "/account/security", "/verify"):
            page.goto(site.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} scrolls sideways on a phone ({width}px)"
            site.shot(page, "phone" + path.replace("/", "-"))
    finally:
        context.close()
    assert not site.problems, "the browser reported problems:\n" + "\n".join(site.problems)


def test_passkey_registered_then_used_to_sign_in(site: Site, page: Page) -> None:
    email = site.inst.organisation()
    client = page.context.new_cdp_session(page)
    client.send("WebAuthn.enable")
    client.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    sign_in(site, page, email)
    page.wait_for_url(site.url + "/home")
    page.goto(site.url + "/account/security")
    form = page.locator("[data-passkey-create]")
    expect(form).to_be_visible()  # shown by passkeys.js, since the browser supports passkeys
    form.get_by_label("Passkey name").fill("Laptop")
    form.get_by_role("button", name="Add a passkey").click()
    codes = page.locator("[data-recovery-codes] code")
    codes.first.wait_for()
    assert codes.count() == 10
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator("[data-passkey-list]").get_by_text("Laptop")).to_be_visible()

    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url(site.url + "/sign-in")
    sign_in(site, page, email)
    page.wait_for_url(site.url + "/sign-in/verify")
    page.get_by_role("button", name="Use my passkey").click()
    page.wait_for_url(site.url + "/home")
    expect(page.get_by_role("heading", name="Hello, Olive")).to_be_visible()


def test_accepting_an_invitation_from_its_link(site: Site, page: Page) -> None:
    platform = site.inst.platform
    owner_email = site.inst.organisation()
    issued = platform.login.login(owner_email, PASSWORD, _CLIENT)
    owner = platform.sessions.authenticate(issued.token)  # type: ignore[union-attr]
    email = f"invited{next(site.inst.counter)}@acme.test"
    platform.people.invite(owner, email, "member")
    link = re.search(
        r"https?://\S+", next(m for m in site.inst.mailer.messages if m.to == email).body
    )
    assert link and "#pvinv_" in link.group(0)
    page.goto(link.group(0))
    # invitation.js took the token from the fragment into the form, and out of the address bar.
    expect(page.get_by_label("Invitation code")).to_be_hidden()
    assert "#" not in page.url and "pvinv_" not in page.url
    page.get_by_label("Your name").fill("Ivy")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the new password").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url(site.url + "/sign-in")
    expect(page.get_by_text("Your account is ready.")).to_be_visible()
    sign_in(site, page, email)
    page.wait_for_url(site.url + "/home")
    expect(page.get_by_role("heading", name="Hello, Ivy")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('pv-invitation')") is None
