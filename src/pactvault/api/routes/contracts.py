"""Sender-side contract routes (API tokens and signed-in members).

Each route declares its permission; routes about one contract then authorise that contract
(``.all`` reach, or ``.own`` when the caller created it or signs it; another tenant's contract
answers exactly like a missing one, and the attempt is audited).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from pactvault.access.decision import cleared, reach
from pactvault.api.deps import Caller, PlatformDep, allow, read_upload
from pactvault.api.query import MAX_INDEX, IsoDateTime, Offset
from pactvault.api.schemas import (
    AuditEventOut,
    ContractMetadata,
    ContractOut,
    ContractPage,
    VoidIn,
)
from pactvault.contracts.access import authorize_contract
from pactvault.contracts.fields import FieldSpec
from pactvault.contracts.service import SignerSpec
from pactvault.errors import InvalidInputError, PermissionDeniedError
from pactvault.store.models import AuditEvent

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"])
Creator = Annotated[Caller, allow("contract.create")]
Reader = Annotated[Caller, allow("contract.read", on_object="contract")]
Sender = Annotated[Caller, allow("contract.send", on_object="contract")]
Voider = Annotated[Caller, allow("contract.void", on_object="contract")]
TrailReader = Annotated[Caller, allow("contract.read", "audit.read", on_object="contract")]


def authorize(platform: PlatformDep, who: Caller, permission: str, contract_id: str) -> None:
    authorize_contract(
        platform.db, platform.access, who.principal, permission, contract_id, who.actor
    )


def pdf_response(data: bytes, filename: str, sha256: str) -> Response:
    return Response(
        content=data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "X-Document-SHA256": sha256,
            "Cache-Control": "no-store",
        },
    )


@router.post("", status_code=201, response_model=ContractOut)
async def create_contract(
    platform: PlatformDep,
    who: Creator,
    file: Annotated[UploadFile, File(description="The contract PDF")],
    metadata: Annotated[str, Form(description="ContractMetadata as JSON")],
) -> ContractOut:
    """Upload a PDF with its parties. ``metadata.send=true`` sends it at once."""
    try:
        meta = ContractMetadata.model_validate(json.loads(metadata))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise InvalidInputError(f"metadata is not valid: {exc}") from None
    if meta.send and not {"contract.send.all", "contract.send.own"} & who.principal.permissions:
        platform.access.authorize(who.principal, "contract.send", actor=who.actor)
    if not cleared(who.principal.clearance, meta.classification):
        denied = PermissionDeniedError("you cannot classify a contract above your own clearance")
        platform.access.record_denial(who.actor, "contract.create", denied, reason="clearance")
        raise denied
    data = await read_upload(file, platform.settings.max_upload_bytes)
    actor = who.actor
    contract = platform.contracts.create(
        actor,
        who.org_id,
        title=meta.title,
        pdf=data,
        message=meta.message,
        expires_at=meta.expires_at,
        signers=[
            SignerSpec(
                name=s.name,
                email=s.email,
                organisation=s.organisation,
                routing_order=s.routing_order,
                page=s.page,
                box=s.box,
                phone=s.phone,
                required_assurance=s.required_assurance,
                fields=tuple(
                    FieldSpec(f.kind, f.page, f.box, f.required, f.label) for f in s.fields
                ),
            )
            for s in meta.signers
        ],
        created_by_user_id=who.user_id,
        classification=meta.classification,
        amount_minor=meta.amount_minor,
        currency=meta.currency,
    )
    if meta.send:
        platform.contracts.send(actor, who.org_id, contract.id)
    return ContractOut.of(platform.contracts.get(who.org_id, contract.id))


@router.get("", response_model=ContractPage)
def list_contracts(
    platform: PlatformDep,
    who: Reader,
    status: str | None = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    party: Annotated[str | None, Query(max_length=200)] = None,
    classification: str | None = None,
    created_from: IsoDateTime | None = None,
    created_before: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ContractPage:
    """Contracts the caller may read, newest first: all of the organisation's up to the caller's
    clearance (``contract.read.all``), or those they created, sign or approve (``.own``).

    Filters: ``search`` (title, a signer's name or email), ``party`` (a signer's name, email or
    organisation), ``classification``, ``created_from`` ≤ creation < ``created_before`` (ISO 8601
    with a timezone). A contract classified above the caller's clearance is left out unless they
    created or sign it — a list must not show the titles of what its reader may not open.
    """
    scope = reach(who.principal, "contract.read")
    items, total = platform.contracts.list(
        who.org_id,
        status=status,
        limit=limit,
        offset=offset,
        involving_user=who.user_id if scope == "own" else None,
        search=search,
        party=party,
        classification=classification,
        created_from=created_from,
        created_before=created_before,
        clearance=who.principal.clearance,
        viewer_user_id=who.user_id,
    )
    return ContractPage(
        items=[ContractOut.of(c) for c in items], total=total, limit=limit, offset=offset
    )


@router.get("/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: str, platform: PlatformDep, who: Reader) -> ContractOut:
    authorize(platform, who, "contract.read", contract_id)
    return ContractOut.of(platform.contracts.get(who.org_id, contract_id))


@router.post("/{contract_id}/send", response_model=ContractOut)
def send_contract(contract_id: str, platform: PlatformDep, who: Sender) -> ContractOut:
    """Invite the first signing group. Signing links go only to the signers, never to you."""
    authorize(platform, who, "contract.send", contract_id)
    platform.contracts.send(who.actor, who.org_id, contract_id)
    return ContractOut.of(platform.contracts.get(who.org_id, contract_id))


@router.post("/{contract_id}/void", response_model=ContractOut)
def void_contract(
    contract_id: str, body: VoidIn, platform: PlatformDep, who: Voider
) -> ContractOut:
    authorize(platform, who, "contract.void", contract_id)
    platform.contracts.void(who.actor, who.org_id, contract_id, body.reason)
    return ContractOut.of(platform.contracts.get(who.org_id, contract_id))


class RemindOut(BaseModel):
    """Whom a reminder reached. Signing links go only to the signers, never in this answer."""

    contract_id: str
    reminded_signer_ids: list[str]
    #: Signers still to sign who were sent a link less than an hour ago, so not reminded now.
    not_yet_signer_ids: list[str]


@router.post("/{contract_id}/remind", response_model=RemindOut)
def remind_signers(contract_id: str, platform: PlatformDep, who: Sender) -> RemindOut:
    """Send a new signing link to every signer whose turn it is (the old link stops working).

    Each signer can be reminded once an hour; when none can yet, 429 with ``Retry-After``.
    """
    authorize(platform, who, "contract.send", contract_id)
    done = platform.contracts.remind(who.actor, who.org_id, contract_id)
    return RemindOut(
        contract_id=done.contract_id,
        reminded_signer_ids=list(done.reminded),
        not_yet_signer_ids=list(done.not_yet),
    )


@router.get(
    "/{contract_id}/document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def download_document(
    contract_id: str,
    platform: PlatformDep,
    who: Reader,
    version: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
) -> Response:
    """The latest revision (or ``version``), decrypted. Every download is audited."""
    authorize(platform, who, "contract.read", contract_id)
    revision, data = platform.contracts.download(who.actor, who.org_id, contract_id, version)
    return pdf_response(
        data, f"contract-{contract_id}-v{revision.version}.pdf", revision.plaintext_sha256
    )


@router.get("/{contract_id}/audit", response_model=list[AuditEventOut])
def contract_audit(
    contract_id: str, platform: PlatformDep, who: TrailReader
) -> list[AuditEventOut]:
    """The contract's audit trail (its entries of the hash-chained journal).

    Readers of the contract see it, and so do auditors (``audit.read``) who may not read content.
    """
    if "audit.read" in who.principal.permissions:
        authorize(platform, who, "audit.read", contract_id)
    else:
        authorize(platform, who, "contract.read", contract_id)
    with platform.db.read() as session:
        rows = session.execute(
            select(AuditEvent)
            .where(
                AuditEvent.object_type == "contract",
                AuditEvent.object_id == contract_id,
                AuditEvent.org_id == who.org_id,
            )
            .order_by(AuditEvent.seq)
        ).scalars()
        return [AuditEventOut.of(e) for e in rows]
