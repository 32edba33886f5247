"""Request-scoped dependencies: the platform, the caller, and each route's access rule.

Every route declares who may call it with exactly one ``Rule`` dependency (``public``,
``signer``, ``authenticated`` or ``allow(...)``), so the authorisation matrix test can read the
rules from the route table: a route without one fails that test.

Callers authenticate in one of two ways:
- ``Authorization: Bearer <API token>`` (organisation or personal tokens): not ambient, so no
  CSRF check;
- the ``pv_session`` cookie of a signed-in browser: ambient, so every unsafe method also needs the
  session's CSRF token in ``X-CSRF-Token`` (double submit, bound to the session by an HMAC).
Every refusal (bad token, bad cookie, missing CSRF token, missing permission) is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, UploadFile

from pactvault.audit.journal import Actor
from pactvault.errors import (
    AuthenticationError,
    PactvaultError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from pactvault.identity.principal import Principal
from pactvault.platform import Platform

READ_CHUNK = 1 << 20
SESSION_COOKIE = "pv_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
        user_agent=(request.headers.get("user-agent") or None),
    )


def _refused(
    platform: Platform, request: Request, action: str, error: PactvaultError
) -> PactvaultError:
    """Record the refusal in the audit journal and hand the error back for raising."""
    platform.access.record_denial(client_actor(request), action, error)
    return error


def authenticate(request: Request, platform: Platform) -> Principal:
    """The caller behind a bearer token or a session cookie (with CSRF for unsafe methods)."""
    token = bearer_token(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if token is None and not cookie:
        raise AuthenticationError(
            "sign in, or send an API token as 'Authorization: Bearer <token>'"
        )
    try:
        if token is not None:
            return platform.tokens.authenticate(token)
        principal = platform.sessions.authenticate(cookie)
    except AuthenticationError as exc:
        raise _refused(platform, request, "authenticate", exc) from None
    if request.method not in SAFE_METHODS:
        assert principal.session_id is not None
        presented = request.headers.get(CSRF_HEADER)
        if not platform.sessions.verify_csrf(principal.session_id, presented):
            raise _refused(
                platform,
                request,
                "csrf",
                PermissionDeniedError(f"this request needs the session's {CSRF_HEADER} header"),
            )
    return principal


@dataclass(frozen=True)
class Caller:
    """An authenticated caller and the audit actor for this request."""

    principal: Principal
    actor: Actor

    @property
    def org_id(self) -> str:
        return self.principal.org_id

    @property
    def user_id(self) -> str | None:
        return self.principal.user_id


def _caller(request: Request, principal: Principal) -> Caller:
    # For the access log (api/middleware): who made this request, never their credential.
    request.state.principal_id = principal.user_id or principal.token_id
    base = client_actor(request)
    return Caller(principal, principal.actor(ip=base.ip, user_agent=base.user_agent))


RuleKind = Literal["public", "signer", "authenticated", "enrolling", "permission"]

#: Header carrying an MFA enrolment grant (``MfaEnrolmentRequired.enrolment_token``). A custom
#: header, not a cookie: browsers never attach it to a cross-site request by themselves.
ENROLMENT_HEADER = "X-Enrolment-Token"


@dataclass(frozen=True)
class Rule:
    """A route's access rule, readable from the route table.

    ``permission`` rules name what is needed (any one of ``permissions``). When ``on_object`` is
    set, the dependency only checks that the caller could hold the permission at all (``.all`` or
    ``.own``); the route then authorises the object itself, once it knows whose it is.
    ``authenticated`` rules are for one's own things (sessions, tokens); their ``permissions``
    extend the reach to other members' things (``token.manage``), checked by the service.
    ``enrolling`` rules are ``authenticated`` ones that also admit the holder of an MFA enrolment
    grant (``X-Enrolment-Token``): the member whose organisation requires a second factor and
    who has none yet may set one up, and do nothing else.
    """

    kind: RuleKind
    permissions: tuple[str, ...] = ()
    on_object: str | None = None

    def __call__(self, request: Request, platform: PlatformDep) -> Caller | None:
        if self.kind in ("public", "signer"):
            return None
        if self.kind == "enrolling" and request.headers.get(ENROLMENT_HEADER):
            return None  # the route authenticates the grant (``enrolling_account``)
        caller = _caller(request, authenticate(request, platform))
        if self.kind == "permission" and self.on_object is None:
            self._authorize_any(platform, caller)
        elif self.kind == "permission":
            self._require_reach(platform, caller)
        return caller

    def _authorize_any(self, platform: Platform, caller: Caller) -> None:
        held = caller.principal.permissions
        if any(p in held for p in self.permissions):
            return
        platform.access.authorize(caller.principal, self.permissions[0], actor=caller.actor)

    def _require_reach(self, platform: Platform, caller: Caller) -> None:
        held = caller.principal.permissions
        for permission in self.permissions:
            if permission in held or {f"{permission}.all", f"{permission}.own"} & held:
                return
        platform.access.authorize(caller.principal, self.permissions[0], actor=caller.actor)


def rule_of(dependency: object) -> Rule | None:
    return dependency if isinstance(dependency, Rule) else None


PUBLIC = Depends(Rule("public"))
SIGNER = Depends(Rule("signer"))

AnyCaller = Annotated[Caller, Depends(Rule("authenticated"))]


def self_service(*manager_permissions: str) -> object:
    """Any signed-in caller, for their own objects; ``manager_permissions`` reach others'."""
    return Depends(Rule("authenticated", tuple(manager_permissions)))


def allow(*permissions: str, on_object: str | None = None) -> object:
    """``Annotated[Caller, allow("member.read")]``: the caller must hold one of ``permissions``."""
    if not permissions:
        raise ValueError("allow() needs at least one permission")
    return Depends(Rule("permission", tuple(permissions), on_object))


def signing_token(request: Request) -> str:
    token = bearer_token(request)
    if not token:
        raise AuthenticationError("send your signing token as 'Authorization: Bearer <token>'")
    return token


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
