"""What a visible signature looks like: a text stamp, optionally over a handwriting/seal image.

The stamp is only a human-readable rendering — the cryptographic facts live in the CMS — but it
is what people look at, so it must render every name correctly (CJK included) and never claim
something the signature does not: the time shown is the claimed signing time written into the
signature dictionary (/M), labelled as such, in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import BytesIO
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import TextStampStyle

from pactvault.errors import SigningError
from pactvault.pdf.fonts import cjk_font_factory, needs_cjk_font

STAMP_FONT_SIZE = 10
STAMP_LEADING = 14
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
# What a signing time in TIMESTAMP_FORMAT can consist of (numeric directives only): digits and
# the format's literal characters. The stamp font must contain these.
_TIME_CHARACTERS = "0123456789" + re.sub(r"%[YmdHMS]", "", TIMESTAMP_FORMAT)
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 4_000_000
_IMAGE_FORMATS = ("PNG", "JPEG")

_LABELS: dict[str, tuple[str, str, str, str]] = {
    "zh-CN": ("签署人 / Signed by", "签署时间 / Time", "签署事由 / Reason", "签署地点 / Location"),
    "en": ("Signed by", "Time", "Reason", "Location"),
}


@dataclass(frozen=True)
class Appearance:
    """The visible part of one signature (see module docstring)."""

    signer_name: str
    reason: str
    location: str | None = None
    image: bytes | None = None  # PNG/JPEG of a handwritten signature or seal, drawn in the box
    locale: Literal["zh-CN", "en"] = "zh-CN"


def build_stamp(appearance: Appearance) -> tuple[TextStampStyle, dict[str, str]]:
    """pyHanko stamp style and its text parameters (``ts`` is filled in by pyHanko).

    Without a CJK font, Latin-1 text still renders with the standard font (and English labels);
    only text that really needs CJK glyphs is refused, with an actionable message.
    """
    if appearance.locale not in _LABELS:
        raise SigningError(f"unsupported stamp locale {appearance.locale!r}")
    values = {
        "signer": appearance.signer_name,
        "reason": appearance.reason,
        "location": appearance.location or "",
    }
    font = None
    locale = appearance.locale
    if needs_cjk_font("".join(values.values())) or needs_cjk_font("".join(_LABELS[locale])):
        # Every character the stamp can show: labels and separators, values, signing time.
        shown = "".join((*_LABELS[locale], ": ", *values.values(), _TIME_CHARACTERS))
        font = cjk_font_factory(STAMP_FONT_SIZE, shown)
        if font is None:
            if needs_cjk_font("".join(values.values())):
                raise SigningError(
                    "the signature stamp contains Chinese (non-Latin) text but no CJK font is "
                    "installed; install fonts-noto-cjk or set PACTVAULT_CJK_FONT"
                )
            locale = "en"
    signer_l, time_l, reason_l, location_l = _LABELS[locale]
    lines = [f"{signer_l}: %(signer)s", f"{time_l}: %(ts)s", f"{reason_l}: %(reason)s"]
    if appearance.location:
        lines.append(f"{location_l}: %(location)s")

    # CJK glyphs fill the whole em box: without extra leading, lines touch each other.
    text_style = (
        TextBoxStyle(font=font, font_size=STAMP_FONT_SIZE, leading=STAMP_LEADING)
        if font is not None
        else TextBoxStyle(font_size=STAMP_FONT_SIZE, leading=STAMP_LEADING)
    )
    style = TextStampStyle(
        stamp_text="\n".join(lines),
        text_box_style=text_style,
        timestamp_format=TIMESTAMP_FORMAT,
        border_width=1,
        background=_image(appearance.image) if appearance.image is not None else None,
        background_opacity=1.0,
    )
    return style, values


def _image(data: bytes) -> PdfImage:
    """Decode and sanity-check the handwriting/seal image before it reaches the PDF writer."""
    if len(data) > MAX_IMAGE_BYTES:
        raise SigningError(f"the signature image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        image = Image.open(BytesIO(data))
        if image.format not in _IMAGE_FORMATS:
            raise SigningError("the signature image must be a PNG or JPEG file")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise SigningError("the signature image has too many pixels")
        image.load()
    except SigningError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise SigningError("the signature image could not be decoded (PNG or JPEG)") from None
    return PdfImage(image, writer=None)
