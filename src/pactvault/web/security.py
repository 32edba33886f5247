"""Who may open a page, CSRF on every form, safe redirects, and the web layer's own cookies.

Pages use the API's session: the ``pv_session`` cookie (HttpOnly, SameSite=Strict) set at sign-in
is the page session too, and its CSRF token (``SessionService.csrf_token``, an HMAC of the session
id) goes into a hidden ``csrf_token`` field of every form — or the ``X-CSRF-Token`` header of a
``fetch`` from our JavaScript modules — and is checked with ``SessionService.verify_csrf``.

Forms shown when there is no session (sign-in, the second step, MFA enrolment, accepting an
invitation, setup, the verify page of an anonymous visitor) carry a *form token* instead: the
HMAC, under a server key, of a random ``pv_form`` cookie (HttpOnly, SameSite=Strict). A
cross-site page can neither read the cookie nor compute the HMAC, and an attacker who manages to
plant a cookie still cannot produce a matching field. Every refusal is audited like the API's
(``access.denied``, action ``csrf``).

Each page route declares exactly one ``PageRule`` (``PAGE_PUBLIC``, ``SignedIn``, ``Enrolling``,
``page_allow(...)``), a subclass of the API's ``Rule`` so the same route-table tests read it.
Unlike the API's rules, a missing or ended session is not a 401 but a redirect (303) to the
sign-in page with ``next=`` the page asked for; ``safe_next`` keeps that a local path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from pactvault.api.deps import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Caller,
    PlatformDep,
    Rule,
    client_actor,
    get_platform,
)
from pactvault.crypto import aead
from pactvault.errors import AuthenticationError, IntegrityError, PermissionDeniedError
from pactvault.identity.principal import Principal
from pactvault.keys.secrets import platform_secret
from pactvault.platform import Platform

CSRF_FIELD = "csrf_token"
FORM_COOKIE = "pv_form"
#: The MFA enrolment grant of a sign-in that must set up a second factor first.
ENROL_COOKIE = "pv_enrol"
#: The second step of a sign-in in progress: challenge, methods, passkey options (sealed).
SIGNIN_COOKIE = "pv_signin"
#: The ``otpauth://`` URI of an authenticator app being added, for the QR code (sealed).
TOTP_COOKIE = "pv_totp"
#: A one-shot notice for the next page (a catalog key under ``flash.``, nothing else).
FLASH_COOKIE = "pv_flash"

HOME = "/home"
SIGN_IN = "/sign-in"
#: The platform secret the web keys derive from (created by ``Platform`` at initialisation).
BASE_SECRET_NAME = "csrf"  # noqa: S105 (the name of a secret, not a secret)


class SignInRequired(Exception):
    """Raised by a page rule: answer with a redirect to the sign-in page."""

    def __init__(self, next_path: str | None, flash: str | None = None) -> None:
        super().__init__("sign in required")
        self.next_path = next_path
        self.flash = flash


class CsrfRefused(PermissionDeniedError):
    """A form without the right CSRF token (already audited when raised)."""


# -- keys and sealed cookies -------------------------------------------------------------------


@dataclass(frozen=True)
class WebKeys:
    """Keys for the web layer's cookies and form tokens, each derived from one 32-byte secret."""

    secret: bytes = field(repr=False)

    def derive(self, label: str) -> bytes:
        return hmac.new(self.secret, b"pactvault web v1\x00" + label.encode(), "sha256").digest()

    def form_token(self, anchor: str) -> str:
        return hmac.new(self.derive("form"), anchor.encode(), hashlib.sha256).hexdigest()

    def seal(self, purpose: str, value: str) -> str:
        sealed = aead.seal(self.derive("cookies"), value.encode(), aad=purpose.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, purpose: str, sealed: str | None) -> str | None:
        if not sealed or len(sealed) > 4096:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
            return aead.open_sealed(self.derive("cookies"), raw, aad=purpose.encode()).decode()
        except (ValueError, IntegrityError):
            return None


def load_web_keys(platform: Platform) -> WebKeys:
    """The web layer's keys, read once when the app is built.

    They are derived (HMAC with a label of their own) from the instance's CSRF secret, which
    ``Platform`` creates at initialisation: several processes starting at once then never race to
    create a secret, and no page view ever writes to the database for one.
    """
    with platform.db.read() as session:
        base = platform_secret(session, platform.keys, BASE_SECRET_NAME)
    return WebKeys(hmac.new(base, b"pactvault web keys v1", hashlib.sha256).digest())


def web_keys(request: Request) -> WebKeys:
    return request.app.state.web_keys  # type: ignore[no-any-return]


def secure_cookies(platform: Platform) -> bool:
    return platform.settings.public_url.lower().startswith("https://")


def set_cookie(
    response: Response,
    platform: Platform,
    name: str,
    value: str,
    *,
    max_age: int | None,
    samesite: str = "strict",
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=secure_cookies(platform),
        httponly=True,
        samesite=samesite,  # type: ignore[arg-type]
    )


def clear_cookie(response: Response, platform: Platform, name: str) -> None:
    response.delete_cookie(
        name, path="/", secure=secure_cookies(platform), httponly=True, samesite="strict"
    )


def seal_json(request: Request, purpose: str, value: dict[str, Any]) -> str:
    return web_keys(request).seal(purpose, json.dumps(value, separators=(",", ":")))


