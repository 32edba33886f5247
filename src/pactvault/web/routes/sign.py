"""Signing in the browser: open the link, verify, read, fill, sign (or decline), download.

The invitation link is ``/sign#<token>``: the token travels in the fragment, which browsers
never send, so no server, proxy or access log ever sees it in a URL. ``sign-open.js`` takes it
from the fragment, removes it from the address bar and posts it *once* in a form to
``/sign/open``, which checks it and answers with a short-lived ``pv_signer`` cookie (HttpOnly,
SameSite=Strict, ``Path=/sign``, sealed under the web key) — from then on no script holds the
token. Without JavaScript the same form takes the link pasted by hand.

The cookie also carries the step-up in progress: the challenge id and whether it was verified
(an email/SMS code, or the passkey of the signer's own account when they are signed in to it).
``/sign/contract`` shows whatever comes next — real-name verification if the contract asks for
it, the step-up, then the document (PDF.js: the sign button enables once the last page was
shown), the signer's text fields, the signature (drawn, typed in a handwriting face or an
uploaded image), the consent — or the outcome, with the signed copy to download.

Every action is the contract service's (``begin_stepup``, ``complete_stepup``, ``sign``,
``decline``, ``signer_document``) exactly as for the API's signer routes; an expired, replaced
or unknown link, or a missing cookie, gets a page saying what to do (``sign_gone.html``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from io import BytesIO
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from PIL import Image, UnidentifiedImageError
from starlette.responses import Response

from pactvault.api.deps import PlatformDep, client_actor, get_platform, read_upload
from pactvault.api.routes.contracts import pdf_response
from pactvault.api.routes.verification import id_documents
from pactvault.contracts.fields import SEAL_UNAVAILABLE, SealUnavailableError, stored_fields
from pactvault.contracts.service import DEFAULT_CONSENT_TEXT, SignInput
from pactvault.contracts.signing_policy import effective, minimum_in
from pactvault.contracts.states import OPEN_FOR_SIGNING
from pactvault.errors import (
    InvalidInputError,
    NotFoundError,
    PactvaultError,
    PayloadTooLargeError,
)
from pactvault.identity.errors import TooManyAttemptsError
from pactvault.identity.members import normalise_email
from pactvault.identity.mfa.errors import ChallengeGoneError
from pactvault.identity.mfa.stepup import REQUIRED as STEPUP_REQUIRED
from pactvault.identity.realname.providers import assurance_rank
from pactvault.identity.realname.service import IdentityClaim
from pactvault.identity.realname.subjects import Subject
from pactvault.pdf.appearance import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from pactvault.platform import Platform
from pactvault.store.models import Contract, Signer
from pactvault.tokens import SIGNING_PREFIX
from pactvault.web.i18n import Translator
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, language, redirect, render, translator
from pactvault.web.routes.send import ASSURANCE_KEYS
from pactvault.web.security import PAGE_PUBLIC, PageRule, secure_cookies, web_keys

SIGNER_COOKIE = "pv_signer"
SIGNER_PURPOSE = "signer"
SIGNER_PATH = "/sign"
#: How long the signer cookie lives; opening the link again starts a new one.
SIGNER_COOKIE_AGE = 60 * 60
#: What the contract service answers for an unknown, expired or replaced link.
INVITATION_GONE = "invitation not found or no longer valid"
MAX_TOKEN = 200
PAGE_SIGNER = Depends(PageRule("signer"))

#: Catalog keys of the states and choices the signing page names (kept whole here, so the
#: catalog tests can see every key in use).
LABELS: dict[str, dict[str, str]] = {
    "party": {
        "pending": "sign.party_status.pending",
        "invited": "sign.party_status.invited",
        "signed": "sign.party_status.signed",
        "declined": "sign.party_status.declined",
        "closed": "sign.party_status.closed",
    },
    "closed": {
        "voided": "sign.closed.voided",
        "expired": "sign.closed.expired",
        "declined": "sign.closed.declined",
        "completed": "sign.closed.completed",
    },
    "start": {
        "email": "sign.stepup.start.email",
        "sms": "sign.stepup.start.sms",
        "passkey": "sign.stepup.start.passkey",
    },
    "again": {
        "email": "sign.stepup.again.email",
        "sms": "sign.stepup.again.sms",
        "passkey": "sign.stepup.again.passkey",
    },
    "sent": {"email": "sign.stepup.sent.email", "sms": "sign.stepup.sent.sms"},
    "verification": {
        "pending": "sign.identity.status.pending",
        "verified": "sign.identity.status.verified",
        "rejected": "sign.identity.status.rejected",
        "expired": "sign.identity.status.expired",
    },
    "checks": {
        "document": "sign.identity.check.document",
        "id_number": "sign.identity.check.id_number",
        "bank_card": "sign.identity.check.bank_card",
        "face_liveness": "sign.identity.check.face_liveness",
    },
}


class SignerLinkGone(Exception):
    """The page cannot continue for this browser: no signer cookie, or a link no longer valid.

    Not a ``PactvaultError`` on purpose: ``SignerPageRoute`` answers it with its own page
    (and clears the cookie), before the generic error pages of ``PageRoute``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "missing" | "expired"


