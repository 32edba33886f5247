"""Real-name verification (实名认证) over HTTP: a member's own checks, and the reviewers' desk.

The routes translate; ``identity.realname.service`` decides, stores (encrypted) and audits.

- A signed-in member starts a check (name, ID number, phone; a provider among the configured
  ones), uploads their ID document images next, and reads their status — masked fields only.
- Reviewers (``identity.review``: owners, administrators, or a custom role) list checks, open
  one (the ID number in clear only when their clearance reaches it, otherwise masked — the
  service decides), download its evidence with safe headers, and approve or reject it. The
  service enforces four-eyes (nobody reviews their own check) and clearance; every read in clear
  and every decision is audited.

External signers verify through their signing link: ``routes/signer_verification.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import Response

from pactvault.api.deps import AnyCaller, Caller, PlatformDep, allow, read_upload
from pactvault.api.query import Offset
from pactvault.api.workflow_schemas import (
    OwnVerificationOut,
    ProviderOut,
    ReviewIn,
    ReviewPacketOut,
    VerificationOut,
    VerificationStartIn,
    VerificationStatusOut,
)
from pactvault.errors import InvalidInputError
from pactvault.identity.realname.providers import MAX_DOCUMENT_BYTES, IdDocument
from pactvault.identity.realname.service import IdentityClaim, SubjectStatus
from pactvault.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["verification"])
Reviewer = Annotated[Caller, allow("identity.review")]
ObjectId = Annotated[str, Path(min_length=1, max_length=36)]
DOCUMENT_TYPES = {"image/png": "png", "image/jpeg": "jpg"}
DOWNLOAD_EXTENSIONS = {**DOCUMENT_TYPES, "application/json": "json"}


class UnsupportedMediaTypeError(InvalidInputError):
    """An upload whose declared type we do not take, or whose content is not that type."""

    slug = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


# -- shared with the signer routes -------------------------------------------------------------


def chosen_check(platform: Platform, body: VerificationStartIn) -> tuple[str, str]:
    """(provider, check) of a start request; an unconfigured choice is the caller's error."""
    providers = {p.name: p for p in platform.verification.providers()}
    provider = providers.get(body.provider)
    if provider is None:
        raise InvalidInputError(
            f"choose an identity provider among: {', '.join(sorted(providers)) or 'none'}"
        )
    if body.check is not None:
        return provider.name, body.check
    if len(provider.checks) != 1:
        raise InvalidInputError(
            f"say which check: {provider.name} offers {', '.join(provider.checks)}"
        )
    return provider.name, provider.checks[0]


def claim_of(body: VerificationStartIn) -> IdentityClaim:
    return IdentityClaim(name=body.name, id_number=body.id_number, phone=body.phone or None)


async def id_documents(
    platform: Platform, front: UploadFile, back: UploadFile | None
) -> tuple[IdDocument, ...]:
    """Read and check uploaded ID document images before anything is stored.

    Each part must be declared PNG or JPEG (415 otherwise), stay within the size limit (413,
    read in chunks, stopping at the limit) and really be an image of the declared type: the
    service decodes it, and a mismatch between declaration and content is refused too.
    """
    limit = min(platform.settings.max_upload_bytes, MAX_DOCUMENT_BYTES)
    documents = []
    for side, upload in (("front", front), ("back", back)):
        if upload is None:
            continue
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        if declared not in DOCUMENT_TYPES:
            raise UnsupportedMediaTypeError(
                f"the {side} image must be sent as image/png or image/jpeg, not "
                f"{declared or 'an undeclared type'}"
            )
        document = IdDocument(side, await read_upload(upload, limit))
        if document.media_type != declared:
            raise UnsupportedMediaTypeError(
                f"the {side} image is declared {declared} but its content is {document.media_type}"
            )
        documents.append(document)
    return tuple(documents)


def status_out(platform: Platform, items: list[SubjectStatus]) -> VerificationStatusOut:
    level = platform.verification.assurance_of(items)
    return VerificationStatusOut(
        verified=level is not None,
        assurance_level=level,
        items=[OwnVerificationOut.of(s) for s in items],
        providers=[ProviderOut.of(p) for p in platform.verification.providers()],
    )


# -- one's own verification --------------------------------------------------------------------