def open_json(request: Request, purpose: str, cookie: str) -> dict[str, Any] | None:
    opened = web_keys(request).open(purpose, request.cookies.get(cookie))
    if opened is None:
        return None
    try:
        value = json.loads(opened)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# -- redirects -----------------------------------------------------------------------------------


def safe_next(value: str | None, default: str = HOME) -> str:
    """``value`` if it is a path on this site, else ``default``: never an open redirect.

    Refused: absolute and scheme-relative URLs (``https://x``, ``//x``), backslashes (browsers
    read ``/\\x`` as ``//x``), control characters and spaces, anything not starting with ``/``.
    """
    if not value or len(value) > 2000 or not value.startswith("/"):
        return default
    if value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return default
    return value


def sign_in_url(next_path: str | None) -> str:
    target = safe_next(next_path, default="")
    return SIGN_IN + (f"?next={quote(target, safe='/')}" if target and target != HOME else "")


def requested_path(request: Request) -> str | None:
    """Where to come back to after signing in: the page itself, for a plain page view."""
    if request.method not in SAFE_METHODS or request.headers.get("hx-request"):
        return None
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


# -- CSRF ----------------------------------------------------------------------------------------


def form_anchor(request: Request) -> str:
    """The ``pv_form`` cookie value for this response, minting one if the browser has none."""
    anchor = getattr(request.state, "form_anchor", None)
    if anchor is None:
        anchor = request.cookies.get(FORM_COOKIE) or ""
        if not (20 <= len(anchor) <= 100):
            anchor = secrets.token_urlsafe(32)
            request.state.new_form_anchor = anchor
        request.state.form_anchor = anchor
    return anchor  # type: ignore[no-any-return]


def csrf_token(request: Request) -> str:
    """The token the forms of this page must carry: the session's, or the form token."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is not None and caller.principal.session_id is not None:
        platform = get_platform(request)
        return platform.sessions.csrf_token(caller.principal.session_id)
    return web_keys(request).form_token(form_anchor(request))


async def presented_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return None
    form: FormData = await request.form()
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def _refuse(platform: Platform, request: Request, reason: str) -> CsrfRefused:
    error = CsrfRefused("this form has expired; reload the page and try again")
    platform.access.record_denial(client_actor(request), "csrf", error, reason=reason)
    return error


async def check_form_token(request: Request, platform: Platform) -> None:
    """For forms without a session: the form token must match the ``pv_form`` cookie."""
    anchor = request.cookies.get(FORM_COOKIE)
    presented = await presented_token(request)
    if not anchor or not presented:
        raise _refuse(platform, request, "missing-form-token")
    if not hmac.compare_digest(web_keys(request).form_token(anchor), presented):
        raise _refuse(platform, request, "wrong-form-token")


async def check_session_token(request: Request, platform: Platform, principal: Principal) -> None:
    assert principal.session_id is not None
    if not platform.sessions.verify_csrf(principal.session_id, await presented_token(request)):
        raise _refuse(platform, request, "wrong-session-token")


# -- page rules ----------------------------------------------------------------------------------


def session_principal(request: Request, platform: Platform) -> Principal | None:
    """The signed-in member behind the session cookie, or ``None`` (an ended session is
    audited like the API's refusals, and its cookie cleared by the redirect that follows)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return platform.sessions.authenticate(cookie)
    except AuthenticationError as exc:
        platform.access.record_denial(client_actor(request), "authenticate", exc)
        request.state.stale_session = True
        return None


@dataclass(frozen=True)
class PageRule(Rule):
    """A page route's access rule; kinds as the API's (``public``, ``authenticated``,
    ``enrolling``, ``permission``) but for browsers: session cookie only (never a bearer token),
    CSRF from the form, and a redirect to the sign-in page instead of a 401.

    ``enrolling``: a signed-in member, or the holder of the enrolment-grant cookie a sign-in left
    (the route itself authenticates the grant, see ``routes/factors.py``).
    """

    async def __call__(self, request: Request, platform: PlatformDep) -> Caller | None:  # type: ignore[override]
        request.state.page_rule = self
        unsafe = request.method not in SAFE_METHODS
        principal = session_principal(request, platform)
        if principal is None:
            if self.kind in ("public", "signer") or (
                self.kind == "enrolling" and request.cookies.get(ENROL_COOKIE)
            ):
                if unsafe:
                    await check_form_token(request, platform)
                return None
            raise SignInRequired(requested_path(request))
        # Signed in (on a public page too, so it shows the member's navigation): the forms of
        # this page carry the session's token, and that is the token checked.
        base = client_actor(request)
        caller = Caller(principal, principal.actor(ip=base.ip, user_agent=base.user_agent))
        request.state.caller = caller
        if unsafe:
            await check_session_token(request, platform, principal)
        if self.kind in ("public", "signer"):
            return None
        if self.kind == "permission" and self.on_object is None:
            self._authorize_any(platform, caller)
        elif self.kind == "permission":
            self._require_reach(platform, caller)
        return caller


PAGE_PUBLIC = Depends(PageRule("public"))
SignedIn = Annotated[Caller, Depends(PageRule("authenticated"))]
Enrolling = Annotated[Caller | None, Depends(PageRule("enrolling"))]


def page_allow(*permissions: str, on_object: str | None = None) -> Any:
    """``Annotated[Caller, page_allow("member.read")]``: for the pages that come next."""
    if not permissions:
        raise ValueError("page_allow() needs at least one permission")
    return Depends(PageRule("permission", tuple(permissions), on_object))
