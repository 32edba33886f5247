"""The CJK font used in signature stamps, loaded once per process.

Signer names are often Chinese, and PDF's 14 standard fonts cover Latin-1 only. pyHanko embeds
OpenType fonts through ``GlyphAccumulator``, which opens its font with ``fontTools.TTFont(fh)``
and ``harfbuzz.Face(bytes)`` — neither with a font index, so a ``.ttc`` collection (Debian's
fonts-noto-cjk ships only collections) is rejected. We therefore extract the one face we need
(Simplified Chinese) from the collection into standalone OpenType bytes, once, and hand pyHanko
an in-memory file per signature. Extraction costs ~0.4 s and ~16 MB of RAM; repeating it per
signature would dominate signing time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from fontTools import ttLib
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from pactvault.errors import SigningError

FONT_ENV = "PACTVAULT_CJK_FONT"
DEFAULT_CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
# Family names tried, in order, when the configured file is a collection: Simplified Chinese
# first (our users), then the other CJK faces, which still cover all common Hanzi.
_PREFERRED_FACES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
)

_lock = threading.Lock()


def configured_font_path() -> Path:
    """``$PACTVAULT_CJK_FONT`` or Debian's Noto Sans CJK (``font.ttc#N`` picks face N)."""
    return Path(os.environ.get(FONT_ENV) or DEFAULT_CJK_FONT)


def needs_cjk_font(text: str) -> bool:
    """True if ``text`` has characters the standard (Latin-1, WinAnsi) PDF font cannot show."""
    return any(ord(ch) > 0xFF for ch in text)


def cjk_font_bytes() -> bytes | None:
    """Standalone OpenType bytes of the configured CJK face, or ``None`` if unavailable."""
    path = str(configured_font_path())
    with _lock:
        return _load(path)


@lru_cache(maxsize=4)
def _load(spec: str) -> bytes | None:
    path, _, index = spec.partition("#")
    if not Path(path).is_file():
        return None
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"ttcf":
            return Path(path).read_bytes()
        number = int(index) if index else _preferred_face(path)
        font = ttLib.TTFont(path, fontNumber=number, lazy=False)
        out = BytesIO()
        font.save(out)
        return out.getvalue()
    except Exception as exc:
        raise SigningError(
            f"the CJK font {path} could not be loaded: {type(exc).__name__}"
        ) from exc


def _preferred_face(path: str) -> int:
    collection = ttLib.TTCollection(path, lazy=True)
    names = [str(face["name"].getDebugName(4) or "") for face in collection.fonts]
    for wanted in _PREFERRED_FACES:
        if wanted in names:
            return names.index(wanted)
    return 0


@dataclass(frozen=True)
class InMemoryGlyphAccumulatorFactory(GlyphAccumulatorFactory):
    """``GlyphAccumulatorFactory`` reading from bytes instead of a path (see module docstring)."""

    font_bytes: bytes = b""

    def create_font_engine(
        self, writer: BasePdfFileWriter, obj_stream: object = None
    ) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return GlyphAccumulator(
            writer=writer,
            font_handle=BytesIO(self.font_bytes),
            font_size=self.font_size,
            ot_script_tag=self.ot_script_tag,
            ot_language_tag=self.ot_language_tag,
            writing_direction=self.writing_direction,
            bcp47_lang_code=self.bcp47_lang_code,
            obj_stream=obj_stream,
        )


def cjk_font_factory(font_size: int) -> InMemoryGlyphAccumulatorFactory | None:
    """A pyHanko font engine factory for the CJK face, or ``None`` if no font is installed."""
    data = cjk_font_bytes()
    if data is None:
        return None
    return InMemoryGlyphAccumulatorFactory(
        font_file="<memory>", font_size=font_size, font_bytes=data, bcp47_lang_code="zh-CN"
    )
