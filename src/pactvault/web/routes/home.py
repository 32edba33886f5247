"""The signed-in home page, the language switch, and placeholders for the pages that come next."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pactvault.api.deps import PlatformDep
from pactvault.store.models import Organisation
from pactvault.web.i18n import LANG_COOKIE, supported
from pactvault.web.pages import PageRoute, redirect, render
from pactvault.web.security import HOME, PAGE_PUBLIC, SignedIn, safe_next, set_cookie

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LANG_COOKIE_AGE = 365 * 24 * 3600

#: The sections the navigation shows (home page tiles).
SECTIONS = ("contracts", "approvals", "organisation")
#: Sections that land on a "coming next" page until they are built. Whoever builds one takes it
#: out of here and adds the real router (contracts, approvals, organisation: ``web/routes``).
COMING_NEXT: tuple[str, ...] = ()


@router.get("/", dependencies=[PAGE_PUBLIC])
def root(request: Request) -> Response:
    return redirect(request, HOME)


@router.get("/lang/{code}", dependencies=[PAGE_PUBLIC])
def switch_language(
    code: str,
    request: Request,
    platform: PlatformDep,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """Remember the chosen language (a preference, not a credential: SameSite=Lax so that it
    applies when arriving from an emailed link too) and go back to the page."""
    response = redirect(request, safe_next(next))
    language = supported(code)
    if language is not None:
        set_cookie(
            response, platform, LANG_COOKIE, language, max_age=LANG_COOKIE_AGE, samesite="lax"
        )
    return response


@router.get("/home")
def home(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    principal = who.principal
    assert principal.user_id is not None
    me = platform.people.get_member(principal, principal.user_id)
    with platform.db.read() as session:
        org = session.get(Organisation, principal.org_id)
        org_name = org.name if org is not None else ""
    status = platform.mfa.status(principal)
    return render(
        request,
        "home.html",
        {
            "member": me,
            "org_name": org_name,
            "has_second_factor": bool(status.methods),
            "sections": SECTIONS,
        },
    )


def _coming_next(section: str):  # type: ignore[no-untyped-def]
    def page(request: Request, who: SignedIn) -> Response:
        return render(request, "coming_next.html", {"section": section})

    page.__name__ = f"{section}_coming_next"
    return page


for _section in COMING_NEXT:
    router.add_api_route(f"/{_section}", _coming_next(_section), methods=["GET"])
