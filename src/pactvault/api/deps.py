"""Request-scoped dependencies: the platform, the caller, the audit actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile

from pactvault.audit.journal import Actor
from pactvault.errors import AuthenticationError, PayloadTooLargeError, PermissionDeniedError
from pactvault.identity.tokens import Principal
from pactvault.platform import Platform

READ_CHUNK = 1 << 20


def get_platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


PlatformDep = Annotated[Platform, Depends(get_platform)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def client_actor(request: Request) -> Actor:
    """An anonymous actor carrying where the request came from (for audit)."""
    return Actor(
        type="anonymous",
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def principal(request: Request, platform: PlatformDep) -> Principal:
    return platform.tokens.authenticate(bearer_token(request))


PrincipalDep = Annotated[Principal, Depends(principal)]


def require_scope(scope: str):  # type: ignore[no-untyped-def]
    def check(who: PrincipalDep) -> Principal:
        if scope not in who.scopes and "admin" not in who.scopes:
            raise PermissionDeniedError(f"this token lacks the {scope!r} scope")
        return who

    return Depends(check)


def signing_token(request: Request) -> str:
    token = bearer_token(request)
    if not token:
        raise AuthenticationError("send your signing token as 'Authorization: Bearer <token>'")
    return token


def actor_for(request: Request, who: Principal) -> Actor:
    base = client_actor(request)
    return who.actor(ip=base.ip, user_agent=base.user_agent)


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """Read an upload in chunks, stopping as soon as it exceeds ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the upload exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
