"""Sender-side contract routes (API token)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select

from pactvault.api.deps import PlatformDep, actor_for, read_upload, require_scope
from pactvault.api.schemas import (
    AuditEventOut,
    ContractMetadata,
    ContractOut,
    ContractPage,
    VoidIn,
)
from pactvault.contracts.service import SignerSpec
from pactvault.errors import InvalidInputError
from pactvault.identity.tokens import Principal
from pactvault.store.models import AuditEvent

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"])
Reader = Annotated[Principal, require_scope("contracts:read")]
Writer = Annotated[Principal, require_scope("contracts:write")]


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
    request: Request,
    platform: PlatformDep,
    who: Writer,
    file: Annotated[UploadFile, File(description="The contract PDF")],
    metadata: Annotated[str, Form(description="ContractMetadata as JSON")],
) -> ContractOut:
    """Upload a PDF with its parties. ``metadata.send=true`` sends it at once."""
    try:
        meta = ContractMetadata.model_validate(json.loads(metadata))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise InvalidInputError(f"metadata is not valid: {exc}") from None
    data = await read_upload(file, platform.settings.max_upload_bytes)
    actor = actor_for(request, who)
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
            )
            for s in meta.signers
        ],
    )
    if meta.send:
        platform.contracts.send(actor, who.org_id, contract.id)
    return ContractOut.of(platform.contracts.get(who.org_id, contract.id))


@router.get("", response_model=ContractPage)
def list_contracts(
    platform: PlatformDep,
    who: Reader,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ContractPage:
    items, total = platform.contracts.list(who.org_id, status=status, limit=limit, offset=offset)
    return ContractPage(
        items=[ContractOut.of(c) for c in items], total=total, limit=limit, offset=offset
    )


@router.get("/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: str, platform: PlatformDep, who: Reader) -> ContractOut:
    return ContractOut.of(platform.contracts.get(who.org_id, contract_id))


@router.post("/{contract_id}/send", response_model=ContractOut)
def send_contract(
    contract_id: str, request: Request, platform: PlatformDep, who: Writer
) -> ContractOut:
    """Invite the first signing group. Signing links go only to the signers, never to you."""
    platform.contracts.send(actor_for(request, who), who.org_id, contract_id)
    return ContractOut.of(platform.contracts.get(who.org_id, contract_id))


@router.post("/{contract_id}/void", response_model=ContractOut)
def void_contract(
    contract_id: str, body: VoidIn, request: Request, platform: PlatformDep, who: Writer
) -> ContractOut:
    platform.contracts.void(actor_for(request, who), who.org_id, contract_id, body.reason)
    return ContractOut.of(platform.contracts.get(who.org_id, contract_id))


@router.get(
    "/{contract_id}/document",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def download_document(
    contract_id: str,
    request: Request,
    platform: PlatformDep,
    who: Reader,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The latest revision (or ``version``), decrypted. Every download is audited."""
    revision, data = platform.contracts.download(
        actor_for(request, who), who.org_id, contract_id, version
    )
    return pdf_response(
        data, f"contract-{contract_id}-v{revision.version}.pdf", revision.plaintext_sha256
    )


@router.get("/{contract_id}/audit", response_model=list[AuditEventOut])
def contract_audit(contract_id: str, platform: PlatformDep, who: Reader) -> list[AuditEventOut]:
    """The contract's audit trail (its entries of the hash-chained journal)."""
    platform.contracts.get(who.org_id, contract_id)  # tenant check: 404 for others' contracts
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
        return [
            AuditEventOut(
                seq=e.seq,
                occurred_at=e.occurred_at,
                actor_type=e.actor_type,
                actor_id=e.actor_id,
                action=e.action,
                ip=e.ip,
                user_agent=e.user_agent,
                details=e.details,
                entry_hash=e.entry_hash,
            )
            for e in rows
        ]
