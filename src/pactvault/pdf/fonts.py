"""The CJK font used in signature stamps: extracted once, then cut down to each stamp's text.

Signer names are often Chinese, and PDF's 14 standard fonts cover Latin-1 only. pyHanko embeds
OpenType fonts through ``GlyphAccumulator``, which opens its font with ``fontTools.TTFont(fh)``
and ``harfbuzz.Face(bytes)`` — neither with a font index, so a ``.ttc`` collection (Debian's
fonts-noto-cjk ships only collections) is rejected. We therefore extract the one face we need
(Simplified Chinese) from the collection into standalone OpenType bytes, once per process
(~0.3 s, ~16 MB of RAM).

Handing pyHanko that whole face costs ~0.4 s per signature: its subsetting re-reads all ~65,000
glyphs every time (and mutates the parsed font, so the parse cannot be reused). Instead each
stamp gets a *stamp font*: the face cut down (fontTools' subsetter, same glyphs, same CIDs, same
names and metrics) to exactly the characters of that stamp's text, so pyHanko's per-signature
work touches a few dozen glyphs (~12 ms), and is embedded as is. Stamp fonts are cached by
character set.

Cutting a stamp font out of the whole face costs ~0.3 s, so a process that keeps signing also
builds, once and in the background, a *base font*: the face reduced to GB 2312, Latin-1 and
common CJK/full-width punctuation (~7,800 glyphs, a few seconds of CPU). Stamp fonts whose
characters the base covers are then cut from it (~60 ms); anything else — rare characters such
as 䶮 — is still cut from the whole face, so every character the face has is rendered.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from fontTools import subset, ttLib
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

# Characters every stamp font has, whatever its text (the caller passes everything else,
# including the characters of the signing time that pyHanko fills in).
ALWAYS_INCLUDED = frozenset(" 0123456789")
STAMP_FONT_CACHE_SIZE = 256
# OpenType features HarfBuzz applies by default to horizontal text; a stamp font keeps exactly
# these, so text shapes as it would with the whole face. 'locl' is left out on purpose: the face
# already is the Simplified Chinese one, and HarfBuzz would otherwise pick regional variants from
# the server's locale.
_SHAPING_FEATURES = (
    "abvm", "blwm", "calt", "ccmp", "clig", "curs", "dist", "kern", "liga", "mark", "mkmk",
    "rclt", "rlig", "rvrn",
)  # fmt: skip
# Misses (stamp fonts cut from the whole face) before a process builds the base font.
BASE_FONT_AFTER_MISSES = 2

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_base_fonts: dict[str, _BaseFont] = {}  # font spec -> its base font, once built
_base_builds: dict[str, threading.Event] = {}  # font spec -> set when its build has ended
_misses: dict[str, int] = {}


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


# -- stamp fonts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _BaseFont:
    data: bytes
    coverage: frozenset[int]  # code points the base font maps


def base_characters() -> frozenset[str]:
    """What the base font covers: GB 2312, Latin-1 and common CJK / full-width punctuation."""
    chars = {chr(c) for c in range(0x20, 0x7F)}  # printable ASCII
    for lead in range(0xA1, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.add(bytes((lead, trail)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    for first, last in (
        (0x00A0, 0x00FF),  # Latin-1
        (0x2010, 0x2027),  # dashes, quotation marks, ellipsis
        (0x3000, 0x303F),  # CJK symbols and punctuation
        (0xFF01, 0xFF5E),  # full-width forms
    ):
        chars.update(chr(c) for c in range(first, last + 1))
    return frozenset(chars)


def stamp_font_bytes(text: str) -> bytes | None:
    """A font with the glyphs of ``text`` (plus space and digits), or ``None`` if no CJK font.

    The same character set always yields the same cached bytes; see the module docstring.
    """
    spec = str(configured_font_path())
    if cjk_font_bytes() is None:
        return None
    return _stamp_font(spec, frozenset(text) | ALWAYS_INCLUDED)


@lru_cache(maxsize=STAMP_FONT_CACHE_SIZE)
def _stamp_font(spec: str, chars: frozenset[str]) -> bytes:
    wanted = {ord(ch) for ch in chars}
    with _lock:
        base = _base_fonts.get(spec)
    if base is not None and wanted <= base.coverage:
        return _cut(base.data, wanted)
    with _lock:
        full = _load(spec)
        _misses[spec] = _misses.get(spec, 0) + 1
        worthwhile = _misses[spec] >= BASE_FONT_AFTER_MISSES
    if full is None:  # the font disappeared since stamp_font_bytes looked
        raise SigningError("the CJK font is no longer available")
    if worthwhile:
        _start_base_build(spec)
    return _cut(full, wanted)


def prepare_base_font(wait: bool = True) -> bool:
    """Build the base font now (at start-up, before a benchmark); True once it is available.

    With ``wait=False`` the build runs on a background thread and this returns at once.
    """
    spec = str(configured_font_path())
    if cjk_font_bytes() is None:
        return False
    done = _start_base_build(spec)
    if wait:
        done.wait()
    with _lock:
        return spec in _base_fonts


def _start_base_build(spec: str) -> threading.Event:
    """Start building the base font for ``spec`` unless that already happened; its end event."""
    with _lock:
        done = _base_builds.get(spec)
        if done is not None:
            return done
        done = _base_builds[spec] = threading.Event()
    threading.Thread(
        target=_build_base, args=(spec, done), name="pactvault-base-font", daemon=True
    ).start()
    return done


def _build_base(spec: str, done: threading.Event) -> None:
    try:
        full = _load(spec)
        if full is None:
            raise FileNotFoundError(spec)
        mapped = set(ttLib.TTFont(BytesIO(full), lazy=True).getBestCmap())
        coverage = frozenset(ord(ch) for ch in base_characters()) & mapped
        base = _BaseFont(_cut(full, coverage, flatten=False), coverage)
        with _lock:
            _base_fonts[spec] = base
    except Exception:  # the whole face still works; only speed is lost
        logger.exception("could not build the reduced CJK base font")
    finally:
        done.set()


def _cut(font: bytes, unicodes: Iterable[int], *, flatten: bool = True) -> bytes:
    """``font`` reduced to the glyphs of ``unicodes`` (and what shaping them can produce).

    Glyph names, and with them the CIDs pyHanko writes into the PDF, names and vertical/horizontal
    metrics are kept; bounding boxes are not recomputed (recomputing draws every glyph and would
    be most of the cost), so the font-wide values stay those of the whole face. ``flatten``
    inlines CFF subroutines (same outlines): cheaper for a few dozen glyphs, not for thousands.
    """
    options = subset.Options()
    options.desubroutinize = flatten
    options.layout_features = list(_SHAPING_FEATURES)
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.name_legacy = True
    options.notdef_outline = True
    parsed = ttLib.TTFont(BytesIO(font), lazy=True, recalcBBoxes=False)
    subsetter = subset.Subsetter(options=options)
    subsetter.populate(unicodes=unicodes)
    subsetter.subset(parsed)
    out = BytesIO()
    parsed.save(out)
    return out.getvalue()


def _after_fork_in_child() -> None:
    # A build thread does not survive fork(): forget builds the child would wait for forever.
    global _lock
    _lock = threading.Lock()
    for spec, done in list(_base_builds.items()):
        if not done.is_set():
            del _base_builds[spec]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _reset_stamp_fonts() -> None:
    """Forget stamp fonts and base fonts (tests); waits for a base build under way."""
    with _lock:
        builds = list(_base_builds.values())
    for done in builds:
        done.wait()
    _stamp_font.cache_clear()
    with _lock:
        _base_fonts.clear()
        _base_builds.clear()
        _misses.clear()


# -- pyHanko glue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InMemoryGlyphAccumulatorFactory(GlyphAccumulatorFactory):
    """``GlyphAccumulatorFactory`` reading from bytes instead of a path (see module docstring)."""

    font_bytes: bytes = b""

    def create_font_engine(
        self, writer: BasePdfFileWriter, obj_stream: object = None
    ) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return _StampGlyphAccumulator(
            writer=writer,
            font_handle=BytesIO(self.font_bytes),
            font_size=self.font_size,
            ot_script_tag=self.ot_script_tag,
            ot_language_tag=self.ot_language_tag,
            writing_direction=self.writing_direction,
            bcp47_lang_code=self.bcp47_lang_code,
            obj_stream=obj_stream,
        )


class _StampGlyphAccumulator(GlyphAccumulator):
    """pyHanko's engine, minus its own subsetting: a stamp font is already cut to the text.

    pyHanko would subset the stamp font once more (~6 ms of fontTools work per signature) to
    drop the few glyphs the stamp does not draw (e.g. digits the signing time does not use).
    ``_extract_subset`` is pyHanko-internal; should it be renamed, this override simply stops
    applying and pyHanko subsets again — slower, with the same output.
    """

    def _extract_subset(self, options: object = None) -> None:
        return None


def cjk_font_factory(font_size: int, text: str) -> InMemoryGlyphAccumulatorFactory | None:
    """A pyHanko font engine factory that can draw ``text`` (a stamp font, see above).

    ``None`` if no CJK font is installed. Characters not in ``text`` (other than space and
    digits) would come out as empty boxes, so pass every character the stamp will show.
    """
    data = stamp_font_bytes(text)
    if data is None:
        return None
    return InMemoryGlyphAccumulatorFactory(
        font_file="<memory>", font_size=font_size, font_bytes=data, bcp47_lang_code="zh-CN"
    )
