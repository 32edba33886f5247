"""The account security page: second factors, recovery codes, sessions, password.

Adding factors is ``routes/factors.py`` (shared with enrolment at sign-in); removing them, new
recovery codes, ending sessions and changing the password need a signed-in session, like the
API's equivalents in ``api/routes/mfa.py`` and ``api/routes/auth.py``, and call the same services.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from pactvault.api.deps import PlatformDep, get_platform
from pactvault.api.routes.auth import clear_session_cookie
from pactvault.errors import PactvaultError
from pactvault.identity.errors import LoginFailedError, ReauthenticationRequiredError
from pactvault.identity.mfa import channels
from pactvault.identity.principal import Principal
from pactvault.identity.recent import require_recent_authentication
from pactvault.store.base import utcnow
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, redirect, render, translator
from pactvault.web.security import SignedIn

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SECURITY = "/account/security"
PasswordField = Annotated[str, Form(max_length=1024)]


def render_security(
    request: Request,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The page, for the signed-in caller the rule put on ``request.state``."""
    platform = get_platform(request)
    principal = request.state.caller.principal
    with platform.db.read() as session:
        # ``MfaStatus`` names the channels but not their ids, which removing one needs.
        channel_ids = {c: row.id for c, row in channels.active(session, principal.user_id).items()}
    return render(
        request,
        "security.html",
        {
            "status": platform.mfa.status(principal),
            "channel_ids": channel_ids,
            "sessions": platform.sessions.list_sessions(principal),
            "channels_available": sorted(platform.mfa.senders),
            "needs_reauth": _needs_reauth(principal),
            "error": error,
        },
        status=status,
        headers=headers,
    )


def _needs_reauth(principal: Principal) -> bool:
    try:
        require_recent_authentication(principal, utcnow())
    except ReauthenticationRequiredError:
        return True
    return False


def _failed(request: Request, exc: PactvaultError) -> Response:
    return render_security(
        request,
        error=error_message(exc, translator(request)),
        status=exc.status,
        headers=exc.headers(),
    )


@router.get(SECURITY)
def security_page(request: Request, who: SignedIn) -> Response:
    return render_security(request)


# -- removing factors, new recovery codes ---------------------------------------------------------


@router.post(SECURITY + "/totp/remove")
def remove_totp(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    try:
        platform.mfa.remove_totp(who.principal, who.actor)
    except PactvaultError as exc:
        return _failed(request, exc)
    return redirect(request, SECURITY, flash="flash.totp_removed")


@router.post(SECURITY + "/passkeys/{passkey_id}/remove")
def remove_passkey(
    passkey_id: str, request: Request, who: SignedIn, platform: PlatformDep
) -> Response:
    try:
        platform.mfa.remove_passkey(who.principal, passkey_id, who.actor)
    except PactvaultError as exc:
        return _failed(request, exc)
    return redirect(request, SECURITY, flash="flash.passkey_removed")


@router.post(SECURITY + "/channels/{channel_id}/remove")
def remove_channel(
    channel_id: str, request: Request, who: SignedIn, platform: PlatformDep
) -> Response:
    try:
        platform.mfa.remove_channel(who.principal, channel_id, who.actor)
    except PactvaultError as exc:
        return _failed(request, exc)
    return redirect(request, SECURITY, flash="flash.channel_removed")


@router.post(SECURITY + "/recovery-codes")
def regenerate_recovery_codes(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    """Ten new codes, shown once on this response (never stored in clear, never in a URL)."""
    try:
        codes = platform.mfa.regenerate_recovery_codes(who.principal, who.actor)
    except PactvaultError as exc:
        return _failed(request, exc)
    return render(
        request, "recovery_codes.html", {"codes": codes, "enrolling": False, "back": SECURITY}
    )


# -- sessions -------------------------------------------------------------------------------------


@router.post("/account/sessions/{session_id}/revoke")
def revoke_session(
    session_id: str, request: Request, who: SignedIn, platform: PlatformDep
) -> Response:
    """End one of one's sessions; ending this one signs out."""
    try:
        platform.sessions.revoke_session(who.principal, session_id, who.actor)
    except PactvaultError as exc:
        return _failed(request, exc)
    if session_id == who.principal.session_id:
        response = redirect(request, "/sign-in", flash="flash.signed_out")
        clear_session_cookie(response, platform)
        return response
    return redirect(request, SECURITY, flash="flash.session_revoked")


@router.post("/account/sessions/revoke-all")
def sign_out_everywhere(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    """Every other session of this account ends; this one stays."""
    platform.sessions.sign_out_everywhere(who.principal, who.actor, keep_current=True)
    return redirect(request, SECURITY, flash="flash.signed_out_elsewhere")


# -- password -------------------------------------------------------------------------------------


@router.post("/account/confirm-password")
def confirm_password(
    request: Request, who: SignedIn, platform: PlatformDep, password: PasswordField
) -> Response:
    """Prove the password again ("sudo mode") before changing factors or minting tokens."""
    try:
        platform.login.reauthenticate(who.principal, password, who.actor)
    except LoginFailedError:
        t = translator(request)
        return render_security(request, error=t("errors.current_password"), status=401)
    except PactvaultError as exc:
        return _failed(request, exc)
    return redirect(request, SECURITY, flash="flash.password_confirmed")


@router.post("/account/password")
def change_password(
    request: Request,
    who: SignedIn,
    platform: PlatformDep,
    current_password: PasswordField,
    new_password: PasswordField,
    repeat_password: PasswordField,
) -> Response:
    """Proving the current password; every other session ends (the service does that)."""
    t = translator(request)
    if new_password != repeat_password:
        return render_security(request, error=t("errors.passwords_differ"), status=422)
    principal = who.principal
    assert principal.user_id is not None
    try:
        platform.login.change_password(
            principal,
            current_password,
            new_password,
            has_second_factor=platform.mfa.has_second_factor(principal.user_id),
            actor=who.actor,
        )
    except LoginFailedError:
        return render_security(request, error=t("errors.current_password"), status=401)
    except PactvaultError as exc:
        return _failed(request, exc)
    return redirect(request, SECURITY, flash="flash.password_changed")
