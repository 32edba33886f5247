"""The two catalogs agree, every string the pages show comes from them, and Chinese is Chinese."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from pactvault.identity.errors import PasswordRejectedError, TooManyAttemptsError
from pactvault.web import i18n
from pactvault.web.messages import KNOWN_DETAILS, error_message

WEB = Path(i18n.__file__).parent
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
SOURCES = sorted((WEB).rglob("*.py"))
STATIC_KEY = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.\-]*[A-Za-z0-9_\-])["']""")
#: Keys built at run time from a prefix and a value (a role, a channel, a method, ...).
DYNAMIC_PREFIXES = (
    "nav.",
    "home.tile.",
    "roles.",
    "security.",
    "verify2.",
    "channel.title.",
    "signin.code_sent.",
    "verifypage.revocation.",
    "verifypage.assurance.",
    "verifypage.method.",
    "errors.password.",
    "flash.",
    "errors.",
)


def test_both_catalogs_have_exactly_the_same_keys() -> None:
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    assert set(zh) - set(en) == set(), "keys only in zh-CN"
    assert set(en) - set(zh) == set(), "keys only in en"
    assert len(en) > 150


def test_placeholders_agree_between_languages() -> None:
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    fields = string.Formatter()
    for key in en:
        mine = {f for _, f, _, _ in fields.parse(en[key]) if f}
        theirs = {f for _, f, _, _ in fields.parse(zh[key]) if f}
        assert mine == theirs, f"{key}: {mine} vs {theirs}"


#: zh-CN texts that may be without Chinese characters: sample input, not prose.
NOT_PROSE = {"factors.phone_hint", "verifypage.time_utc"}


def test_the_chinese_catalog_is_translated() -> None:
    zh, en = i18n.catalog("zh-CN"), i18n.catalog("en")
    untranslated = [
        k for k, v in zh.items() if k not in NOT_PROSE and not re.search(r"[\u4e00-\u9fff]", v)
    ]
    assert not untranslated, f"zh-CN texts without Chinese: {untranslated}"
    english = [k for k, v in en.items() if k not in NOT_PROSE and re.search(r"[\u4e00-\u9fff]", v)]
    assert not english, f"en texts with Chinese: {english}"


def test_every_key_the_code_uses_exists() -> None:
    catalog = i18n.catalog("en")
    used = {
        key: path.name
        for path in [*TEMPLATES, *SOURCES]
        for key in STATIC_KEY.findall(path.read_text(encoding="utf-8"))
    }
    used |= {key: "messages.py" for key in KNOWN_DETAILS.values()}
    missing = {k: where for k, where in used.items() if k not in catalog}
    assert not missing, f"keys used but missing from the catalogs: {missing}"


def test_every_catalog_key_is_used() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in [*TEMPLATES, *SOURCES])
    unused = [
        k
        for k in i18n.catalog("en")
        if f'"{k}"' not in text and f"'{k}'" not in text and not k.startswith(DYNAMIC_PREFIXES)
    ]
    assert not unused, f"catalog keys nothing uses: {unused}"


def _visible_text(template: str) -> str:
    """What a template would print that is not produced by an expression: literal text and
    literal values of the attributes people see (placeholder, title, alt, aria-label)."""
    source = re.sub(r"{#.*?#}", "", template, flags=re.S)
    source = re.sub(r"{%.*?%}", "", source, flags=re.S)
    visible_attrs = re.findall(r'\b(?:placeholder|title|alt|aria-label)="([^"]*)"', source)
    source = re.sub(r"<(script|style)\b.*?</\1>", "", source, flags=re.S)
    source = re.sub(r"<[^>]*>", " ", source, flags=re.S)
    source = re.sub(r"{{.*?}}", " ", source, flags=re.S)
    literal_attrs = [re.sub(r"{{.*?}}", "", a) for a in visible_attrs]
    return " ".join([source, *literal_attrs])


def test_the_literal_text_scan_finds_literal_text() -> None:
    assert "Hello" in _visible_text('<p class="x">Hello {{ t("a.b") }}</p>')
    assert "Name" in _visible_text('<input placeholder="Name">')
    assert _visible_text('<p title="{{ t(\'a\') }}">{{ t("a") }}</p>{# Note #}').split() == []


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_show_no_literal_text(template: Path) -> None:
    text = _visible_text(template.read_text(encoding="utf-8"))
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    words = re.findall(r"[^\W\d_]{2,}", text)
    assert not words, f"{template.name} shows text outside the catalogs: {words}"


def test_a_missing_key_is_marked_not_fatal() -> None:
    t = i18n.Translator("en")
    assert t("no.such.key") == "[[no.such.key]]"
    assert t("errors.too_many_attempts", seconds=7) == "Too many attempts. Try again in 7 seconds."
    assert t("errors.too_many_attempts") == "Too many attempts. Try again in {seconds} seconds."


def test_service_errors_become_sentences_in_both_languages() -> None:
    en, zh = i18n.Translator("en"), i18n.Translator("zh-CN")
    throttled = TooManyAttemptsError(42)
    assert error_message(throttled, en) == "Too many attempts. Try again in 42 seconds."
    assert "42" in error_message(throttled, zh)
    short = PasswordRejectedError("too-short", "the password must be at least 15 characters")
    assert "at least 15 characters" in error_message(short, en)
    assert "15" in error_message(short, zh)
    unknown_reason = PasswordRejectedError("new-rule", "something new")
    assert error_message(unknown_reason, en) == en("errors.password.invalid")
    assert error_message(RuntimeError("SELECT * FROM secrets"), en) == en("errors.internal")
