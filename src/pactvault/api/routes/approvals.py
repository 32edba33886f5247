"""Approval workflows (审批) over HTTP: the organisation's rules, requests, inbox and decisions.

The routes translate; ``contracts.approval_rules`` and ``contracts.approvals`` decide and audit.
Who may do what (each route also declares it, for the authorisation matrix):

- **rules** — ``approval.manage`` (owners, administrators), reading included. Approvers do *not*
  get to read the rule set: a request already shows them the rule name, version and steps they
  decide under, while the whole set (thresholds, who approves what) is organisational policy —
  least privilege. A custom role can grant ``approval.manage`` where reading must be wider.
- **requesting approval** of a draft — ``contract.send`` on that contract, exactly as sending it.
- **a contract's requests** — ``contract.read`` on that contract.
- **one request** — ``contract.read`` reach; the service lets through its requester, the
  contract's creator, its approvers, and readers of every contract and approval managers.
- **withdrawing** — ``contract.send`` reach; the requester, or whoever may send the contract.
- **inbox and decisions** — ``contract.approve``; the service checks that the caller is an
  approver of the current step, cleared for the contract, and neither its creator nor the
  requester (four-eyes).

Another tenant's ids answer exactly like missing ones, and every refusal is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from pactvault.api.deps import Caller, PlatformDep, allow
from pactvault.api.routes.contracts import authorize
from pactvault.api.workflow_schemas import (
    ApprovalRequestIn,
    ApprovalRequestOut,
    DecisionIn,
    RuleIn,
    RuleOut,
    RulePatch,
    WithdrawIn,
)
from pactvault.errors import ConflictError, InvalidInputError

router = APIRouter(prefix="/api/v1", tags=["approvals"])
RuleManager = Annotated[Caller, allow("approval.manage")]
Requester = Annotated[Caller, allow("contract.send", on_object="contract")]
ContractReader = Annotated[Caller, allow("contract.read", on_object="contract")]
RequestReader = Annotated[Caller, allow("contract.read", on_object="approval_request")]
Withdrawer = Annotated[Caller, allow("contract.send", on_object="approval_request")]
Approver = Annotated[Caller, allow("contract.approve")]
Decider = Annotated[Caller, allow("contract.approve", on_object="approval_request")]
ObjectId = Annotated[str, Path(min_length=1, max_length=36)]


# -- rules -------------------------------------------------------------------------------------


@router.get("/org/approval-rules", response_model=list[RuleOut])
def list_rules(who: RuleManager, platform: PlatformDep) -> list[RuleOut]:
    """The organisation's rules (deleted ones left out), ordered by name."""
    return [RuleOut.of(r) for r in platform.approvals.rules.list_rules(who.principal)]


@router.post("/org/approval-rules", response_model=RuleOut, status_code=201)
def create_rule(body: RuleIn, who: RuleManager, platform: PlatformDep) -> RuleOut:
    """A new rule: when a contract needs approval before sending, and by whom (in steps)."""
    rule = platform.approvals.rules.create_rule(who.principal, body.to_spec(), who.actor)
    return RuleOut.of(rule)


@router.get("/org/approval-rules/{rule_id}", response_model=RuleOut)
def get_rule(rule_id: ObjectId, who: RuleManager, platform: PlatformDep) -> RuleOut:
    return RuleOut.of(platform.approvals.rules.get_rule(who.principal, rule_id))


@router.patch("/org/approval-rules/{rule_id}", response_model=RuleOut)
def update_rule(
    rule_id: ObjectId, body: RulePatch, who: RuleManager, platform: PlatformDep
) -> RuleOut:
    """Change parts of a rule; each change is a new version. Pending requests keep theirs.

    Without ``expected_version`` the version read here is expected, so a change made between
    this read and the write is refused (409) rather than overwritten.
    """
    if body.model_dump(exclude_none=True, exclude={"expected_version"}) == {}:
        raise InvalidInputError("give at least one of name, enabled, condition, steps")
    rules = platform.approvals.rules
    current = rules.get_rule(who.principal, rule_id)
    rule = rules.update_rule(
        who.principal,
        rule_id,
        body.merged(current),
        who.actor,
        expected_version=body.expected_version or current.version,
    )
    return RuleOut.of(rule)


