"""Data classification (分类分级): levels, clearances, and how personal data is shown masked.

Contracts and personal-data fields carry a **level**; members hold a **clearance**. Both use the
same ordered scale::

    public < internal < confidential < secret

A clearance lets its holder read in clear everything at or below it (``can_see``); anything above
is refused or, for personal data, shown masked. Unknown level names are never guessed at: they
raise :class:`InvalidInputError` (fail closed), so a typo cannot silently widen access.

Masking rules (what someone without clearance sees). Each keeps only what a person needs to
recognise *their own* value and nothing that identifies a stranger:

==============  ==============================  =================================================
kind            example                         rule
==============  ==============================  =================================================
``id_number``   ``1****************4``          first 1 + last 1 of the 18 characters. Digits
                                                1–6 name the county, 7–14 the birth date, 17 the
                                                gender; showing any of them is showing personal
                                                data, so only the province digit and the check
                                                character (which carries no information) remain.
``phone``       ``138****5678``                 first 3 (carrier prefix) + last 4, the form
                                                Chinese banks and carriers print.
``name``        ``张*明`` / ``张*`` / ``*``      first and last character of names of 3 or more
                                                characters, first character of 2-character names,
                                                nothing of 1-character ones.
``email``       ``z***@example.com``            first character of the local part; the domain
                                                stays (it names the employer, not the person).
``bank_card``   ``************1234``            last 4 digits only, as on receipts.
==============  ==============================  =================================================

Masking works on the normalised value (see ``identity.realname.identifiers``). A value that does
not have the expected shape is masked *completely* rather than partially: never reveal more
because the input was odd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from types import MappingProxyType

from pactvault.errors import InvalidInputError, PermissionDeniedError

__all__ = [
    "LEVEL_NAMES",
    "MASKERS",
    "Level",
    "can_see",
    "level_of",
    "mask",
    "mask_bank_card",
    "mask_email",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "require_clearance",
]

MASK = "*"


class Level(IntEnum):
    """Classification levels; the integer order *is* the clearance order."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    SECRET = 3

    @property
    def label(self) -> str:
        """The stored spelling ("confidential"), as in the database CHECK constraints."""
        return self.name.lower()


#: Every level's stored name, lowest first.
LEVEL_NAMES: tuple[str, ...] = tuple(level.label for level in Level)
_BY_NAME: Mapping[str, Level] = MappingProxyType({level.label: level for level in Level})


def level_of(value: str | Level) -> Level:
    """Parse a stored level name (or pass a :class:`Level` through); unknown → InvalidInputError."""
    if isinstance(value, Level):
        return value
    if isinstance(value, str) and value in _BY_NAME:
        return _BY_NAME[value]
    raise InvalidInputError(f"classification level must be one of: {', '.join(LEVEL_NAMES)}")


def can_see(clearance: str | Level, level: str | Level) -> bool:
    """Whether a holder of ``clearance`` may read data classified ``level`` in clear."""
    return level_of(clearance) >= level_of(level)


def require_clearance(clearance: str | Level, level: str | Level, what: str = "this data") -> None:
    """Raise :class:`PermissionDeniedError` unless ``clearance`` covers ``level``."""
    if not can_see(clearance, level):
        raise PermissionDeniedError(
            f"{what} is classified {level_of(level).label}; your clearance is "
            f"{level_of(clearance).label}"
        )


# -- masking ---------------------------------------------------------------------------------


def _hide(value: str) -> str:
    return MASK * len(value)


def mask_id_number(value: str) -> str:
    """``110105199003071234`` → ``1****************4`` (18 characters, first and last kept)."""
    if len(value) != 18:
        return _hide(value)
    return value[0] + MASK * 16 + value[-1]


def mask_phone(value: str) -> str:
    """``13812345678`` → ``138****5678``."""
    if len(value) != 11 or not value.isdigit():
        return _hide(value)
    return value[:3] + MASK * 4 + value[-4:]


def mask_name(value: str) -> str:
    """``张三明`` → ``张*明``, ``张三`` → ``张*``, ``张`` → ``*``."""
    if len(value) <= 1:
        return _hide(value)
    if len(value) == 2:
        return value[0] + MASK
    return value[0] + MASK * (len(value) - 2) + value[-1]


def mask_email(value: str) -> str:
    """``zhang.san@example.com`` → ``z***@example.com`` (fixed-width: hides the length)."""
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return _hide(value)
    return local[0] + MASK * 3 + "@" + domain


def mask_bank_card(value: str) -> str:
    """``6222020200112345678`` → ``***************5678``."""
    if len(value) < 8 or not value.isdigit():
        return _hide(value)
    return MASK * (len(value) - 4) + value[-4:]


#: The masking rule of every personal-data kind.
MASKERS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "id_number": mask_id_number,
        "phone": mask_phone,
        "name": mask_name,
        "email": mask_email,
        "bank_card": mask_bank_card,
    }
)


def mask(kind: str, value: str) -> str:
    """The masked form of a ``kind`` value; an unknown kind is masked entirely (fail closed)."""
    masker = MASKERS.get(kind)
    return masker(value) if masker is not None else _hide(value)
