"""Personal API tokens: list one's own, create one (shown once), revoke.

The same service calls as ``api/routes/admin.py``: a personal token is limited to permissions
its owner holds (and can never do more than the owner can at the time of use), always expires,
and — since it outlives the session — can only be minted with the password proven in the last
minutes (``identity.recent``), which the page asks for first. The token value is shown once, on
the answer to the form (never stored, never in a URL or a redirect), and only its name, scopes
and dates afterwards.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import Response

from pactvault.api.deps import Caller, PlatformDep
from pactvault.errors import PactvaultError
from pactvault.identity.errors import LoginFailedError, ReauthenticationRequiredError
from pactvault.identity.recent import require_recent_authentication
from pactvault.identity.tokens import USER_TOKEN_MAX_DAYS
from pactvault.platform import Platform
from pactvault.store.base import utcnow
from pactvault.web.pages import PageRoute, redirect, translator
from pactvault.web.routes.organisation import failed, org_render
from pactvault.web.security import SignedIn

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TOKENS = "/organisation/tokens"
ObjectId = Annotated[str, Path(min_length=1, max_length=36)]


def _recently_authenticated(who: Caller) -> bool:
    try:
        require_recent_authentication(who.principal, utcnow())
    except ReauthenticationRequiredError:
        return False
    return True


def render_tokens(
    request: Request,
    platform: Platform,
    who: Caller,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return org_render(
        request,
        "org_tokens.html",
        {
            "tokens": platform.tokens.list_user_tokens(who.principal),
            "held": sorted(who.principal.permissions),
            "max_days": USER_TOKEN_MAX_DAYS,
            "needs_password": not _recently_authenticated(who),
            "error": error,
        },
        status=status,
    )


@router.get(TOKENS)
def tokens(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    return render_tokens(request, platform, who)


@router.post(TOKENS)
def create_token(
    request: Request,
    who: SignedIn,
    platform: PlatformDep,
    name: Annotated[str, Form(max_length=200)],
    permissions: Annotated[list[str], Form(max_length=64)] = [],  # noqa: B006 (FastAPI copies)
    expires_in_days: Annotated[int, Form(ge=1, le=USER_TOKEN_MAX_DAYS)] = 90,
) -> Response:
    """Mint a personal token and show it once, on this answer only."""
    try:
        issued = platform.tokens.create_user_token(
            who.principal, name, permissions, expires_in_days, who.actor
        )
    except PactvaultError as exc:
        return failed(request, exc, lambda **kw: render_tokens(request, platform, who, **kw))
    return org_render(request, "org_token_created.html", {"issued": issued, "name": name})


@router.post(TOKENS + "/{token_id}/revoke")
def revoke_token(
    token_id: ObjectId, request: Request, who: SignedIn, platform: PlatformDep
) -> Response:
    """Revoke one of one's tokens (any of the organisation's with ``token.manage``)."""
    try:
        platform.tokens.revoke(who.principal, token_id, who.actor)
    except PactvaultError as exc:
        return failed(request, exc, lambda **kw: render_tokens(request, platform, who, **kw))
    return redirect(request, TOKENS, flash="flash.org.token_revoked")


@router.post(TOKENS + "/confirm-password")
def confirm_password(
    request: Request,
    who: SignedIn,
    platform: PlatformDep,
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    """Prove the password again before minting a token (throttled and audited by the service)."""
    try:
        platform.login.reauthenticate(who.principal, password, who.actor)
    except LoginFailedError:
        message = translator(request)("errors.current_password")
        return render_tokens(request, platform, who, error=message, status=401)
    except PactvaultError as exc:
        return failed(request, exc, lambda **kw: render_tokens(request, platform, who, **kw))
    return redirect(request, TOKENS, flash="flash.password_confirmed")
