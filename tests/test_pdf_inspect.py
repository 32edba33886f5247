"""Upload gatekeeping: every rejection reason, active-content detection, page facts."""

from __future__ import annotations

import os
from io import BytesIO

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name, pdf_string
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from pactvault.errors import PayloadTooLargeError, PdfRejectedError
from pactvault.pdf.inspect import enforce_active_content_policy, inspect_pdf
from pdf_helpers import A4, make_pdf

LIMIT = 1024 * 1024


def _js_action(code: str = "app.alert('hi')") -> generic.DictionaryObject:
    return generic.DictionaryObject(
        {pdf_name("/S"): pdf_name("/JavaScript"), pdf_name("/JS"): pdf_string(code)}
    )


def test_facts_of_a_clean_two_page_pdf() -> None:
    data = make_pdf([A4, (612.0, 792.0)])
    facts = inspect_pdf(data, max_bytes=LIMIT)
    assert facts.size == len(data)
    assert facts.page_count == 2
    assert facts.page_sizes == (A4, (612.0, 792.0))
    assert not facts.has_javascript
    assert not facts.has_embedded_files
    assert not facts.has_signatures
    assert facts.pdf_version.startswith(("1.", "2."))
    assert enforce_active_content_policy(facts, "reject") == []


def test_empty_input_is_rejected() -> None:
    with pytest.raises(PdfRejectedError, match="empty"):
        inspect_pdf(b"", max_bytes=LIMIT)


def test_oversize_input_is_rejected_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError, match="limit"):
        inspect_pdf(make_pdf(), max_bytes=100)


def test_random_bytes_are_not_a_pdf() -> None:
    with pytest.raises(PdfRejectedError, match="not a PDF"):
        inspect_pdf(os.urandom(4096), max_bytes=LIMIT)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_pdf_is_rejected_as_damaged(keep: float) -> None:
    data = make_pdf()
    with pytest.raises(PdfRejectedError, match="damaged"):
        inspect_pdf(data[: int(len(data) * keep)], max_bytes=LIMIT)


def test_header_only_garbage_is_rejected_as_damaged() -> None:
    with pytest.raises(PdfRejectedError, match="damaged"):
        inspect_pdf(b"%PDF-1.7\n" + os.urandom(2000), max_bytes=LIMIT)


def test_encrypted_pdf_is_rejected() -> None:
    writer = PdfFileWriter()
    writer.insert_page(
        PageObject(writer.add_object(generic.StreamObject(stream_data=b"")), (0, 0, *A4))
    )
    writer.encrypt("owner-secret", "user-secret")
    out = BytesIO()
    writer.write(out)
    with pytest.raises(PdfRejectedError, match="encrypted"):
        inspect_pdf(out.getvalue(), max_bytes=LIMIT)


def test_pdf_without_pages_is_rejected() -> None:
    out = BytesIO()
    PdfFileWriter().write(out)
    with pytest.raises(PdfRejectedError, match="no pages"):
        inspect_pdf(out.getvalue(), max_bytes=LIMIT)


def test_javascript_open_action_is_detected_and_rejected() -> None:
    facts = inspect_pdf(make_pdf(extra_root={"/OpenAction": _js_action()}), max_bytes=LIMIT)
    assert facts.has_javascript
    with pytest.raises(PdfRejectedError, match="JavaScript"):
        enforce_active_content_policy(facts, "reject")
    assert enforce_active_content_policy(facts, "flag") == ["the document contains JavaScript"]


def test_javascript_chained_via_next_is_detected() -> None:
    goto = generic.DictionaryObject(
        {
            pdf_name("/S"): pdf_name("/GoTo"),
            pdf_name("/D"): generic.ArrayObject([generic.NumberObject(0), pdf_name("/Fit")]),
            pdf_name("/Next"): _js_action(),
        }
    )
    facts = inspect_pdf(make_pdf(extra_root={"/OpenAction": goto}), max_bytes=LIMIT)
    assert facts.has_javascript


def test_document_level_javascript_name_tree_is_detected() -> None:
    names = generic.DictionaryObject(
        {
            pdf_name("/JavaScript"): generic.DictionaryObject(
                {pdf_name("/Names"): generic.ArrayObject([pdf_string("init"), _js_action()])}
            )
        }
    )
    assert inspect_pdf(make_pdf(extra_root={"/Names": names}), max_bytes=LIMIT).has_javascript


def test_javascript_in_annotation_additional_actions_is_detected() -> None:
    link = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Link"),
            pdf_name("/Rect"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 10, 10))),
            pdf_name("/AA"): generic.DictionaryObject({pdf_name("/E"): _js_action()}),
        }
    )
    facts = inspect_pdf(make_pdf(annots=[link]), max_bytes=LIMIT)
    assert facts.has_javascript
    assert not facts.has_embedded_files


def test_embedded_files_name_tree_is_detected() -> None:
    spec = generic.DictionaryObject(
        {pdf_name("/Type"): pdf_name("/Filespec"), pdf_name("/F"): pdf_string("x.exe")}
    )
    names = generic.DictionaryObject(
        {
            pdf_name("/EmbeddedFiles"): generic.DictionaryObject(
                {pdf_name("/Names"): generic.ArrayObject([pdf_string("x.exe"), spec])}
            )
        }
    )
    facts = inspect_pdf(make_pdf(extra_root={"/Names": names}), max_bytes=LIMIT)
    assert facts.has_embedded_files and not facts.has_javascript
    with pytest.raises(PdfRejectedError, match="embedded files"):
        enforce_active_content_policy(facts, "reject")
    assert enforce_active_content_policy(facts, "flag") == ["the document contains embedded files"]


def test_file_attachment_annotation_is_detected() -> None:
    annot = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/FileAttachment"),
            pdf_name("/Rect"): generic.ArrayObject(map(generic.NumberObject, (0, 0, 10, 10))),
        }
    )
    assert inspect_pdf(make_pdf(annots=[annot]), max_bytes=LIMIT).has_embedded_files
