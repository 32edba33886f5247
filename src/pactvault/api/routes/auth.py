"""Signing in and out, one's own sessions and password.

The session token is set as an HttpOnly, SameSite=Strict cookie (``Secure`` when the instance is
served over HTTPS) and never appears in a response body; the CSRF token that unsafe requests must
echo in ``X-CSRF-Token`` is returned instead. Login answers the same way for unknown accounts and
wrong passwords, and throttled attempts get ``429`` with ``Retry-After``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pactvault.api.deps import (
    ENROLMENT_HEADER,
    PUBLIC,
    SESSION_COOKIE,
    AnyCaller,
    PlatformDep,
    client_actor,
)
from pactvault.api.identity_schemas import (
    CodeSentOut,
    LoginCodeIn,
    LoginIn,
    LoginOut,
    MeOut,
    PasswordChangeIn,
    ReauthenticateIn,
    RevokedOut,
    SecondFactorIn,
    SessionInfoOut,
)
from pactvault.errors import AuthenticationError, PermissionDeniedError
from pactvault.identity.login import MfaEnrolmentRequired, MfaRequired
from pactvault.identity.sessions import IssuedSession
from pactvault.platform import Platform

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])


def set_session_cookie(response: Response, platform: Platform, issued: IssuedSession) -> None:
    max_age = int(platform.sessions.policy.absolute.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=max_age,
        path="/",
        secure=platform.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, platform: Platform) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=platform.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


def _signed_in(response: Response, platform: Platform, issued: IssuedSession) -> LoginOut:
    set_session_cookie(response, platform, issued)
    return LoginOut(
        status="signed-in",
        user_id=issued.user_id,
        org_id=issued.org_id,
        session_id=issued.session_id,
        expires_at=issued.expires_at,
        csrf_token=issued.csrf_token,
    )


@router.post("/login", response_model=LoginOut, dependencies=[PUBLIC])
def login(body: LoginIn, request: Request, response: Response, platform: PlatformDep) -> LoginOut:
    """Sign in with email and password. Either the session starts (cookie ``HttpOnly``), or a
    second step is due: a second factor (``mfa-required``) or, when the organisation requires
    MFA and the member has none, enrolling one (``mfa-enrolment-required``)."""
    outcome = platform.login.login(
        body.email, body.password, client_actor(request), org_id=body.organisation_id
    )
    if isinstance(outcome, MfaRequired):
        return LoginOut(
            status="mfa-required",
            challenge=outcome.challenge,
            methods=outcome.methods,
            expires_at=outcome.expires_at,
            passkey_options=outcome.passkey_options,
        )
    if isinstance(outcome, MfaEnrolmentRequired):
        return LoginOut(
            status="mfa-enrolment-required",
            user_id=outcome.user_id,
            org_id=outcome.org_id,
            expires_at=outcome.expires_at,
            methods=outcome.methods,
            enrolment_token=outcome.enrolment_token,
        )
    return _signed_in(response, platform, outcome)


@router.post("/mfa/code", response_model=CodeSentOut, dependencies=[PUBLIC])
def send_login_code(body: LoginCodeIn, request: Request, platform: PlatformDep) -> CodeSentOut:
    """Email or text a one-time code for this sign-in (at most a few per challenge)."""
    sent = platform.login.send_login_code(body.challenge, body.channel, client_actor(request))
    return CodeSentOut(channel=sent.channel, destination=sent.destination)


@router.post("/mfa", response_model=LoginOut, dependencies=[PUBLIC])
def complete_mfa(
    body: SecondFactorIn, request: Request, response: Response, platform: PlatformDep
) -> LoginOut:
    """Finish a sign-in with the second factor; the session cookie comes back."""
    issued = platform.login.complete_mfa(
        body.challenge, body.method, body.response, client_actor(request)
    )
    return _signed_in(response, platform, issued)


@router.post("/mfa/enrolment/finish", response_model=LoginOut, dependencies=[PUBLIC])
def finish_enrolment(request: Request, response: Response, platform: PlatformDep) -> LoginOut:
    """After enrolling a factor with ``X-Enrolment-Token``: spend the grant, start the session."""
    token = request.headers.get(ENROLMENT_HEADER)
    if not token:
        raise AuthenticationError(f"send the enrolment token in {ENROLMENT_HEADER}")
    issued = platform.login.finish_enrolment(token, client_actor(request))
    return _signed_in(response, platform, issued)


def _session_only(who: AnyCaller, platform: Platform, action: str) -> str:
    """The caller's session id; API tokens cannot act on sessions (they are not sessions)."""
    if who.principal.session_id is None:
        denied = PermissionDeniedError("this needs a signed-in session, not an API token")
        platform.access.record_denial(who.actor, action, denied, reason="not-a-session")
        raise denied
    return who.principal.session_id


@router.post("/logout", status_code=204)
def logout(who: AnyCaller, response: Response, platform: PlatformDep) -> Response:
    """End this session (the cookie is cleared too)."""
    session_id = _session_only(who, platform, "session.revoke")
    platform.sessions.revoke_session(who.principal, session_id, who.actor)
    response.status_code = 204
    clear_session_cookie(response, platform)
    return response


@router.get("/me", response_model=MeOut)
def me(who: AnyCaller) -> MeOut:
    """Who the caller is here: organisation, role, clearance and effective permissions."""
    p = who.principal
    return MeOut(
        user_id=p.user_id,
        org_id=p.org_id,
        role=p.role,
        clearance=p.clearance,
        permissions=sorted(p.permissions),
        kind=p.kind,
    )


@router.get("/sessions", response_model=list[SessionInfoOut])
def list_sessions(who: AnyCaller, platform: PlatformDep) -> list[SessionInfoOut]:
    """The caller's live sessions in every organisation (where, from what, since when)."""
    _session_only(who, platform, "session.list")
    return [SessionInfoOut.of(s) for s in platform.sessions.list_sessions(who.principal)]


@router.delete("/sessions/{session_id:uuid_text}", status_code=204)
def revoke_session(session_id: str, who: AnyCaller, platform: PlatformDep) -> None:
    """End one of the caller's sessions; anyone else's id answers as not found."""
    _session_only(who, platform, "session.revoke")
    platform.sessions.revoke_session(who.principal, session_id, who.actor)


@router.post("/sessions/revoke-all", response_model=RevokedOut)
def sign_out_everywhere(who: AnyCaller, platform: PlatformDep) -> RevokedOut:
    """Sign out everywhere else (this session stays)."""
    _session_only(who, platform, "session.revoke-all")
    count = platform.sessions.sign_out_everywhere(who.principal, who.actor, keep_current=True)
    return RevokedOut(revoked=count)


@router.post("/reauthenticate", status_code=204)
def reauthenticate(body: ReauthenticateIn, who: AnyCaller, platform: PlatformDep) -> None:
    """Confirm the password again ("sudo mode"): adding or removing second factors and minting
    API tokens need a password proven in the last 20 minutes. Throttled like a sign-in."""
    _session_only(who, platform, "session.reauthenticate")
    platform.login.reauthenticate(who.principal, body.password, who.actor)


@router.post("/password", status_code=204)
def change_password(body: PasswordChangeIn, who: AnyCaller, platform: PlatformDep) -> None:
    """Change one's password (proving the current one); every other session is ended."""
    _session_only(who, platform, "auth.password-change")
    platform.login.change_password(
        who.principal,
        body.current_password,
        body.new_password,
        has_second_factor=who.principal.user_id is not None
        and platform.mfa.has_second_factor(who.principal.user_id),
        actor=who.actor,
    )
