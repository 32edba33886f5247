"""The caller's organisation: members, invitations, roles and the audit journal.

The services check permissions themselves (and audit denials); each route also declares its
permission so the rule is visible in the route table and refused before any work is done.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from pactvault.api.deps import PUBLIC, Caller, PlatformDep, allow, client_actor
from pactvault.api.identity_schemas import (
    AcceptInvitationIn,
    InvitationIn,
    InvitationOut,
    MemberOut,
    MemberUpdateIn,
    RoleIn,
    RoleOut,
    RoleUpdateIn,
    SigningPolicyIn,
    SigningPolicyOut,
    UnlockOut,
)
from pactvault.api.query import IsoDateTime, SequenceAfter
from pactvault.api.schemas import AuditEventOut
from pactvault.errors import InvalidInputError
from pactvault.identity.people import NewAccount
from pactvault.store.models import AuditEvent

router = APIRouter(prefix="/api/v1/org", tags=["organisation"])
MemberReader = Annotated[Caller, allow("member.read")]
MemberManager = Annotated[Caller, allow("member.manage")]
Inviter = Annotated[Caller, allow("member.invite")]
RoleManager = Annotated[Caller, allow("role.manage")]
AuditReader = Annotated[Caller, allow("audit.read")]
OrgManager = Annotated[Caller, allow("org.manage")]


# -- members -----------------------------------------------------------------------------------


@router.get("/members", response_model=list[MemberOut])
def list_members(who: MemberReader, platform: PlatformDep) -> list[MemberOut]:
    return [MemberOut.of(m) for m in platform.people.list_members(who.principal)]


@router.get("/members/{user_id}", response_model=MemberOut)
def get_member(user_id: str, who: MemberReader, platform: PlatformDep) -> MemberOut:
    return MemberOut.of(platform.people.get_member(who.principal, user_id))


@router.patch("/members/{user_id}", response_model=MemberOut)
def update_member(
    user_id: str, body: MemberUpdateIn, who: MemberManager, platform: PlatformDep
) -> MemberOut:
    """Change a member's role and/or clearance. Only an owner can make an owner, nobody can
    promote themselves or grant a clearance above their own, the last owner stays an owner."""
    if body.role is None and body.clearance is None:
        raise InvalidInputError("give a role, a clearance, or both")
    if body.role is not None:
        member = platform.people.change_role(who.principal, user_id, body.role, who.actor)
    if body.clearance is not None:
        member = platform.people.set_clearance(who.principal, user_id, body.clearance, who.actor)
    return MemberOut.of(member)


@router.delete("/members/{user_id}", status_code=204)
def remove_member(user_id: str, who: MemberManager, platform: PlatformDep) -> None:
    platform.people.remove_member(who.principal, user_id, who.actor)


@router.post("/members/{user_id}/unlock", response_model=UnlockOut)
def unlock_member(user_id: str, who: MemberManager, platform: PlatformDep) -> UnlockOut:
    """Lift a member's sign-in lockout before it expires by itself."""
    return UnlockOut(was_locked=platform.login.unlock_account(who.principal, user_id, who.actor))


# -- signing policy ----------------------------------------------------------------------------


@router.get("/signing-policy", response_model=SigningPolicyOut)
def get_signing_policy(who: MemberReader, platform: PlatformDep) -> SigningPolicyOut:
    """The weakest identity check any signer of the organisation's contracts may rest on."""
    return SigningPolicyOut(min_signer_assurance=platform.signing_policy.minimum(who.org_id))


@router.put("/signing-policy", response_model=SigningPolicyOut)
def set_signing_policy(
    body: SigningPolicyIn, who: OrgManager, platform: PlatformDep
) -> SigningPolicyOut:
    """Raise (or lower) the minimum for every signer, open contracts included: e.g.
    ``verified-document`` makes every signer pass real-name verification (实名认证) first."""
    minimum = platform.signing_policy.set_minimum(
        who.principal, body.min_signer_assurance, who.actor
    )
    return SigningPolicyOut(min_signer_assurance=minimum)


# -- invitations -------------------------------------------------------------------------------


@router.post("/invitations", response_model=InvitationOut, status_code=201)
def invite(body: InvitationIn, who: Inviter, platform: PlatformDep) -> InvitationOut:
    """Invite someone by email; the one-time link goes only to them."""
    return InvitationOut.of(platform.people.invite(who.principal, body.email, body.role, who.actor))


@router.get("/invitations", response_model=list[InvitationOut])
def pending_invitations(who: Inviter, platform: PlatformDep) -> list[InvitationOut]:
    return [InvitationOut.of(i) for i in platform.people.pending_invitations(who.principal)]


@router.delete("/invitations/{invitation_id:uuid_text}", status_code=204)
def revoke_invitation(invitation_id: str, who: Inviter, platform: PlatformDep) -> None:
    platform.people.revoke_invitation(who.principal, invitation_id, who.actor)


@router.post("/invitations/accept", response_model=MemberOut, dependencies=[PUBLIC])
def accept_invitation(
    body: AcceptInvitationIn, request: Request, platform: PlatformDep
) -> MemberOut:
    """Redeem an invitation with a new account (name and password).

    An address that already has an account joins by signing in and accepting from its session
    (the web app does this); the token alone never unlocks an existing account.
    """
    if not body.display_name or not body.password:
        raise InvalidInputError("a new account needs display_name and password")
    member = platform.people.accept_invitation(
        body.token, client_actor(request), account=NewAccount(body.display_name, body.password)
    )
    return MemberOut.of(member)


# -- roles -------------------------------------------------------------------------------------


@router.get("/roles", response_model=list[RoleOut])
def list_roles(who: MemberReader, platform: PlatformDep) -> list[RoleOut]:
    return [RoleOut.of(r) for r in platform.roles.list_roles(who.principal)]


@router.post("/roles", response_model=RoleOut, status_code=201)
def create_role(body: RoleIn, who: RoleManager, platform: PlatformDep) -> RoleOut:
    role = platform.roles.create_role(
        who.principal, body.key, body.name, body.permissions, who.actor
    )
    return RoleOut.of(role)


@router.patch("/roles/{key}", response_model=RoleOut)
def update_role(key: str, body: RoleUpdateIn, who: RoleManager, platform: PlatformDep) -> RoleOut:
    role = platform.roles.update_role(who.principal, key, body.permissions, body.name, who.actor)
    return RoleOut.of(role)


@router.delete("/roles/{key}", status_code=204)
def delete_role(key: str, who: RoleManager, platform: PlatformDep) -> None:
    platform.roles.delete_role(who.principal, key, who.actor)


# -- audit journal -----------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditEventOut])
def audit_journal(
    who: AuditReader,
    platform: PlatformDep,
    after_seq: SequenceAfter = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: IsoDateTime | None = None,
) -> list[AuditEventOut]:
    """The organisation's entries of the hash-chained journal, oldest first, paged by ``seq``."""
    query = select(AuditEvent).where(
        AuditEvent.org_id == who.org_id, AuditEvent.seq > after_seq
    )
    if action:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        if since.tzinfo is None:
            raise InvalidInputError("since must include a time zone, e.g. 2026-11-22T08:00:00Z")
        query = query.where(AuditEvent.occurred_at >= since)
    with platform.db.read() as session:
        rows = session.execute(query.order_by(AuditEvent.seq).limit(limit)).scalars().all()
        return [AuditEventOut.of(e) for e in rows]