@router.post("/me/verification", response_model=VerificationOut, status_code=201)
def start_verification(
    body: VerificationStartIn, who: AnyCaller, platform: PlatformDep
) -> VerificationOut:
    """Start a real-name check of yourself.

    A document check (the built-in ``admin-review``) waits for your ID document images at
    ``/me/verification/{id}/documents``; starting again before they are uploaded replaces it.
    """
    provider, check = chosen_check(platform, body)
    info = platform.verification.start_for_user(
        who.principal,
        claim_of(body),
        provider=provider,
        check=check,
        actor=who.actor,
        documents_later=check == "document",
    )
    return VerificationOut.of(info)


@router.post("/me/verification/{verification_id}/documents", response_model=VerificationOut)
async def upload_documents(
    verification_id: ObjectId,
    who: AnyCaller,
    platform: PlatformDep,
    front: Annotated[UploadFile, File(description="The ID card's front: PNG or JPEG")],
    back: Annotated[UploadFile | None, File(description="The back: PNG or JPEG")] = None,
) -> VerificationOut:
    """Upload the ID document images of your check, once; it then goes to its provider."""
    documents = await id_documents(platform, front, back)
    info = platform.verification.submit_documents_for_user(
        who.principal, verification_id, documents, who.actor
    )
    return VerificationOut.of(info)


@router.get("/me/verification", response_model=VerificationStatusOut)
def my_verification(who: AnyCaller, platform: PlatformDep) -> VerificationStatusOut:
    """Whether you are verified and at which assurance level; your checks with masked fields."""
    return status_out(platform, platform.verification.mine(who.principal))


# -- reviewers ---------------------------------------------------------------------------------


@router.get("/org/verifications", response_model=list[VerificationOut])
def list_verifications(
    who: Reviewer,
    platform: PlatformDep,
    status: Literal["pending", "verified", "rejected", "expired"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> list[VerificationOut]:
    """The organisation's checks, newest first; no personal data (open one to review it)."""
    items = platform.verification.list_for_review(
        who.principal, status=status, limit=limit, offset=offset
    )
    return [VerificationOut.of(v) for v in items]


@router.get("/org/verifications/{verification_id}", response_model=ReviewPacketOut)
def review_packet(
    verification_id: ObjectId, who: Reviewer, platform: PlatformDep
) -> ReviewPacketOut:
    """The claim and the evidence list. Name and ID number come in clear only as far as your
    clearance reaches (each such read is audited); otherwise masked."""
    packet = platform.verification.review_packet(
        who.principal, verification_id, clearance=who.principal.clearance, actor=who.actor
    )
    return ReviewPacketOut.of(packet)


@router.get(
    "/org/verifications/{verification_id}/documents/{evidence_id}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "application/json": {}}}},
)
def download_evidence(
    verification_id: ObjectId, evidence_id: ObjectId, who: Reviewer, platform: PlatformDep
) -> Response:
    """One evidence file (an ID document image, a provider's answer). It shows the ID number, so
    it needs clearance for it; every download is audited. Sent as an attachment, never sniffed,
    never cached."""
    evidence, content = platform.verification.evidence_file(
        who.principal,
        verification_id,
        evidence_id,
        clearance=who.principal.clearance,
        actor=who.actor,
    )
    extension = DOWNLOAD_EXTENSIONS.get(evidence.media_type, "bin")
    media_type = (
        evidence.media_type
        if evidence.media_type in DOWNLOAD_EXTENSIONS
        else ("application/octet-stream")
    )
    return Response(
        content=content,
        media_type=media_type,
        headers={
            "Content-Disposition": (
                f'attachment; filename="{evidence.kind}-{evidence.id}.{extension}"'
            ),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post("/org/verifications/{verification_id}/review", response_model=VerificationOut)
def review(
    verification_id: ObjectId, body: ReviewIn, who: Reviewer, platform: PlatformDep
) -> VerificationOut:
    """Approve or reject an administrator-review check (a rejection says why). Needs clearance
    for the ID number, and someone other than the person checked and whoever started it."""
    info = platform.verification.review(
        who.principal,
        verification_id,
        approve=body.decision == "approve",
        comment=body.reason or "",
        clearance=who.principal.clearance,
        actor=who.actor,
    )
    return VerificationOut.of(info)
