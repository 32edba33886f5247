"""Sending a contract: upload a PDF, add the signers, place their fields, save or send.

``/contracts/new`` and ``/contracts/{id}/edit`` are one editor (``send.html`` + ``send.js``):
the PDF is previewed with PDF.js *in the browser* (a new upload is rendered from the chosen file,
before a byte is sent), fields are dragged onto the rendered pages and kept in PDF points, and
the whole draft goes to the server in one multipart request whose upload progress the page
shows. Without JavaScript the same form still works: each signer then gets one signature field,
placed automatically.

The page holds no rules of its own: ``ContractService.create`` / ``update_draft`` / ``send``
check everything (the classification clearance check mirrors the API's ``POST /contracts``).
A request from ``send.js`` asks for JSON (``Accept: application/json``) and gets
``{"location": …}`` or ``{"error": …}`` back, so a refusal never loses the editor's state;
a plain form post gets a redirect or the page again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.responses import JSONResponse, Response

from pactvault.access.decision import LEVELS, cleared
from pactvault.api.deps import Caller, PlatformDep, read_upload
from pactvault.api.routes.contracts import pdf_response
from pactvault.contracts.access import authorize_contract
from pactvault.contracts.approvals import ApprovalRequiredError
from pactvault.contracts.fields import KINDS, FieldSpec
from pactvault.contracts.service import SignerSpec
from pactvault.errors import (
    ConflictError,
    InvalidInputError,
    PactvaultError,
    PayloadTooLargeError,
    PdfRejectedError,
    PermissionDeniedError,
)
from pactvault.identity.realname.providers import ASSURANCE_LEVELS
from pactvault.platform import Platform
from pactvault.store.models import Contract
from pactvault.web.i18n import Translator
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, redirect, render, translator
from pactvault.web.security import page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Creator = Annotated[Caller, page_allow("contract.create")]
Editor = Annotated[Caller, page_allow("contract.update", on_object="contract")]
Reader = Annotated[Caller, page_allow("contract.read", on_object="contract")]

CURRENCIES = ("CNY", "USD", "EUR", "HKD", "GBP", "JPY")
#: Catalog keys of the field kinds and classification levels the editor offers.
KIND_KEYS = {
    "signature": "send.kind.signature",
    "date": "send.kind.date",
    "text": "send.kind.text",
    "seal": "send.kind.seal",
}
#: The identity checks a sender can require, weakest first (``realname.providers``).
ASSURANCE_KEYS = {
    "basic": "send.assurance.basic",
    "verified-document": "send.assurance.verified-document",
    "verified-3-factor": "send.assurance.verified-3-factor",
    "verified-4-factor": "send.assurance.verified-4-factor",
    "verified-face": "send.assurance.verified-face",
}
LEVEL_KEYS = {
    "public": "send.level.public",
    "internal": "send.level.internal",
    "confidential": "send.level.confidential",
    "secret": "send.level.secret",
}
#: Minor units per major unit (ISO 4217 exponents of the currencies offered).
_EXPONENT = {"JPY": 0}
#: Rows the editor shows for a new contract (without JavaScript, the sender cannot add any).
BLANK_ROWS = 2
MAX_ROWS = 50
TextForm = Annotated[str, Form(max_length=4000)]
ShortForm = Annotated[str, Form(max_length=320)]
RowsForm = Annotated[list[str] | None, Form()]


class FormProblem(InvalidInputError):
    """A form the page itself could not turn into a draft; ``key`` says why, in the catalogs."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


#: Service refusals (English details, written for API clients) as sentences of the catalogs.
_DETAILS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), key)
    for pattern, key in (
        (r"^signer (?P<n>\d+): name must be", "send.error.signer_name"),
        (r"^signer (?P<n>\d+): .* is not an email address", "send.error.signer_email"),
        (r"^signer (?P<n>\d+): .* appears twice", "send.error.signer_twice"),
        (r"^signer (?P<n>\d+): organisation", "send.error.signer_organisation"),
        (r"^signer (?P<n>\d+): .*mobile number", "send.error.signer_phone"),
        (r"^signer (?P<n>\d+): .*outside the page", "send.error.field_outside"),
        (r"^signer (?P<n>\d+): .*does not exist", "send.error.field_outside"),
        (r"^signer (?P<n>\d+): .*at least 10 pt", "send.error.field_small"),
        (r"^signer (?P<n>\d+): ", "send.error.signer_invalid"),
        (r"^title must be", "send.error.title"),
        (r"^expires_at must be in the future", "send.error.deadline_past"),
        (r"^the PDF already carries signatures", "send.error.already_signed"),
        (r"^a contract needs at least one signer", "send.error.no_signers"),
        (r"^at most \d+ signers", "send.error.too_many_signers"),
        (r"not a PDF", "send.error.not_pdf"),
        (r"encrypted|password-protected", "send.error.encrypted"),
        (r"JavaScript|attachments|active content", "send.error.active_content"),
        (r"damaged|could not be parsed|no pages|is empty", "send.error.damaged"),
        (r"only a draft can be edited", "send.error.not_draft"),
        (r"above your own clearance", "send.error.clearance"),
    )
)


