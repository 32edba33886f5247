"""The sending and signing pages over HTTP (TestClient): the flows, their refusals, both languages.

Sending: a draft saved without JavaScript (auto-placed signature fields), reopened, changed and
sent with fields placed by the editor; the editor's JSON answers; bad uploads and bad fields
refused with the reason and nothing stored; clearance, approval rules, another tenant's draft.
Signing: the link exchanged for the signer cookie (the token in no page, no URL), the step-up
(a wrong code refused), the text fields, consent, the signature image, the signed copy, declining,
dead links, a voided contract, real-name verification first, a seal that cannot be applied yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import func, select, update

from flows import SENDER, invitation_tokens
from manage_kit import Team, team
from pactvault.contracts.fields import FieldSpec
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.pdf.validate import verify_pdf
from pactvault.store.models import AuditEvent, Contract, Signer
from pactvault.web.routes.sign import SIGNER_COOKIE
from web_kit import Instance, Visitor, instance, visitor

SIGNATURE_BOX = [60.0, 80.0, 230.0, 140.0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    with instance(tmp_path_factory.mktemp("web-send-sign"), max_upload_bytes=256 * 1024) as inst:
        yield inst


@pytest.fixture(scope="module")
def acme(site: Instance) -> Team:
    return team(site, "acme-send")


@pytest.fixture
def web(site: Instance) -> Iterator[Visitor]:
    yield from visitor(site.platform)


def _count(site: Instance, org_id: str) -> int:
    with site.platform.db.read() as session:
        return session.execute(
            select(func.count()).select_from(Contract).where(Contract.org_id == org_id)
        ).scalar_one()


def _form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "title": "Supply agreement 供货合同",
        "message": "Please sign by Friday.",
        "deadline": "",
        "classification": "internal",
        "amount": "",
        "currency": "CNY",
        "signer_name": ["Zhang San 张三", "Li Si", ""],
        "signer_email": ["zhang@buyer.test", "li@buyer.test", ""],
        "signer_phone": ["", "", ""],
        "signer_organisation": ["Buyer Ltd", "", ""],
        "signer_order": ["1", "2", "3"],
        "signer_assurance": ["basic", "basic", "basic"],
        "signer_phone_action": ["keep", "keep", "keep"],
        "fields": "[]",
        "action": "draft",
    }
    data.update(overrides)
    return data


def _pdf_file(data: bytes | None = None) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("contract.pdf", sample_pdf() if data is None else data, "application/pdf")}


def _as(web: Visitor, acme: Team, role: str = "contract_manager") -> None:
    web.client.cookies.clear()
    assert web.sign_in(acme.emails[role]).status_code == 303


def _new(web: Visitor, *, json_answer: bool = False, files: object = None, **form: object):  # type: ignore[no-untyped-def]
    web.get("/contracts/new")
    headers = {"Accept": "application/json"} if json_answer else {}
    return web.post(
        "/contracts/new",
        _form(**form),  # type: ignore[arg-type]
        files=_pdf_file() if files is None else files,
        headers=headers,
    )


# -- sending -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_editor_in_both_languages(web: Visitor, acme: Team, language: str) -> None:
    web.language = language
    _as(web, acme)
    page = web.get("/contracts/new").text
    title = "Send a contract" if language == "en" else "发起合同"
    assert f"<h1>{title}</h1>" in page
    assert 'data-max-bytes="262144"' in page and 'name="fields" value="[]"' in page
    assert page.count("data-signer-row>") == 3  # two blank rows (JavaScript or not) + template
    assert 'type="module" src="/static/js/send.js"' in page
    # The classification levels offered are those the sender is cleared for.
    assert 'value="secret"' not in page


def test_a_draft_without_javascript_then_edited_and_sent_with_placed_fields(
    site: Instance, web: Visitor, acme: Team
) -> None:
    _as(web, acme)
    before = _count(site, acme.org_id)
    response = _new(web)
    assert response.status_code == 303
    edit = response.headers["location"]
    assert re.fullmatch(r"/contracts/[0-9a-f-]{36}/edit\?saved=1", edit)
    contract_id = edit.split("/")[2]
    assert _count(site, acme.org_id) == before + 1
    contract = site.platform.contracts.get(acme.org_id, contract_id)
    assert contract.status == "draft" and contract.title == "Supply agreement 供货合同"
    assert [s.name for s in contract.signers] == ["Zhang San 张三", "Li Si"]  # blank row ignored
    assert all(s.field_page == 0 for s in contract.signers)  # placed automatically

    page = web.get(edit).text
    assert "The draft is saved." in page and 'value="Zhang San 张三"' in page
    placed = json.loads(
        re.search(r'name="fields" value="([^"]*)"', page).group(1).replace("&#34;", '"')
    )  # type: ignore[union-attr]
    assert [(f["signer"], f["kind"]) for f in placed] == [(0, "signature"), (1, "signature")]
    assert web.get(f"/contracts/{contract_id}/edit/document").content.startswith(b"%PDF-")

    fields = [
        {"signer": 0, "kind": "signature", "page": 0, "box": SIGNATURE_BOX},
        {"signer": 0, "kind": "text", "page": 0, "box": [60, 180, 300, 200], "label": "Address"},
        {"signer": 1, "kind": "signature", "page": 0, "box": [300, 80, 470, 140]},
        {"signer": 1, "kind": "date", "page": 0, "box": [300, 150, 420, 170]},
    ]
    response = web.post(
        f"/contracts/{contract_id}/edit",
        _form(title="Supply agreement v2", fields=json.dumps(fields), action="send"),
        files={"file": ("", b"", "application/octet-stream")},  # no new file chosen
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/contracts/{contract_id}/sent"
    done = web.get(response.headers["location"]).text
    assert "Sent for signing" in done and "zhang@buyer.test" in done
    assert "pvs_" not in done and "li@buyer.test" not in done  # only the first group invited
    contract = site.platform.contracts.get(acme.org_id, contract_id)
    assert contract.status == "sent" and contract.title == "Supply agreement v2"
    zhang, li = sorted(contract.signers, key=lambda s: s.routing_order)
    assert zhang.field_box == SIGNATURE_BOX
    assert zhang.extra_fields[0]["label"] == "Address"
    assert li.extra_fields[0]["kind"] == "date"
    # A sent contract is no draft any more.
    assert web.get(f"/contracts/{contract_id}/edit").status_code == 409


def test_the_editor_gets_json_answers(site: Instance, web: Visitor, acme: Team) -> None:
    _as(web, acme)
    response = _new(web, json_answer=True, action="send")
    assert response.status_code == 200
    location = response.json()["location"]
    assert re.fullmatch(r"/contracts/[0-9a-f-]{36}/sent", location)
    refused = _new(web, json_answer=True, files=_pdf_file(b"hello"))
    assert refused.status_code == 422 and refused.json() == {"error": "The file is not a PDF."}
    web.language = "zh-CN"
    refused = _new(web, json_answer=True, signer_email=["zhang@buyer.test", "nope", ""])
    assert refused.status_code == 422
    assert refused.json()["error"] == "签署人 2：请填写有效的电子邮箱。"


@pytest.mark.parametrize(
    ("form", "files", "status", "message"),
    [
        ({}, _pdf_file(b"not a pdf at all"), 422, "The file is not a PDF."),
        ({}, _pdf_file(b"%PDF-1.7\n" + b"0" * 300_000), 413, "The file is too large."),
        (
            {},
            {"file": ("", b"", "application/octet-stream")},
            422,
            "Choose the PDF of the contract.",
        ),
        (
            {
                "fields": json.dumps(
                    [{"signer": 0, "kind": "text", "page": 0, "box": [500, 800, 700, 900]}]
                )
            },
            None,
            422,
            "Signer 1: a field is outside the page.",
        ),
        (
            {
                "fields": json.dumps(
                    [{"signer": 1, "kind": "date", "page": 4, "box": [10, 10, 90, 30]}]
                )
            },
            None,
            422,
            "Signer 2: a field is outside the page.",
        ),
        ({"fields": "{not json"}, None, 422, "The placed fields could not be read."),
        (
            {
                "fields": json.dumps(
                    [{"signer": 2, "kind": "text", "page": 0, "box": [10, 10, 90, 30]}]
                )
            },
            None,
            422,
            "Some fields belong to a signer row that is empty.",
        ),
        (
            {"signer_email": ["a@b.test", "a@b.test", ""]},
            None,
            422,
            "Signer 2: this email address is already in the list.",
        ),
        (
            {"signer_name": ["", "", ""], "signer_email": ["", "", ""]},
            None,
            422,
            "Add at least one signer.",
        ),
        ({"deadline": "2001-01-01"}, None, 422, "The signing deadline must be in the future."),
        ({"amount": "12,000.505"}, None, 422, "Enter the contract value as a number"),
        ({"title": "   "}, None, 422, "Give the contract a title"),
    ],
)
def test_bad_input_is_refused_with_the_reason_and_nothing_is_stored(
    site: Instance,
    web: Visitor,
    acme: Team,
    form: dict[str, object],
    files: object,
    status: int,
    message: str,
) -> None:
    _as(web, acme)
    before = _count(site, acme.org_id)
    response = _new(web, files=files, **form)
    assert response.status_code == status, response.text
    assert message in response.text
    assert _count(site, acme.org_id) == before
    if status == 422:  # the form comes back with what was typed
        assert (
            'value="li@buyer.test"' in response.text
            or "a@b.test" in response.text
            or ("signer_email" in str(form))
        )


def test_forms_without_the_csrf_token_are_refused(site: Instance, web: Visitor, acme: Team) -> None:
    _as(web, acme)
    before = _count(site, acme.org_id)
    web.get("/contracts/new")
    response = web.post("/contracts/new", _form(), csrf="", files=_pdf_file())  # type: ignore[arg-type]
    assert response.status_code == 403 and "This form has expired" in response.text
    assert _count(site, acme.org_id) == before


def test_classifying_above_ones_clearance_is_refused_and_audited(
    site: Instance, web: Visitor, acme: Team
) -> None:
    _as(web, acme)
    before = _count(site, acme.org_id)
    response = _new(web, classification="secret")
    assert response.status_code == 403
    assert "You cannot classify a contract above your own clearance." in response.text
    assert _count(site, acme.org_id) == before
    with site.platform.db.read() as session:
        denial = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "access.denied", AuditEvent.org_id == acme.org_id)
                .order_by(AuditEvent.seq.desc())
            )
            .scalars()
            .first()
        )
    assert denial is not None and denial.details["reason"] == "clearance"


def test_members_without_the_permission_cannot_open_the_editor(web: Visitor, acme: Team) -> None:
    _as(web, acme, "member")
    assert web.get("/contracts/new").status_code == 403


def test_an_approval_rule_holds_the_draft_back(site: Instance, web: Visitor) -> None:
    org = team(site, "acme-approval")
    org.rule(minor=1_000_000)
    _as(web, org)
    response = _new(web, action="send", amount="20000", currency="CNY")
    assert response.status_code == 303
    assert response.headers["location"].endswith("/edit?approval=needed")
    page = web.get(response.headers["location"]).text
    assert "requires an approval before it can be sent" in page
    contract_id = response.headers["location"].split("/")[2]
    assert f'action="/contracts/{contract_id}/approvals"' in page  # ask for it from here
    contract = site.platform.contracts.get(org.org_id, contract_id)
    assert contract.status == "draft" and contract.amount_minor == 2_000_000


def test_another_organisations_draft_looks_missing(
    site: Instance, web: Visitor, acme: Team
) -> None:
    other = team(site, "other-send")
    _as(web, other)
    response = _new(web)
    contract_id = response.headers["location"].split("/")[2]
    _as(web, acme, "owner")
    for path in (f"/contracts/{contract_id}/edit", f"/contracts/{contract_id}/edit/document"):
        assert web.get(path).status_code == 404
    web.get("/contracts/new")
    response = web.post(
        f"/contracts/{contract_id}/edit", _form(title="hijacked"), files=_pdf_file()
    )  # type: ignore[arg-type]
    assert response.status_code == 404
    assert (
        site.platform.contracts.get(other.org_id, contract_id).title == "Supply agreement 供货合同"
    )


# -- signing ---------------------------------------------------------------------------------------


def _sent(site: Instance, acme: Team, *signers: SignerSpec) -> tuple[str, dict[str, str]]:
    contract_id = acme.contract(
        "Lease 租赁合同", signers=list(signers) or [SignerSpec("Zhang San 张三", "zhang@s.test")]
    )
    site.platform.contracts.send(SENDER, acme.org_id, contract_id)
    return contract_id, invitation_tokens(site.mailer, contract_id)


def _open(web: Visitor, token: str):  # type: ignore[no-untyped-def]
    web.client.cookies.clear()
    web.get("/sign")
    return web.post("/sign/open", {"token": token})


def _code(site: Instance, email: str) -> str:
    for message in reversed(site.mailer.messages):
        found = re.search(r" is (\d{6,8})\.", message.body)
        if message.to == email and found:
            return found.group(1)
    raise AssertionError("no code")


def _verified(site: Instance, web: Visitor, email: str) -> str:
    web.get("/sign/contract")
    assert web.post("/sign/stepup", {"method": "email"}).status_code == 303
    page = web.get("/sign/contract").text
    assert "We emailed a code to" in page
    assert web.post("/sign/stepup/verify", {"code": _code(site, email)}).status_code == 303
    page = web.get("/sign/contract").text
    assert 'data-sign-step="sign"' in page
    return page


def _png() -> bytes:
    out = BytesIO()
    Image.new("RGBA", (300, 100), (0, 0, 0, 0)).save(out, "PNG")
    return out.getvalue()


def test_opening_the_link_sets_a_short_lived_http_only_cookie(
    site: Instance, web: Visitor, acme: Team
) -> None:
    _, tokens = _sent(site, acme)
    token = next(iter(tokens.values()))
    page = web.get("/sign").text
    assert 'src="/static/js/sign-open.js"' in page and 'data-prefix="pvs_"' in page
    response = web.post("/sign/open", {"token": f"http://localhost:8000/sign#{token}"})
    assert response.status_code == 303 and response.headers["location"] == "/sign/contract"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SIGNER_COOKIE}=") and token not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/sign" in cookie
    age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert 0 < age <= 3600
    page = web.get("/sign/contract").text
    assert "Lease 租赁合同" in page and "Signing as Zhang San 张三 (zhang@s.test)" in page
    assert token not in page and "pvs_" not in page
    assert "Email me a code" in page


def test_dead_links_and_missing_cookies(site: Instance, web: Visitor, acme: Team) -> None:
    response = _open(web, "pvs_" + "x" * 43)
    assert response.status_code == 404 and "The link has expired" in response.text
    assert _open(web, "not-a-token").status_code == 404
    _, tokens = _sent(site, acme)
    signer_id, token = next(iter(tokens.items()))
    assert _open(web, token).status_code == 303
    # The invitation expires while the page is open: the next step says so, and the cookie goes.
    with site.platform.db.write() as session:
        session.execute(
            update(Signer)
            .where(Signer.id == signer_id)
            .values(invitation_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    response = web.get("/sign/contract")
    assert response.status_code == 404 and "The link has expired" in response.text
    assert f'{SIGNER_COOKIE}=""' in response.headers["set-cookie"]
    # A forged cookie is no cookie.
    web.client.cookies.set(SIGNER_COOKIE, "forged", path="/sign")
    response = web.get("/sign/contract")
    assert response.status_code == 303 and response.headers["location"] == "/sign?again=1"


def test_step_up_fields_consent_and_signature_then_the_signed_copy(
    site: Instance, web: Visitor, acme: Team
) -> None:
    signer = SignerSpec(
        "Zhang San 张三",
        "zhang.fields@s.test",
        fields=(
            FieldSpec("signature", page=0, box=tuple(SIGNATURE_BOX)),  # type: ignore[arg-type]
            FieldSpec("text", page=0, box=(60, 180, 300, 200), label="Address"),
            FieldSpec("date", page=0, box=(60, 150, 200, 170)),
        ),
    )
    contract_id, tokens = _sent(site, acme, signer)
    _open(web, next(iter(tokens.values())))
    web.get("/sign/contract")
    web.post("/sign/stepup", {"method": "email"})
    web.get("/sign/contract")
    wrong = web.post("/sign/stepup/verify", {"code": "000000"})
    assert wrong.status_code == 401 and "That code or passkey was not accepted" in wrong.text
    assert 'data-sign-step="sign"' not in wrong.text
    assert (
        web.post("/sign/stepup/verify", {"code": _code(site, "zhang.fields@s.test")}).status_code
        == 303
    )
    page = web.get("/sign/contract").text
    assert 'data-sign-step="sign"' in page and 'name="field_Text1_1"' in page
    assert "Date fields show the date of your signature." in page
    digest = re.search(r'name="document_sha256" value="([0-9a-f]{64})"', page).group(1)  # type: ignore[union-attr]
    assert web.get("/sign/document").headers["content-type"] == "application/pdf"

    def sign(**form: str) -> object:
        data = {"document_sha256": digest, "consent": "yes", "field_Text1_1": "上海市 1 号", **form}
        files = {"signature_image": ("signature.png", _png(), "image/png")}
        return web.post("/sign/sign", data, files=files)

    refused = sign(consent="")
    assert refused.status_code == 422 and "Tick the consent box to sign." in refused.text  # type: ignore[attr-defined]
    refused = sign(field_Text1_1="")
    assert refused.status_code == 422 and "Fill in every required field." in refused.text  # type: ignore[attr-defined]
    bad_image = web.post(
        "/sign/sign",
        {"document_sha256": digest, "consent": "yes", "field_Text1_1": "x"},
        files={"signature_image": ("s.png", b"GIF89a not png", "image/png")},
    )
    assert bad_image.status_code == 422 and "PNG or JPEG image" in bad_image.text
    assert site.platform.contracts.get(acme.org_id, contract_id).status == "sent"

    done = sign()
    assert done.status_code == 303  # type: ignore[attr-defined]
    page = web.get("/sign/contract").text
    assert 'data-sign-outcome="signed"' in page and "Every party has signed" in page
    download = web.get("/sign/download")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment;")
    final = download.content
    with site.platform.db.read() as session:
        report = verify_pdf(final, trust_roots=site.platform.trust_roots(session))
    assert report.valid
    reader = PdfFileReader(BytesIO(final), strict=False)
    values = {
        str(r.get_object()["/T"]): str(r.get_object().get("/V", ""))
        for r in reader.root["/AcroForm"]["/Fields"]
    }
    assert values["Text1_1"] == "上海市 1 号" and values["Date1_1"] == datetime.now(UTC).strftime(
        "%Y-%m-%d"
    )
    # The link now only reads: a second signature is refused.
    web.get("/sign")  # (the signed page has no form to take the form token from)
    assert web.post("/sign/stepup", {"method": "email"}).status_code == 409


def test_the_signing_page_in_chinese(site: Instance, web: Visitor, acme: Team) -> None:
    _, tokens = _sent(site, acme, SignerSpec("李四", "li.zh@s.test"))
    web.language = "zh-CN"
    _open(web, next(iter(tokens.values())))
    page = web.get("/sign/contract").text
    assert "签署身份：李四（li.zh@s.test）" in page and "通过邮件发送验证码" in page
    web.post("/sign/stepup", {"method": "email"})
    page = web.get("/sign/contract").text
    assert "验证码已发送至邮箱" in page
    web.post("/sign/stepup/verify", {"code": _code(site, "li.zh@s.test")})
    page = web.get("/sign/contract").text
    assert "阅读合同" in page and "签署合同" in page and "我已阅读并同意" in page


def test_declining_needs_a_reason(site: Instance, web: Visitor, acme: Team) -> None:
    contract_id, tokens = _sent(site, acme, SignerSpec("Wang Wu", "wang@s.test"))
    _open(web, next(iter(tokens.values())))
    web.get("/sign/contract")
    refused = web.post("/sign/decline", {"reason": "  "})
    assert refused.status_code == 422 and "Please give a reason." in refused.text
    assert web.post("/sign/decline", {"reason": "Wrong amount"}).status_code == 303
    page = web.get("/sign/contract").text
    assert 'data-sign-outcome="declined"' in page
    contract = site.platform.contracts.get(acme.org_id, contract_id)
    assert contract.status == "declined" and contract.status_reason == "Wrong amount"


def test_a_voided_contract_has_nothing_to_sign(site: Instance, web: Visitor, acme: Team) -> None:
    contract_id, tokens = _sent(site, acme, SignerSpec("Zhao Liu", "zhao@s.test"))
    _open(web, next(iter(tokens.values())))
    site.platform.contracts.void(SENDER, acme.org_id, contract_id, "replaced")
    page = web.get("/sign/contract").text
    assert 'data-sign-outcome="closed"' in page and "The sender withdrew this contract" in page
    web.get("/sign")
    assert web.post("/sign/stepup", {"method": "email"}).status_code == 409


def test_real_name_verification_comes_first(site: Instance, web: Visitor, acme: Team) -> None:
    _, tokens = _sent(
        site, acme, SignerSpec("Qian Qi", "qian@s.test", required_assurance="verified-document")
    )
    _open(web, next(iter(tokens.values())))
    page = web.get("/sign/contract").text
    assert 'data-sign-step="identity"' in page and "Real name: ID document reviewed" in page
    assert 'name="check"' in page and "admin-review" in page
    # The step-up is refused until then (no code is sent).
    sent = len(site.mailer.messages)
    refused = web.post("/sign/stepup", {"method": "email"})
    assert refused.status_code == 403 and "complete the real-name check first" in refused.text
    assert len(site.mailer.messages) == sent
    response = web.post(
        "/sign/verification",
        {
            "name": "钱七",
            "id_number": "11010519491231002X",
            "phone": "",
            "check": "admin-review:document",
        },
    )
    assert response.status_code == 303
    page = web.get("/sign/contract").text
    assert "waiting for your ID images" in page and 'name="front"' in page
    verification_id = re.search(r'name="verification_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    jpeg = BytesIO()
    Image.new("RGB", (640, 400), (200, 200, 200)).save(jpeg, "JPEG")
    response = web.post(
        "/sign/verification/documents",
        {"verification_id": verification_id},
        files={"front": ("front.jpg", jpeg.getvalue(), "image/jpeg")},
    )
    assert response.status_code == 303
    page = web.get("/sign/contract").text
    assert "waiting for review" in page and 'name="front"' not in page


def test_a_required_seal_is_explained_not_attempted(
    site: Instance, web: Visitor, acme: Team
) -> None:
    seal = FieldSpec("seal", page=0, box=(300, 60, 420, 180))
    _, tokens = _sent(site, acme, SignerSpec("Acme Buyer", "clerk@s.test", fields=(seal,)))
    _open(web, next(iter(tokens.values())))
    page = web.get("/sign/contract").text
    assert 'data-sign-outcome="seal"' in page and "organisation seals are not available yet" in page
    web.get("/sign")
    refused = web.post("/sign/stepup", {"method": "email"})
    assert refused.status_code == 409


def test_a_passkey_is_offered_to_the_signed_in_account_of_the_invited_address(
    site: Instance, web: Visitor, acme: Team
) -> None:
    email = acme.emails["member"]
    _, tokens = _sent(site, acme, SignerSpec("Member Mo", email))
    token = next(iter(tokens.values()))
    _open(web, token)
    assert "Use the passkey of my account" not in web.get("/sign/contract").text
    _as(web, acme, "member")  # the same person, signed in to their account
    web.get("/sign")
    assert web.post("/sign/open", {"token": token}).status_code == 303
    page = web.get("/sign/contract").text
    assert "Use the passkey of my account" in page and "Email me a code" in page
    _as(web, acme, "approver")  # someone else's account: no passkey for this link
    web.get("/sign")
    web.post("/sign/open", {"token": token})
    assert "Use the passkey of my account" not in web.get("/sign/contract").text
