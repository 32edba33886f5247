"""The real-name verification review queue (实名认证审核), for ``identity.review``.

The same service calls as ``api/routes/verification.py``: the queue lists checks without any
personal data; opening one reads the claim through ``review_packet``, which shows the name and ID
number in clear only as far as the reviewer's clearance reaches (masked otherwise) and audits
every read in clear; the ID document images come through their own route, which needs that same
clearance, audits each read and answers with headers that keep the browser from doing anything
but showing a picture (``nosniff``, no caching, a sandboxing ``Content-Security-Policy``).
Four-eyes (nobody reviews their own check or one they requested) is the service's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import Response

from pactvault.api.deps import Caller, PlatformDep
from pactvault.api.routes.verification import DOCUMENT_TYPES
from pactvault.errors import PactvaultError
from pactvault.identity.realname.admin_review import ADMIN_REVIEW
from pactvault.identity.realname.service import STATUSES
from pactvault.platform import Platform
from pactvault.web.pages import PageRoute, redirect
from pactvault.web.routes.contracts import member_names
from pactvault.web.routes.organisation import failed, org_render
from pactvault.web.security import page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Reviewer = Annotated[Caller, page_allow("identity.review")]
ObjectId = Annotated[str, Path(min_length=1, max_length=36)]
QUEUE = "/organisation/verifications"
PAGE_SIZE = 25
#: Headers of an evidence image: shown, never sniffed, cached, scripted or framed elsewhere.
EVIDENCE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@router.get(QUEUE)
def queue(
    request: Request,
    who: Reviewer,
    platform: PlatformDep,
    status: Annotated[
        Literal["pending", "verified", "rejected", "expired", ""], Query()
    ] = "pending",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The organisation's checks, newest first: no personal data until one is opened."""
    items = platform.verification.list_for_review(
        who.principal, status=status or None, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    with platform.db.read() as session:
        names = member_names(
            session, who.org_id, {v.subject_id for v in items if v.subject_type == "user"}
        )
    return org_render(
        request,
        "org_review_queue.html",
        {
            "items": items[:PAGE_SIZE],
            "more": len(items) > PAGE_SIZE,
            "page": page,
            "status": status,
            "statuses": STATUSES,
            "names": names,
        },
    )


def render_packet(
    request: Request,
    platform: Platform,
    who: Caller,
    verification_id: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    packet = platform.verification.review_packet(
        who.principal, verification_id, clearance=who.principal.clearance, actor=who.actor
    )
    info = packet.verification
    with platform.db.read() as session:
        names = member_names(session, who.org_id, {info.subject_id})
    # A reviewer who cannot see the ID number in clear cannot approve it (the service refuses).
    reviewable = (
        info.provider == ADMIN_REVIEW
        and info.status == "pending"
        and not info.awaiting_documents
        and not packet.id_number.masked
    )
    return org_render(
        request,
        "org_review.html",
        {
            "packet": packet,
            "info": info,
            "subject": names.get(info.subject_id) if info.subject_type == "user" else None,
            "images": set(DOCUMENT_TYPES),
            "reviewable": reviewable,
            "error": error,
        },
        status=status,
    )


@router.get(QUEUE + "/{verification_id}")
def packet(
    verification_id: ObjectId, request: Request, who: Reviewer, platform: PlatformDep
) -> Response:
    return render_packet(request, platform, who, verification_id)


@router.get(QUEUE + "/{verification_id}/evidence/{evidence_id}")
def evidence(
    verification_id: ObjectId, evidence_id: ObjectId, who: Reviewer, platform: PlatformDep
) -> Response:
    """One evidence file: PNG and JPEG images inline (for the review page), anything else as a
    download; it shows the ID number, so it needs clearance for it, and each read is audited."""
    info, content = platform.verification.evidence_file(
        who.principal,
        verification_id,
        evidence_id,
        clearance=who.principal.clearance,
        actor=who.actor,
    )
    extension = DOCUMENT_TYPES.get(info.media_type)
    if extension is not None:
        media_type = info.media_type
        disposition = f'inline; filename="{info.kind}-{info.id}.{extension}"'
    else:
        media_type = "application/octet-stream"
        disposition = f'attachment; filename="{info.kind}-{info.id}.bin"'
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": disposition, **EVIDENCE_HEADERS},
    )


@router.post(QUEUE + "/{verification_id}/review")
def review(
    verification_id: ObjectId,
    request: Request,
    who: Reviewer,
    platform: PlatformDep,
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Approve or reject an administrator-review check (a rejection says why)."""
    try:
        platform.verification.review(
            who.principal,
            verification_id,
            approve=decision == "approve",
            comment=reason,
            clearance=who.principal.clearance,
            actor=who.actor,
        )
    except PactvaultError as exc:
        return failed(
            request,
            exc,
            lambda **kw: render_packet(request, platform, who, verification_id, **kw),
        )
    flash = (
        "flash.org.verification_approved"
        if decision == "approve"
        else "flash.org.verification_rejected"
    )
    return redirect(request, QUEUE, flash=flash)
