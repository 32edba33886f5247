"""Organisation administration: the overview, members, invitations, custom roles, the MFA policy
and the (not yet built) seals and keys.

The same services as ``api/routes/organisation.py`` and ``api/routes/mfa.py``, which enforce the
rules and audit every change and refusal: only permissions one holds can be granted (custom
roles, invitations, role changes), nobody changes their own role or clearance, a clearance is
never raised above one's own, the last owner stays an owner. Each route also declares its
permission, so the rule is refused before any work and shows in the page-route matrix.

The other sections live in their own modules: approval rules (``org_rules``), real-name review
(``org_review``), API tokens (``org_tokens``), alerts (``alerts``) and the journal (``journal``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import Response

from pactvault.access.decision import LEVELS
from pactvault.access.permissions import PERMISSIONS
from pactvault.api.deps import Caller, PlatformDep
from pactvault.errors import InvalidInputError, PactvaultError
from pactvault.platform import Platform
from pactvault.store.models import Organisation
from pactvault.web.display import holds, render
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, error_page, redirect, translator
from pactvault.web.security import SignedIn, page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MemberReader = Annotated[Caller, page_allow("member.read")]
MemberManager = Annotated[Caller, page_allow("member.manage")]
Inviter = Annotated[Caller, page_allow("member.invite")]
RoleManager = Annotated[Caller, page_allow("role.manage")]
OrgManager = Annotated[Caller, page_allow("org.manage")]
ObjectId = Annotated[str, Path(min_length=1, max_length=36)]
RoleKey = Annotated[str, Path(min_length=1, max_length=40)]
MEMBERS = "/organisation/members"
ROLES = "/organisation/roles"
SECURITY = "/organisation/security"
MAX_PERMISSIONS = len(PERMISSIONS)

#: The sections of the organisation pages: path, catalog keys of its name and of what it is
#: for, and the permission needed to open it (``None``: every member).
SECTIONS: tuple[tuple[str, str, str, str | None], ...] = (
    (MEMBERS, "org.nav.members", "org.nav.members_hint", "member.read"),
    (ROLES, "org.nav.roles", "org.nav.roles_hint", "member.read"),
    ("/organisation/approval-rules", "org.nav.rules", "org.nav.rules_hint", "approval.manage"),
    (SECURITY, "org.nav.security", "org.nav.security_hint", "member.read"),
    ("/organisation/verifications", "org.nav.review", "org.nav.review_hint", "identity.review"),
    ("/organisation/tokens", "org.nav.tokens", "org.nav.tokens_hint", None),
    ("/organisation/alerts", "org.nav.alerts", "org.nav.alerts_hint", "alert.read"),
    ("/organisation/journal", "org.nav.journal", "org.nav.journal_hint", "audit.read"),
    ("/organisation/seals", "org.nav.seals", "org.nav.seals_hint", None),
)


def org_render(
    request: Request,
    template: str,
    context: dict[str, object] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """``display.render`` with the organisation's sub-navigation (the sections one may open)."""
    caller = request.state.caller
    sections = [
        (path, key, hint)
        for path, key, hint, permission in SECTIONS
        if permission is None or holds(caller.principal, permission)
    ]
    return render(
        request,
        template,
        {"org_sections": sections, **(context or {})},
        status=status,
        headers=headers,
    )


def failed(request: Request, exc: PactvaultError, again: Callable[..., Response]) -> Response:
    """A refused change: the section again with the reason (``again(error=..., status=...)``),
    or the error page if even the section cannot be shown to this caller."""
    message = error_message(exc, translator(request))
    try:
        response = again(error=message, status=exc.status)
    except PactvaultError:
        response = error_page(request, exc.status, message)
    response.headers.update(exc.headers())
    return response


# -- overview -------------------------------------------------------------------------------------


