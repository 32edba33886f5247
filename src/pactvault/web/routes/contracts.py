"""Managing contracts: the list (search, filters, pages) and the contract page.

The contract page shows the details, each signer's progress, the timeline from the audit
journal, every revision and the evidence proof bundle to download, and the actions the caller may
take now: send a draft (or request the approval a rule asks for first), remind the signers whose
turn it is, void. Routes call the same services and checks as ``api/routes/contracts.py``:
``contract.read`` reach for the page (``.own``: contracts one created, signs or approves), and
each action authorises the contract itself; another organisation's contract answers exactly like
a missing one, and every refusal is audited.

Signing tokens never appear here: they exist only as digests in the database and in the emails
to the signers (a reminder replaces the token and mails the new one to the signer alone).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from pactvault.access.decision import LEVELS, decide, reach
from pactvault.api.deps import Caller, PlatformDep
from pactvault.api.routes.contracts import authorize, pdf_response
from pactvault.contracts.access import contract_resource
from pactvault.contracts.approvals import ApprovalRequestInfo, ApprovalRequiredError
from pactvault.contracts.reminders import ReminderTooSoonError
from pactvault.contracts.states import FINAL, OPEN_FOR_SIGNING, Status
from pactvault.errors import ConflictError, InvalidInputError, PactvaultError
from pactvault.evidence.export import build_bundle
from pactvault.platform import Platform
from pactvault.store.identity_models import Membership, User
from pactvault.store.models import AuditEvent, Contract
from pactvault.web.display import render
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, error_page, redirect, translator
from pactvault.web.security import page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Reader = Annotated[Caller, page_allow("contract.read", on_object="contract")]
Sender = Annotated[Caller, page_allow("contract.send", on_object="contract")]
Voider = Annotated[Caller, page_allow("contract.void", on_object="contract")]
ContractId = Annotated[str, Path(min_length=1, max_length=36)]
Text = Annotated[str, Query(max_length=200)]
DateText = Annotated[str, Query(max_length=10)]
PAGE_SIZE = 20
TIMELINE_LIMIT = 500
#: Audit entries left out of a contract's timeline: refusals are security data, for the journal.
NOT_IN_TIMELINE = frozenset({"access.denied"})


# -- the list -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The list's search and filters, as the query string carries them (all optional)."""

    q: str = ""
    status: str = ""
    party: str = ""
    classification: str = ""
    created_from: str = ""
    created_to: str = ""
    page: int = 1

    def url(self, **changes: Any) -> str:
        chosen = replace(self, **changes)
        values = {k: v for k, v in asdict(chosen).items() if v not in ("", 1)}
        return "/contracts" + (f"?{urlencode(values)}" if values else "")

    @property
    def active(self) -> bool:
        return any(v for k, v in asdict(self).items() if k != "page")


