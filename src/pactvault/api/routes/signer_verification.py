"""Real-name verification of external signers (no account), through their signing link.

The signer authenticates exactly as for signing: the capability token of their invitation in
``Authorization: Bearer`` (the dependency of ``routes/signing.py``). The contract service resolves
it (an expired or closed link answers 404, like an unknown one, and the use is audited), and the
check is made for *that* signer under *that* email address: a verification never follows a link
to another person, and another signer's verification id answers like a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Request, UploadFile

from pactvault.api.deps import SIGNER, PlatformDep, client_actor
from pactvault.api.routes.signing import Token
from pactvault.api.routes.verification import (
    chosen_check,
    claim_of,
    id_documents,
    status_out,
)
from pactvault.api.workflow_schemas import (
    VerificationOut,
    VerificationStartIn,
    VerificationStatusOut,
)
from pactvault.audit.journal import Actor
from pactvault.identity.realname.subjects import Subject
from pactvault.platform import Platform
from pactvault.store.models import Signer

router = APIRouter(prefix="/api/v1/signer/verification", tags=["signing"], dependencies=[SIGNER])
ObjectId = Annotated[str, Path(min_length=1, max_length=36)]


def _signer(platform: Platform, request: Request, token: str) -> tuple[Signer, Actor]:
    """The signer behind the link, and the audit actor acting as them."""
    _contract, signer = platform.contracts.open_invitation(token, client_actor(request))
    return signer, client_actor(request).acting_as("signer", signer.id, signer.org_id)


@router.post("", response_model=VerificationOut, status_code=201)
def start_verification(
    body: VerificationStartIn, request: Request, platform: PlatformDep, token: Token
) -> VerificationOut:
    """Start a real-name check of yourself; a document check then waits for your ID images."""
    signer, actor = _signer(platform, request, token)
    provider, check = chosen_check(platform, body)
    info = platform.verification.start_for_signer(
        actor,
        org_id=signer.org_id,
        signer_id=signer.id,
        email=signer.email,
        claim=claim_of(body),
        provider=provider,
        check=check,
        documents_later=check == "document",
    )
    return VerificationOut.of(info)


@router.post("/{verification_id}/documents", response_model=VerificationOut)
async def upload_documents(
    verification_id: ObjectId,
    request: Request,
    platform: PlatformDep,
    token: Token,
    front: Annotated[UploadFile, File(description="The ID card's front: PNG or JPEG")],
    back: Annotated[UploadFile | None, File(description="The back: PNG or JPEG")] = None,
) -> VerificationOut:
    """Upload the ID document images of your check, once; it then goes to its provider."""
    signer, actor = _signer(platform, request, token)  # who is asking, before decoding anything
    documents = await id_documents(platform, front, back)
    info = platform.verification.submit_documents_for_signer(
        actor,
        org_id=signer.org_id,
        signer_id=signer.id,
        email=signer.email,
        verification_id=verification_id,
        documents=documents,
    )
    return VerificationOut.of(info)


@router.get("", response_model=VerificationStatusOut)
def verification_status(
    request: Request, platform: PlatformDep, token: Token
) -> VerificationStatusOut:
    """Whether you are verified and at which level; your checks with masked fields."""
    signer, actor = _signer(platform, request, token)
    subject = Subject.signer(signer.id, signer.email)
    return status_out(
        platform, platform.verification.subject_status(signer.org_id, subject, actor=actor)
    )