class SignerPageRoute(PageRoute):
    """``PageRoute`` plus the signer's own dead ends: a page that says what to do next."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def signer_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignerLinkGone as gone:
                response: Response
                if gone.reason == "missing" and request.method == "GET":
                    # A bookmark or an old tab: back to where a link can be opened again.
                    response = redirect(request, "/sign?again=1")
                else:
                    status = 401 if gone.reason == "missing" else 404
                    context = {"reason": gone.reason}
                    response = render(request, "sign_gone.html", context, status=status)
                _clear_state(response, get_platform(request))
                return response

        return signer_handler


router = APIRouter(route_class=SignerPageRoute, include_in_schema=False)


# -- the signer cookie ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerState:
    """What the ``pv_signer`` cookie holds (sealed): the link, and the step-up in progress."""

    token: str
    expires: int
    challenge: str | None = None
    method: str | None = None
    destination: str | None = None
    verified: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.token,
            "x": self.expires,
            "c": self.challenge,
            "m": self.method,
            "d": self.destination,
            "v": self.verified,
        }


def signer_state(request: Request) -> SignerState:
    """The signer behind this browser, from the cookie; ``SignerLinkGone`` if there is none."""
    opened = web_keys(request).open(SIGNER_PURPOSE, request.cookies.get(SIGNER_COOKIE))
    try:
        raw = json.loads(opened) if opened else None
    except ValueError:
        raw = None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("t"), str)
        or not isinstance(raw.get("x"), int)
        or raw["x"] <= time.time()
    ):
        raise SignerLinkGone("missing")
    return SignerState(
        token=raw["t"],
        expires=raw["x"],
        challenge=raw.get("c") if isinstance(raw.get("c"), str) else None,
        method=raw.get("m") if isinstance(raw.get("m"), str) else None,
        destination=raw.get("d") if isinstance(raw.get("d"), str) else None,
        verified=raw.get("v") is True,
    )


SignerLink = Annotated[SignerState, Depends(signer_state)]


def _set_state(
    response: Response, platform: Platform, request: Request, state: SignerState
) -> None:
    sealed = web_keys(request).seal(
        SIGNER_PURPOSE, json.dumps(state.to_json(), separators=(",", ":"))
    )
    response.set_cookie(
        SIGNER_COOKIE,
        sealed,
        max_age=max(1, state.expires - int(time.time())),
        path=SIGNER_PATH,
        secure=secure_cookies(platform),
        httponly=True,
        samesite="strict",
    )


def _clear_state(response: Response, platform: Platform) -> None:
    response.delete_cookie(
        SIGNER_COOKIE,
        path=SIGNER_PATH,
        secure=secure_cookies(platform),
        httponly=True,
        samesite="strict",
    )


@contextmanager
def link_errors() -> Iterator[None]:
    """A link the service no longer knows (expired, replaced, unknown) ends the page."""
    try:
        yield
    except NotFoundError as exc:
        if exc.detail == INVITATION_GONE:
            raise SignerLinkGone("expired") from None
        raise


def _token_from(text: str) -> str:
    """The token of a pasted link (``…/sign#pvsign_…``) or of the token itself."""
    text = text.strip()
    if "#" in text:
        text = text.rsplit("#", 1)[1]
    return text.strip()


# -- opening the link ------------------------------------------------------------------------------


@router.get("/sign", dependencies=[PAGE_PUBLIC])
def sign_start(
    request: Request, again: Annotated[str | None, Query(max_length=1)] = None
) -> Response:
    return render(request, "sign_open.html", {"again": again == "1", "prefix": SIGNING_PREFIX})


@router.post("/sign/open", dependencies=[PAGE_PUBLIC])
def open_link(
    request: Request,
    platform: PlatformDep,
    token: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Exchange the token (posted once, from the fragment) for the signer cookie."""
    token = _token_from(token)
    if not token.startswith(SIGNING_PREFIX) or len(token) > MAX_TOKEN:
        raise SignerLinkGone("expired")
    with link_errors():
        platform.contracts.open_invitation(token, client_actor(request))
    response = redirect(request, "/sign/contract")
    _set_state(
        response,
        platform,
        request,
        SignerState(token=token, expires=int(time.time()) + SIGNER_COOKIE_AGE),
    )
    return response


# -- the signing page ------------------------------------------------------------------------------


def _phase(platform: Platform, contract: Contract, signer: Signer, state: SignerState) -> str:
    """What this signer is asked to do now (the service checks all of it again)."""
    if signer.status == "signed":
        return "signed"
    if signer.status == "declined":
        return "declined"
    if contract.status not in OPEN_FOR_SIGNING or signer.status != "invited":
        return "closed"
    if any(
        other.routing_order < signer.routing_order and other.status != "signed"
        for other in contract.signers
    ):
        return "waiting"
    if any(f.kind == "seal" and f.required for f in stored_fields(signer.extra_fields)):
        return "seal"
    with platform.db.read() as session:
        required = effective(signer.required_assurance, minimum_in(session, signer.org_id))
        held = (
            None
            if required == "basic"
            else platform.verification.assurance_in(
                session, signer.org_id, Subject.signer(signer.id, signer.email)
            )
        )
    if required != "basic" and (held is None or assurance_rank(held) < assurance_rank(required)):
        return "identity"
    return "sign" if state.verified else "stepup"


def _methods(request: Request, platform: Platform, signer: Signer) -> list[str]:
    methods = ["email"]
    if signer.phone_field_id is not None and "sms" in platform.mfa.senders:
        methods.append("sms")
    if _account_matches(request, signer) and platform.mfa.passkeys is not None:
        methods.insert(0, "passkey")
    return methods


def _account_matches(request: Request, signer: Signer) -> bool:
    """Signed in to the account of the invited address (a passkey may then sign)."""
    caller = getattr(request.state, "caller", None)
    if caller is None or caller.user_id is None:
        return False
    platform = get_platform(request)
    try:
        member = platform.people.get_member(caller.principal, caller.user_id)
    except PactvaultError:
        return False
    return normalise_email(member.email) == normalise_email(signer.email)


def _signing_page(
    request: Request,
    platform: Platform,
    state: SignerState,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    passkey_options: str | None = None,
    values: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    with link_errors():
        contract, signer = platform.contracts.open_invitation(state.token, client_actor(request))
    phase = _phase(platform, contract, signer, state)
    own = stored_fields(signer.extra_fields)
    context: dict[str, Any] = {
        "contract": contract,
        "signer": signer,
        "parties": contract.signers,
        "phase": phase,
        "state": state,
        "error": error,
        "notice": notice,
        "document_sha256": contract.revisions[-1].plaintext_sha256,
        "consent_text": DEFAULT_CONSENT_TEXT,
        "text_fields": [f for f in own if f.kind == "text"],
        "has_date": any(f.kind == "date" for f in own),
        "values": values or {},
        "methods": _methods(request, platform, signer),
        "passkey_options": passkey_options,
        "highlights": json.dumps(
            [
                {"page": signer.field_page, "box": signer.field_box, "kind": "signature"},
                *({"page": f.page, "box": list(f.box), "kind": f.kind} for f in own),
            ]
        ),
        "identity": _identity_context(request, platform, signer) if phase == "identity" else None,
        "max_image_mb": MAX_IMAGE_BYTES // (1024 * 1024),
        "labels": LABELS,
    }
    return render(request, "sign.html", context, status=status, headers=headers)


def _identity_context(request: Request, platform: Platform, signer: Signer) -> dict[str, Any]:
    actor = client_actor(request).acting_as("signer", signer.id, signer.org_id)
    statuses = platform.verification.subject_status(
        signer.org_id, Subject.signer(signer.id, signer.email), actor=actor
    )
    with platform.db.read() as session:
        required = effective(signer.required_assurance, minimum_in(session, signer.org_id))
    checks = [(p.name, check) for p in platform.verification.providers() for check in p.checks]
    waiting = next((s.verification for s in statuses if s.verification.awaiting_documents), None)
    return {
        "required_key": ASSURANCE_KEYS.get(required, "send.assurance.basic"),
        "statuses": statuses,
        "checks": checks,
        "waiting": waiting,
    }


@router.get("/sign/contract", dependencies=[PAGE_SIGNER])
def signing_page(request: Request, platform: PlatformDep, state: SignerLink) -> Response:
    return _signing_page(request, platform, state)


def _describe(exc: PactvaultError, t: Translator) -> str:
    """A refusal of the signing flow as one sentence in the signer's language."""
    detail = exc.detail
    known = (
        (STEPUP_REQUIRED, "sign.error.stepup_required"),
        ("the document changed since you opened it", "sign.error.document_changed"),
        (SEAL_UNAVAILABLE, "sign.error.seal"),
        ("signing requires explicit consent", "sign.error.consent"),
        ("please fill in", "sign.error.fill_in"),
        ("may have at most", "sign.error.text_too_long"),
        ("cannot be shown", "sign.error.text_characters"),
        ("real-name verification", "sign.error.identity"),
        ("it is not your turn yet", "sign.error.not_your_turn"),
        ("you have already signed", "sign.error.already_signed"),
        ("please give a reason", "sign.error.reason"),
        ("signing with a passkey needs you signed in", "sign.error.passkey_account"),
        ("timestamp", "sign.error.timestamp"),
        ("the signature image", "sign.error.image"),
    )
    for fragment, key in known:
        if fragment in detail:
            return t(key)
    if isinstance(exc, SealUnavailableError):
        return t("sign.error.seal")
    return error_message(exc, t)


def _refused(
    request: Request, platform: Platform, state: SignerState, exc: PactvaultError, **kw: Any
) -> Response:
    status = 429 if isinstance(exc, TooManyAttemptsError) else exc.status
    response = _signing_page(
        request,
        platform,
        kw.pop("new_state", state),
        error=_describe(exc, translator(request)),
        status=status,
        headers=exc.headers(),
        **kw,
    )
    return response


# -- step-up --------------------------------------------------------------------------------------


@router.post("/sign/stepup", dependencies=[PAGE_SIGNER])
def begin_stepup(
    request: Request,
    platform: PlatformDep,
    state: SignerLink,
    method: Annotated[str, Form(max_length=16)] = "email",
) -> Response:
    """Send a code (email, SMS) or ask for the account's passkey, bound to this document."""
    caller = getattr(request.state, "caller", None)
    account = caller.user_id if method == "passkey" and caller is not None else None
    try:
        with link_errors():
            challenge = platform.contracts.begin_stepup(
                state.token, client_actor(request), method, account=account
            )
    except PactvaultError as exc:
        return _refused(request, platform, state, exc)
    new = replace(
        state,
        challenge=challenge.challenge_id,
        method=challenge.method,
        destination=challenge.destination,
        verified=False,
    )
    if challenge.method == "passkey":
        response = _signing_page(
            request, platform, new, passkey_options=challenge.passkey_options or ""
        )
    else:
        response = redirect(request, "/sign/contract")
    _set_state(response, platform, request, new)
    return response


@router.post("/sign/stepup/verify", dependencies=[PAGE_SIGNER])
def complete_stepup(
    request: Request,
    platform: PlatformDep,
    state: SignerLink,
    code: Annotated[str, Form(max_length=64)] = "",
    credential: Annotated[str, Form(max_length=16384)] = "",
) -> Response:
    if state.challenge is None:
        return _signing_page(request, platform, state)
    answer: str | dict[str, object] = code.replace(" ", "")
    if state.method == "passkey":
        try:
            parsed = json.loads(credential)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            exc = InvalidInputError("the passkey answer is not valid")
            return _refused(request, platform, state, exc)
        answer = parsed
    try:
        with link_errors():
            platform.contracts.complete_stepup(
                state.token, client_actor(request), state.challenge, answer
            )
    except ChallengeGoneError as exc:
        gone = replace(state, challenge=None, method=None, destination=None, verified=False)
        response = _refused(request, platform, state, exc, new_state=gone)
        _set_state(response, platform, request, gone)
        return response
    except PactvaultError as exc:
        return _refused(request, platform, state, exc)
    new = replace(state, verified=True)
    response = redirect(request, "/sign/contract")
    _set_state(response, platform, request, new)
    return response


# -- reading, signing, declining -----------------------------------------------------------------


@router.get("/sign/document", dependencies=[PAGE_SIGNER])
def document(request: Request, platform: PlatformDep, state: SignerLink) -> Response:
    """The document as it is now (the signed copy, once signed); every read is audited."""
    with link_errors():
        revision, data = platform.contracts.signer_document(state.token, client_actor(request))
    return pdf_response(data, f"contract-v{revision.version}.pdf", revision.plaintext_sha256)


@router.get("/sign/download", dependencies=[PAGE_SIGNER])
def download(request: Request, platform: PlatformDep, state: SignerLink) -> Response:
    with link_errors():
        revision, data = platform.contracts.signer_document(state.token, client_actor(request))
    name = f"contract-{revision.contract_id}-v{revision.version}.pdf"
    return pdf_response(data, name, revision.plaintext_sha256)


def _image(data: bytes) -> bytes:
    """A handwritten signature image the stamp can show (PNG or JPEG, bounded)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLargeError("the signature image is too large")
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG") or image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidInputError("the signature image must be a PNG or JPEG picture")
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInputError("the signature image must be a PNG or JPEG picture") from None
    return data


@router.post("/sign/sign", dependencies=[PAGE_SIGNER])
async def sign(
    request: Request,
    platform: PlatformDep,
    state: SignerLink,
    document_sha256: Annotated[str, Form(max_length=64)] = "",
    consent: Annotated[str, Form(max_length=8)] = "",
    signature_image: Annotated[UploadFile | None, File()] = None,
) -> Response:
    form = await request.form()
    values = {
        key.removeprefix("field_"): value[:1000]
        for key, value in form.multi_items()
        if key.startswith("field_") and isinstance(value, str)
    }
    try:
        image = None
        if signature_image is not None and signature_image.filename:
            image = _image(await read_upload(signature_image, MAX_IMAGE_BYTES))
        with link_errors():
            platform.contracts.sign(
                state.token,
                client_actor(request),
                SignInput(
                    document_sha256=document_sha256,
                    consent=consent == "yes",
                    image=image,
                    locale="en" if language(request) == "en" else "zh-CN",
                    stepup_challenge_id=state.challenge,
                    field_values=values,
                ),
            )
    except PactvaultError as exc:
        fresh = state
        if STEPUP_REQUIRED in exc.detail or isinstance(exc, ChallengeGoneError):
            fresh = replace(state, challenge=None, method=None, destination=None, verified=False)
        response = _refused(request, platform, state, exc, new_state=fresh, values=values)
        if fresh is not state:
            _set_state(response, platform, request, fresh)
        return response
    response = redirect(request, "/sign/contract")
    _set_state(response, platform, request, replace(state, challenge=None, verified=False))
    return response


@router.post("/sign/decline", dependencies=[PAGE_SIGNER])
def decline(
    request: Request,
    platform: PlatformDep,
    state: SignerLink,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        with link_errors():
            platform.contracts.decline(state.token, client_actor(request), reason)
    except PactvaultError as exc:
        return _refused(request, platform, state, exc)
    return redirect(request, "/sign/contract")


# -- real-name verification (when the contract asks for it) --------------------------------------


@router.post("/sign/verification", dependencies=[PAGE_SIGNER])
def start_verification(
    request: Request,
    platform: PlatformDep,
    state: SignerLink,
    name: Annotated[str, Form(max_length=100)] = "",
    id_number: Annotated[str, Form(max_length=40)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    check: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Start a real-name check of yourself (the service decides what it needs)."""
    provider, _, method = check.partition(":")
    try:
        with link_errors():
            _contract, signer = platform.contracts.open_invitation(
                state.token, client_actor(request)
            )
        offered = {(p.name, c) for p in platform.verification.providers() for c in p.checks}
        if (provider, method) not in offered:
            raise InvalidInputError("choose one of the checks offered")
        if not name.strip() or not id_number.strip():
            raise InvalidInputError("name and ID number are required")
        platform.verification.start_for_signer(
            client_actor(request).acting_as("signer", signer.id, signer.org_id),
            org_id=signer.org_id,
            signer_id=signer.id,
            email=signer.email,
            claim=IdentityClaim(
                name=name.strip(), id_number=id_number.strip(), phone=phone.strip() or None
            ),
            provider=provider,
            check=method,
            documents_later=method == "document",
        )
    except PactvaultError as exc:
        return _refused(request, platform, state, exc)
    return redirect(request, "/sign/contract")


@router.post("/sign/verification/documents", dependencies=[PAGE_SIGNER])
async def upload_documents(
    request: Request,
    platform: PlatformDep,
    state: SignerLink,
    verification_id: Annotated[str, Form(max_length=36)],
    front: Annotated[UploadFile, File()],
    back: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        with link_errors():
            _contract, signer = platform.contracts.open_invitation(
                state.token, client_actor(request)
            )
        documents = await id_documents(
            platform, front, back if back is not None and back.filename else None
        )
        platform.verification.submit_documents_for_signer(
            client_actor(request).acting_as("signer", signer.id, signer.org_id),
            org_id=signer.org_id,
            signer_id=signer.id,
            email=signer.email,
            verification_id=verification_id,
            documents=documents,
        )
    except PactvaultError as exc:
        return _refused(request, platform, state, exc)
    return redirect(request, "/sign/contract")
