"""First-administrator setup and API tokens.

Two kinds of token: organisation tokens (minted by the setup token or an organisation ``admin``
token, coarse scopes, for integrations) and personal tokens (minted by a signed-in member from
their session, limited to permissions they hold, always expiring).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from pactvault.api.deps import PUBLIC, AnyCaller, Caller, PlatformDep, client_actor, self_service
from pactvault.api.schemas import SetupIn, TokenIn, TokenInfoOut, TokenOut

router = APIRouter(prefix="/api/v1", tags=["administration"])


@router.post("/setup", response_model=TokenOut, status_code=201, dependencies=[PUBLIC])
def complete_setup(body: SetupIn, request: Request, platform: PlatformDep) -> TokenOut:
    """Spend the one-time setup token printed at first start; returns the admin API token."""
    issued = platform.tokens.complete_setup(
        body.setup_token, body.organisation_name, client_actor(request)
    )
    return TokenOut(token=issued.token, token_id=issued.token_id, org_id=issued.org_id)


@router.post("/tokens", response_model=TokenOut, status_code=201)
def create_token(body: TokenIn, who: AnyCaller, platform: PlatformDep) -> TokenOut:
    """From a session: a personal token whose ``scopes`` are permissions you hold.
    From an organisation ``admin`` token: an organisation token with coarse scopes."""
    if who.principal.session_id is not None:
        issued = platform.tokens.create_user_token(
            who.principal, body.name, body.scopes, body.expires_in_days or 90, who.actor
        )
    else:
        issued = platform.tokens.create(
            who.principal, body.name, body.scopes, body.expires_in_days, who.actor
        )
    return TokenOut(token=issued.token, token_id=issued.token_id, org_id=issued.org_id)


@router.get("/tokens", response_model=list[TokenInfoOut])
def list_tokens(who: AnyCaller, platform: PlatformDep) -> list[TokenInfoOut]:
    """The caller's own live personal tokens (never the token values)."""
    return [TokenInfoOut.of(t) for t in platform.tokens.list_user_tokens(who.principal)]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: str,
    who: Annotated[Caller, self_service("token.manage")],
    platform: PlatformDep,
) -> None:
    """Revoke one's own token, or any of the organisation's with ``token.manage``."""
    platform.tokens.revoke(who.principal, token_id, who.actor)
