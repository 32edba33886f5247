"""Witness endpoints (c2sp.org/tlog-witness): cosign other logs' checkpoints; say who we are.

``POST /api/v1/witness/add-checkpoint`` is public by design: the protocol authenticates the
*checkpoint* (it must be signed by a log key this instance is configured to witness), not the
caller. Answers follow the spec exactly — the cosignature line(s) as text on success; on a stale
``old`` size a 409 whose body is our size in a ``text/x.tlog.size`` response (with no charset
parameter: clients compare the media type exactly); everything else a problem+json with the
status the spec assigns. The body is read up to a small limit before anything is parsed.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from pactvault.api.deps import PUBLIC, PlatformDep
from pactvault.errors import PayloadTooLargeError
from pactvault.ledger.witnessing import (
    MAX_REQUEST_BYTES,
    SIZE_CONTENT_TYPE,
    StaleOldSizeError,
    WitnessService,
)

router = APIRouter(prefix="/api/v1/witness", tags=["witness"], dependencies=[PUBLIC])


def get_witness(platform: PlatformDep) -> WitnessService:
    return platform.witness


WitnessDep = Annotated[WitnessService, Depends(get_witness)]


@router.post(
    "/add-checkpoint",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "The cosignature line(s)", "content": {"text/plain": {}}},
        409: {"description": "Stale old size (text/x.tlog.size) or a conflicting root"},
    },
)
async def add_checkpoint(request: Request, witness: WitnessDep) -> Response:
    """c2sp.org/tlog-witness add-checkpoint: cosign a checkpoint of a log we witness."""
    body = await _read_body(request, MAX_REQUEST_BYTES)
    try:
        lines = await run_in_threadpool(witness.add_checkpoint, body)
    except StaleOldSizeError as exc:
        # Set the header ourselves: a media_type would get "; charset=utf-8" appended.
        return Response(
            f"{exc.size}\n".encode("ascii"),
            status_code=409,
            headers={"Content-Type": SIZE_CONTENT_TYPE},
        )
    return PlainTextResponse(lines)


@router.get("/key", response_class=PlainTextResponse)
def key(witness: WitnessDep) -> PlainTextResponse:
    """This witness's verifier key (cosignature/v1, type 0x04): configure it in logs and clients."""
    return PlainTextResponse(witness.verifier_key() + "\n")


@router.get("/logs")
def logs(witness: WitnessDep) -> dict[str, Any]:
    """The logs this instance witnesses, with the latest checkpoint it cosigned for each."""
    held = {state.origin: state for state in witness.logs()}
    return {
        "witness": witness.verifier().name,
        "logs": [
            {
                "origin": origin,
                "tree_size": held[origin].tree_size if origin in held else 0,
                "root_hash": _b64(held[origin].root_hash) if origin in held else None,
                "cosigned_at": held[origin].cosigned_at.isoformat() if origin in held else None,
            }
            for origin in witness.origins
        ],
    }


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it grows past ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLargeError(f"add-checkpoint bodies are limited to {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"add-checkpoint bodies are limited to {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