@router.get("/organisation")
def overview(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        org = session.get(Organisation, who.org_id)
        name = org.name if org is not None else ""
    return org_render(request, "org_overview.html", {"org_name": name})


@router.get("/organisation/seals")
def seals(request: Request, who: SignedIn) -> Response:
    """Organisation seals and key management come with issue #8; until then, a signpost."""
    return org_render(request, "org_seals.html")


# -- members and invitations ----------------------------------------------------------------------


def render_members(
    request: Request,
    platform: Platform,
    who: Caller,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    principal = who.principal
    roles = platform.roles.list_roles(principal)
    grantable = [r.key for r in roles if set(r.permissions) <= principal.permissions]
    invitations = (
        platform.people.pending_invitations(principal)
        if holds(principal, "member.invite")
        else None
    )
    members = platform.people.list_members(principal)
    permissions = {r.key: set(r.permissions) for r in roles}
    # Whom the caller may manage: not themselves, nor anyone holding more than they do (the
    # service refuses both; the page does not offer them).
    manageable = {
        m.user_id
        for m in members
        if m.user_id != principal.user_id
        and permissions.get(m.role, set()) <= principal.permissions
    }
    return org_render(
        request,
        "org_members.html",
        {
            "members": members,
            "manageable": manageable if holds(principal, "member.manage") else set(),
            "roles": {r.key: r for r in roles},
            "grantable": grantable,
            "levels": LEVELS,
            "invitations": invitations,
            "error": error,
        },
        status=status,
    )


def _members_failed(
    request: Request, platform: Platform, who: Caller, exc: PactvaultError
) -> Response:
    return failed(request, exc, lambda **kw: render_members(request, platform, who, **kw))


@router.get(MEMBERS)
def members(request: Request, who: MemberReader, platform: PlatformDep) -> Response:
    return render_members(request, platform, who)


@router.post(MEMBERS + "/{user_id}/role")
def change_role(
    user_id: ObjectId,
    request: Request,
    who: MemberManager,
    platform: PlatformDep,
    role: Annotated[str, Form(max_length=40)],
) -> Response:
    try:
        platform.people.change_role(who.principal, user_id, role, who.actor)
    except PactvaultError as exc:
        return _members_failed(request, platform, who, exc)
    return redirect(request, MEMBERS, flash="flash.org.role_changed")


@router.post(MEMBERS + "/{user_id}/clearance")
def set_clearance(
    user_id: ObjectId,
    request: Request,
    who: MemberManager,
    platform: PlatformDep,
    clearance: Annotated[str, Form(max_length=16)],
) -> Response:
    try:
        platform.people.set_clearance(who.principal, user_id, clearance, who.actor)
    except PactvaultError as exc:
        return _members_failed(request, platform, who, exc)
    return redirect(request, MEMBERS, flash="flash.org.clearance_changed")


@router.post(MEMBERS + "/{user_id}/remove")
def remove_member(
    user_id: ObjectId, request: Request, who: MemberManager, platform: PlatformDep
) -> Response:
    try:
        platform.people.remove_member(who.principal, user_id, who.actor)
    except PactvaultError as exc:
        return _members_failed(request, platform, who, exc)
    return redirect(request, MEMBERS, flash="flash.org.member_removed")


@router.post(MEMBERS + "/{user_id}/unlock")
def unlock_member(
    user_id: ObjectId, request: Request, who: MemberManager, platform: PlatformDep
) -> Response:
    """Lift a sign-in lockout now rather than when it expires."""
    try:
        was_locked = platform.login.unlock_account(who.principal, user_id, who.actor)
    except PactvaultError as exc:
        return _members_failed(request, platform, who, exc)
    flash = "flash.org.unlocked" if was_locked else "flash.org.not_locked"
    return redirect(request, MEMBERS, flash=flash)


@router.post("/organisation/invitations")
def invite(
    request: Request,
    who: Inviter,
    platform: PlatformDep,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=40)],
) -> Response:
    """Invite someone by email; the one-time link goes to them only, never to this page."""
    try:
        platform.people.invite(who.principal, email, role, who.actor)
    except PactvaultError as exc:
        return _members_failed(request, platform, who, exc)
    return redirect(request, MEMBERS, flash="flash.org.invited")


