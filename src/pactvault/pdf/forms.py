"""Text fields a signer fills (typed text, the signing date), placed up front, filled when signing.

Why fields, and why this way:

* A signer's date and text go into the document *in the same incremental revision as their
  signature*, so the signature covers them: nobody can change "2026-05-01" or the typed address
  afterwards without breaking that signature. ``sign.sign_pdf(fill=…)`` sets the values and their
  appearance, then signs, in one update.
* The fields themselves are created before the first signature (``add_text_fields``, called by
  ``sign.prepare_document`` when the contract is sent), like the signature fields
  (``pdf.fields``): after a certification signature with FILL_FORMS, *creating* a field is a
  forbidden change while *filling* an existing one is allowed — which is also what validators
  (pyHanko's difference analysis included) accept for the later signers' values.
* The appearance is drawn by us (pyHanko's text stamp, with the CJK stamp font of ``pdf.fonts``
  when the text needs it), so every viewer shows the same thing and no viewer is asked to
  regenerate appearances (``/NeedAppearances``), which would itself be a change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import TextStamp, TextStampStyle

from pactvault.errors import InvalidInputError, SigningError
from pactvault.pdf.fonts import cjk_font_factory, needs_cjk_font

MAX_FIELD_NAME = 64
MAX_VALUE = 500
#: Font size of a filled value; long values shrink to fit their box, short ones stay this size.
VALUE_FONT_SIZE = 10
_DEFAULT_APPEARANCE = b"/Helv 0 Tf 0 g"
_MARGIN = 2


@dataclass(frozen=True)
class TextField:
    """A text field: ``page`` is 0-based (-1 = last), ``box`` is x1, y1, x2, y2 in points."""

    name: str
    page: int
    box: tuple[float, float, float, float]


def add_text_fields(writer: IncrementalPdfFileWriter, fields: Sequence[TextField]) -> None:
    """Add empty text fields (blank appearance) to the document being written by ``writer``."""
    if not fields:
        return
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise InvalidInputError("field names must be unique")
    acroform, field_list = _acroform(writer)
    existing = {str(ref.get_object().get("/T", "")) for ref in field_list}
    page_count = int(writer.root["/Pages"]["/Count"])
    for field in fields:
        _check(field, page_count, existing)
        page_ref = writer.find_page_for_modification(field.page)[0]
        x1, y1, x2, y2 = field.box
        blank = RawContent(b"", box=layout.BoxConstraints(width=x2 - x1, height=y2 - y1))
        blank.set_writer(writer)
        widget = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Widget"),
                pdf_name("/FT"): pdf_name("/Tx"),
                pdf_name("/T"): generic.pdf_string(field.name),
                pdf_name("/Rect"): generic.ArrayObject(generic.FloatObject(v) for v in field.box),
                pdf_name("/F"): generic.NumberObject(4),  # printed
                pdf_name("/P"): page_ref,
                pdf_name("/DA"): generic.pdf_string(_DEFAULT_APPEARANCE.decode()),
                pdf_name("/AP"): generic.DictionaryObject(
                    {pdf_name("/N"): writer.add_object(blank.as_form_xobject())}
                ),
            }
        )
        ref = writer.add_object(widget)
        field_list.append(ref)
        writer.register_annotation(page_ref, ref)
        existing.add(field.name)
    _mark(writer, acroform, field_list)


def fill_text_fields(writer: IncrementalPdfFileWriter, values: Mapping[str, str]) -> None:
    """Set each named text field's value and draw it, in the update ``writer`` is preparing.

    Every name must be an existing, still empty text field: a value never overwrites another.
    """
    if not values:
        return
    try:
        field_list = writer.root["/AcroForm"]["/Fields"]
    except KeyError:
        raise SigningError("the PDF has no form fields to fill") from None
    by_name = {}
    for ref in field_list:
        field = ref.get_object()
        by_name[str(field.get("/T", ""))] = (ref, field)
    for name, value in values.items():
        if name not in by_name:
            raise SigningError(f"the PDF has no field named {name!r}")
        ref, field = by_name[name]
        if str(field.get("/FT", "")) != "/Tx":
            raise SigningError(f"field {name!r} is not a text field")
        if str(field.get("/V", "")):
            raise SigningError(f"field {name!r} has already been filled")
        if len(value) > MAX_VALUE:
            raise InvalidInputError(f"a field value may have at most {MAX_VALUE} characters")
        x1, y1, x2, y2 = (float(v) for v in field["/Rect"])
        field[pdf_name("/V")] = generic.pdf_string(value)
        field[pdf_name("/AP")] = generic.DictionaryObject(
            {pdf_name("/N"): _appearance(writer, value, abs(x2 - x1), abs(y2 - y1))}
        )
        writer.mark_update(ref)


def _appearance(
    writer: IncrementalPdfFileWriter, value: str, width: float, height: float
) -> generic.IndirectObject:
    """The value drawn left-aligned and vertically centred, shrunk to fit a small box."""
    font = cjk_font_factory(VALUE_FONT_SIZE, value) if needs_cjk_font(value) else None
    if needs_cjk_font(value) and font is None:
        raise SigningError(
            "a field value contains Chinese (non-Latin) text but no CJK font is installed; "
            "install fonts-noto-cjk or set PACTVAULT_CJK_FONT"
        )
    text_style = (
        TextBoxStyle(font=font, font_size=VALUE_FONT_SIZE)
        if font is not None
        else TextBoxStyle(font_size=VALUE_FONT_SIZE)
    )
    style = TextStampStyle(
        stamp_text="%(value)s",
        text_box_style=text_style,
        border_width=0,
        inner_content_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(_MARGIN),
            inner_content_scaling=layout.InnerScaling.SHRINK_TO_FIT,
        ),
    )
    stamp = TextStamp(
        writer,
        style,
        text_params={"value": value},
        box=layout.BoxConstraints(width=width, height=height),
    )
    return stamp.register()


def _acroform(
    writer: IncrementalPdfFileWriter,
) -> tuple[generic.DictionaryObject, generic.ArrayObject]:
    root = writer.root
    if "/AcroForm" not in root:
        acroform = generic.DictionaryObject({pdf_name("/Fields"): generic.ArrayObject()})
        root[pdf_name("/AcroForm")] = writer.add_object(acroform)
        writer.update_root()
    acroform = root["/AcroForm"]
    if "/Fields" not in acroform:
        acroform[pdf_name("/Fields")] = generic.ArrayObject()
    if "/DA" not in acroform:
        acroform[pdf_name("/DA")] = generic.pdf_string(_DEFAULT_APPEARANCE.decode())
    if "/DR" not in acroform:
        helvetica = generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
                pdf_name("/Encoding"): pdf_name("/WinAnsiEncoding"),
            }
        )
        acroform[pdf_name("/DR")] = generic.DictionaryObject(
            {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/Helv"): helvetica})}
        )
    return acroform, acroform["/Fields"]


def _mark(
    writer: IncrementalPdfFileWriter,
    acroform: generic.DictionaryObject,
    field_list: generic.ArrayObject,
) -> None:
    """Record the changed form dictionary and field array (wherever they live) in the update."""
    raw = writer.root.raw_get("/AcroForm")
    if isinstance(raw, generic.IndirectObject):
        writer.mark_update(raw)
    else:
        writer.update_root()
    fields_raw = acroform.raw_get("/Fields")
    if isinstance(fields_raw, generic.IndirectObject):
        writer.mark_update(fields_raw)


def _check(field: TextField, page_count: int, existing: Iterable[str]) -> None:
    if not field.name or len(field.name) > MAX_FIELD_NAME or "." in field.name:
        raise InvalidInputError(
            f"field name must be 1-{MAX_FIELD_NAME} characters without '.': {field.name!r}"
        )
    if field.name in existing:
        raise InvalidInputError(f"the PDF already has a field named {field.name!r}")
    if not -page_count <= field.page < page_count:
        raise InvalidInputError(f"page {field.page} does not exist (the PDF has {page_count})")
    if len(field.box) != 4 or not all(math.isfinite(v) for v in field.box):
        raise InvalidInputError("box must be four finite numbers: x1, y1, x2, y2")
    x1, y1, x2, y2 = field.box
    if x2 - x1 < 10 or y2 - y1 < 10:
        raise InvalidInputError("box must have x1 < x2 and y1 < y2 and be at least 10 pt wide/high")
