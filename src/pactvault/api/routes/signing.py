"""Signer-side routes. The signer authenticates with the capability token from their invitation.

The token travels in the ``Authorization`` header (never in a URL, where proxies and logs would
keep it); the invitation link carries it in the URL fragment, which browsers do not send.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pactvault.api.deps import SESSION_COOKIE, SIGNER, PlatformDep, client_actor, signing_token
from pactvault.api.routes.contracts import pdf_response
from pactvault.api.schemas import (
    DeclineIn,
    SignatureOut,
    SignerOut,
    SignerView,
    SignIn,
    StepUpAnswerIn,
    StepUpIn,
    StepUpOut,
    StepUpVerifiedOut,
)
from pactvault.contracts.service import DEFAULT_CONSENT_TEXT, SignInput
from pactvault.errors import InvalidInputError

router = APIRouter(prefix="/api/v1/signer", tags=["signing"], dependencies=[SIGNER])
Token = Annotated[str, Depends(signing_token)]


@router.get("/contract", response_model=SignerView)
def open_invitation(request: Request, platform: PlatformDep, token: Token) -> SignerView:
    """What you are asked to sign, and the SHA-256 of the document you must confirm."""
    contract, signer = platform.contracts.open_invitation(token, client_actor(request))
    current = contract.revisions[-1]
    return SignerView(
        contract_id=contract.id,
        title=contract.title,
        message=contract.message,
        status=contract.status,
        signer=SignerOut.of(signer),
        parties=[SignerOut.of(s) for s in contract.signers],
        document_sha256=current.plaintext_sha256,
        consent_text=DEFAULT_CONSENT_TEXT,
    )


@router.get(
    "/document", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
)
def signer_document(request: Request, platform: PlatformDep, token: Token) -> Response:
    revision, data = platform.contracts.signer_document(token, client_actor(request))
    return pdf_response(data, f"contract-v{revision.version}.pdf", revision.plaintext_sha256)


@router.post("/stepup", response_model=StepUpOut, status_code=201)
def begin_stepup(
    body: StepUpIn, request: Request, platform: PlatformDep, token: Token
) -> StepUpOut:
    """Send a one-time code bound to the current document; signing needs it verified first
    ("real intention", 意愿认证). The message names the document's hash prefix."""
    account = None
    if body.method == "passkey":
        # The passkey belongs to an account: the signer must also be signed in to it (cookie).
        account = platform.sessions.authenticate(request.cookies.get(SESSION_COOKIE)).user_id
    challenge = platform.contracts.begin_stepup(
        token, client_actor(request), body.method, account=account
    )
    return StepUpOut(
        challenge_id=challenge.challenge_id,
        method=challenge.method,
        document_sha256=challenge.document_sha256,
        expires_at=challenge.expires_at,
        destination=challenge.destination,
        passkey_options=(
            json.loads(challenge.passkey_options) if challenge.passkey_options else None
        ),
    )


@router.post("/stepup/{challenge_id}", response_model=StepUpVerifiedOut)
def complete_stepup(
    challenge_id: str,
    body: StepUpAnswerIn,
    request: Request,
    platform: PlatformDep,
    token: Token,
) -> StepUpVerifiedOut:
    """Answer the challenge. A wrong code counts; five wrong codes burn the challenge."""
    answer = body.credential if body.credential is not None else (body.code or "")
    if isinstance(answer, str):
        answer = answer.replace(" ", "")
    digest = platform.contracts.complete_stepup(token, client_actor(request), challenge_id, answer)
    return StepUpVerifiedOut(challenge_id=challenge_id, verified=True, proof_sha256=digest)


@router.post("/sign", response_model=SignatureOut)
def sign(body: SignIn, request: Request, platform: PlatformDep, token: Token) -> SignatureOut:
    """Sign the document whose hash you confirm. Fails closed without a timestamp."""
    image = None
    if body.signature_image_base64:
        try:
            image = base64.b64decode(body.signature_image_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputError("signature_image_base64 is not valid base64") from None
    signature = platform.contracts.sign(
        token,
        client_actor(request),
        SignInput(
            document_sha256=body.document_sha256,
            consent=body.consent,
            consent_text=body.consent_text or DEFAULT_CONSENT_TEXT,
            reason=body.reason,
            image=image,
            locale=body.locale,
            stepup_challenge_id=body.stepup_challenge_id,
            field_values=body.field_values or {},
        ),
    )
    return SignatureOut(
        id=signature.id,
        contract_id=signature.contract_id,
        signer_id=signature.signer_id,
        revision_version=signature.revision_version,
        certificate_serial=signature.certificate_serial,
        timestamp_time=signature.timestamp_time,
        document_sha256=signature.document_sha256_after,
        stepup_proof_sha256=signature.stepup_proof_sha256,
    )


@router.post("/decline", response_model=SignerView)
def decline(body: DeclineIn, request: Request, platform: PlatformDep, token: Token) -> SignerView:
    platform.contracts.decline(token, client_actor(request), body.reason)
    return open_invitation(request, platform, token)