@router.post("/organisation/invitations/{invitation_id}/revoke")
def revoke_invitation(
    invitation_id: ObjectId, request: Request, who: Inviter, platform: PlatformDep
) -> Response:
    try:
        platform.people.revoke_invitation(who.principal, invitation_id, who.actor)
    except PactvaultError as exc:
        return _members_failed(request, platform, who, exc)
    return redirect(request, MEMBERS, flash="flash.org.invitation_revoked")


# -- custom roles ---------------------------------------------------------------------------------


def render_roles(
    request: Request,
    platform: Platform,
    who: Caller,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return org_render(
        request,
        "org_roles.html",
        {
            "roles": platform.roles.list_roles(who.principal),
            "permissions": list(PERMISSIONS),
            "held": who.principal.permissions,
            "current_role": who.principal.role,
            "error": error,
        },
        status=status,
    )


def _roles_failed(
    request: Request, platform: Platform, who: Caller, exc: PactvaultError
) -> Response:
    return failed(request, exc, lambda **kw: render_roles(request, platform, who, **kw))


def _chosen(permissions: list[str]) -> list[str]:
    if len(permissions) > MAX_PERMISSIONS:
        raise InvalidInputError("too many permissions")
    return permissions


Permissions = Annotated[list[str], Form(max_length=MAX_PERMISSIONS)]


@router.get(ROLES)
def roles(request: Request, who: MemberReader, platform: PlatformDep) -> Response:
    return render_roles(request, platform, who)


@router.post(ROLES)
def create_role(
    request: Request,
    who: RoleManager,
    platform: PlatformDep,
    key: Annotated[str, Form(max_length=40)],
    name: Annotated[str, Form(max_length=200)] = "",
    permissions: Permissions = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    try:
        platform.roles.create_role(who.principal, key, name, _chosen(permissions), who.actor)
    except PactvaultError as exc:
        return _roles_failed(request, platform, who, exc)
    return redirect(request, ROLES, flash="flash.org.role_created")


@router.post(ROLES + "/{key}")
def update_role(
    key: RoleKey,
    request: Request,
    who: RoleManager,
    platform: PlatformDep,
    name: Annotated[str, Form(max_length=200)] = "",
    permissions: Permissions = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    try:
        platform.roles.update_role(
            who.principal, key, _chosen(permissions), name or None, who.actor
        )
    except PactvaultError as exc:
        return _roles_failed(request, platform, who, exc)
    return redirect(request, ROLES, flash="flash.org.role_updated")


@router.post(ROLES + "/{key}/delete")
def delete_role(
    key: RoleKey, request: Request, who: RoleManager, platform: PlatformDep
) -> Response:
    try:
        platform.roles.delete_role(who.principal, key, who.actor)
    except PactvaultError as exc:
        return _roles_failed(request, platform, who, exc)
    return redirect(request, ROLES, flash="flash.org.role_deleted")


# -- the organisation's security policy -----------------------------------------------------------


def render_security(
    request: Request,
    platform: Platform,
    who: Caller,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return org_render(
        request,
        "org_security.html",
        {"require_mfa": platform.mfa.org_requires_mfa(who.org_id), "error": error},
        status=status,
    )


@router.get(SECURITY)
def security_policy(request: Request, who: MemberReader, platform: PlatformDep) -> Response:
    return render_security(request, platform, who)


@router.post(SECURITY + "/mfa")
def set_mfa_policy(
    request: Request,
    who: OrgManager,
    platform: PlatformDep,
    require: Annotated[Literal["yes", "no"], Form()],
) -> Response:
    """Require a second factor of every member: those without one enrol at their next sign-in."""
    try:
        platform.mfa.set_org_requirement(who.principal, require == "yes", who.actor)
    except PactvaultError as exc:
        return failed(request, exc, lambda **kw: render_security(request, platform, who, **kw))
    flash = "flash.org.mfa_required" if require == "yes" else "flash.org.mfa_optional"
    return redirect(request, SECURITY, flash=flash)
