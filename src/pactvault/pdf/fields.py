"""Placing empty signature fields, one per signer, before anyone signs.

Fields are added up front, in one incremental update, because after a certification signature
with FILL_FORMS permission, *creating* a field is a forbidden change while *filling* an existing
one is allowed — so late field creation would break the earlier signatures under validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import (
    FieldMDPAction,
    FieldMDPSpec,
    MDPPerm,
    SigFieldSpec,
    append_signature_field,
)

from pactvault.errors import ConflictError, InvalidInputError, PdfRejectedError

MAX_FIELD_NAME = 64


@dataclass(frozen=True)
class SignatureField:
    """Where one signer signs: ``page`` is 0-based (-1 = last), ``box`` is x1, y1, x2, y2 in pt.

    ``lock_document`` marks the field of the signer who signs last: their signature will lock
    the document (see :func:`prepare_fields` for why this is decided up front). ``box=None``
    makes an invisible field (used for the platform's completion seal).
    """

    name: str
    page: int
    box: tuple[float, float, float, float] | None
    lock_document: bool = False


def open_incremental(pdf: bytes) -> IncrementalPdfFileWriter:
    """An incremental writer on ``pdf`` — later bytes are appended, earlier ones never touched."""
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    except Exception:
        raise PdfRejectedError("the PDF could not be parsed") from None
    if writer.prev.encrypted:
        raise PdfRejectedError("the PDF is encrypted")
    return writer


def prepare_fields(pdf: bytes, fields: Sequence[SignatureField]) -> bytes:
    """Add empty, visible signature fields as a single incremental update.

    At most one field may have ``lock_document``; it should belong to the last signer.
    """
    if not fields:
        raise InvalidInputError("at least one signature field is required")
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise InvalidInputError("signature field names must be unique")
    if sum(f.lock_document for f in fields) > 1:
        raise InvalidInputError("only one signature field can lock the document")
    writer = open_incremental(pdf)
    try:
        if writer.prev.embedded_signatures:
            raise ConflictError("signature fields must be placed before the first signature")
        existing = _existing_field_names(writer)
        page_count = int(writer.root["/Pages"]["/Count"])
    except ConflictError:
        raise
    except Exception:
        raise PdfRejectedError("the PDF's form or page tree could not be read") from None

    for field in fields:
        _check_field(field, page_count, existing)
        try:
            append_signature_field(
                writer,
                SigFieldSpec(
                    sig_field_name=field.name,
                    on_page=field.page,
                    box=field.box,  # type: ignore[arg-type]  # floats are fine in /Rect
                    empty_field_appearance=True,
                    # PDF 2.0 field lock: signing this field locks every field and sets
                    # DocMDP P=1 (no further changes). It has to exist before the first
                    # signature: adding /Lock at signing time is a field change that the
                    # certification's FILL_FORMS policy does not permit.
                    field_mdp_spec=(
                        FieldMDPSpec(action=FieldMDPAction.ALL) if field.lock_document else None
                    ),
                    doc_mdp_update_value=MDPPerm.NO_CHANGES if field.lock_document else None,
                ),
            )
        except Exception:
            raise PdfRejectedError(f"could not add signature field {field.name!r}") from None
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _existing_field_names(writer: IncrementalPdfFileWriter) -> set[str]:
    try:
        acroform = writer.root["/AcroForm"]
    except KeyError:
        return set()
    result: set[str] = set()
    stack = list(acroform.get("/Fields", generic.ArrayObject()))
    while stack and len(result) < 10_000:
        field = stack.pop().get_object()
        if "/T" in field:
            result.add(str(field["/T"]))
        stack.extend(field.get("/Kids", ()))
    return result


def _check_field(field: SignatureField, page_count: int, existing: set[str]) -> None:
    if not field.name or len(field.name) > MAX_FIELD_NAME or "." in field.name:
        raise InvalidInputError(
            f"field name must be 1-{MAX_FIELD_NAME} characters without '.': {field.name!r}"
        )
    if field.name in existing:
        raise ConflictError(f"the PDF already has a field named {field.name!r}")
    if not -page_count <= field.page < page_count:
        raise InvalidInputError(f"page {field.page} does not exist (the PDF has {page_count})")
    if field.box is None:
        return
    if len(field.box) != 4 or not all(math.isfinite(v) for v in field.box):
        raise InvalidInputError("box must be four finite numbers: x1, y1, x2, y2")
    x1, y1, x2, y2 = field.box
    if x2 - x1 < 10 or y2 - y1 < 10:
        raise InvalidInputError("box must have x1 < x2 and y1 < y2 and be at least 10 pt wide/high")
