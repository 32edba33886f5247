"""Adding a second factor: from the account security page, or while enrolling at sign-in.

The same routes serve both people, as the API's ``/me/mfa`` routes do: a signed-in member, or the
holder of the enrolment grant a sign-in left in the ``pv_enrol`` cookie (their organisation
requires a second factor and they have none yet; the grant lets them add one and nothing else).
Afterwards a member goes back to the security page, an enrollee to the enrolment page, whose
"Continue" spends the grant and opens the session.

The authenticator app's QR code is an SVG made here (``segno``) and served from
``…/totp/qr.svg``: the ``otpauth://`` URI it encodes is held, sealed under the web key and bound
to the session or grant, in an HttpOnly cookie for the ten minutes the setup may take — never in a
URL, a form or the server's memory (any process may serve the image).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import JSONResponse, Response

from pactvault.api.deps import PlatformDep, client_actor, get_platform
from pactvault.audit.journal import Actor
from pactvault.errors import AuthenticationError, NotFoundError, PactvaultError
from pactvault.identity.mfa.service import Account, FactorEnrolled
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, redirect, render, translator
from pactvault.web.routes.account import SECURITY, render_security
from pactvault.web.routes.signin import ENROL_PURPOSE, start_session
from pactvault.web.security import (
    ENROL_COOKIE,
    TOTP_COOKIE,
    Enrolling,
    SignInRequired,
    clear_cookie,
    open_json,
    set_cookie,
    web_keys,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ENROL = "/sign-in/enrol"
TOTP_SETUP_SECONDS = 600
CodeField = Annotated[str, Form(max_length=64)]


@dataclass(frozen=True)
class Managing:
    """Whose factors a request adds to, and where that person goes back to."""

    account: Account
    actor: Actor
    #: The session or grant id: binds the sealed QR cookie to this person's visit.
    anchor: str
    enrolling: bool
    state: dict[str, Any]

    @property
    def back(self) -> str:
        return ENROL if self.enrolling else SECURITY


def managing(request: Request, platform: PlatformDep, caller: Enrolling) -> Managing:
    if caller is not None:
        assert caller.principal.session_id is not None
        return Managing(caller.principal, caller.actor, caller.principal.session_id, False, {})
    state = open_json(request, ENROL_PURPOSE, ENROL_COOKIE)
    try:
        enrollee = platform.mfa.enrollee((state or {}).get("g"))
    except AuthenticationError:
        raise SignInRequired(None, flash="flash.challenge_gone") from None
    base = client_actor(request)
    actor = enrollee.actor(base.ip, base.user_agent)
    return Managing(enrollee, actor, enrollee.grant_id, True, state or {})


Me = Annotated[Managing, Depends(managing)]


def enrolled(request: Request, me: Managing, result: FactorEnrolled) -> Response:
    """After a factor was added: the recovery codes (first factor only), else back."""
    if result.recovery_codes:
        response: Response = render(
            request,
            "recovery_codes.html",
            {"codes": result.recovery_codes, "enrolling": me.enrolling, "back": me.back},
        )
    else:
        response = redirect(request, me.back, flash=f"flash.{result.method}_added")
    if request.cookies.get(TOTP_COOKIE):
        clear_cookie(response, get_platform(request), TOTP_COOKIE)
    return response


def _failed(request: Request, me: Managing, exc: PactvaultError) -> Response:
    """Back to where the person came from, with the reason, nothing changed."""
    return render_back(
        request,
        me,
        error=error_message(exc, translator(request)),
        status=exc.status,
        headers=exc.headers(),
    )


def render_back(
    request: Request,
    me: Managing,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    if me.enrolling:
        return render_enrolment(request, me, error=error, status=status, headers=headers)
    return render_security(request, error=error, status=status, headers=headers)


# -- enrolment at sign-in -------------------------------------------------------------------------


def render_enrolment(
    request: Request,
    me: Managing,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    platform = get_platform(request)
    status_now = platform.mfa.status(me.account)
    return render(
        request,
        "enrol.html",
        {
            "methods": [m for m in me.state.get("m", []) if isinstance(m, str)],
            "status": status_now,
            "error": error,
            "action": SECURITY,
        },
        status=status,
        headers=headers,
    )


@router.get(ENROL)
def enrolment_page(request: Request, me: Me) -> Response:
    if not me.enrolling:
        return redirect(request, SECURITY)
    return render_enrolment(request, me)


@router.post(ENROL + "/finish")
def finish_enrolment(request: Request, me: Me, platform: PlatformDep) -> Response:
    """Spend the grant now that a factor is set up, and open the session."""
    if not me.enrolling:
        return redirect(request, SECURITY)
    try:
        issued = platform.login.finish_enrolment(me.state["g"], client_actor(request))
    except AuthenticationError:
        raise SignInRequired(None, flash="flash.challenge_gone") from None
    except PactvaultError as exc:
        return _failed(request, me, exc)
    return start_session(request, platform, issued, me.state.get("n"))


# -- authenticator app (TOTP) ---------------------------------------------------------------------


def _totp_purpose(me: Managing) -> str:
    return f"totp-qr:{me.anchor}"


def _render_totp_setup(
    request: Request, secret: str, *, error: str | None = None, status: int = 200
) -> Response:
    groups = [secret[i : i + 4] for i in range(0, len(secret), 4)]
    return render(
        request,
        "totp_setup.html",
        {"secret": secret, "secret_groups": groups, "action": SECURITY, "error": error},
        status=status,
    )


@router.post(SECURITY + "/totp")
def begin_totp(request: Request, me: Me, platform: PlatformDep) -> Response:
    try:
        setup = platform.mfa.begin_totp(me.account, me.actor)
    except PactvaultError as exc:
        return _failed(request, me, exc)
    response = _render_totp_setup(request, setup.secret)
    sealed = web_keys(request).seal(_totp_purpose(me), json.dumps([setup.uri, setup.secret]))
    set_cookie(response, platform, TOTP_COOKIE, sealed, max_age=TOTP_SETUP_SECONDS)
    return response


def _pending_totp(request: Request, me: Managing) -> tuple[str, str] | None:
    opened = web_keys(request).open(_totp_purpose(me), request.cookies.get(TOTP_COOKIE))
    if opened is None:
        return None
    uri, secret = json.loads(opened)
    return str(uri), str(secret)


@router.get(SECURITY + "/totp/qr.svg")
def totp_qr(request: Request, me: Me) -> Response:
    """The QR code of the authenticator app being added (scan it with the app)."""
    pending = _pending_totp(request, me)
    if pending is None:
        raise NotFoundError("no authenticator app is being set up")
    out = io.BytesIO()
    segno.make(pending[0], error="m").save(
        out,
        kind="svg",
        scale=5,
        border=2,
        dark="#111",
        light="#fff",
        xmldecl=False,
        svgns=True,
        title=None,
    )
    return Response(out.getvalue(), media_type="image/svg+xml")


@router.post(SECURITY + "/totp/confirm")
def confirm_totp(request: Request, me: Me, platform: PlatformDep, code: CodeField) -> Response:
    try:
        result = platform.mfa.confirm_totp(me.account, code, me.actor)
    except PactvaultError as exc:
        pending = _pending_totp(request, me)
        if pending is None:
            return _failed(request, me, exc)
        message = error_message(exc, translator(request))
        return _render_totp_setup(request, pending[1], error=message, status=exc.status)
    return enrolled(request, me, result)


# -- passkeys -------------------------------------------------------------------------------------


@router.post(SECURITY + "/passkeys/options")
def passkey_options(request: Request, me: Me, platform: PlatformDep) -> Response:
    """``PublicKeyCredentialCreationOptions`` for ``navigator.credentials.create`` (``fetch``)."""
    options = platform.mfa.begin_passkey(me.account, me.actor)
    return JSONResponse(json.loads(options))


@router.post(SECURITY + "/passkeys")
def register_passkey(
    request: Request,
    me: Me,
    platform: PlatformDep,
    credential: Annotated[str, Form(max_length=16384)],
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        result = platform.mfa.finish_passkey(me.account, credential, name, me.actor)
    except PactvaultError as exc:
        return _failed(request, me, exc)
    return enrolled(request, me, result)


# -- email and SMS codes --------------------------------------------------------------------------


@router.post(SECURITY + "/channels")
def begin_channel(
    request: Request,
    me: Me,
    platform: PlatformDep,
    channel: Annotated[str, Form(max_length=8)],
    destination: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Send a confirmation code to the account's email address, or to a mobile number."""
    try:
        setup = platform.mfa.begin_channel(
            me.account, channel, destination or None if channel == "sms" else None, me.actor
        )
    except PactvaultError as exc:
        return _failed(request, me, exc)
    return render(
        request,
        "channel_confirm.html",
        {"setup": setup, "action": SECURITY, "back": me.back, "error": None},
    )


@router.post(SECURITY + "/channels/{channel_id}/confirm")
def confirm_channel(
    channel_id: str,
    request: Request,
    me: Me,
    platform: PlatformDep,
    code: CodeField,
    channel: Annotated[str, Form(max_length=8)] = "",
    destination: Annotated[str, Form(max_length=80)] = "",
) -> Response:
    try:
        result = platform.mfa.confirm_channel(me.account, channel_id, code, me.actor)
    except PactvaultError as exc:
        # Shown again with the reason: the masked address came back with the form (display only).
        setup = {"channel_id": channel_id, "channel": channel, "destination": destination}
        return render(
            request,
            "channel_confirm.html",
            {
                "setup": setup,
                "action": SECURITY,
                "back": me.back,
                "error": error_message(exc, translator(request)),
            },
            status=exc.status,
            headers=exc.headers(),
        )
    return enrolled(request, me, result)