def _day(text: str, *, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` as the start of that day in UTC (``end``: the start of the next day)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError("dates are written YYYY-MM-DD") from None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


@router.get("/contracts")
def contract_list(
    request: Request,
    who: Reader,
    platform: PlatformDep,
    q: Text = "",
    status: Annotated[str, Query(max_length=32)] = "",
    party: Text = "",
    classification: Annotated[str, Query(max_length=32)] = "",
    created_from: DateText = "",
    created_to: DateText = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Contracts the caller may read: all of the organisation's (``contract.read.all``, up to
    their clearance) or those they created, sign or approve (``.own``), newest first."""
    filters = Filters(q, status, party, classification, created_from, created_to, page)
    t = translator(request)
    items: list[Contract] = []
    total = 0
    error = None
    try:
        if status and status not in {s.value for s in Status}:
            raise InvalidInputError("unknown status")
        if classification and classification not in LEVELS:
            raise InvalidInputError("unknown classification")
        scope = reach(who.principal, "contract.read")
        items, total = platform.contracts.list(
            who.org_id,
            status=status or None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            involving_user=who.user_id if scope == "own" else None,
            search=q or None,
            party=party or None,
            classification=classification or None,
            created_from=_day(created_from, end=False),
            created_before=_day(created_to, end=True),
            clearance=who.principal.clearance,
            viewer_user_id=who.user_id,
        )
    except InvalidInputError:
        error = t("manage.list.bad_filter")
    return render(
        request,
        "contracts.html",
        {
            "items": items,
            "total": total,
            "filters": filters,
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
            "statuses": [s.value for s in Status],
            "levels": LEVELS,
            "error": error,
        },
        status=422 if error else 200,
    )


# -- the contract page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    at: datetime
    action: str
    actor_type: str
    actor: str | None
    ip: str | None
    user_agent: str | None
    subject: str | None


def may_act(platform: Platform, who: Caller, permission: str, contract_id: str) -> bool:
    """Whether the caller may do ``permission`` on the contract (no audit: for showing buttons;
    the action's own route authorises, and audits, for real)."""
    with platform.db.read() as session:
        resource = contract_resource(session, contract_id)
    return resource is not None and decide(who.principal, permission, resource).allowed


def _timeline(
    platform: Platform, who: Caller, contract: Contract, requests: list[ApprovalRequestInfo]
) -> list[TimelineEntry]:
    """The contract's audit entries and those of its approval requests, oldest first, with
    who (a member's or signer's name), when and from where."""
    request_ids = [r.id for r in requests]
    signers = {s.id: s.name for s in contract.signers}
    with platform.db.read() as session:
        mine = and_(AuditEvent.object_type == "contract", AuditEvent.object_id == contract.id)
        if request_ids:
            mine = or_(
                mine,
                and_(
                    AuditEvent.object_type == "approval_request",
                    AuditEvent.object_id.in_(request_ids),
                ),
            )
        rows = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.org_id == who.org_id, mine)
                .where(AuditEvent.action.not_in(NOT_IN_TIMELINE))
                .order_by(AuditEvent.seq.desc())
                .limit(TIMELINE_LIMIT)
            )
            .scalars()
            .all()
        )
        user_ids = {r.actor_id for r in rows if r.actor_type == "user" and r.actor_id}
        names = member_names(session, who.org_id, user_ids)
    entries = []
    for row in reversed(rows):
        details = row.details or {}
        if row.actor_type == "user":
            actor = names.get(row.actor_id or "")
        elif row.actor_type == "signer":
            actor = signers.get(row.actor_id or "")
        else:
            actor = None
        entries.append(
            TimelineEntry(
                seq=row.seq,
                at=row.occurred_at,
                action=row.action,
                actor_type=row.actor_type,
                actor=actor,
                ip=row.ip,
                user_agent=(row.user_agent or "")[:120] or None,
                subject=_subject(details, signers),
            )
        )
    return entries


def member_names(session: Session, org_id: str, user_ids: set[str]) -> dict[str, str]:
    """Display names of those of ``user_ids`` who are members of ``org_id`` (never anyone
    else's: an id from another tenant shows no name)."""
    if not user_ids:
        return {}
    rows = session.execute(
        select(User.id, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, User.id.in_(user_ids))
    ).all()
    return {user_id: name for user_id, name in rows}


def _subject(details: dict[str, Any], signers: dict[str, str]) -> str | None:
    """What an entry is about, in a few words: the signer, the version, the reason."""
    signer = details.get("signer_id")
    if isinstance(signer, str) and signer in signers:
        return signers[signer]
    reminded = details.get("reminded")
    if isinstance(reminded, list):
        return ", ".join(signers[s] for s in reminded if isinstance(s, str) and s in signers)
    reason = details.get("reason") or details.get("comment")
    if isinstance(reason, str) and reason:
        return reason[:200]
    version = details.get("version")
    if isinstance(version, int):
        return f"v{version}"
    return None


def _approval_state(
    platform: Platform, who: Caller, contract: Contract, requests: list[ApprovalRequestInfo]
) -> str:
    """For a draft: ``none`` (no rule applies), ``needed``, ``pending`` or ``approved``."""
    if contract.status != Status.DRAFT.value:
        return "none"
    facts = platform.contracts.approval_facts(who.org_id, contract.id)
    with platform.db.read() as session:
        if not platform.approvals.required_for(session, facts):
            return "none"
        try:
            platform.approvals.ensure_send_allowed(session, facts)
        except ApprovalRequiredError:
            pending = any(r.status == "pending" for r in requests)
            return "pending" if pending else "needed"
    return "approved"


def render_contract(
    request: Request,
    platform: Platform,
    who: Caller,
    contract_id: str,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The contract page, for a caller already allowed to read the contract."""
    contract = platform.contracts.get(who.org_id, contract_id)
    with platform.db.read() as session:
        requests = platform.approvals.requests_for(session, who.org_id, contract_id)
        creator_id = contract.created_by_user_id
        creator = (
            member_names(session, who.org_id, {creator_id}).get(creator_id) if creator_id else None
        )
    can_send = may_act(platform, who, "contract.send", contract_id)
    open_for_signing = contract.status in {s.value for s in OPEN_FOR_SIGNING}
    can = {
        "send": can_send and contract.status == Status.DRAFT.value,
        "remind": can_send
        and open_for_signing
        and any(s.status == "invited" for s in contract.signers),
        "void": contract.status not in {s.value for s in FINAL}
        and may_act(platform, who, "contract.void", contract_id),
        # The draft editor is the sending pages' (``routes/send.py``).
        "edit": contract.status == Status.DRAFT.value
        and may_act(platform, who, "contract.update", contract_id),
    }
    return render(
        request,
        "contract.html",
        {
            "contract": contract,
            "creator": creator,
            "requests": requests,
            "approval": _approval_state(platform, who, contract, requests),
            "timeline": _timeline(platform, who, contract, requests),
            "can": can,
            "error": error,
        },
        status=status,
        headers=headers,
    )


def _failed(
    request: Request, platform: Platform, who: Caller, contract_id: str, exc: PactvaultError
) -> Response:
    """A refused action: the contract page with the reason, or (for a caller who may act but
    not read, or a contract that is gone) the error page alone."""
    message = error_message(exc, translator(request))
    if exc.status in (403, 404) or not may_act(platform, who, "contract.read", contract_id):
        response = error_page(request, exc.status, message)
        response.headers.update(exc.headers())
        return response
    return render_contract(
        request, platform, who, contract_id, error=message, status=exc.status, headers=exc.headers()
    )


@router.get("/contracts/{contract_id}")
def contract_page(
    contract_id: ContractId, request: Request, who: Reader, platform: PlatformDep
) -> Response:
    authorize(platform, who, "contract.read", contract_id)
    return render_contract(request, platform, who, contract_id)


@router.get("/contracts/{contract_id}/document")
def download_document(
    contract_id: ContractId,
    who: Reader,
    platform: PlatformDep,
    version: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> Response:
    """One revision (the latest by default), as an attachment that is never sniffed or cached;
    every download is audited by the service."""
    authorize(platform, who, "contract.read", contract_id)
    revision, data = platform.contracts.download(who.actor, who.org_id, contract_id, version)
    return pdf_response(
        data, f"contract-{contract_id}-v{revision.version}.pdf", revision.plaintext_sha256
    )


@router.get("/contracts/{contract_id}/evidence")
def download_evidence(contract_id: ContractId, who: Reader, platform: PlatformDep) -> Response:
    """The contract's proof bundle: its evidence-ledger leaves (hashes only, no content) with
    inclusion proofs to a signed checkpoint, checkable offline (``pactvault ledger verify``)."""
    authorize(platform, who, "contract.read", contract_id)
    bundle = build_bundle(platform.ledger, platform.db, contract_id)
    return Response(
        content=json.dumps(bundle, indent=2, ensure_ascii=False).encode("utf-8") + b"\n",
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="contract-{contract_id}-evidence.json"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post("/contracts/{contract_id}/send")
def send_contract(
    contract_id: ContractId, request: Request, who: Sender, platform: PlatformDep
) -> Response:
    """Invite the first signing group; the links go to the signers only."""
    authorize(platform, who, "contract.send", contract_id)
    try:
        platform.contracts.send(who.actor, who.org_id, contract_id)
    except PactvaultError as exc:
        return _failed(request, platform, who, contract_id, exc)
    return redirect(request, f"/contracts/{contract_id}", flash="flash.manage.sent")


@router.post("/contracts/{contract_id}/remind")
def remind_signers(
    contract_id: ContractId, request: Request, who: Sender, platform: PlatformDep
) -> Response:
    """New signing links for the signers whose turn it is (each at most once an hour)."""
    authorize(platform, who, "contract.send", contract_id)
    try:
        platform.contracts.remind(who.actor, who.org_id, contract_id)
    except ReminderTooSoonError as exc:
        t = translator(request)
        minutes = max(1, math.ceil(exc.retry_after / 60))
        return render_contract(
            request,
            platform,
            who,
            contract_id,
            error=t("manage.remind_too_soon", minutes=minutes),
            status=exc.status,
            headers=exc.headers(),
        )
    except PactvaultError as exc:
        return _failed(request, platform, who, contract_id, exc)
    return redirect(request, f"/contracts/{contract_id}", flash="flash.manage.reminded")


@router.post("/contracts/{contract_id}/void")
def void_contract(
    contract_id: ContractId,
    request: Request,
    who: Voider,
    platform: PlatformDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    authorize(platform, who, "contract.void", contract_id)
    try:
        platform.contracts.void(who.actor, who.org_id, contract_id, reason)
    except PactvaultError as exc:
        return _failed(request, platform, who, contract_id, exc)
    return redirect(request, f"/contracts/{contract_id}", flash="flash.manage.voided")


@router.post("/contracts/{contract_id}/approvals")
def request_approval(
    contract_id: ContractId,
    request: Request,
    who: Sender,
    platform: PlatformDep,
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Ask for the approval a rule requires, for the draft exactly as it is now."""
    authorize(platform, who, "contract.send", contract_id)
    try:
        if platform.contracts.get(who.org_id, contract_id).status != Status.DRAFT.value:
            raise ConflictError("only a draft is approved before sending; this one is not")
        facts = platform.contracts.approval_facts(who.org_id, contract_id)
        platform.approvals.request(who.principal, facts, comment or None, who.actor)
    except PactvaultError as exc:
        return _failed(request, platform, who, contract_id, exc)
    return redirect(request, f"/contracts/{contract_id}", flash="flash.manage.approval_requested")
