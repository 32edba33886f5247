"""The public verify page: a signed PDF from the sample flow, an unsigned one, a tampered one."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from pactvault.demo import sample_pdf
from web_kit import Instance, Visitor, instance, visitor


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, bytes]]:
    with instance(tmp_path_factory.mktemp("web-verify")) as inst:
        yield inst, inst.signed_pdf("Zhang San 张三", "Bob Li")


@pytest.fixture
def web(site: tuple[Instance, bytes]) -> Iterator[Visitor]:
    yield from visitor(site[0].platform)


def upload(web: Visitor, data: bytes, *, htmx: bool = False, name: str = "contract.pdf"):  # type: ignore[no-untyped-def]
    web.get("/verify")
    headers = {"HX-Request": "true"} if htmx else {}
    return web.post("/verify", files={"file": (name, data, "application/pdf")}, headers=headers)


def test_a_signed_contract_verifies_with_signers_times_and_assurance(
    site: tuple[Instance, bytes], web: Visitor
) -> None:
    _, signed = site
    response = upload(web, signed)
    assert response.status_code == 200
    page = response.text
    assert 'data-verdict="valid"' in page and "Every signature is valid" in page
    # The two signers, then the platform's completion seal over the whole file.
    assert page.count("data-signature") == 3
    assert "Zhang San 张三" in page and "Bob Li" in page and "Completion Seal" in page
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)) == 3
    assert page.count("Only permitted additions since") == 2
    assert page.count("No: the document is exactly as signed") == 1  # the last one covers all
    assert "Issued by this pactvault" in page and "not revoked" in page
    assert "Basic: control of an email address" in page
    assert "contract.pdf" in page


def test_the_verdict_in_chinese(site: tuple[Instance, bytes], web: Visitor) -> None:
    web.language = "zh-CN"
    page = upload(web, site[1]).text
    assert "所有签名均有效" in page and "签署人" in page and "时间戳来自" in page


def test_htmx_gets_only_the_result(site: tuple[Instance, bytes], web: Visitor) -> None:
    response = upload(web, site[1], htmx=True)
    assert response.status_code == 200
    assert "<html" not in response.text and 'data-verdict="valid"' in response.text


def test_unsigned_damaged_and_altered_files(site: tuple[Instance, bytes], web: Visitor) -> None:
    unsigned = upload(web, sample_pdf())
    assert 'data-verdict="unsigned"' in unsigned.text and "has no signatures" in unsigned.text
    not_pdf = upload(web, b"hello, not a pdf", name="x.pdf")
    assert not_pdf.status_code == 422 and "The file is not a PDF." in not_pdf.text
    signed = site[1]
    # Flip one byte inside the signed content (the first page's text): every signature breaks.
    at = signed.index(b"SERVICE AGREEMENT")
    altered = signed[:at] + b"X" + signed[at + 1 :]
    page = upload(web, altered).text
    assert 'data-verdict="invalid"' in page and "the signed content was altered" in page
    # Fragment answers for htmx too, with the error swapped in.
    fragment = upload(web, b"nope", htmx=True)
    assert fragment.status_code == 422 and "<html" not in fragment.text


def test_uploads_above_the_limit_are_refused(site: tuple[Instance, bytes], web: Visitor) -> None:
    inst, _ = site
    big = b"%PDF-1.7\n" + b"0" * (inst.platform.settings.max_upload_bytes + 10)
    response = upload(web, big)
    assert response.status_code == 413 and "too large" in response.text


def test_verifying_needs_no_account_and_keeps_nothing(
    site: tuple[Instance, bytes], web: Visitor
) -> None:
    inst, signed = site
    from sqlalchemy import func, select

    from pactvault.store.models import DocumentRevision

    with inst.platform.db.read() as s:
        before = s.execute(select(func.count()).select_from(DocumentRevision)).scalar_one()
    assert upload(web, signed).status_code == 200
    with inst.platform.db.read() as s:
        assert s.execute(select(func.count()).select_from(DocumentRevision)).scalar_one() == before


def test_a_signed_in_member_verifies_with_their_session(
    site: tuple[Instance, bytes], web: Visitor
) -> None:
    inst, signed = site
    web.sign_in(inst.organisation())
    page = web.get("/verify").text
    assert 'action="/sign-out"' in page  # the member's navigation on the public page
    token = inst.platform.sessions.authenticate(web.client.cookies.get("pv_session")).session_id
    assert web.csrf() == inst.platform.sessions.csrf_token(token)
    assert 'data-verdict="valid"' in upload(web, signed).text
