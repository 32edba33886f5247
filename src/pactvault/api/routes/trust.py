"""Public trust endpoints: CA certificates, CRLs, OCSP and the RFC 3161 timestamp authority.

These are what validators anywhere fetch to check our signatures; they need no authentication.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request
from fastapi.responses import Response

from pactvault.api.deps import PUBLIC, PlatformDep
from pactvault.errors import InvalidInputError, NotFoundError, PayloadTooLargeError

router = APIRouter(tags=["trust"], dependencies=[PUBLIC])
MAX_PROTOCOL_REQUEST = 64 * 1024


async def _body(request: Request, content_type: str) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip() != content_type:
        raise InvalidInputError(f"Content-Type must be {content_type}")
    body = await request.body()
    if len(body) > MAX_PROTOCOL_REQUEST:
        raise PayloadTooLargeError("request too large")
    return body


@router.get("/pki/root.pem", response_class=Response)
def root_pem(platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        return Response(platform.ca.root_pem(session), media_type="application/x-pem-file")


@router.get("/pki/{name}.crt", response_class=Response)
def certificate(name: str, platform: PlatformDep) -> Response:
    if name not in ("root", "issuing", "tsa", "ocsp", "seal"):
        raise NotFoundError("certificate not found")
    with platform.db.read() as session:
        der = platform.ca.certificate(session, name).public_bytes(serialization.Encoding.DER)
    return Response(der, media_type="application/pkix-cert")


@router.get("/pki/{issuer}.crl", response_class=Response)
def crl(issuer: str, platform: PlatformDep) -> Response:
    with platform.db.read() as session:
        der = platform.ca.crl(session, issuer).public_bytes(serialization.Encoding.DER)
    return Response(der, media_type="application/pkix-crl")


@router.post("/pki/ocsp", response_class=Response)
async def ocsp(request: Request, platform: PlatformDep) -> Response:
    body = await _body(request, "application/ocsp-request")
    with platform.db.read() as session:
        answer = platform.ca.ocsp(session, body)
    return Response(answer, media_type="application/ocsp-response")


@router.post("/tsa", response_class=Response)
async def timestamp(request: Request, platform: PlatformDep) -> Response:
    """RFC 3161 over HTTP: ``application/timestamp-query`` in, ``timestamp-reply`` out."""
    body = await _body(request, "application/timestamp-query")
    with platform.db.read() as session:
        authority = platform.timestamp_authority(session)
    return Response(authority.respond(body), media_type="application/timestamp-reply")
