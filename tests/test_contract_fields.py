"""Date, text and seal fields: placed per signer, filled inside the revision each signature covers.

The checks that matter are on the signed PDF itself: ``pdf.validate.verify_pdf`` says every
signature is valid (the later signers' filling counts as permitted form filling for the earlier
certification), and the revision a signature covers already holds that signer's text and date.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from io import BytesIO

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from flows import SENDER, SIGNER_CLIENT, invitation_tokens, make_org, seen_digest, step_up
from pactvault.contracts.fields import FieldSpec, SealUnavailableError
from pactvault.contracts.service import SignerSpec, SignInput
from pactvault.contracts.states import ContractStateError
from pactvault.demo import sample_pdf
from pactvault.errors import InvalidInputError, PdfRejectedError
from pactvault.notify import MemoryMailer
from pactvault.pdf.validate import verify_pdf
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent, Signer
from pactvault.store.realname_models import PersonalDataField

BOX_SIGN = (60.0, 80.0, 230.0, 140.0)


def _signers() -> list[SignerSpec]:
    return [
        SignerSpec(
            name="甲方 Alice",
            email="alice@example.com",
            routing_order=1,
            fields=(
                FieldSpec("signature", page=0, box=BOX_SIGN),
                FieldSpec("date", page=0, box=(60, 150, 200, 170)),
                FieldSpec("text", page=0, box=(60, 180, 300, 200), label="地址 Address"),
                FieldSpec("text", page=0, box=(60, 210, 300, 230), required=False, label="Note"),
            ),
        ),
        SignerSpec(
            name="乙方 Bob",
            email="bob@example.com",
            routing_order=2,
            fields=(
                FieldSpec("date", page=-1, box=(320, 150, 460, 170)),
                FieldSpec("text", page=-1, box=(320, 180, 560, 200), label="Company"),
            ),
        ),
    ]


def _sent(platform: Platform, mailer: MemoryMailer, signers: list[SignerSpec]) -> tuple[str, str]:
    org_id = make_org(platform)
    contract = platform.contracts.create(
        SENDER, org_id, title="Lease 租赁", pdf=sample_pdf(), signers=signers
    )
    platform.contracts.send(SENDER, org_id, contract.id)
    return org_id, contract.id


def _sign(platform: Platform, token: str, values: dict[str, str]) -> None:
    platform.contracts.sign(
        token,
        SIGNER_CLIENT,
        SignInput(
            document_sha256=seen_digest(platform, token),
            consent=True,
            stepup_challenge_id=step_up(platform, token),
            field_values=values,
        ),
    )


def _field_values(pdf: bytes) -> dict[str, str]:
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    out = {}
    for ref in reader.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if str(field.get("/FT")) == "/Tx":
            out[str(field["/T"])] = str(field.get("/V", ""))
    return out


def _covered(pdf: bytes, field_name: str) -> bytes:
    """The bytes the signature in ``field_name`` covers: the file up to its revision's end."""
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    signature = next(s for s in reader.embedded_signatures if s.field_name == field_name)
    _, _, start, length = signature.byte_range
    return pdf[: start + length]


