"""The approval inbox (审批): requests waiting for the caller, one request's page, decisions.

The same services and rules as ``api/routes/approvals.py``: the inbox and decisions need
``contract.approve`` (the service checks that the caller approves the current step, is cleared
for the contract and is neither its creator nor the requester — four-eyes); a request's page is
for its requester, the contract's creator, its approvers and those who read every contract or
manage approvals; withdrawing is for the requester or whoever may send the contract. Another
organisation's request answers exactly like a missing one.

The page also lists the requests the caller made, newest first, so a contract manager sees where
each of their drafts stands.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from sqlalchemy import select
from starlette.responses import Response

from pactvault.api.deps import Caller, PlatformDep
from pactvault.contracts.approvals import ApprovalRequestInfo
from pactvault.errors import PactvaultError
from pactvault.platform import Platform
from pactvault.store.approval_models import ApprovalRequest
from pactvault.store.models import Contract
from pactvault.web.display import holds, render
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, error_page, redirect, translator
from pactvault.web.routes.contracts import may_act, member_names
from pactvault.web.security import SignedIn, page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RequestReader = Annotated[Caller, page_allow("contract.read", on_object="approval_request")]
Decider = Annotated[Caller, page_allow("contract.approve", on_object="approval_request")]
Withdrawer = Annotated[Caller, page_allow("contract.send", on_object="approval_request")]
RequestId = Annotated[str, Path(min_length=1, max_length=36)]
Comment = Annotated[str, Form(max_length=2000)]
MINE_LIMIT = 50


def _contract(platform: Platform, who: Caller, contract_id: str) -> Contract | None:
    """The contract a request is about, if the caller may read it (approvers may: asking them
    makes them a party); else ``None`` and the page shows the request's own facts only."""
    if not may_act(platform, who, "contract.read", contract_id):
        return None
    return platform.contracts.get(who.org_id, contract_id)


def _requested_by_me(platform: Platform, who: Caller) -> list[ApprovalRequestInfo]:
    """The caller's own requests, newest first (each read through the service's checks)."""
    if who.user_id is None:
        return []
    with platform.db.read() as session:
        ids = (
            session.execute(
                select(ApprovalRequest.id)
                .where(
                    ApprovalRequest.org_id == who.org_id,
                    ApprovalRequest.requester_user_id == who.user_id,
                )
                .order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id)
                .limit(MINE_LIMIT)
            )
            .scalars()
            .all()
        )
    return [platform.approvals.get(who.principal, request_id) for request_id in ids]


@router.get("/approvals")
def approvals_page(request: Request, who: SignedIn, platform: PlatformDep) -> Response:
    """What waits for the caller's decision (approvers), and what they asked for (requesters)."""
    inbox = (
        platform.approvals.inbox(who.principal)
        if holds(who.principal, "contract.approve")
        else None
    )
    mine = _requested_by_me(platform, who)
    contracts = {
        r.contract_id: _contract(platform, who, r.contract_id) for r in [*(inbox or []), *mine]
    }
    return render(request, "approvals.html", {"inbox": inbox, "mine": mine, "contracts": contracts})


def render_request(
    request: Request,
    platform: Platform,
    who: Caller,
    request_id: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    info = platform.approvals.get(who.principal, request_id)
    contract = _contract(platform, who, info.contract_id)
    people = {a.user_id for step in info.steps for a in step.approvers}
    if info.requester_user_id:
        people.add(info.requester_user_id)
    with platform.db.read() as session:
        names = member_names(session, who.org_id, people)
    current = info.current
    my_turn = current is not None and any(
        a.user_id == who.user_id and a.decision is None for a in current.approvers
    )
    may_withdraw = info.status == "pending" and (
        info.requester_user_id == who.user_id
        or may_act(platform, who, "contract.send", info.contract_id)
    )
    return render(
        request,
        "approval.html",
        {
            "info": info,
            "contract": contract,
            "names": names,
            "my_turn": my_turn and holds(who.principal, "contract.approve"),
            "may_withdraw": may_withdraw,
            "error": error,
        },
        status=status,
    )


@router.get("/approvals/{request_id}")
def approval_page(
    request_id: RequestId, request: Request, who: RequestReader, platform: PlatformDep
) -> Response:
    return render_request(request, platform, who, request_id)


@router.post("/approvals/{request_id}/decision")
def decide(
    request_id: RequestId,
    request: Request,
    who: Decider,
    platform: PlatformDep,
    decision: Annotated[Literal["approve", "reject"], Form()],
    comment: Comment = "",
) -> Response:
    """Approve or reject the current step (a rejection says why)."""
    try:
        platform.approvals.decide(
            who.principal, request_id, decision == "approve", comment or None, who.actor
        )
    except PactvaultError as exc:
        return _failed(request, platform, who, request_id, exc)
    flash = "flash.approvals.approved" if decision == "approve" else "flash.approvals.rejected"
    return redirect(request, "/approvals", flash=flash)


@router.post("/approvals/{request_id}/withdraw")
def withdraw(
    request_id: RequestId,
    request: Request,
    who: Withdrawer,
    platform: PlatformDep,
    comment: Comment = "",
) -> Response:
    """Take a pending request back; the contract stays a draft."""
    try:
        info = platform.approvals.withdraw(who.principal, request_id, comment or None, who.actor)
    except PactvaultError as exc:
        return _failed(request, platform, who, request_id, exc)
    return redirect(request, f"/contracts/{info.contract_id}", flash="flash.approvals.withdrawn")


def _failed(
    request: Request, platform: Platform, who: Caller, request_id: str, exc: PactvaultError
) -> Response:
    """The request's page with the reason; a request the caller may not see: the error alone."""
    message = error_message(exc, translator(request))
    if exc.status not in (403, 404):
        try:
            return render_request(
                request, platform, who, request_id, error=message, status=exc.status
            )
        except PactvaultError:
            pass
    return error_page(request, exc.status, message)
