"""The fields a sender places for each signer: a signature, and dates, text and seals.

Every signer signs once (one PAdES signature, one signature field). Around it the sender may
place fields that are completed *with* that signature, inside the revision it covers:

* ``date``: the signing date, filled in by us (``YYYY-MM-DD``, UTC like the stamp's time);
* ``text``: text the signer types (a label tells them what: "Address", "ID number");
* ``seal``: where an organisation seal goes. Applying one needs the seal custody of issue #8,
  which does not exist yet: a seal field can be placed and is prepared in the PDF (an empty
  signature field, so a seal service can sign it later without changing the form), but a signer
  asked for a *required* seal is refused, clearly, before any code is sent (``SealUnavailable``).

This module validates what the sender asked for and resolves it against the PDF's pages; the
contract service stores the result on the signer (``Signer.extra_fields``) and the PDF layer
creates and fills the fields (``pdf.sign.prepare_document`` / ``sign_pdf(fill=…)``).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pactvault.errors import ConflictError, InvalidInputError
from pactvault.pdf.inspect import PdfFacts

KINDS = ("signature", "date", "text", "seal")
#: Fields per signer, the signature included: room for a contract initialled on every page.
MAX_FIELDS = 60
MAX_LABEL = 64
MAX_TEXT = 200
MIN_SIZE = 10.0
#: The stored name of each kind's fields: ``Text2_1`` is signer 2's first text field.
_PREFIX = {"date": "Date", "text": "Text", "seal": "Seal"}


class SealUnavailableError(ConflictError):
    """A signer is asked to apply an organisation seal, and this server has no seal service."""

    slug = "seal-unavailable"
    title = "Organisation seals are not available"


SEAL_UNAVAILABLE = (
    "this contract asks you to apply an organisation seal, and organisation seals are not "
    "available on this server yet; ask the sender to remove the seal field or make it optional"
)


@dataclass(frozen=True)
class FieldSpec:
    """One field as the sender places it: ``page`` 0-based (-1 = last), ``box`` x1, y1, x2, y2
    in PDF points (origin bottom left). A signature field's box may be omitted (placed
    automatically); the others need one."""

    kind: str
    page: int = -1
    box: tuple[float, float, float, float] | None = None
    required: bool = True
    label: str | None = None


@dataclass(frozen=True)
class PlacedField:
    """A field resolved against the document and named: what ``Signer.extra_fields`` holds."""

    name: str
    kind: str
    page: int
    box: tuple[float, float, float, float]
    required: bool
    label: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "page": self.page,
            "box": list(self.box),
            "required": self.required,
            "label": self.label,
        }

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> PlacedField:
        x1, y1, x2, y2 = (float(v) for v in data["box"])
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            page=int(data["page"]),
            box=(x1, y1, x2, y2),
            required=bool(data.get("required", True)),
            label=data.get("label"),
        )


def stored_fields(value: Sequence[Mapping[str, Any]] | None) -> list[PlacedField]:
    """``Signer.extra_fields`` as ``PlacedField``s (``None`` for signers from before fields)."""
    return [PlacedField.of(item) for item in value or ()]


def signature_field(index: int, fields: Sequence[FieldSpec]) -> FieldSpec | None:
    """The signer's signature field among ``fields`` (at most one), if they placed it there."""
    signatures = [f for f in fields if f.kind == "signature"]
    if len(signatures) > 1:
        raise InvalidInputError(f"signer {index}: at most one signature field per signer")
    return signatures[0] if signatures else None


def check_specs(index: int, fields: Sequence[FieldSpec]) -> None:
    """Shape checks that need no document (kinds, labels, counts)."""
    if len(fields) > MAX_FIELDS:
        raise InvalidInputError(f"signer {index}: at most {MAX_FIELDS} fields per signer")
    for spec in fields:
        if spec.kind not in KINDS:
            raise InvalidInputError(
                f"signer {index}: a field's kind must be one of {', '.join(KINDS)}"
            )
        if not isinstance(spec.required, bool):
            raise InvalidInputError(f"signer {index}: a field's required must be true or false")
        if spec.label is not None and (
            not isinstance(spec.label, str) or len(spec.label.strip()) > MAX_LABEL
        ):
            raise InvalidInputError(
                f"signer {index}: a field's label must be at most {MAX_LABEL} characters"
            )
        if spec.kind != "signature" and spec.box is None:
            raise InvalidInputError(f"signer {index}: every {spec.kind} field needs a box")
        if spec.kind == "signature" and not spec.required:
            raise InvalidInputError(f"signer {index}: the signature field is always required")
    signature_field(index, fields)


