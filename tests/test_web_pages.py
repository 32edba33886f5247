"""Pages over HTTP: both languages, the language switch, headers, redirects, sign-in answers.

The ``Visitor`` of ``web_kit`` checks every page it sees for untranslated keys (``[[key]]``) and
for the language it asked for, so each test here also covers those pages in that language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import APIRoute

from identity_kit import PASSWORD
from pactvault.api.deps import SESSION_COOKIE
from pactvault.web import WEB_ROUTERS
from pactvault.web.i18n import LANG_COOKIE, from_accept_language, negotiate
from pactvault.web.security import safe_next
from web_kit import Instance, Visitor, instance, visitor

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    with instance(tmp_path_factory.mktemp("web-pages")) as inst:
        yield inst


@pytest.fixture
def web(site: Instance) -> Iterator[Visitor]:
    yield from visitor(site.platform)


def get_pages() -> list[tuple[str, str]]:
    """(path, rule kind) of every page a link can lead to (GET, no path parameters)."""
    out = []
    for route in (r for module in WEB_ROUTERS for r in module.router.routes):
        assert isinstance(route, APIRoute)
        if "GET" in route.methods and "{" not in route.path and not route.path.endswith(".svg"):
            out.append(route.path)
    return sorted(out)


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_page_renders_in_both_languages(site: Instance, web: Visitor, language: str) -> None:
    web.language = language
    email = site.organisation(name="Acme Ltd")  # data in one language only: names are not UI
    seen = []
    for signed_in in (False, True):
        if signed_in:
            assert web.sign_in(email).status_code == 303
        for path in get_pages():
            response = web.get(path, follow=True)
            assert response.status_code == 200, f"{path}: {response.status_code}"
            page = response.text
            assert f'<html lang="{language}">' in page
            # Text outside the language switcher (which names each language in itself).
            text = re.sub(r'<nav class="languages".*?</nav>', "", page, flags=re.S)
            has_chinese = bool(CJK.search(re.sub(r"<[^>]+>", "", text)))
            assert has_chinese == (language == "zh-CN"), f"{path} in {language}"
            seen.append(urlsplit(str(response.url)).path)
    assert {"/sign-in", "/verify", "/home", "/account/security", "/setup"} <= set(seen)


def test_language_comes_from_cookie_then_accept_language_then_default() -> None:
    assert negotiate(None, None) == "zh-CN"
    assert negotiate(None, "fr-FR,fr;q=0.9") == "zh-CN"
    assert negotiate(None, "en-GB,en;q=0.9,zh;q=0.8") == "en"
    assert negotiate(None, "zh-TW;q=0.4, en;q=0.3") == "zh-CN"
    assert negotiate(None, "en;q=0.2, zh-CN;q=0.9") == "zh-CN"
    assert negotiate("en", "zh-CN") == "en"
    assert negotiate("EN", "zh-CN") == "en"
    assert negotiate("klingon", "en") == "en"
    assert from_accept_language("en;q=0, zh;q=0") is None
    assert from_accept_language("en;q=abc") is None


def test_the_language_switch_remembers_the_choice_and_goes_back(web: Visitor) -> None:
    web.language = "zh-CN"
    assert "登录" in web.get("/sign-in").text
    response = web.client.get("/lang/en?next=/verify", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/verify"
    cookie = response.headers["set-cookie"]
    assert f"{LANG_COOKIE}=en" in cookie and "SameSite=lax" in cookie and "HttpOnly" in cookie
    web.language = "en"  # the cookie now outranks the browser's zh-CN
    page = web.client.get("/verify", headers={"Accept-Language": "zh-CN"}).text
    assert '<html lang="en">' in page and "Verify a signed document" in page
    # Every page links to the other language, back to itself.
    assert 'href="/lang/zh-CN?next=/verify"' in page
    # Unknown language: no cookie; a foreign "next": home instead.
    response = web.client.get("/lang/xx?next=https://evil.example/", follow_redirects=False)
    assert response.headers["location"] == "/home"
    assert "set-cookie" not in response.headers


def test_the_language_switch_of_a_form_answer_leads_to_a_page(site: Instance, web: Visitor) -> None:
    web.sign_in(site.organisation())
    web.get("/account/security?x=1")
    assert 'href="/lang/zh-CN?next=/account/security%3Fx%3D1"' in web.page
    web.post("/account/security/totp")  # the answer to a form: no GET at this address
    assert 'href="/lang/zh-CN?next=/account/security"' in web.page
    response = web.get("/lang/zh-CN?next=/account/security")
    assert response.headers["location"] == "/account/security"
    web.language = "zh-CN"
    assert "账户安全" in web.get("/account/security").text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        " /home",
        "javascript:alert(1)",
        "http:/evil.example",
        "/home\r\nSet-Cookie: x=y",
        "evil.example",
        "",
        "/" + "a" * 3000,
    ],
)
def test_next_is_always_a_local_path(target: str) -> None:
    assert safe_next(target) == "/home"


def test_next_keeps_local_paths() -> None:
    assert safe_next("/account/security") == "/account/security"
    assert safe_next("/verify?x=1#y") == "/verify?x=1#y"
    assert safe_next("/%2F%2Fevil.example") == "/%2F%2Fevil.example"  # a path here, not a host


def test_sign_in_returns_to_the_page_asked_for_and_never_elsewhere(
    site: Instance, web: Visitor
) -> None:
    email = site.organisation()
    response = web.get("/account/security")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == "/sign-in?next=/account/security"
    page = web.get(location).text
    assert 'name="next" value="/account/security"' in page
    response = web.post(
        "/sign-in", {"email": email, "password": PASSWORD, "next": "/account/security"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/account/security"
    cookie = response.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    web.client.cookies.clear()
    for evil in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        response = web.sign_in(email, next_path=evil)
        assert response.headers["location"] == "/home", evil
        web.client.cookies.clear()
    # The sign-in page of a signed-in visitor goes straight on (also only locally).
    web.sign_in(email)
    response = web.get("/sign-in?next=//evil.example")
    assert response.status_code == 303 and response.headers["location"] == "/home"


def test_a_failed_sign_in_says_the_same_for_unknown_and_known_accounts(
    site: Instance, web: Visitor
) -> None:
    email = site.organisation()
    wrong = web.sign_in(email, "not-the-password-at-all")
    unknown = web.sign_in("nobody-here@acme.test", "not-the-password-at-all")
    assert wrong.status_code == unknown.status_code == 401
    message = "The email address or password is incorrect."
    assert message in wrong.text and message in unknown.text
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", wrong.text) == strip.sub("", unknown.text)
    assert SESSION_COOKIE not in web.client.cookies


def test_throttled_sign_in_shows_the_wait(tmp_path: Path) -> None:
    with instance(tmp_path) as inst:
        email = inst.organisation()
        for web in visitor(inst.platform):
            statuses = [web.sign_in(email, "wrong-password-x").status_code for _ in range(6)]
            assert statuses[:5] == [401] * 5 and statuses[5] == 429
            response = web.sign_in(email)  # even the right password waits
            assert response.status_code == 429
            wait = int(response.headers["retry-after"])
            assert f"Try again in {wait} seconds." in response.text
            web.language = "zh-CN"
            assert f"请在 {wait} 秒后重试" in web.sign_in(email).text


def test_pages_carry_the_security_headers_and_no_inline_script(
    site: Instance, web: Visitor
) -> None:
    web.sign_in(site.organisation())
    for path in ("/sign-in", "/verify", "/home", "/account/security", "/invitations/accept"):
        response = web.client.get(path)
        headers = response.headers
        csp = headers["content-security-policy"]
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
        assert directives["script-src"] == "script-src 'self'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert directives["frame-ancestors"] == "frame-ancestors 'none'"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert headers["content-type"].startswith("text/html")
        page = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), f"inline script on {path}"
        assert not re.search(r"\son[a-z]+\s*=", page), f"event handler attribute on {path}"
        assert " style=" not in page, f"inline style on {path}"


def test_static_files_are_served_with_their_types_and_cached_briefly(web: Visitor) -> None:
    for path, kind in (
        ("/static/css/app.css", "text/css"),
        ("/static/js/passkeys.js", "text/javascript"),
        ("/static/vendor/htmx/htmx.min.js", "text/javascript"),
        ("/static/img/icon.svg", "image/svg+xml"),
    ):
        response = web.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["cache-control"] == "public, max-age=3600"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert web.client.get("/static/../web/__init__.py").status_code == 404
    assert web.client.get("/static/js/nothing.js").status_code == 404


def test_signing_out_ends_the_session(site: Instance, web: Visitor) -> None:
    web.sign_in(site.organisation())
    web.get("/home")
    response = web.post("/sign-out")
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"
    assert "You are signed out." in web.get("/sign-in").text
    # Even replaying the old cookie does not get back in.
    assert web.get("/home").status_code == 303


def test_an_ended_session_redirects_and_clears_its_cookie(site: Instance, web: Visitor) -> None:
    web.sign_in(site.organisation())
    token = web.client.cookies.get(SESSION_COOKIE)
    principal = site.platform.sessions.authenticate(token)
    site.platform.sessions.sign_out_everywhere(principal)
    response = web.get("/account/security")
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["next"] == ["/account/security"]
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]


def test_home_shows_who_is_signed_in_and_the_navigation(site: Instance, web: Visitor) -> None:
    email = site.organisation(name="Example 公司")
    web.sign_in(email)
    page = web.get("/home").text
    assert "Hello, Olive" in page and email in page and "Example 公司" in page
    for link in ("/contracts", "/approvals", "/organisation", "/account/security", "/verify"):
        assert f'href="{link}"' in page
    assert web.get("/contracts").status_code == 200  # the contract list (web/routes/contracts.py)
    assert "Add a second factor" in page or "second factor" in page
