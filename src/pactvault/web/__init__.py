"""The web app: server-rendered pages for people, in Simplified Chinese and English.

Pages run on the same services as the API (``request.app.state.platform``, via the API's
``PlatformDep``) and hold no business rules: like ``api/routes``, a page route turns a request
into service calls and the outcome into a template. ``install`` mounts them into the API's
FastAPI application (``api/app.py create_app``), with the static files under ``/static``.

How to add a page (the sending, signing and managing pages build on this):

1. A router module in ``web/routes/`` with ``APIRouter(route_class=PageRoute,
   include_in_schema=False)`` (``pages.PageRoute`` turns errors into pages), added to
   ``WEB_ROUTERS`` below.
2. Exactly one access rule per route, from ``web/security.py``: ``dependencies=[PAGE_PUBLIC]``,
   ``who: SignedIn``, ``who: Annotated[Caller, page_allow("contract.read")]`` (or ``Enrolling``).
   Signed-in pages redirect anonymous visitors to the sign-in page and back. The page-route test
   (``tests/test_web_routes.py``) fails for a route without exactly one rule.
3. Forms: ``method="post"`` with ``{{ csrf_field() }}`` (from ``_macros.html``); the rule checks
   the token before the route runs. ``fetch`` from a module sends it as ``X-CSRF-Token`` (read
   it from ``<meta name="csrf-token">``).
4. Templates in ``web/templates`` extend ``base.html``; every visible string is
   ``t("nav.home")`` (say) with the key in *both* ``locales/zh-CN.json`` and ``locales/en.json``
   (a test compares them and scans templates for literal text). Respond with ``pages.render``
   or ``pages.redirect``; show service errors with ``messages.error_message``.
5. Scripts: ES modules in ``static/js`` loaded with ``<script type="module" src=…>`` — no inline
   scripts, no ``on…=`` attributes, no ``eval`` (the CSP forbids them); strings for scripts go in
   ``data-`` attributes. Progressive enhancement: every page works without JavaScript; htmx
   (``hx-post`` + ``hx-target``) makes it smoother. Third-party files are vendored under
   ``static/vendor/<name>/`` with their licence, never loaded from a CDN.
6. Styles: ``static/css/app.css`` only (no ``style=`` attributes: the CSP has no
   ``unsafe-inline`` for styles either); mobile first, laid out for 375 px and up.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from pactvault.platform import Platform
from pactvault.web.routes import (
    account,
    alerts,
    approvals,
    contracts,
    factors,
    home,
    journal,
    org_review,
    org_rules,
    org_tokens,
    organisation,
    send,
    sign,
    signin,
    signup,
    verify,
)
from pactvault.web.security import load_web_keys

#: Every router of the pages. Kept apart from the API's ``ROUTERS``: page rules redirect rather
#: than answer 401, so the API's authorisation matrix does not apply; ``tests/test_web_routes.py``
#: is their matrix.
#: The managing pages come last: ``/contracts/{contract_id}`` must not shadow a page with a fixed
#: path under ``/contracts`` (``/contracts/new``), and routes match in this order.
WEB_ROUTERS = (
    home,
    signin,
    factors,
    account,
    signup,
    verify,
    send,
    sign,
    organisation,
    org_rules,
    org_review,
    org_tokens,
    alerts,
    journal,
    approvals,
    contracts,
)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_MAX_AGE = 3600


class StaticAssets(StaticFiles):
    """Our own scripts, styles and vendored libraries: public, so they may be cached briefly
    (the security middleware would otherwise mark them ``no-store`` like everything else)."""

    async def get_response(self, path: str, scope: Scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["cache-control"] = f"public, max-age={STATIC_MAX_AGE}"
        return response


def install(app: FastAPI, platform: Platform) -> None:
    """Mount the pages and ``/static`` on the API's application (after its middleware)."""
    app.state.web_keys = load_web_keys(platform)
    for module in WEB_ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticAssets(directory=STATIC_DIR), name="static")
