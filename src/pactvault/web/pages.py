"""Rendering pages, and turning errors into pages rather than problem+json.

``render(request, "name.html", {...})`` renders a template from ``web/templates`` (Jinja2,
autoescaped, strict about undefined names) with what every page needs: ``t`` (the translator of
the request's language), ``lang``, ``csrf_token``, ``caller`` (the signed-in member or ``None``),
``flash`` (a one-shot notice), ``here`` (this page's path) and ``switch_to`` (where the
language switcher comes back to). It also
sets the ``pv_form`` cookie when the page minted a form token.

``PageRoute`` is the route class of every web router: a page that raises is answered with a
page — the sign-in redirect for ``SignInRequired``, a translated error page for service errors,
a validation page for malformed forms — never with the API's JSON. An htmx request gets
``HX-Redirect`` instead of a 303, so the whole page changes rather than a fragment of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Match

from pactvault.api.deps import SESSION_COOKIE, get_platform
from pactvault.errors import PactvaultError
from pactvault.web import i18n
from pactvault.web.messages import error_message
from pactvault.web.security import (
    FLASH_COOKIE,
    FORM_COOKIE,
    CsrfRefused,
    SignInRequired,
    clear_cookie,
    csrf_token,
    set_cookie,
    sign_in_url,
)

log = logging.getLogger("pactvault.web")

environment = Environment(
    loader=PackageLoader("pactvault.web", "templates"),
    autoescape=select_autoescape(["html", "svg"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

FORM_COOKIE_AGE = 12 * 3600
FLASH_PREFIX = "flash."


def language(request: Request) -> str:
    cached = getattr(request.state, "language", None)
    if cached is None:
        cached = i18n.negotiate(
            request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language")
        )
        request.state.language = cached
    return cached  # type: ignore[no-any-return]


def translator(request: Request) -> i18n.Translator:
    return i18n.Translator(language(request))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _flash(request: Request, t: i18n.Translator) -> str | None:
    key = request.cookies.get(FLASH_COOKIE)
    if key and key.startswith(FLASH_PREFIX) and t.has(key):
        return t(key)
    return None


def language_switch_target(request: Request) -> str:
    """Where the language switcher returns to: this page, or for the answer to a form (which
    cannot be fetched again) the nearest page above it, ``/account/security`` for
    ``/account/security/totp/confirm``."""
    if request.method == "GET":
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    path = request.url.path.rstrip("/")
    while path:
        scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            return path
        path = path.rsplit("/", 1)[0]
    return "/"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    t = translator(request)
    platform = get_platform(request)
    flash = _flash(request, t)
    values = {
        "t": t,
        "lang": language(request),
        "languages": i18n.LANGUAGES,
        "caller": getattr(request.state, "caller", None),
        "flash": flash,
        "here": request.url.path,
        "switch_to": language_switch_target(request),
        "passkeys_available": platform.mfa.passkeys is not None,
        **(context or {}),
    }
    values["csrf_token"] = csrf_token(request)  # after the caller is known
    body = environment.get_template(template).render(values)
    response = HTMLResponse(body, status_code=status, headers=headers)
    finish(request, response)
    if flash is not None:
        clear_cookie(response, platform, FLASH_COOKIE)
    return response


def finish(request: Request, response: Response) -> None:
    """Cookies every web response may need: a freshly minted form anchor, an ended session."""
    platform = get_platform(request)
    anchor = getattr(request.state, "new_form_anchor", None)
    if anchor is not None:
        set_cookie(response, platform, FORM_COOKIE, anchor, max_age=FORM_COOKIE_AGE)
    if getattr(request.state, "stale_session", False):
        clear_cookie(response, platform, SESSION_COOKIE)


def redirect(request: Request, url: str, *, flash: str | None = None) -> Response:
    """303 See Other to a local ``url`` (``HX-Redirect`` for htmx), with an optional notice."""
    response: Response
    if is_htmx(request):
        response = Response(status_code=200, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if flash is not None:
        assert flash.startswith(FLASH_PREFIX), "flash notices are catalog keys"
        set_cookie(response, get_platform(request), FLASH_COOKIE, flash, max_age=60)
    finish(request, response)
    return response


def error_page(request: Request, status: int, message: str, **context: Any) -> HTMLResponse:
    template = "_error_fragment.html" if is_htmx(request) else "error.html"
    headers = {"HX-Reswap": "innerHTML"} if is_htmx(request) else None
    return render(
        request,
        template,
        {"status": status, "message": message, **context},
        status=status,
        headers=headers,
    )


class PageRoute(APIRoute):
    """Route class of the web routers: errors become pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                return redirect(request, sign_in_url(exc.next_path), flash=exc.flash)
            except CsrfRefused:
                t = translator(request)
                return error_page(request, 403, t("errors.csrf"))
            except PactvaultError as exc:
                if exc.status >= 500:
                    log.error("page %s failed: %s", request.url.path, exc)
                response = error_page(request, exc.status, error_message(exc, translator(request)))
                response.headers.update(exc.headers())
                return response
            except RequestValidationError:
                return error_page(request, 422, translator(request)("errors.form_invalid"))
            except HTTPException as exc:
                key = {413: "errors.too_large", 415: "errors.form_invalid"}.get(
                    exc.status_code, "errors.invalid_input"
                )
                return error_page(request, exc.status_code, translator(request)(key))

        return page_handler
