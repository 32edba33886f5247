"""Approval workflows (审批流程): requests, decisions, the approver's inbox and the send gate.

A request asks for approval of one contract *in one exact form*: it is bound to the digest of the
contract facts, document hash included, so a changed document (or amount, level, title) needs a
new approval before it can be sent. At request time the applicable rules' steps are copied into
the request, and each step's eligible approvers are computed once and stored:

    active members whose role is one of the step's roles, or who are named in it,
    who hold ``contract.approve`` and whose clearance reaches the contract's classification,
    other than the requester and the contract's creator (four-eyes).

A step with nobody eligible is refused at request time — never silently skipped — and nothing is
created. Steps are decided in order; ``any`` needs one approval, ``all`` every eligible approver.
One rejection ends the request. Each approver decides once per step.

Every change is audited in the same transaction (``approval.requested``, ``approval.approved``,
``approval.rejected``, ``approval.completed``, ``approval.withdrawn``, ``approval.superseded``);
every refusal is audited as ``access.denied`` after the rollback. Request ids of another
organisation answer exactly like unknown ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl, Resource, cleared, decide, require
from pactvault.access.roles import role_permissions
from pactvault.audit.journal import Actor, record
from pactvault.contracts.approval_rules import (
    APPROVE,
    MANAGE,
    ApprovalRuleService,
    ContractFacts,
    RuleInfo,
    applicable_rules,
    audit_id,
    audited_refusals,
    check_facts,
)
from pactvault.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from pactvault.identity.principal import Principal
from pactvault.store.approval_models import (
    ApprovalApprover,
    ApprovalRequest,
    ApprovalStep,
)
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import Membership, User

REQUEST_NOT_FOUND = "approval request not found"
MAX_COMMENT = 2000
OBJECT_TYPE = "approval_request"


class ApprovalRequiredError(ConflictError):
    """A rule requires approval and no approval covers the contract in its current form."""

    slug = "approval-required"
    title = "Approval required"


@dataclass(frozen=True)
class ApproverInfo:
    user_id: str
    decision: str | None
    comment: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class StepInfo:
    position: int
    rule_id: str
    rule_version: int
    mode: str
    roles: tuple[str, ...]
    user_ids: tuple[str, ...]
    status: str
    approvers: tuple[ApproverInfo, ...]
    completed_at: datetime | None


@dataclass(frozen=True)
class RuleRef:
    """The rule version a request was created under."""

    id: str
    version: int
    name: str


@dataclass(frozen=True)
class ApprovalRequestInfo:
    id: str
    org_id: str
    contract_id: str
    document_sha256: str
    status: str
    current_step: int
    steps: tuple[StepInfo, ...]
    rules: tuple[RuleRef, ...]
    requester_user_id: str | None
    comment: str | None
    classification: str
    amount_minor: int | None
    currency: str | None
    created_at: datetime
    closed_at: datetime | None

    @property
    def current(self) -> StepInfo | None:
        """The step being decided, while the request is pending."""
        if self.status != "pending":
            return None
        return self.steps[self.current_step - 1]


def _comment(comment: object, *, required: bool = False) -> str | None:
    if comment is not None and not isinstance(comment, str):
        raise InvalidInputError("the comment must be text")
    cleaned = (comment or "").strip()
    if len(cleaned) > MAX_COMMENT:
        raise InvalidInputError(f"the comment must be at most {MAX_COMMENT} characters")
    if required and not cleaned:
        raise InvalidInputError("a rejection needs a comment saying why")
    return cleaned or None


def approver_user_ids(session: Session, contract_id: str) -> frozenset[str]:
    """Everyone ever asked to approve the contract, so they may read it (``.own`` reach)."""
    return frozenset(
        session.execute(
            select(ApprovalApprover.user_id)
            .join(ApprovalRequest, ApprovalRequest.id == ApprovalApprover.request_id)
            .where(ApprovalRequest.contract_id == contract_id)
            .distinct()
        ).scalars()
    )


class ApprovalService:
    """Requests, decisions, inbox and send gate; ``rules`` manages the rules themselves."""

    def __init__(
        self, db: Database, access: AccessControl, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._access = access
        self._clock = clock
        self.rules = ApprovalRuleService(db, access, clock=clock)

    # -- for the contract service (inside its transaction) ------------------------------------

    def required_for(self, session: Session, facts: ContractFacts) -> list[RuleInfo]:
        """The enabled rules that apply to the contract as ``facts`` describe it."""
        return applicable_rules(session, facts)

    def ensure_send_allowed(self, session: Session, facts: ContractFacts) -> str | None:
        """Raise ``ApprovalRequiredError`` unless the contract may be sent as it is now.

        Allowed when no rule applies, or an *approved* request covers these exact facts (the
        current document included) and every rule that applies now. Returns the id of that
        request (``None`` when no approval was needed) for the caller's audit entry.
        """
        rules = applicable_rules(session, facts)
        if not rules:
            return None
        digest = facts.digest()
        covering = self._covering(session, facts, digest, rules)
        if covering is not None:
            return covering.id
        raise ApprovalRequiredError(self._why_blocked(session, facts, digest, rules))

    @staticmethod
    def approver_user_ids(session: Session, contract_id: str) -> frozenset[str]:
        return approver_user_ids(session, contract_id)

    @contextmanager
    def refusals(self, actor: Actor, contract_id: str | None) -> Iterator[None]:
        """Audit a send refused by ``ensure_send_allowed`` (wrap the send's unit of work).

        ``ensure_send_allowed`` runs inside the send transaction, which rolls back with the
        error and would take an audit entry with it; used *outside* ``db.write()``, this
        records the refusal in a fresh transaction and re-raises it unchanged.
        """
        try:
            yield
        except ApprovalRequiredError as exc:
            self._access.record_denial(
                actor,
                "contract.send",
                exc,
                object_type="contract",
                object_id=audit_id(contract_id),
            )
            raise

    # -- requester ------------------------------------------------------------------------------

    def request(
        self,
        principal: Principal,
        facts: ContractFacts,
        comment: str | None = None,
        actor: Actor | None = None,
    ) -> ApprovalRequestInfo:
        """Ask for approval of the contract in its current form.

        A pending request for the same facts is a conflict; one for older facts (the document
        changed) is superseded by the new one.
        """
        actor = actor or principal.actor()
        contract_id = facts.contract_id if isinstance(facts, ContractFacts) else None
        with (
            audited_refusals(
                self._access,
                actor,
                "approval.request",
                object_type="contract",
                object_id=audit_id(contract_id),
            ),
            self._db.write() as s,
        ):
            check_facts(facts)
            note = _comment(comment)
            require(
                principal,
                "contract.send",
                Resource(
                    "contract",
                    facts.contract_id,
                    facts.org_id,
                    owner_user_id=facts.created_by_user_id,
                    level=facts.classification,
                ),
            )
            rules = applicable_rules(s, facts)
            if not rules:
                raise ConflictError(
                    "no approval rule applies to this contract; it can be sent without approval"
                )
            digest = facts.digest()
            now = self._clock()
            pending = s.execute(
                select(ApprovalRequest)
                .where(
                    ApprovalRequest.open_contract_id == facts.contract_id,
                    ApprovalRequest.org_id == facts.org_id,
                )
                .with_for_update()
            ).scalar_one_or_none()
            if pending is not None:
                if pending.facts_sha256 == digest:
                    raise ConflictError("an approval request for this contract is already pending")
                self._close(s, pending, "superseded", now)
                record(
                    s,
                    actor,
                    "approval.superseded",
                    object_type=OBJECT_TYPE,
                    object_id=pending.id,
                    details={"contract_id": facts.contract_id},
                )
            if self._covering(s, facts, digest, rules) is not None:
                raise ConflictError("this contract is already approved in its current form")
            plan = self._plan(s, principal, facts, rules)
            request = ApprovalRequest(
                org_id=facts.org_id,
                contract_id=facts.contract_id,
                document_sha256=facts.document_sha256,
                facts_sha256=digest,
                classification=facts.classification,
                amount_minor=facts.amount_minor,
                currency=facts.currency,
                status="pending",
                open_contract_id=facts.contract_id,
                current_step=1,
                step_count=len(plan),
                rules=[{"id": r.id, "version": r.version, "name": r.name} for r in rules],
                requester_user_id=principal.user_id,
                requester_token_id=principal.token_id if principal.user_id is None else None,
                contract_owner_user_id=facts.created_by_user_id,
                comment=note,
                created_at=now,
                updated_at=now,
            )
            s.add(request)
            try:
                s.flush()
            except DatabaseIntegrityError as exc:
                if "open_contract_id" in str(exc.orig):
                    # Another process opened a request for this contract at the same moment.
                    raise ConflictError(
                        "an approval request for this contract is already pending"
                    ) from None
                raise NotFoundError("contract not found") from None  # facts of no stored row
            for position, (rule, step_number, eligible) in enumerate(plan, start=1):
                step = rule.steps[step_number - 1]
                row = ApprovalStep(
                    request_id=request.id,
                    position=position,
                    rule_id=rule.id,
                    rule_version=rule.version,
                    mode=step.mode,
                    roles=sorted(step.roles),
                    user_ids=sorted(step.user_ids),
                    status="active" if position == 1 else "waiting",
                )
                s.add(row)
                s.flush()
                s.add_all(
                    ApprovalApprover(
                        request_id=request.id, step_id=row.id, org_id=facts.org_id, user_id=user
                    )
                    for user in eligible
                )
            s.flush()
            record(
                s,
                actor,
                "approval.requested",
                object_type=OBJECT_TYPE,
                object_id=request.id,
                details={
                    "contract_id": facts.contract_id,
                    "document_sha256": facts.document_sha256,
                    "facts_sha256": digest,
                    "rules": [{"id": r.id, "version": r.version} for r in rules],
                    "steps": [
                        {"mode": rule.steps[n - 1].mode, "approvers": sorted(eligible)}
                        for rule, n, eligible in plan
                    ],
                    "comment": note,
                },
            )
            return self._info(s, request)

    def withdraw(
        self,
        principal: Principal,
        request_id: str,
        comment: str | None = None,
        actor: Actor | None = None,
    ) -> ApprovalRequestInfo:
        """Take a pending request back (the contract stays a draft).

        The requester may, and so may whoever may send the contract now (``contract.send.all``,
        or ``.own`` as its creator): otherwise a request of someone who left would block the
        contract until its facts change.
        """
        actor = actor or principal.actor()
        with (
            audited_refusals(
                self._access,
                actor,
                "approval.withdraw",
                object_type=OBJECT_TYPE,
                object_id=audit_id(request_id),
            ),
            self._db.write() as s,
        ):
            note = _comment(comment)
            request = self._request(s, principal.org_id, request_id, lock=True)
            if not self._is_requester(principal, request) and not decide(
                principal,
                "contract.send",
                Resource(
                    "contract",
                    request.contract_id,
                    request.org_id,
                    owner_user_id=request.contract_owner_user_id,
                    level=request.classification,
                ),
            ).allowed:
                raise PermissionDeniedError(
                    "only the requester, or someone who may send the contract, can withdraw "
                    "its approval request"
                )
            if request.status != "pending":
                raise ConflictError(f"this approval request is already {request.status}")
            self._close(s, request, "withdrawn", self._clock())
            record(
                s,
                actor,
                "approval.withdrawn",
                object_type=OBJECT_TYPE,
                object_id=request.id,
                details={"contract_id": request.contract_id, "comment": note},
            )
            return self._info(s, request)

    # -- approver -------------------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        request_id: str,
        approve: bool,
        comment: str | None = None,
        actor: Actor | None = None,
    ) -> ApprovalRequestInfo:
        """Approve or reject the current step of a request, once per approver and step."""
        actor = actor or principal.actor()
        action = "approval.approve" if approve is True else "approval.reject"
        with (
            audited_refusals(
                self._access,
                actor,
                action,
                object_type=OBJECT_TYPE,
                object_id=audit_id(request_id),
            ),
            self._db.write() as s,
        ):
            if not isinstance(approve, bool):
                raise InvalidInputError("the decision must be approve or reject")
            note = _comment(comment, required=not approve)
            require(principal, APPROVE)
            request = self._request(s, principal.org_id, request_id, lock=True)
            user = principal.user_id
            if user is None:
                raise PermissionDeniedError(
                    "approvals are personal: sign in as a member to approve or reject"
                )
            if request.status != "pending":
                raise ConflictError(f"this approval request is already {request.status}")
            if user in (request.requester_user_id, request.contract_owner_user_id):
                raise PermissionDeniedError(
                    "you cannot approve a contract you created or asked approval for "
                    "(four-eyes principle)"
                )
            if not cleared(principal.clearance, request.classification):
                raise PermissionDeniedError(
                    "your clearance does not reach this contract's classification level"
                )
            mine = {
                position: row
                for position, row in s.execute(
                    select(ApprovalStep.position, ApprovalApprover)
                    .join(ApprovalApprover, ApprovalApprover.step_id == ApprovalStep.id)
                    .where(ApprovalStep.request_id == request.id, ApprovalApprover.user_id == user)
                ).all()
            }
            row = mine.get(request.current_step)
            if row is None:
                later = [p for p in mine if p > request.current_step]
                if later:
                    raise PermissionDeniedError(
                        f"your turn is step {min(later)}; step {request.current_step} "
                        "has not been completed yet"
                    )
                if any(r.decision is not None for r in mine.values()):
                    raise ConflictError("you have already decided on this request")
                raise PermissionDeniedError(
                    "you are not an approver of the current step of this request"
                )
            if row.decision is not None:
                raise ConflictError("you have already decided on this step")
            now = self._clock()
            row.decision = "approved" if approve else "rejected"
            row.comment = note
            row.decided_at = now
            step = self._step(s, request, request.current_step)
            if approve:
                self._approved(s, actor, request, step, note, now)
            else:
                self._rejected(s, actor, request, step, note, now)
            return self._info(s, request)

    def inbox(self, principal: Principal) -> list[ApprovalRequestInfo]:
        """Pending requests whose current step waits for the caller's decision."""
        self._access.authorize(principal, APPROVE)
        if principal.user_id is None:
            return []
        with self._db.read() as s:
            rows = s.execute(
                select(ApprovalRequest)
                .join(
                    ApprovalStep,
                    and_(
                        ApprovalStep.request_id == ApprovalRequest.id,
                        ApprovalStep.position == ApprovalRequest.current_step,
                    ),
                )
                .join(
                    ApprovalApprover,
                    and_(
                        ApprovalApprover.step_id == ApprovalStep.id,
                        ApprovalApprover.user_id == principal.user_id,
                    ),
                )
                .where(
                    ApprovalRequest.org_id == principal.org_id,
                    ApprovalRequest.status == "pending",
                    ApprovalApprover.decision.is_(None),
                )
                .order_by(ApprovalRequest.created_at, ApprovalRequest.id)
            ).scalars()
            return [
                self._info(s, row)
                for row in rows
                if cleared(principal.clearance, row.classification)
            ]

    # -- reading --------------------------------------------------------------------------------

    def get(self, principal: Principal, request_id: str) -> ApprovalRequestInfo:
        """One request, for its requester, the contract's creator, anyone asked to approve it,
        and those who may read every contract or manage approvals."""
        actor = principal.actor()
        with (
            self._access.guard(
                actor, "approval.read", object_type=OBJECT_TYPE, object_id=audit_id(request_id)
            ),
            self._db.read() as s,
        ):
            request = self._request(s, principal.org_id, request_id)
            info = self._info(s, request)
            asked = {a.user_id for step in info.steps for a in step.approvers}
            user = principal.user_id
            if not (
                self._is_requester(principal, request)
                or (user is not None and (user == request.contract_owner_user_id or user in asked))
                or {"contract.read.all", MANAGE} & principal.permissions
            ):
                raise PermissionDeniedError("you are not allowed to see this approval request")
            return info

    def requests_for(
        self, session: Session, org_id: str, contract_id: str
    ) -> list[ApprovalRequestInfo]:
        """A contract's requests, newest first, for a caller already allowed to read it."""
        rows = session.execute(
            select(ApprovalRequest)
            .where(ApprovalRequest.org_id == org_id, ApprovalRequest.contract_id == contract_id)
            .order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id)
        ).scalars()
        return [self._info(session, row) for row in rows]

    # -- helpers --------------------------------------------------------------------------------

    def _plan(
        self,
        session: Session,
        principal: Principal,
        facts: ContractFacts,
        rules: list[RuleInfo],
    ) -> list[tuple[RuleInfo, int, list[str]]]:
        """Each step of each rule with its eligible approvers; refuse a step with none."""
        candidates = self._candidates(session, facts)
        excluded = {principal.user_id, facts.created_by_user_id}
        plan = []
        for rule in rules:
            for number, step in enumerate(rule.steps, start=1):
                eligible = sorted(
                    user
                    for user, role in candidates.items()
                    if (role in step.roles or user in step.user_ids) and user not in excluded
                )
                if not eligible:
                    named = ", ".join(sorted(step.roles) + sorted(step.user_ids))
                    raise ConflictError(
                        f"step {number} of the approval rule {rule.name!r} has nobody who can "
                        f"approve it: no active member named by it ({named}) holds {APPROVE} "
                        f"with clearance for {facts.classification} contracts, other than the "
                        "requester and the contract's creator. Ask an administrator to adjust "
                        "the rule or the members' roles; nothing was requested."
                    )
                plan.append((rule, number, eligible))
        return plan

    @staticmethod
    def _candidates(session: Session, facts: ContractFacts) -> dict[str, str]:
        """Active members who may approve this contract now: user id → role."""
        rows = session.execute(
            select(Membership.user_id, Membership.role, Membership.clearance)
            .join(User, User.id == Membership.user_id)
            .where(Membership.org_id == facts.org_id, User.status == "active")
        ).all()
        permissions: dict[str, frozenset[str]] = {}
        out = {}
        for user, role, clearance in rows:
            if role not in permissions:
                permissions[role] = role_permissions(session, facts.org_id, role) or frozenset()
            if APPROVE in permissions[role] and cleared(clearance, facts.classification):
                out[user] = role
        return out

    @staticmethod
    def _covering(
        session: Session, facts: ContractFacts, digest: str, rules: list[RuleInfo]
    ) -> ApprovalRequest | None:
        """The approved request for exactly these facts that covers every applicable rule."""
        needed = {rule.id for rule in rules}
        rows = session.execute(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.org_id == facts.org_id,
                ApprovalRequest.contract_id == facts.contract_id,
                ApprovalRequest.status == "approved",
                ApprovalRequest.facts_sha256 == digest,
            )
            .order_by(ApprovalRequest.closed_at.desc(), ApprovalRequest.id)
        ).scalars()
        for row in rows:
            if needed <= {ref.get("id") for ref in row.rules if isinstance(ref, dict)}:
                return row
        return None

    @staticmethod
    def _why_blocked(
        session: Session, facts: ContractFacts, digest: str, rules: list[RuleInfo]
    ) -> str:
        names = ", ".join(repr(rule.name) for rule in rules)
        latest = session.execute(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.org_id == facts.org_id,
                ApprovalRequest.contract_id == facts.contract_id,
            )
            .order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id)
            .limit(1)
        ).scalar_one_or_none()
        if latest is None or latest.status in ("withdrawn", "superseded"):
            return f"this contract needs approval before it can be sent (rules: {names})"
        if latest.facts_sha256 != digest:
            if latest.document_sha256 != facts.document_sha256:
                return (
                    "the document changed after approval was requested; request approval for "
                    "the current document"
                )
            return (
                "the contract's details (title, amount or classification) changed after "
                "approval was requested; request approval again"
            )
        if latest.status == "pending":
            return f"approval is still pending (step {latest.current_step} of {latest.step_count})"
        if latest.status == "rejected":
            return "approval was rejected; change the contract and request approval again"
        return (
            f"an approval rule that applies now was added or changed after the approval "
            f"(rules: {names}); request approval again"
        )

    @staticmethod
    def _request(
        session: Session, org_id: str, request_id: object, *, lock: bool = False
    ) -> ApprovalRequest:
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 36:
            raise NotFoundError(REQUEST_NOT_FOUND)
        query = select(ApprovalRequest).where(
            ApprovalRequest.id == request_id, ApprovalRequest.org_id == org_id
        )
        if lock:
            query = query.with_for_update()
        row = session.execute(query).scalar_one_or_none()
        if row is None:  # another tenant's request looks exactly like a missing one
            raise NotFoundError(REQUEST_NOT_FOUND)
        return row

    @staticmethod
    def _step(session: Session, request: ApprovalRequest, position: int) -> ApprovalStep:
        return session.execute(
            select(ApprovalStep).where(
                ApprovalStep.request_id == request.id, ApprovalStep.position == position
            )
        ).scalar_one()

    @staticmethod
    def _is_requester(principal: Principal, request: ApprovalRequest) -> bool:
        if request.requester_user_id is not None:
            return principal.user_id == request.requester_user_id
        return (
            principal.user_id is None
            and request.requester_token_id is not None
            and principal.token_id == request.requester_token_id
        )

    def _approved(
        self,
        session: Session,
        actor: Actor,
        request: ApprovalRequest,
        step: ApprovalStep,
        note: str | None,
        now: datetime,
    ) -> None:
        decisions = session.execute(
            select(ApprovalApprover.decision).where(ApprovalApprover.step_id == step.id)
        ).scalars()
        complete = step.mode == "any" or all(d == "approved" for d in decisions)
        record(
            session,
            actor,
            "approval.approved",
            object_type=OBJECT_TYPE,
            object_id=request.id,
            details={
                "contract_id": request.contract_id,
                "step": step.position,
                "step_complete": complete,
                "comment": note,
            },
        )
        request.updated_at = now
        if not complete:
            return
        step.status = "approved"
        step.completed_at = now
        if step.position < request.step_count:
            request.current_step = step.position + 1
            self._step(session, request, request.current_step).status = "active"
            return
        request.status = "approved"
        request.open_contract_id = None
        request.closed_at = now
        session.flush()
        record(
            session,
            actor,
            "approval.completed",
            object_type=OBJECT_TYPE,
            object_id=request.id,
            details={
                "contract_id": request.contract_id,
                "document_sha256": request.document_sha256,
                "facts_sha256": request.facts_sha256,
            },
        )

    def _rejected(
        self,
        session: Session,
        actor: Actor,
        request: ApprovalRequest,
        step: ApprovalStep,
        note: str | None,
        now: datetime,
    ) -> None:
        self._close(session, request, "rejected", now)
        step.status = "rejected"
        step.completed_at = now
        record(
            session,
            actor,
            "approval.rejected",
            object_type=OBJECT_TYPE,
            object_id=request.id,
            details={"contract_id": request.contract_id, "step": step.position, "comment": note},
        )

    @staticmethod
    def _close(session: Session, request: ApprovalRequest, status: str, now: datetime) -> None:
        """End a pending request: free the contract's pending slot and close open steps."""
        request.status = status
        request.open_contract_id = None
        request.closed_at = request.updated_at = now
        for step in session.execute(
            select(ApprovalStep).where(
                ApprovalStep.request_id == request.id,
                ApprovalStep.status.in_(("active", "waiting")),
            )
        ).scalars():
            step.status = "closed"
        # Flush now: a new request for the same contract reuses the freed pending slot.
        session.flush()

    @staticmethod
    def _info(session: Session, request: ApprovalRequest) -> ApprovalRequestInfo:
        steps = (
            session.execute(
                select(ApprovalStep)
                .where(ApprovalStep.request_id == request.id)
                .order_by(ApprovalStep.position)
            )
            .scalars()
            .all()
        )
        approvers: dict[str, list[ApproverInfo]] = {step.id: [] for step in steps}
        for row in session.execute(
            select(ApprovalApprover)
            .where(ApprovalApprover.request_id == request.id)
            .order_by(ApprovalApprover.user_id)
        ).scalars():
            approvers[row.step_id].append(
                ApproverInfo(row.user_id, row.decision, row.comment, row.decided_at)
            )
        return ApprovalRequestInfo(
            id=request.id,
            org_id=request.org_id,
            contract_id=request.contract_id,
            document_sha256=request.document_sha256,
            status=request.status,
            current_step=request.current_step,
            steps=tuple(
                StepInfo(
                    position=step.position,
                    rule_id=step.rule_id,
                    rule_version=step.rule_version,
                    mode=step.mode,
                    roles=tuple(step.roles),
                    user_ids=tuple(step.user_ids),
                    status=step.status,
                    approvers=tuple(approvers[step.id]),
                    completed_at=step.completed_at,
                )
                for step in steps
            ),
            rules=tuple(
                RuleRef(str(ref["id"]), int(ref["version"]), str(ref["name"]))
                for ref in request.rules
            ),
            requester_user_id=request.requester_user_id,
            comment=request.comment,
            classification=request.classification,
            amount_minor=request.amount_minor,
            currency=request.currency,
            created_at=request.created_at,
            closed_at=request.closed_at,
        )


__all__ = [
    "ApprovalRequestInfo",
    "ApprovalRequiredError",
    "ApprovalService",
    "ApproverInfo",
    "ContractFacts",
    "RuleRef",
    "StepInfo",
    "approver_user_ids",
]