def test_text_and_dates_are_inside_each_signed_revision_and_everything_validates(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org_id, contract_id = _sent(platform, mailer, _signers())
    contract = platform.contracts.get(org_id, contract_id)
    alice, bob = sorted(contract.signers, key=lambda s: s.routing_order)
    assert [f["name"] for f in alice.extra_fields] == ["Date1_1", "Text1_1", "Text1_2"]
    assert alice.field_page == 0 and alice.field_box == list(BOX_SIGN)
    assert bob.extra_fields[0]["page"] == 0  # -1 resolved (the sample has one page)

    tokens = invitation_tokens(mailer, contract_id)
    _sign(platform, tokens[alice.id], {"Text1_1": "上海市 浦东新区 1 号"})
    tokens = invitation_tokens(mailer, contract_id)
    _sign(platform, tokens[bob.id], {"Text2_1": "Bob Trading Ltd"})

    final = platform.contracts.download(SENDER, org_id, contract_id)[1]
    with platform.db.read() as session:
        report = verify_pdf(final, trust_roots=platform.trust_roots(session))
    assert report.valid, report.to_dict()
    assert len(report.signatures) == 3  # two signers and the completion seal
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    values = _field_values(final)
    assert values == {
        "Date1_1": today,
        "Text1_1": "上海市 浦东新区 1 号",
        "Text1_2": "",  # optional, left empty
        "Date2_1": today,
        "Text2_1": "Bob Trading Ltd",
    }
    # Each signer's values are already in the revision their signature covers, so the
    # signature covers them; Bob's are not yet in Alice's.
    alice_revision = _covered(final, "Signature1")
    assert _field_values(alice_revision)["Text1_1"] == "上海市 浦东新区 1 号"
    assert _field_values(alice_revision)["Date1_1"] == today
    assert _field_values(alice_revision)["Text2_1"] == ""
    assert _field_values(_covered(final, "Signature2"))["Text2_1"] == "Bob Trading Ltd"
    # The journal has which fields were filled and a hash of the values, never the text.
    with platform.db.read() as session:
        events = session.execute(
            select(AuditEvent).where(AuditEvent.action == "contract.sign")
        ).scalars()
        details = [e.details for e in events]
    assert details[0]["fields_filled"] == ["Date1_1", "Text1_1"]
    assert "浦东" not in json.dumps(details, ensure_ascii=False)


def test_required_text_unknown_fields_and_bad_values_are_refused(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org_id, contract_id = _sent(platform, mailer, _signers())
    alice = min(platform.contracts.get(org_id, contract_id).signers, key=lambda s: s.position)
    token = invitation_tokens(mailer, contract_id)[alice.id]
    for values, message in (
        ({}, "please fill in the field '地址 Address'"),
        ({"Text1_1": "   "}, "please fill in"),
        ({"Text1_1": "ok", "Text2_1": "not mine"}, "no text field named 'Text2_1'"),
        ({"Text1_1": "x" * 201}, "at most 200 characters"),
        ({"Text1_1": "bell\u0007"}, "cannot be shown"),
    ):
        with pytest.raises(InvalidInputError, match=re.escape(message)):
            _sign(platform, token, values)
    # Nothing changed: still sent, nobody signed, the document still at its prepared version.
    contract = platform.contracts.get(org_id, contract_id)
    assert contract.status == "sent" and contract.current_version == 2


def test_fields_outside_the_page_or_malformed_are_refused_at_creation(
    platform: Platform,
) -> None:
    org_id = make_org(platform)

    def create(*fields: FieldSpec, **extra: object) -> None:
        platform.contracts.create(
            SENDER,
            org_id,
            title="t",
            pdf=sample_pdf(),
            signers=[SignerSpec(name="A", email="a@example.com", fields=fields, **extra)],  # type: ignore[arg-type]
        )

    cases = [
        ((FieldSpec("text", page=0, box=(500, 800, 700, 900)),), {}, "outside the page"),
        ((FieldSpec("date", page=3, box=(10, 10, 100, 30)),), {}, "page 3 does not exist"),
        ((FieldSpec("text", page=0, box=None),), {}, "needs a box"),
        ((FieldSpec("text", page=0, box=(10, 10, 15, 30)),), {}, "at least 10 pt"),
        ((FieldSpec("stamp", page=0, box=(10, 10, 100, 30)),), {}, "kind must be one of"),
        (
            (FieldSpec("signature", box=BOX_SIGN), FieldSpec("signature", box=BOX_SIGN)),
            {},
            "at most one signature field",
        ),
        ((FieldSpec("signature", box=BOX_SIGN),), {"box": BOX_SIGN}, "either in fields"),
        ((FieldSpec("signature", page=0, box=(0, 0, 2000, 50)),), {}, "signature box is outside"),
        ((FieldSpec("signature", required=False),), {}, "always required"),
    ]
    for fields, extra, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            create(*fields, **extra)
    _contracts, total = platform.contracts.list(org_id)
    assert total == 0


def test_a_required_seal_is_refused_clearly_before_any_code_is_sent(
    platform: Platform, mailer: MemoryMailer
) -> None:
    signers = [
        SignerSpec(
            name="Acme Ltd",
            email="clerk@example.com",
            fields=(FieldSpec("seal", page=0, box=(300, 60, 420, 180)),),
        )
    ]
    org_id, contract_id = _sent(platform, mailer, signers)
    token = next(iter(invitation_tokens(mailer, contract_id).values()))
    # The seal field exists in the sent PDF (an empty signature field a seal service can sign).
    prepared = platform.contracts.download(SENDER, org_id, contract_id)[1]
    reader = PdfFileReader(BytesIO(prepared), strict=False)
    names = {str(r.get_object()["/T"]) for r in reader.root["/AcroForm"]["/Fields"]}
    assert {"Signature1", "Seal1_1"} <= names
    sent_before = len(mailer.messages)
    with pytest.raises(SealUnavailableError, match="organisation seals are not available"):
        platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email")
    assert len(mailer.messages) == sent_before  # no code went out
    with pytest.raises(SealUnavailableError):
        platform.contracts.sign(
            token,
            SIGNER_CLIENT,
            SignInput(document_sha256=seen_digest(platform, token), consent=True),
        )
    assert platform.contracts.get(org_id, contract_id).status == "sent"


def test_an_optional_seal_is_left_empty_and_the_contract_completes(
    platform: Platform, mailer: MemoryMailer
) -> None:
    signers = [
        SignerSpec(
            name="Acme Ltd",
            email="clerk@example.com",
            fields=(FieldSpec("seal", page=0, box=(300, 60, 420, 180), required=False),),
        )
    ]
    org_id, contract_id = _sent(platform, mailer, signers)
    token = next(iter(invitation_tokens(mailer, contract_id).values()))
    _sign(platform, token, {})
    contract = platform.contracts.get(org_id, contract_id)
    assert contract.status == "completed"
    final = platform.contracts.download(SENDER, org_id, contract_id)[1]
    with platform.db.read() as session:
        assert verify_pdf(final, trust_roots=platform.trust_roots(session)).valid


def test_signers_without_fields_work_as_before(platform: Platform, mailer: MemoryMailer) -> None:
    org_id, contract_id = _sent(
        platform, mailer, [SignerSpec(name="Solo", email="solo@example.com")]
    )
    signer = platform.contracts.get(org_id, contract_id).signers[0]
    assert signer.extra_fields is None and signer.field_name == "Signature1"
    _sign(platform, invitation_tokens(mailer, contract_id)[signer.id], {})
    assert platform.contracts.get(org_id, contract_id).status == "completed"


def test_update_draft_replaces_terms_parties_fields_and_document(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org_id = make_org(platform)
    contract = platform.contracts.create(
        SENDER,
        org_id,
        title="Draft",
        pdf=sample_pdf(),
        signers=[
            SignerSpec(name="A", email="a@example.com", phone="13800138000"),
            SignerSpec(name="B", email="b@example.com", phone="13900139000"),
        ],
    )
    with platform.db.read() as session:
        phones = {s.email: s.phone_field_id for s in session.query(Signer).all()}
    # A keeps their number (phone None, same email), B is removed (their number erased), C is new.
    updated = platform.contracts.update_draft(
        SENDER,
        org_id,
        contract.id,
        title="Draft v2",
        signers=[
            SignerSpec(
                name="A2",
                email="A@example.com",
                fields=(FieldSpec("date", page=0, box=(60, 150, 200, 170)),),
            ),
            SignerSpec(name="C", email="c@example.com", routing_order=2),
        ],
        message="Please sign",
        classification="confidential",
        amount_minor=100_00,
        currency="CNY",
    )
    assert updated.title == "Draft v2" and updated.classification == "confidential"
    current = platform.contracts.get(org_id, contract.id)
    by_email = {s.email: s for s in current.signers}
    assert set(by_email) == {"A@example.com", "c@example.com"}
    assert by_email["A@example.com"].phone_field_id == phones["a@example.com"]
    assert by_email["A@example.com"].extra_fields[0]["name"] == "Date1_1"
    assert current.current_version == 1  # same document
    with platform.db.read() as session:
        kept = session.get(PersonalDataField, phones["a@example.com"])
        assert kept is not None and kept.owner_id == by_email["A@example.com"].id
        assert session.get(PersonalDataField, phones["b@example.com"]) is None

    # A new document is a new original revision; bad input changes nothing.
    platform.contracts.update_draft(
        SENDER,
        org_id,
        contract.id,
        title="Draft v3",
        signers=[SignerSpec("A", "a@example.com")],
        pdf=sample_pdf(["ANOTHER AGREEMENT", "Other text"]),
    )
    assert platform.contracts.get(org_id, contract.id).current_version == 2
    with pytest.raises(InvalidInputError):
        platform.contracts.update_draft(
            SENDER, org_id, contract.id, title="", signers=[SignerSpec("A", "a@example.com")]
        )
    with pytest.raises(PdfRejectedError, match="not a PDF"):
        platform.contracts.update_draft(
            SENDER,
            org_id,
            contract.id,
            title="x",
            signers=[SignerSpec("A", "a@example.com")],
            pdf=b"nope",
        )
    assert platform.contracts.get(org_id, contract.id).title == "Draft v3"
    with platform.db.read() as session:
        updates = (
            session.execute(select(AuditEvent).where(AuditEvent.action == "contract.update"))
            .scalars()
            .all()
        )
    assert len(updates) == 2 and updates[1].details["document_replaced"] is True

    # Once sent, a contract is no longer a draft.
    platform.contracts.send(SENDER, org_id, contract.id)
    with pytest.raises(ContractStateError, match="only a draft can be edited"):
        platform.contracts.update_draft(
            SENDER, org_id, contract.id, title="late", signers=[SignerSpec("A", "a@example.com")]
        )


def test_update_draft_of_another_tenant_looks_missing(platform: Platform) -> None:
    from pactvault.errors import NotFoundError

    org_a, org_b = make_org(platform, "A"), make_org(platform, "B")
    contract = platform.contracts.create(
        SENDER, org_a, title="A's", pdf=sample_pdf(), signers=[SignerSpec("A", "a@example.com")]
    )
    with pytest.raises(NotFoundError, match="contract not found"):
        platform.contracts.update_draft(
            SENDER, org_b, contract.id, title="mine", signers=[SignerSpec("B", "b@example.com")]
        )
    assert platform.contracts.get(org_a, contract.id).title == "A's"


def test_the_api_takes_fields_and_field_values_compatibly(
    sqlite_platform: Platform, mailer: MemoryMailer
) -> None:
    from fastapi.testclient import TestClient

    from flows import last_code
    from pactvault.api.app import create_app

    with TestClient(create_app(sqlite_platform), base_url="http://testserver") as http:
        setup = sqlite_platform.tokens.create_setup_token()
        token = http.post(
            "/api/v1/setup", json={"setup_token": setup, "organisation_name": "Example Ltd"}
        ).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}

        def create(signers: list[dict[str, object]]):  # type: ignore[no-untyped-def]
            meta = {"title": "API fields", "signers": signers, "send": True}
            return http.post(
                "/api/v1/contracts",
                headers=admin,
                files={"file": ("c.pdf", sample_pdf(), "application/pdf")},
                data={"metadata": json.dumps(meta)},
            )

        bad = create([{"name": "A", "email": "a@x.test", "fields": [{"kind": "stamp"}]}])
        assert bad.status_code == 422
        outside = create(
            [
                {
                    "name": "A",
                    "email": "a@x.test",
                    "fields": [{"kind": "text", "box": [0, 0, 9e3, 9]}],
                }
            ]
        )
        assert outside.status_code == 422 and "outside the page" in outside.text
        plain = create([{"name": "Old client", "email": "old@x.test"}])  # as before fields
        assert plain.status_code == 201 and plain.json()["signers"][0]["fields"] == []

        created = create(
            [
                {
                    "name": "A",
                    "email": "a@x.test",
                    "fields": [
                        {"kind": "signature", "page": 0, "box": list(BOX_SIGN)},
                        {"kind": "text", "page": 0, "box": [60, 180, 300, 200], "label": "Ref"},
                    ],
                }
            ]
        )
        assert created.status_code == 201, created.text
        signer = created.json()["signers"][0]
        assert signer["fields"] == [
            {
                "name": "Text1_1",
                "kind": "text",
                "page": 0,
                "box": [60.0, 180.0, 300.0, 200.0],
                "required": True,
                "label": "Ref",
            }
        ]
        signing = invitation_tokens(mailer, created.json()["id"])[signer["id"]]
        auth = {"Authorization": f"Bearer {signing}"}
        view = http.get("/api/v1/signer/contract", headers=auth).json()
        assert view["signer"]["fields"][0]["name"] == "Text1_1"
        challenge = http.post("/api/v1/signer/stepup", headers=auth, json={"method": "email"})
        http.post(
            f"/api/v1/signer/stepup/{challenge.json()['challenge_id']}",
            headers=auth,
            json={"code": last_code(mailer)},
        )
        body = {
            "document_sha256": view["document_sha256"],
            "consent": True,
            "stepup_challenge_id": challenge.json()["challenge_id"],
        }
        missing = http.post("/api/v1/signer/sign", headers=auth, json=body)
        assert missing.status_code == 422 and "please fill in" in missing.text
        signed = http.post(
            "/api/v1/signer/sign", headers=auth, json={**body, "field_values": {"Text1_1": "R-7"}}
        )
        assert signed.status_code == 200, signed.text
        final = http.get(f"/api/v1/contracts/{created.json()['id']}/document", headers=admin)
        assert _field_values(final.content)["Text1_1"] == "R-7"