def describe(exc: PactvaultError, t: Translator) -> str:
    """One translated sentence for a refusal of this page."""
    if isinstance(exc, FormProblem):
        return t(exc.key, **exc.params)
    if isinstance(exc, PayloadTooLargeError):
        return t("send.error.too_large")
    if isinstance(
        exc, InvalidInputError | PdfRejectedError | ConflictError | PermissionDeniedError
    ):
        for pattern, key in _DETAILS:
            found = pattern.search(exc.detail)
            if found:
                return t(key, **found.groupdict())
    return error_message(exc, t)


# -- the form -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One signer row of the form, as typed (for showing the form again)."""

    name: str = ""
    email: str = ""
    phone: str = ""
    organisation: str = ""
    order: str = "1"
    assurance: str = "basic"
    phone_on_file: bool = False
    remove_phone: bool = False

    @property
    def blank(self) -> bool:
        return not (self.name.strip() or self.email.strip() or self.phone.strip())


@dataclass
class Draft:
    """The editor's form, parsed: what the page shows again, and what the service gets."""

    title: str = ""
    message: str = ""
    deadline: str = ""
    classification: str = "internal"
    amount: str = ""
    currency: str = "CNY"
    rows: list[Row] = field(default_factory=list)
    fields_json: str = "[]"

    def terms(self, tz_offset: str) -> dict[str, Any]:
        """``title``, ``message``, ``expires_at``, ``classification``, ``amount_minor``,
        ``currency`` for the service (raises ``FormProblem`` for what cannot be read)."""
        if self.classification not in LEVELS:
            raise FormProblem("send.error.classification")
        amount_minor, currency = _amount(self.amount, self.currency)
        return {
            "title": self.title,
            "message": self.message.strip() or None,
            "expires_at": _deadline(self.deadline, tz_offset),
            "classification": self.classification,
            "amount_minor": amount_minor,
            "currency": currency,
        }

    def signers(self) -> list[SignerSpec]:
        """The non-blank rows as signers, each with the fields placed for their row."""
        placed = _fields(self.fields_json, len(self.rows))
        specs = []
        for index, row in enumerate(self.rows):
            if row.blank:
                if placed.get(index):
                    raise FormProblem("send.error.fields_without_signer")
                continue
            try:
                order = int(row.order)
            except ValueError:
                raise FormProblem("send.error.order", n=len(specs) + 1) from None
            phone: str | None = row.phone.strip() or None
            if row.remove_phone and phone is None:
                phone = ""  # update_draft: remove the number on file
            specs.append(
                SignerSpec(
                    name=row.name.strip(),
                    email=row.email.strip(),
                    organisation=row.organisation.strip() or None,
                    routing_order=order,
                    phone=phone,
                    required_assurance=row.assurance,
                    fields=tuple(placed.get(index, ())),
                )
            )
        if not specs:
            raise FormProblem("send.error.no_signers")
        return specs


def _amount(text: str, currency: str) -> tuple[int | None, str | None]:
    text = text.strip().replace(",", "").replace("，", "")
    if not text:
        return None, None
    if currency not in CURRENCIES:
        raise FormProblem("send.error.currency")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FormProblem("send.error.amount") from None
    minor = value * (10 ** _EXPONENT.get(currency, 2))
    if not value.is_finite() or value < 0 or minor != minor.to_integral_value() or minor > 10**15:
        raise FormProblem("send.error.amount")
    return int(minor), currency