def resolve_box(
    index: int, what: str, page: int, box: Sequence[float], facts: PdfFacts
) -> tuple[int, tuple[float, float, float, float]]:
    """``page`` made 0-based and ``box`` checked to lie on it; errors name the signer."""
    resolved = page if page >= 0 else facts.page_count + page
    if not isinstance(page, int) or not 0 <= resolved < facts.page_count:
        raise InvalidInputError(
            f"signer {index}: page {page} does not exist (the PDF has {facts.page_count} pages)"
        )
    if len(box) != 4 or not all(
        isinstance(v, int | float) and math.isfinite(v) and not isinstance(v, bool) for v in box
    ):
        raise InvalidInputError(f"signer {index}: a box is four numbers: x1, y1, x2, y2")
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = facts.page_sizes[resolved]
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise InvalidInputError(f"signer {index}: the {what} box is outside the page")
    if x2 - x1 < MIN_SIZE or y2 - y1 < MIN_SIZE:
        raise InvalidInputError(
            f"signer {index}: the {what} box must be at least {MIN_SIZE:g} pt wide and high"
        )
    return resolved, (x1, y1, x2, y2)


def place(position: int, fields: Sequence[FieldSpec], facts: PdfFacts) -> list[PlacedField]:
    """The signer's date, text and seal fields, resolved and named (the signature field is
    stored apart, as before fields existed)."""
    placed: list[PlacedField] = []
    counts: dict[str, int] = {}
    for spec in fields:
        if spec.kind == "signature":
            continue
        assert spec.box is not None  # check_specs
        page, box = resolve_box(position, f"{spec.kind} field", spec.page, spec.box, facts)
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
        label = (spec.label or "").strip() or None
        placed.append(
            PlacedField(
                name=f"{_PREFIX[spec.kind]}{position}_{counts[spec.kind]}",
                kind=spec.kind,
                page=page,
                box=box,
                required=spec.required,
                label=label,
            )
        )
    return placed


def check_seals(fields: Sequence[PlacedField]) -> None:
    """Refuse a signer who must apply a seal (optional seal fields are simply left empty)."""
    if any(f.kind == "seal" and f.required for f in fields):
        raise SealUnavailableError(SEAL_UNAVAILABLE)


def values_to_fill(
    fields: Sequence[PlacedField], given: Mapping[str, str], signed_at: datetime
) -> dict[str, str]:
    """Field name → text for this signature: typed text checked, dates set to ``signed_at``.

    Refused: a value for a field that is not this signer's text field, a required text field
    left empty, text too long or with control characters.
    """
    texts = {f.name: f for f in fields if f.kind == "text"}
    unknown = sorted(set(given) - set(texts))
    if unknown:
        raise InvalidInputError(f"you have no text field named {unknown[0]!r}")
    out: dict[str, str] = {}
    for name, spec in texts.items():
        value = " ".join((given.get(name) or "").split())
        if len(value) > MAX_TEXT:
            raise InvalidInputError(f"{_called(spec)} may have at most {MAX_TEXT} characters")
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
            raise InvalidInputError(f"{_called(spec)} contains characters that cannot be shown")
        if not value:
            if spec.required:
                raise InvalidInputError(f"please fill in {_called(spec)}")
            continue
        out[name] = value
    for spec in fields:
        if spec.kind == "date":
            out[spec.name] = signed_at.strftime("%Y-%m-%d")
    return out


def _called(spec: PlacedField) -> str:
    return f"the field {spec.label!r}" if spec.label else "every required text field"
