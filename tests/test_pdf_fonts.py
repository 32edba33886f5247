"""Stamp fonts: the CJK face cut down per stamp, cached by character set, rare characters kept."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fontTools import ttLib
from fontTools.pens.recordingPen import RecordingPen
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter

from pactvault.pdf import fonts
from pactvault.pdf.sign import Appearance, SignatureField, prepare_fields, sign_pdf
from pactvault.pdf.validate import verify_pdf
from pdf_helpers import build_pki, make_pdf, run_pdfsig

pytestmark = pytest.mark.skipif(
    fonts.cjk_font_bytes() is None, reason="fonts-noto-cjk is not installed"
)

RARE = "䶮"  # U+4DAE, CJK Extension A: in Noto Sans CJK SC, not in GB 2312
STAMP = "签署人 / Signed by签署时间 / Time签署事由 / Reason签署地点 / Location"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    # Base fonts are kept (building one takes seconds); stamp fonts start from scratch.
    fonts._stamp_font.cache_clear()
    yield
    fonts._stamp_font.cache_clear()


def cmap(data: bytes) -> dict[int, str]:
    return ttLib.TTFont(BytesIO(data), lazy=True).getBestCmap()


def shape(data: bytes, text: str) -> tuple[bytes, float, dict[int, str]]:
    """What pyHanko would draw: the text operators, the advance and CID → text."""
    engine = GlyphAccumulator(PdfFileWriter(), BytesIO(data), 10)
    result = engine.shape(text)
    return result.graphics_ops, result.x_advance, dict(engine._cid_to_unicode)


def outlines(data: bytes, text: str) -> dict[str, list]:
    font = ttLib.TTFont(BytesIO(data))
    glyph_set = font.getGlyphSet()
    best = font.getBestCmap()
    drawn = {}
    for char in set(text):
        name = best[ord(char)]
        pen = RecordingPen()
        glyph_set[name].draw(pen)
        drawn[name] = [pen.value, glyph_set[name].width]
    return drawn


def test_stamp_font_is_small_and_covers_exactly_its_text() -> None:
    data = fonts.stamp_font_bytes(STAMP + "张三")
    assert data is not None
    mapped = cmap(data)
    assert all(ord(c) in mapped for c in STAMP + "张三")
    assert all(ord(c) in mapped for c in fonts.ALWAYS_INCLUDED)  # space and digits
    assert ord("李") not in mapped and ord("Q") not in mapped
    assert ttLib.TTFont(BytesIO(data))["maxp"].numGlyphs < 120
    assert len(data) < len(fonts.cjk_font_bytes() or b"") // 100


def test_cache_is_keyed_by_the_character_set() -> None:
    first = fonts.stamp_font_bytes(STAMP + "张三")
    assert fonts.stamp_font_bytes("三张" + STAMP) is first  # same characters, same font
    other = fonts.stamp_font_bytes(STAMP + "李四")
    assert other is not first
    assert ord("李") in cmap(other) and ord("张") not in cmap(other)


def test_cache_is_keyed_by_the_configured_font(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = fonts.stamp_font_bytes(STAMP)
    standalone = tmp_path / "face.otf"
    standalone.write_bytes(fonts.cjk_font_bytes() or b"")
    monkeypatch.setenv(fonts.FONT_ENV, str(standalone))
    misses = fonts._stamp_font.cache_info().misses
    again = fonts.stamp_font_bytes(STAMP)
    assert fonts._stamp_font.cache_info().misses == misses + 1  # not served from the cache
    assert again is not default and cmap(again) == cmap(default or b"")
    monkeypatch.setenv(fonts.FONT_ENV, str(tmp_path / "missing.otf"))
    assert fonts.stamp_font_bytes(STAMP) is None


def sources(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the fonts stamp fonts get cut from, from now on."""
    seen: list[int] = []
    cut = fonts._cut

    def recording(font: bytes, unicodes: object, **options: bool) -> bytes:
        seen.append(len(font))
        return cut(font, unicodes, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(fonts, "_cut", recording)
    return seen


def test_base_font_cuts_the_same_glyphs_as_the_whole_face(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = STAMP + "张三丰 Zhang Sanfeng，（甲方）：2025-01-01 12:00:00 UTC"
    face = fonts.cjk_font_bytes() or b""
    from_face = fonts._cut(face, {ord(c) for c in text} | {ord(c) for c in fonts.ALWAYS_INCLUDED})
    assert fonts.prepare_base_font(wait=True)
    cut_from = sources(monkeypatch)
    from_base = fonts.stamp_font_bytes(text)
    assert from_base is not None
    assert len(cut_from) == 1 and cut_from[0] < len(face) // 4  # really cut from the base
    # Same CIDs, positions, widths and ToUnicode, and the very same outlines.
    assert shape(from_base, text) == shape(from_face, text)
    assert outlines(from_base, text) == outlines(from_face, text)


def test_characters_outside_the_base_font_come_from_the_whole_face(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fonts.prepare_base_font(wait=True)
    assert RARE not in fonts.base_characters()
    cut_from = sources(monkeypatch)
    data = fonts.stamp_font_bytes(STAMP + "刘" + RARE)
    assert cut_from == [len(fonts.cjk_font_bytes() or b"")]
    assert data is not None and ord(RARE) in cmap(data)
    _, _, to_unicode = shape(data, "刘" + RARE)
    assert RARE in to_unicode.values()  # a real glyph, not .notdef (which gets no mapping)


def test_a_rare_character_name_renders_embeds_and_validates(tmp_path: Path) -> None:
    pki = build_pki()
    name = "刘" + RARE
    signer, _ = pki.issue_signer(name, subject_id="ID-0404")
    pdf = prepare_fields(make_pdf(), [SignatureField("signer", 0, (40, 40, 260, 120))])
    signed = sign_pdf(
        pdf,
        field_name="signer",
        signer=signer,
        timestamper=pki.timestamper(),
        appearance=Appearance(name, "同意"),
        certify=True,
    )
    reader = PdfFileReader(BytesIO(signed))
    field = reader.embedded_signatures[0].sig_field
    font = next(iter(field["/AP"]["/N"]["/Resources"]["/Font"].values())).get_object()
    assert "NotoSansCJK" in str(font["/BaseFont"])
    assert "/FontFile3" in font["/DescendantFonts"][0]["/FontDescriptor"]
    to_unicode = font["/ToUnicode"].data.decode("ascii").lower()
    assert f"{ord(RARE):04x}" in to_unicode and f"{ord('刘'):04x}" in to_unicode

    report = verify_pdf(signed, trust_roots=[pki.root])
    assert report.valid, report.to_dict()
    assert report.signatures[0].signer_name == name
    path = tmp_path / "rare.pdf"
    path.write_bytes(signed)
    output = run_pdfsig(path, pki.root.public_bytes(serialization.Encoding.PEM), tmp_path)
    assert "Signature is Valid." in output, output
