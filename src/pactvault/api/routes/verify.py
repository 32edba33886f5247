"""Public verification: anyone can check a PDF's signatures without an account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from pactvault.api.deps import PUBLIC, PlatformDep, read_upload
from pactvault.pdf.validate import verify_pdf

router = APIRouter(prefix="/api/v1", tags=["verification"], dependencies=[PUBLIC])


@router.post("/verify")
async def verify(
    platform: PlatformDep, file: Annotated[UploadFile, File(description="A signed PDF")]
) -> dict[str, Any]:
    """Per signature: signer, chain to our root, timestamp, integrity, later modifications."""
    data = await read_upload(file, platform.settings.max_upload_bytes)
    with platform.db.read() as session:
        roots = platform.trust_roots(session)
    report = verify_pdf(data, trust_roots=roots)
    return {"valid": report.valid, **report.to_dict()}
