"""The page routes' matrix: every route declares one rule, and each rule holds over HTTP.

Read from the route table like the API's authorisation matrix (``test_api_authorization.py``):
a page route without exactly one ``PageRule`` fails here, and so does one that answers an
anonymous visitor with anything but the sign-in redirect, or takes a form without the right
CSRF token (the refusal must be audited, like the API's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from pactvault.api.app import ROUTERS
from pactvault.api.deps import SESSION_COOKIE, rule_of
from pactvault.store.models import AuditEvent
from pactvault.web import WEB_ROUTERS
from pactvault.web.pages import PageRoute
from pactvault.web.security import PageRule
from web_kit import Instance, Visitor, instance, visitor


def _dependencies(dependant) -> Iterator[object]:  # type: ignore[no-untyped-def]
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependencies(sub)


def page_routes() -> list[tuple[str, str, PageRule | None, APIRoute]]:
    out = []
    for route in (r for module in WEB_ROUTERS for r in module.router.routes):
        assert isinstance(route, APIRoute)
        rules = [r for d in _dependencies(route.dependant) if (r := rule_of(d)) is not None]
        rule = rules[0] if len(rules) == 1 and isinstance(rules[0], PageRule) else None
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, route.path, rule, route))
    return out


ROUTES = page_routes()
OPEN = ("public", "signer")  # no account needed (signer pages: the signing link's cookie)
GUARDED = [(m, p) for m, p, rule, _ in ROUTES if rule is not None and rule.kind not in OPEN]
UNSAFE_PUBLIC = [(m, p) for m, p, rule, _ in ROUTES if rule and rule.kind in OPEN and m != "GET"]
SIGNER = [(m, p) for m, p, rule, _ in ROUTES if rule and rule.kind == "signer"]
UNSAFE_SIGNED_IN = [(m, p) for m, p in GUARDED if m != "GET"]


def test_every_page_route_declares_exactly_one_page_rule() -> None:
    missing = [f"{m} {p}" for m, p, rule, _ in ROUTES if rule is None]
    assert not missing, f"page routes without exactly one PageRule: {missing}"


def test_every_page_route_answers_errors_with_pages() -> None:
    plain = [route.path for _, _, _, route in ROUTES if not isinstance(route, PageRoute)]
    assert not plain, f"page routes that would answer errors with JSON: {plain}"


def test_pages_and_api_do_not_share_paths() -> None:
    api = {(m, r.path) for module in ROUTERS for r in module.router.routes for m in r.methods}
    pages = {(m, p) for m, p, _, _ in ROUTES}
    assert not api & pages
    assert not [p for _, p in pages if p.startswith("/api/")]


def test_the_matrix_covers_something() -> None:
    # A guard against an empty route table making every test below vacuous.
    assert len(GUARDED) >= 15 and len(UNSAFE_PUBLIC) >= 5 and len(UNSAFE_SIGNED_IN) >= 10


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, Visitor]]:
    with instance(tmp_path_factory.mktemp("web-routes")) as inst:
        yield from ((inst, v) for v in visitor(inst.platform))


def _url(path: str) -> str:
    return path.replace("{", "").replace("}", "")


def _denials(inst: Instance) -> int:
    with inst.platform.db.read() as s:
        return s.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "access.denied")
        ).scalar_one()


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_anonymous_visitors_are_sent_to_sign_in(
    site: tuple[Instance, Visitor], method: str, path: str
) -> None:
    _, web = site
    web.client.cookies.clear()
    response = web.client.request(method, _url(path), follow_redirects=False)
    assert response.status_code == 303, f"{method} {path}: {response.status_code}"
    location = urlsplit(response.headers["location"])
    assert location.path == "/sign-in" and not location.netloc
    back = parse_qs(location.query).get("next")
    if method == "GET" and _url(path) != "/home":
        assert back == [_url(path)], "the sign-in page must bring the visitor back"
    else:
        assert back is None  # a form is not replayed after signing in


@pytest.mark.parametrize(("method", "path"), UNSAFE_PUBLIC)
def test_public_forms_need_the_form_token(
    site: tuple[Instance, Visitor], method: str, path: str
) -> None:
    inst, web = site
    web.client.cookies.clear()
    web.get("/sign-in")  # has a form cookie now, but the request below does not send the token
    before = _denials(inst)
    response = web.client.request(
        method, _url(path), data={"csrf_token": "0" * 64}, headers=web.headers()
    )
    assert response.status_code == 403
    assert "form has expired" in response.text
    assert _denials(inst) == before + 1, "the refusal was not audited"


@pytest.mark.parametrize(("method", "path"), SIGNER)
def test_signer_pages_need_the_signing_link(
    site: tuple[Instance, Visitor], method: str, path: str
) -> None:
    """Without the cookie that opening a signing link sets, a signer page says to open the
    link again (never the sign-in page: signers need no account), whatever the form token."""
    _, web = site
    web.client.cookies.clear()
    web.get("/sign")
    data = {"csrf_token": web.csrf()} if method != "GET" else None
    response = web.client.request(
        method, _url(path), data=data, headers=web.headers(), follow_redirects=False
    )
    if method == "GET":  # a bookmark or an old tab: back to where a link can be opened
        assert response.status_code == 303 and response.headers["location"] == "/sign?again=1"
        response = web.client.get("/sign?again=1", headers=web.headers())
    else:
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
    assert "Open the signing link from your invitation email again" in response.text


@pytest.mark.parametrize(("method", "path"), UNSAFE_SIGNED_IN)
def test_signed_in_forms_need_the_session_token(
    site: tuple[Instance, Visitor], method: str, path: str
) -> None:
    inst, web = site
    web.client.cookies.clear()
    email = inst.organisation()
    assert web.sign_in(email).status_code == 303
    web.get("/account/security")
    form_token = web.csrf()
    before = _denials(inst)
    for token in ("", "f" * 64):
        data = {"csrf_token": token} if token else {}
        response = web.client.request(method, _url(path), data=data)
        assert response.status_code == 403, f"{method} {path} with {token!r}"
    assert _denials(inst) == before + 2, "every refusal is audited"
    # Still signed in: nothing was done (not even signing out).
    assert web.get("/account/security").status_code == 200
    assert web.client.cookies.get(SESSION_COOKIE)
    assert form_token == web.csrf()


def test_the_form_token_of_one_browser_does_not_work_in_another(
    site: tuple[Instance, Visitor], tmp_path: Path
) -> None:
    inst, web = site
    web.client.cookies.clear()
    web.get("/sign-in")
    stolen = web.csrf()
    web.client.cookies.clear()
    web.get("/verify")  # a fresh form cookie
    email = inst.organisation()
    response = web.post("/sign-in", {"email": email, "password": "x"}, csrf=stolen)
    assert response.status_code == 403
