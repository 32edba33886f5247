"""Validation and normalisation of personal identifiers: names, resident ID numbers, mobile
numbers, bank cards and email addresses.

Every value is normalised to *one* spelling before it is encrypted, hashed for search or sent to
an identity provider: the keyed hash that makes exact-match search possible only matches if
"+86 138-1234-5678" and "13812345678" become the same string. Anything that is not a valid
identifier of its kind is refused here (:class:`InvalidInputError`), before it is stored or
billed by a provider.

- Resident ID numbers (居民身份证号码, GB 11643-1999): 17 digits and a check character computed
  with ISO 7064 MOD 11-2; digits 7–14 are the birth date, which must be a real date. The
  first-generation 15-digit numbers have been invalid since 2013 and are refused.
- Mainland mobile numbers: ``1[3-9]`` and nine more digits, optionally written with the +86 /
  0086 country code, spaces or hyphens.
- Bank card numbers (PAN): 12 to 19 digits passing the Luhn check (ISO/IEC 7812-1).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType

from pactvault.errors import InvalidInputError
from pactvault.identity.members import normalise_email

__all__ = [
    "PERSONAL_DATA_KINDS",
    "id_number_check_character",
    "is_valid_id_number",
    "luhn_valid",
    "normalise",
    "normalise_bank_card",
    "normalise_email_address",
    "normalise_id_number",
    "normalise_name",
    "normalise_phone",
]

#: The kinds of personal data pactvault stores (see ``identity.personal_data``).
PERSONAL_DATA_KINDS: tuple[str, ...] = ("name", "id_number", "phone", "bank_card", "email")

_SEPARATORS = re.compile(r"[\s\-()]+")

# -- resident ID numbers ---------------------------------------------------------------------

_ID_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")
# ISO 7064 MOD 11-2: weight of position i (0-based, left to right) is 2^(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
_INVALID_ID = "the resident ID number is not valid (18 characters, check character must match)"


def id_number_check_character(first17: str) -> str:
    """The GB 11643-1999 check character ("0"–"9" or "X") for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise InvalidInputError("an ID number check needs exactly 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalise_id_number(value: str) -> str:
    """Upper-case, without spaces; refuses a wrong shape, birth date or check character."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value or "")).upper()
    if not _ID_SHAPE.fullmatch(text):
        raise InvalidInputError(_INVALID_ID)
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise InvalidInputError(_INVALID_ID) from None
    if born.year < 1900:
        raise InvalidInputError(_INVALID_ID)
    if id_number_check_character(text[:17]) != text[17]:
        raise InvalidInputError(_INVALID_ID)
    return text


def is_valid_id_number(value: str) -> bool:
    try:
        normalise_id_number(value)
    except InvalidInputError:
        return False
    return True


# -- mobile numbers --------------------------------------------------------------------------

_MOBILE = re.compile(r"1[3-9]\d{9}")
_COUNTRY_CODE = re.compile(r"^(?:\+|00)?86(?=1[3-9]\d{9}$)")


def normalise_phone(value: str) -> str:
    """``+86 138-1234-5678`` → ``13812345678``; anything but a mainland mobile is refused."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value or ""))
    text = _COUNTRY_CODE.sub("", text, count=1)
    if not text.isascii() or not _MOBILE.fullmatch(text):
        raise InvalidInputError("a mainland China mobile number is required (1[3-9] + 9 digits)")
    return text


# -- bank cards ------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of ISO/IEC 7812-1 over a string of ASCII digits."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def normalise_bank_card(value: str) -> str:
    """Digits only; 12 to 19 of them, passing the Luhn check."""
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value or ""))
    if not (12 <= len(text) <= 19) or not luhn_valid(text):
        raise InvalidInputError("the bank card number is not valid")
    return text


# -- names -----------------------------------------------------------------------------------

# Minority names are written with the interpunct 间隔号 (U+00B7); people type many look-alikes.
_INTERPUNCTS = re.compile("[\u2022\u2027\u2219\u22c5\u30fb\u00b7]")
_NAME_PUNCTUATION = frozenset(" ·-'.")
_MAX_NAME = 64  # the X.520 upper bound of the certificate's commonName


def _is_cjk(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK ")


def normalise_name(value: str) -> str:
    """NFKC, one interpunct, single spaces (none at all in Chinese names); letters only."""
    text = unicodedata.normalize("NFKC", value or "")
    text = _INTERPUNCTS.sub("\u00b7", " ".join(text.split()))
    if any(_is_cjk(char) for char in text):
        text = text.replace(" ", "")
        text = re.sub(r"\s*\u00b7\s*", "\u00b7", text)
    if not text or len(text) > _MAX_NAME:
        raise InvalidInputError(f"the name must be 1 to {_MAX_NAME} characters")
    for char in text:
        if char not in _NAME_PUNCTUATION and unicodedata.category(char)[0] not in "LM":
            raise InvalidInputError("the name may contain only letters, spaces and · - ' .")
    return text


# -- email -----------------------------------------------------------------------------------


def normalise_email_address(value: str) -> str:
    """The same spelling the account tables use (``identity.members.normalise_email``)."""
    text = normalise_email(value)
    local, at, domain = text.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(text) > 320
        or any(c.isspace() for c in text)
    ):
        raise InvalidInputError("a valid email address is required")
    return text


_NORMALISERS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "name": normalise_name,
        "id_number": normalise_id_number,
        "phone": normalise_phone,
        "bank_card": normalise_bank_card,
        "email": normalise_email_address,
    }
)


def normalise(kind: str, value: str) -> str:
    """Validate and normalise ``value`` as a ``kind``; an unknown kind is refused."""
    normaliser = _NORMALISERS.get(kind)
    if normaliser is None:
        raise InvalidInputError(f"unknown personal data kind {kind!r}")
    if not isinstance(value, str):
        raise InvalidInputError(f"the {kind} must be text")
    return normaliser(value)
