"""Signing in (password, then a second factor or enrolling one) and signing out.

The steps between the password and the session keep their state in short-lived HttpOnly,
SameSite=Strict cookies sealed under the web key, never in a URL or a form: the second step's
challenge (``pv_signin``, 5 minutes, like the challenge itself) and the enrolment grant
(``pv_enrol``, its 15 minutes). A failed sign-in says the same whether or not the account
exists (the login service makes sure the work is the same too); throttling shows the wait.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from pactvault.api.deps import PlatformDep, client_actor
from pactvault.api.routes.auth import clear_session_cookie, set_session_cookie
from pactvault.errors import AuthenticationError, InvalidInputError, PactvaultError
from pactvault.identity.errors import TooManyAttemptsError
from pactvault.identity.login import MfaEnrolmentRequired, MfaRequired
from pactvault.identity.mfa.errors import ChallengeGoneError
from pactvault.identity.sessions import IssuedSession
from pactvault.platform import Platform
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, redirect, render, translator
from pactvault.web.security import (
    ENROL_COOKIE,
    PAGE_PUBLIC,
    SIGNIN_COOKIE,
    TOTP_COOKIE,
    SignedIn,
    clear_cookie,
    open_json,
    safe_next,
    seal_json,
    set_cookie,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SIGNIN_PURPOSE = "signin"
ENROL_PURPOSE = "enrol"
#: The order the second step offers methods in: strongest and most convenient first.
METHOD_ORDER = ("passkey", "totp", "email", "sms", "recovery")
NextField = Annotated[str, Form(max_length=2000)]


def _seconds_until(moment: datetime) -> int:
    return max(1, int((moment - datetime.now(UTC)).total_seconds()))


def start_session(
    request: Request, platform: Platform, issued: IssuedSession, next_path: str | None
) -> Response:
    """The session cookie (the API's), the half-finished sign-in cookies gone, off to ``next``."""
    response = redirect(request, safe_next(next_path))
    set_session_cookie(response, platform, issued)
    for name in (SIGNIN_COOKIE, ENROL_COOKIE, TOTP_COOKIE):
        if request.cookies.get(name):
            clear_cookie(response, platform, name)
    return response


# -- step one: email and password -----------------------------------------------------------------


@router.get("/sign-in", dependencies=[PAGE_PUBLIC])
def sign_in_page(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    if getattr(request.state, "caller", None) is not None:  # already signed in
        return redirect(request, safe_next(next))
    return render(request, "sign_in.html", {"next": safe_next(next), "email": "", "error": None})


@router.post("/sign-in", dependencies=[PAGE_PUBLIC])
def sign_in(
    request: Request,
    platform: PlatformDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: NextField = "",
) -> Response:
    next_path = safe_next(next)
    try:
        outcome = platform.login.login(email, password, client_actor(request))
    except TooManyAttemptsError as exc:
        return _sign_in_failed(request, next_path, email, exc, 429)
    except (AuthenticationError, InvalidInputError) as exc:
        return _sign_in_failed(request, next_path, email, exc, 401)
    if isinstance(outcome, MfaRequired):
        state = {
            "c": outcome.challenge,
            "m": [m for m in METHOD_ORDER if m in outcome.methods],
            "p": outcome.passkey_options,
            "n": next_path,
        }
        response = redirect(request, "/sign-in/verify")
        set_cookie(
            response,
            platform,
            SIGNIN_COOKIE,
            seal_json(request, SIGNIN_PURPOSE, state),
            max_age=_seconds_until(outcome.expires_at),
        )
        return response
    if isinstance(outcome, MfaEnrolmentRequired):
        state = {"g": outcome.enrolment_token, "m": outcome.methods, "n": next_path}
        response = redirect(request, "/sign-in/enrol")
        set_cookie(
            response,
            platform,
            ENROL_COOKIE,
            seal_json(request, ENROL_PURPOSE, state),
            max_age=_seconds_until(outcome.expires_at),
        )
        return response
    return start_session(request, platform, outcome, next_path)


def _sign_in_failed(
    request: Request, next_path: str, email: str, exc: PactvaultError, status: int
) -> Response:
    return render(
        request,
        "sign_in.html",
        {"next": next_path, "email": email, "error": error_message(exc, translator(request))},
        status=status,
        headers=exc.headers(),
    )


# -- step two: a second factor --------------------------------------------------------------------


def _second_step(request: Request) -> dict[str, Any] | None:
    state = open_json(request, SIGNIN_PURPOSE, SIGNIN_COOKIE)
    if state is None or not isinstance(state.get("c"), str) or not isinstance(state.get("m"), list):
        return None
    return state


def _challenge_gone(request: Request, platform: Platform) -> Response:
    response = redirect(request, "/sign-in", flash="flash.challenge_gone")
    clear_cookie(response, platform, SIGNIN_COOKIE)
    return response


def _render_second_step(
    request: Request,
    state: dict[str, Any],
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "sign_in_verify.html",
        {
            "methods": state["m"],
            "passkey_options": state.get("p") or "",
            "error": error,
            "notice": notice,
        },
        status=status,
        headers=headers,
    )


@router.get("/sign-in/verify", dependencies=[PAGE_PUBLIC])
def second_step_page(request: Request, platform: PlatformDep) -> Response:
    state = _second_step(request)
    if state is None:
        return _challenge_gone(request, platform)
    return _render_second_step(request, state)


@router.post("/sign-in/verify", dependencies=[PAGE_PUBLIC])
def second_step(
    request: Request,
    platform: PlatformDep,
    method: Annotated[str, Form(max_length=16)],
    code: Annotated[str, Form(max_length=64)] = "",
    credential: Annotated[str, Form(max_length=16384)] = "",
) -> Response:
    state = _second_step(request)
    if state is None:
        return _challenge_gone(request, platform)
    answer = credential if method == "passkey" else code
    try:
        issued = platform.login.complete_mfa(state["c"], method, answer, client_actor(request))
    except ChallengeGoneError:
        return _challenge_gone(request, platform)
    except PactvaultError as exc:
        status = 429 if isinstance(exc, TooManyAttemptsError) else 401
        if isinstance(exc, InvalidInputError):
            status = 422
        return _render_second_step(
            request,
            state,
            error=error_message(exc, translator(request)),
            status=status,
            headers=exc.headers(),
        )
    return start_session(request, platform, issued, state.get("n"))


@router.post("/sign-in/verify/send-code", dependencies=[PAGE_PUBLIC])
def send_code(
    request: Request, platform: PlatformDep, channel: Annotated[str, Form(max_length=8)]
) -> Response:
    """Email or text a one-time code for this sign-in (the login service limits how many)."""
    state = _second_step(request)
    if state is None:
        return _challenge_gone(request, platform)
    t = translator(request)
    try:
        sent = platform.login.send_login_code(state["c"], channel, client_actor(request))
    except ChallengeGoneError:
        return _challenge_gone(request, platform)
    except PactvaultError as exc:
        status = 429 if isinstance(exc, TooManyAttemptsError) else exc.status
        return _render_second_step(
            request, state, error=error_message(exc, t), status=status, headers=exc.headers()
        )
    notice = t(f"signin.code_sent.{sent.channel}", destination=sent.destination)
    return _render_second_step(request, state, notice=notice)


# -- signing out ----------------------------------------------------------------------------------


@router.post("/sign-out")
def sign_out(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    assert who.principal.session_id is not None
    platform.sessions.revoke_session(who.principal, who.principal.session_id, who.actor)
    response = redirect(request, "/sign-in", flash="flash.signed_out")
    clear_session_cookie(response, platform)
    return response
