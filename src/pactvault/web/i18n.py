"""Simplified Chinese and English for the pages: catalogs, choosing a language, translating.

Catalogs are flat JSON objects, one per language (``web/locales/zh-CN.json``, ``en.json``), from a
stable dotted key (``signin.title``) to the text; ``{name}`` placeholders are filled with
``str.format``-style fields. Why JSON and not gettext ``.po``: no compile step and no extra
dependency, the two files diff and review as plain data, and "both catalogs have exactly the same
keys" is a one-line test. The JavaScript modules get their few strings from ``data-`` attributes
the templates fill from the same catalogs, so there is one source of text.

The language is the ``pv_lang`` cookie if it names a supported one, else the best match of the
browser's ``Accept-Language`` (quality values honoured), else Simplified Chinese. A key missing
from a catalog renders as ``[[key]]`` (and is logged) instead of failing the page; the tests look
for that marker on every page in both languages.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

LANG_COOKIE = "pv_lang"
DEFAULT_LANGUAGE = "zh-CN"
#: Supported languages, with the name each calls itself (for the switcher).
LANGUAGES: dict[str, str] = {"zh-CN": "简体中文", "en": "English"}
MISSING_MARK = "[[{key}]]"
log = logging.getLogger("pactvault.web")


@cache
def catalog(language: str) -> dict[str, str]:
    """The catalog of a supported language (read once per process)."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    text = (
        resources.files("pactvault.web")
        .joinpath("locales", f"{language}.json")
        .read_text(encoding="utf-8")
    )
    data = json.loads(text)
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"the {language} catalog must map string keys to string texts")
    return data


def supported(language: str | None) -> str | None:
    """``language`` if we have it (case-insensitively), else ``None``."""
    if not language:
        return None
    for code in LANGUAGES:
        if code.lower() == language.strip().lower():
            return code
    return None


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (``zh-TW`` counts as Chinese too: we
    have only Simplified Chinese, which beats English for a Chinese reader)."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-", 1)[0]
        code = {"zh": "zh-CN", "en": "en"}.get(primary)
        if code is None or quality <= 0:
            continue
        candidate = (quality, -position, code)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    return supported(cookie) or from_accept_language(accept_language) or DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    """``t("signin.title")`` or ``t("errors.too_many_attempts", seconds=30)`` in one language."""

    language: str

    def __call__(self, key: str, **params: Any) -> str:
        text = catalog(self.language).get(key)
        if text is None:
            log.warning("missing %s translation: %s", self.language, key)
            return MISSING_MARK.format(key=key)
        if params:
            try:
                return text.format(**params)
            except (KeyError, IndexError, ValueError):
                log.warning("bad placeholders in %s translation: %s", self.language, key)
                return text
        return text

    def has(self, key: str) -> bool:
        return key in catalog(self.language)
