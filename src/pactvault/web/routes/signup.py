"""Joining: accepting an organisation's invitation, and creating the first organisation.

The invitation link is ``/invitations/accept#pvinv_…``: the token rides in the fragment, which
browsers never send to a server, so it stays out of our logs, proxies and ``Referer`` headers.
``static/js/invitation.js`` moves it into the form (and into ``sessionStorage`` across a
sign-in, for people who already have an account); without JavaScript the page asks for it.

The first organisation: the one-time setup token printed at first start creates the
organisation and its administrator API token (``TokenService.complete_setup``, as ``POST
/api/v1/setup``); the page then invites the person setting up as its owner, so that their account
is created by the usual invitation (proving their email address) and not by the setup token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from pactvault.api.deps import PlatformDep, client_actor
from pactvault.errors import PactvaultError
from pactvault.identity.members import normalise_email
from pactvault.identity.people import NewAccount
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, redirect, render, translator
from pactvault.web.security import PAGE_PUBLIC, SignedIn

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ACCEPT = "/invitations/accept"
TokenField = Annotated[str, Form(max_length=200)]


# -- invitations ----------------------------------------------------------------------------------


@router.get(ACCEPT, dependencies=[PAGE_PUBLIC])
def invitation_page(request: Request) -> Response:
    if getattr(request.state, "caller", None) is not None:
        # Signed in: the page offers "join with this account" (it posts to the signed-in route,
        # so its forms carry the session's CSRF token).
        return redirect(request, ACCEPT + "/signed-in")
    return render(request, "invitation.html", {"error": None, "display_name": ""})


@router.post(ACCEPT, dependencies=[PAGE_PUBLIC])
def accept_with_new_account(
    request: Request,
    platform: PlatformDep,
    token: TokenField,
    display_name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    repeat_password: Annotated[str, Form(max_length=1024)],
) -> Response:
    t = translator(request)
    error: str | None = None
    if password != repeat_password:
        error, status = t("errors.passwords_differ"), 422
    else:
        try:
            platform.people.accept_invitation(
                token.strip(),
                client_actor(request),
                account=NewAccount(display_name, password),
            )
        except PactvaultError as exc:
            error, status = error_message(exc, t), exc.status
    if error is not None:
        return render(
            request,
            "invitation.html",
            {"error": error, "display_name": display_name},
            status=status,
        )
    return redirect(request, "/sign-in", flash="flash.account_created")


@router.get(ACCEPT + "/signed-in")
def invitation_page_signed_in(request: Request, who: SignedIn) -> Response:
    return render(request, "invitation_member.html", {"error": None})


@router.post(ACCEPT + "/signed-in")
def accept_as_member(
    request: Request, who: SignedIn, platform: PlatformDep, token: TokenField
) -> Response:
    """An existing account joins: the token alone never unlocks an account, the session does."""
    try:
        platform.people.accept_invitation(
            token.strip(), client_actor(request), principal=who.principal
        )
    except PactvaultError as exc:
        return render(
            request,
            "invitation_member.html",
            {"error": error_message(exc, translator(request))},
            status=exc.status,
        )
    return redirect(request, "/home", flash="flash.invitation_accepted")


# -- the first organisation -----------------------------------------------------------------------


@router.get("/setup", dependencies=[PAGE_PUBLIC])
def setup_page(request: Request) -> Response:
    return render(request, "setup.html", {"error": None, "organisation_name": "", "email": ""})


@router.post("/setup", dependencies=[PAGE_PUBLIC])
def complete_setup(
    request: Request,
    platform: PlatformDep,
    setup_token: TokenField,
    organisation_name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
) -> Response:
    t = translator(request)
    values = {"organisation_name": organisation_name, "email": email}
    address = normalise_email(email)
    local, at, domain = address.partition("@")
    if not (local and at and "." in domain):
        # Checked before the token is spent: a typo must not leave an organisation without owner.
        return render(
            request, "setup.html", {"error": t("errors.email_invalid"), **values}, status=422
        )
    try:
        issued = platform.tokens.complete_setup(
            setup_token.strip(), organisation_name, client_actor(request)
        )
    except PactvaultError as exc:
        return render(
            request, "setup.html", {"error": error_message(exc, t), **values}, status=exc.status
        )
    # The organisation exists now; its admin token invites the person setting up as owner.
    invite_error = None
    try:
        admin = platform.tokens.authenticate(issued.token)
        platform.people.invite(admin, address, "owner")
    except PactvaultError as exc:
        invite_error = error_message(exc, t)
    return render(
        request,
        "setup_done.html",
        {
            "api_token": issued.token,
            "email": address,
            "invite_error": invite_error,
            "outbox": None if platform.settings.smtp_host else str(platform.settings.outbox_dir),
        },
        status=201,
    )
