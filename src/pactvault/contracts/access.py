"""What access control needs to know about contracts: who owns one, who is a party to it.

A party is an account whose (normalised) email address is one of the contract's signers, or who
was asked to approve it: members see and sign what they are party to, approvers see what they are
asked to approve. Look-ups ignore the tenant on purpose — the decision itself
answers another tenant's contract as missing, and audits the attempt.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, Resource
from pactvault.audit.journal import Actor
from pactvault.contracts.approvals import approver_user_ids
from pactvault.errors import NotFoundError
from pactvault.identity.members import normalise_email
from pactvault.identity.principal import Principal
from pactvault.store.approval_models import ApprovalApprover, ApprovalRequest
from pactvault.store.db import Database
from pactvault.store.identity_models import User
from pactvault.store.models import Contract, Signer

RESOURCE_TYPE = "contract"
NOT_FOUND = "contract not found"


def authorize_contract(
    db: Database,
    access: AccessControl,
    principal: Principal,
    permission: str,
    contract_id: str,
    actor: Actor,
) -> Resource:
    """Allow ``permission`` on the contract or raise; missing and foreign ids answer alike."""
    with db.read() as session:
        resource = contract_resource(session, contract_id)
    if resource is None:
        missing = NotFoundError(NOT_FOUND)
        access.record_denial(
            actor,
            permission,
            missing,
            object_type=RESOURCE_TYPE,
            object_id=contract_id,
            reason="not found",
        )
        raise missing
    access.authorize(principal, permission, resource, actor=actor)
    return resource


def contract_resource(session: Session, contract_id: str) -> Resource | None:
    """The access-control view of a contract, or ``None`` if no such contract exists."""
    if not contract_id or len(contract_id) > 64:
        return None
    row = session.execute(
        select(
            Contract.id, Contract.org_id, Contract.created_by_user_id, Contract.classification
        ).where(Contract.id == contract_id)
    ).first()
    if row is None:
        return None
    emails = {
        normalise_email(e)
        for e in session.execute(
            select(Signer.email).where(Signer.contract_id == contract_id)
        ).scalars()
    }
    parties = (
        session.execute(select(User.id).where(User.email.in_(emails))).scalars().all()
        if emails
        else []
    )
    return Resource(
        type=RESOURCE_TYPE,
        id=row.id,
        org_id=row.org_id,
        owner_user_id=row.created_by_user_id,
        party_user_ids=frozenset(parties) | approver_user_ids(session, contract_id),
        level=row.classification,
    )


def involving(user_id: str) -> ColumnElement[bool]:
    """SQL condition: ``user_id`` created the contract, signs it or was asked to approve it."""
    party = exists(
        select(Signer.id)
        .join(User, func.lower(func.trim(Signer.email)) == User.email)
        .where(Signer.contract_id == Contract.id, User.id == user_id)
    )
    approver = exists(
        select(ApprovalApprover.id)
        .join(ApprovalRequest, ApprovalRequest.id == ApprovalApprover.request_id)
        .where(ApprovalRequest.contract_id == Contract.id, ApprovalApprover.user_id == user_id)
    )
    return or_(Contract.created_by_user_id == user_id, party, approver)
