"""First-administrator setup and API token management."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pactvault.api.deps import PlatformDep, PrincipalDep, actor_for, client_actor
from pactvault.api.schemas import SetupIn, TokenIn, TokenOut

router = APIRouter(prefix="/api/v1", tags=["administration"])


@router.post("/setup", response_model=TokenOut, status_code=201)
def complete_setup(body: SetupIn, request: Request, platform: PlatformDep) -> TokenOut:
    """Spend the one-time setup token printed at first start; returns the admin API token."""
    issued = platform.tokens.complete_setup(
        body.setup_token, body.organisation_name, client_actor(request)
    )
    return TokenOut(token=issued.token, token_id=issued.token_id, org_id=issued.org_id)


@router.post("/tokens", response_model=TokenOut, status_code=201)
def create_token(
    body: TokenIn, request: Request, platform: PlatformDep, who: PrincipalDep
) -> TokenOut:
    issued = platform.tokens.create(
        who, body.name, body.scopes, body.expires_in_days, actor_for(request, who)
    )
    return TokenOut(token=issued.token, token_id=issued.token_id, org_id=issued.org_id)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, request: Request, platform: PlatformDep, who: PrincipalDep) -> None:
    platform.tokens.revoke(who, token_id, actor_for(request, who))