@router.delete("/org/approval-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: ObjectId, who: RuleManager, platform: PlatformDep) -> None:
    """Retire a rule; its versions stay, since requests refer to them."""
    platform.approvals.rules.delete_rule(who.principal, rule_id, who.actor)


@router.get("/org/approval-rules/{rule_id}/versions", response_model=list[RuleOut])
def rule_versions(rule_id: ObjectId, who: RuleManager, platform: PlatformDep) -> list[RuleOut]:
    """Every version of a rule, oldest first, deleted rules included."""
    return [RuleOut.of(r) for r in platform.approvals.rules.rule_versions(who.principal, rule_id)]


# -- requests on a contract --------------------------------------------------------------------


@router.post(
    "/contracts/{contract_id}/approvals", response_model=ApprovalRequestOut, status_code=201
)
def request_approval(
    contract_id: ObjectId,
    who: Requester,
    platform: PlatformDep,
    body: Annotated[ApprovalRequestIn | None, Body()] = None,
) -> ApprovalRequestOut:
    """Ask for approval of a draft as it is now (its document hash included).

    Any change to the document, amount, classification or title afterwards needs a new approval.
    """
    authorize(platform, who, "contract.send", contract_id)
    if platform.contracts.get(who.org_id, contract_id).status != "draft":
        raise ConflictError("only a draft is approved before sending; this one is not a draft")
    facts = platform.contracts.approval_facts(who.org_id, contract_id)
    request = platform.approvals.request(
        who.principal, facts, body.comment if body else None, who.actor
    )
    return ApprovalRequestOut.of(request)


@router.get("/contracts/{contract_id}/approvals", response_model=list[ApprovalRequestOut])
def contract_approvals(
    contract_id: ObjectId, who: ContractReader, platform: PlatformDep
) -> list[ApprovalRequestOut]:
    """The contract's approval requests, newest first."""
    authorize(platform, who, "contract.read", contract_id)
    with platform.db.read() as session:
        requests = platform.approvals.requests_for(session, who.org_id, contract_id)
    return [ApprovalRequestOut.of(r) for r in requests]


# -- requests ----------------------------------------------------------------------------------


@router.get("/approvals", response_model=list[ApprovalRequestOut])
def inbox(who: Approver, platform: PlatformDep) -> list[ApprovalRequestOut]:
    """Requests waiting for the caller's decision now (their step is the current one)."""
    return [ApprovalRequestOut.of(r) for r in platform.approvals.inbox(who.principal)]


@router.get("/approvals/{request_id}", response_model=ApprovalRequestOut)
def get_request(
    request_id: ObjectId, who: RequestReader, platform: PlatformDep
) -> ApprovalRequestOut:
    return ApprovalRequestOut.of(platform.approvals.get(who.principal, request_id))


@router.post("/approvals/{request_id}/withdraw", response_model=ApprovalRequestOut)
def withdraw(
    request_id: ObjectId,
    who: Withdrawer,
    platform: PlatformDep,
    body: Annotated[WithdrawIn | None, Body()] = None,
) -> ApprovalRequestOut:
    """Take a pending request back; the contract stays a draft."""
    request = platform.approvals.withdraw(
        who.principal, request_id, body.comment if body else None, who.actor
    )
    return ApprovalRequestOut.of(request)


@router.post("/approvals/{request_id}/decision", response_model=ApprovalRequestOut)
def decide(
    request_id: ObjectId, body: DecisionIn, who: Decider, platform: PlatformDep
) -> ApprovalRequestOut:
    """Approve or reject the current step (once per approver); a rejection needs a comment."""
    request = platform.approvals.decide(
        who.principal, request_id, body.decision == "approve", body.comment, who.actor
    )
    return ApprovalRequestOut.of(request)