def _deadline(text: str, tz_offset: str) -> datetime | None:
    """The end of the chosen day in the sender's time zone (minutes east of UTC, from the
    browser; China's +08:00 when the page ran without JavaScript)."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
        offset = int(tz_offset) if tz_offset.strip() else 480
    except ValueError:
        raise FormProblem("send.error.deadline") from None
    if not -14 * 60 <= offset <= 14 * 60:
        raise FormProblem("send.error.deadline")
    zone = timezone(timedelta(minutes=offset))
    return datetime.combine(day, time(23, 59, 59), zone).astimezone(UTC)


def _fields(text: str, rows: int) -> dict[int, list[FieldSpec]]:
    """The editor's fields (JSON from ``send.js``) by signer row."""
    try:
        items = json.loads(text or "[]")
    except ValueError:
        raise FormProblem("send.error.fields") from None
    if not isinstance(items, list) or len(items) > 500:
        raise FormProblem("send.error.fields")
    out: dict[int, list[FieldSpec]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise FormProblem("send.error.fields")
        row, kind, label = item.get("signer"), item.get("kind"), item.get("label")
        page, box = item.get("page"), item.get("box")
        if (
            not isinstance(row, int)
            or isinstance(row, bool)
            or not 0 <= row < rows
            or kind not in KINDS
            or not isinstance(page, int)
            or not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
            or not (label is None or isinstance(label, str))
        ):
            raise FormProblem("send.error.fields")
        out.setdefault(row, []).append(
            FieldSpec(
                kind=kind,
                page=page,
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                required=bool(item.get("required", True)) or kind == "signature",
                label=(label or "").strip()[:64] or None,
            )
        )
    return out


def _rows(
    names: list[str] | None,
    emails: list[str] | None,
    phones: list[str] | None,
    organisations: list[str] | None,
    orders: list[str] | None,
    assurances: list[str] | None,
    phone_actions: list[str] | None,
) -> list[Row]:
    columns = [names or [], emails or [], phones or [], organisations or [], orders or []]
    count = max(len(c) for c in columns)
    if count > MAX_ROWS or any(len(c) != count for c in columns):
        raise FormProblem("send.error.rows")
    assurances = assurances or ["basic"] * count
    phone_actions = phone_actions or ["keep"] * count
    if len(assurances) != count or len(phone_actions) != count:
        raise FormProblem("send.error.rows")
    rows = []
    for i in range(count):
        rows.append(
            Row(
                name=names[i][:200] if names else "",
                email=emails[i][:320] if emails else "",
                phone=phones[i][:40] if phones else "",
                organisation=organisations[i][:200] if organisations else "",
                order=orders[i][:4] if orders else "1",
                assurance=assurances[i] if assurances[i] in ASSURANCE_LEVELS else "basic",
                remove_phone=phone_actions[i] == "remove",
            )
        )
    return rows


# -- pages ----------------------------------------------------------------------------------------


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _editor(
    request: Request,
    platform: Platform,
    who: Caller,
    draft: Draft,
    *,
    contract: Contract | None = None,
    error: str | None = None,
    notice: str | None = None,
    show_approval: bool = False,
    status: int = 200,
) -> Response:
    while len(draft.rows) < (1 if contract is not None else BLANK_ROWS):
        draft.rows.append(Row(order=str(len(draft.rows) + 1)))
    permissions = who.principal.permissions
    return render(
        request,
        "send.html",
        {
            "contract": contract,
            "draft": draft,
            "error": error,
            "notice": notice,
            "levels": [level for level in LEVELS if cleared(who.principal.clearance, level)],
            "assurances": ASSURANCE_LEVELS,
            "currencies": CURRENCIES,
            "kinds": KINDS,
            "max_bytes": platform.settings.max_upload_bytes,
            "max_mb": max(1, platform.settings.max_upload_bytes // (1024 * 1024)),
            "can_send": bool({"contract.send.all", "contract.send.own"} & permissions),
            "action": f"/contracts/{contract.id}/edit" if contract else "/contracts/new",
            "blank_row": Row(),
            "kind_keys": KIND_KEYS,
            "assurance_keys": ASSURANCE_KEYS,
            "level_keys": LEVEL_KEYS,
            "show_approval": show_approval,
        },
        status=status,
    )


@router.get("/contracts/new")
def new_contract_page(request: Request, platform: PlatformDep, who: Creator) -> Response:
    return _editor(request, platform, who, Draft())


@router.post("/contracts/new")
async def create_contract(
    request: Request,
    platform: PlatformDep,
    who: Creator,
    file: Annotated[UploadFile | None, File()] = None,
    title: ShortForm = "",
    message: TextForm = "",
    deadline: Annotated[str, Form(max_length=10)] = "",
    tz_offset: Annotated[str, Form(max_length=6)] = "",
    classification: Annotated[str, Form(max_length=16)] = "internal",
    amount: Annotated[str, Form(max_length=32)] = "",
    currency: Annotated[str, Form(max_length=3)] = "CNY",
    signer_name: RowsForm = None,
    signer_email: RowsForm = None,
    signer_phone: RowsForm = None,
    signer_organisation: RowsForm = None,
    signer_order: RowsForm = None,
    signer_assurance: RowsForm = None,
    signer_phone_action: RowsForm = None,
    fields: Annotated[str, Form(max_length=200_000)] = "[]",
    action: Annotated[str, Form(max_length=8)] = "draft",
) -> Response:
    draft = Draft(title, message, deadline, classification, amount, currency, [], fields)
    try:
        draft.rows = _rows(
            signer_name,
            signer_email,
            signer_phone,
            signer_organisation,
            signer_order,
            signer_assurance,
            signer_phone_action,
        )
        terms = draft.terms(tz_offset)
        signers = draft.signers()
        _check_clearance(platform, who, terms["classification"])
        if action == "send":
            _check_may_send(platform, who)
        data = await _upload(platform, file)
        if data is None:
            raise FormProblem("send.error.no_file")
        contract = platform.contracts.create(
            who.actor,
            who.org_id,
            pdf=data,
            signers=signers,
            created_by_user_id=who.user_id,
            **terms,
        )
    except PactvaultError as exc:
        return _refused(request, platform, who, draft, exc)
    return _after_save(request, platform, who, contract.id, action)


@router.get("/contracts/{contract_id}/edit")
def edit_contract_page(
    contract_id: str,
    request: Request,
    platform: PlatformDep,
    who: Editor,
    saved: str | None = None,
    approval: str | None = None,
) -> Response:
    authorize_contract(
        platform.db, platform.access, who.principal, "contract.update", contract_id, who.actor
    )
    contract = platform.contracts.get(who.org_id, contract_id)
    t = translator(request)
    if contract.status != "draft":
        raise ConflictError("only a draft can be edited")
    notice = {
        "1": t("send.notice.saved"),
        "needed": t("send.notice.approval_needed"),
    }.get(saved or approval or "")
    return _editor(
        request,
        platform,
        who,
        _draft_of(contract),
        contract=contract,
        notice=notice,
        show_approval=approval == "needed",
    )


@router.get("/contracts/{contract_id}/edit/document")
def draft_document(
    contract_id: str, request: Request, platform: PlatformDep, who: Editor
) -> Response:
    """The draft's PDF, for the editor's preview (audited like every download)."""
    authorize_contract(
        platform.db, platform.access, who.principal, "contract.update", contract_id, who.actor
    )
    revision, data = platform.contracts.download(who.actor, who.org_id, contract_id)
    return pdf_response(data, f"draft-{contract_id}.pdf", revision.plaintext_sha256)


@router.post("/contracts/{contract_id}/edit")
async def update_contract(
    contract_id: str,
    request: Request,
    platform: PlatformDep,
    who: Editor,
    file: Annotated[UploadFile | None, File()] = None,
    title: ShortForm = "",
    message: TextForm = "",
    deadline: Annotated[str, Form(max_length=10)] = "",
    tz_offset: Annotated[str, Form(max_length=6)] = "",
    classification: Annotated[str, Form(max_length=16)] = "internal",
    amount: Annotated[str, Form(max_length=32)] = "",
    currency: Annotated[str, Form(max_length=3)] = "CNY",
    signer_name: RowsForm = None,
    signer_email: RowsForm = None,
    signer_phone: RowsForm = None,
    signer_organisation: RowsForm = None,
    signer_order: RowsForm = None,
    signer_assurance: RowsForm = None,
    signer_phone_action: RowsForm = None,
    fields: Annotated[str, Form(max_length=200_000)] = "[]",
    action: Annotated[str, Form(max_length=8)] = "draft",
) -> Response:
    authorize_contract(
        platform.db, platform.access, who.principal, "contract.update", contract_id, who.actor
    )
    contract = platform.contracts.get(who.org_id, contract_id)
    draft = Draft(title, message, deadline, classification, amount, currency, [], fields)
    try:
        draft.rows = _rows(
            signer_name,
            signer_email,
            signer_phone,
            signer_organisation,
            signer_order,
            signer_assurance,
            signer_phone_action,
        )
        terms = draft.terms(tz_offset)
        signers = draft.signers()
        _check_clearance(platform, who, terms["classification"])
        if action == "send":
            authorize_contract(
                platform.db, platform.access, who.principal, "contract.send", contract_id, who.actor
            )
        data = await _upload(platform, file)
        platform.contracts.update_draft(
            who.actor, who.org_id, contract_id, pdf=data, signers=signers, **terms
        )
    except PactvaultError as exc:
        return _refused(request, platform, who, draft, exc, contract=contract)
    return _after_save(request, platform, who, contract_id, action)


@router.get("/contracts/{contract_id}/sent")
def sent_page(contract_id: str, request: Request, platform: PlatformDep, who: Reader) -> Response:
    """What was sent, to whom first; the signing links went to the signers only."""
    authorize_contract(
        platform.db, platform.access, who.principal, "contract.read", contract_id, who.actor
    )
    contract = platform.contracts.get(who.org_id, contract_id)
    invited = [s for s in contract.signers if s.status == "invited"]
    return render(request, "send_done.html", {"contract": contract, "invited": invited})


# -- helpers --------------------------------------------------------------------------------------


async def _upload(platform: Platform, file: UploadFile | None) -> bytes | None:
    """The chosen PDF, or ``None`` when no file was chosen (an edit keeping its document)."""
    if file is None or not file.filename:
        return None
    data = await read_upload(file, platform.settings.max_upload_bytes)
    return data or None


def _check_clearance(platform: Platform, who: Caller, classification: str) -> None:
    """Like the API: nobody classifies a contract above their own clearance (audited)."""
    if not cleared(who.principal.clearance, classification):
        denied = PermissionDeniedError("you cannot classify a contract above your own clearance")
        platform.access.record_denial(who.actor, "contract.create", denied, reason="clearance")
        raise denied


def _check_may_send(platform: Platform, who: Caller) -> None:
    if not {"contract.send.all", "contract.send.own"} & who.principal.permissions:
        platform.access.authorize(who.principal, "contract.send", actor=who.actor)


def _after_save(
    request: Request, platform: Platform, who: Caller, contract_id: str, action: str
) -> Response:
    """Send now if asked (an approval rule may hold it back: the draft stays), then go on."""
    target = f"/contracts/{contract_id}/edit?saved=1"
    if action == "send":
        try:
            authorize_contract(
                platform.db, platform.access, who.principal, "contract.send", contract_id, who.actor
            )
            platform.contracts.send(who.actor, who.org_id, contract_id)
            target = f"/contracts/{contract_id}/sent"
        except ApprovalRequiredError:
            target = f"/contracts/{contract_id}/edit?approval=needed"
        except PactvaultError as exc:
            # Saved, not sent: say why on the draft's page.
            if wants_json(request):
                return JSONResponse(
                    {
                        "error": describe(exc, translator(request)),
                        "location": f"/contracts/{contract_id}/edit?saved=1",
                    },
                    status_code=exc.status,
                )
            contract = platform.contracts.get(who.org_id, contract_id)
            return _editor(
                request,
                platform,
                who,
                _draft_of(contract),
                contract=contract,
                error=describe(exc, translator(request)),
                status=exc.status,
            )
    if wants_json(request):
        return JSONResponse({"location": target})
    return redirect(request, target)


def _refused(
    request: Request,
    platform: Platform,
    who: Caller,
    draft: Draft,
    exc: PactvaultError,
    *,
    contract: Contract | None = None,
) -> Response:
    message = describe(exc, translator(request))
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=exc.status, headers=exc.headers())
    if contract is not None:
        on_file = {s.email.strip().lower() for s in contract.signers if s.phone_field_id}
        for row in draft.rows:
            row.phone_on_file = row.email.strip().lower() in on_file
    return _editor(
        request, platform, who, draft, contract=contract, error=message, status=exc.status
    )


def _draft_of(contract: Contract) -> Draft:
    """A stored draft as the editor's form (the fields as ``send.js`` keeps them)."""
    amount = ""
    if contract.amount_minor is not None and contract.currency:
        exponent = _EXPONENT.get(contract.currency, 2)
        amount = str(Decimal(contract.amount_minor).scaleb(-exponent))
    deadline = ""
    if contract.expires_at is not None:
        deadline = contract.expires_at.astimezone(timezone(timedelta(hours=8))).date().isoformat()
    signers = sorted(contract.signers, key=lambda s: s.position)
    rows, placed = [], []
    for index, s in enumerate(signers):
        rows.append(
            Row(
                name=s.name,
                email=s.email,
                organisation=s.organisation or "",
                order=str(s.routing_order),
                assurance=s.required_assurance,
                phone_on_file=s.phone_field_id is not None,
            )
        )
        placed.append(
            {"signer": index, "kind": "signature", "page": s.field_page, "box": s.field_box}
        )
        for f in s.extra_fields or ():
            placed.append(
                {
                    "signer": index,
                    "kind": f["kind"],
                    "page": f["page"],
                    "box": f["box"],
                    "required": f["required"],
                    "label": f.get("label"),
                }
            )
    return Draft(
        title=contract.title,
        message=contract.message or "",
        deadline=deadline,
        classification=contract.classification,
        amount=amount,
        currency=contract.currency or "CNY",
        rows=rows,
        fields_json=json.dumps(placed, ensure_ascii=False),
    )
