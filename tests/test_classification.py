"""Classification levels, clearances, masking rules, and the personal-identifier validators."""

from __future__ import annotations

import pytest

from pactvault.access.classification import (
    LEVEL_NAMES,
    Level,
    can_see,
    level_of,
    mask,
    mask_bank_card,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
    require_clearance,
)
from pactvault.errors import InvalidInputError, PermissionDeniedError
from pactvault.identity.realname.identifiers import (
    id_number_check_character,
    is_valid_id_number,
    luhn_valid,
    normalise,
    normalise_bank_card,
    normalise_email_address,
    normalise_id_number,
    normalise_name,
    normalise_phone,
)

# The worked example of GB 11643-1999 (check character X) and two more computed with the rule.
GB_EXAMPLE = "11010519491231002X"
ID_A = "110105199003071239"
ID_B = "440308198512240012"


# -- levels and clearances -------------------------------------------------------------------


def test_levels_are_ordered_public_to_secret() -> None:
    assert LEVEL_NAMES == ("public", "internal", "confidential", "secret")
    assert Level.PUBLIC < Level.INTERNAL < Level.CONFIDENTIAL < Level.SECRET
    assert [level_of(name) for name in LEVEL_NAMES] == sorted(Level)


@pytest.mark.parametrize(
    ("clearance", "level", "visible"),
    [
        ("public", "public", True),
        ("public", "internal", False),
        ("internal", "internal", True),
        ("internal", "confidential", False),
        ("confidential", "internal", True),
        ("confidential", "secret", False),
        ("secret", "secret", True),
        (Level.SECRET, "public", True),
    ],
)
def test_a_clearance_covers_its_level_and_everything_below(
    clearance: str, level: str, visible: bool
) -> None:
    assert can_see(clearance, level) is visible


@pytest.mark.parametrize("bad", ["", "Secret", "top-secret", "restricted", None, 3])
def test_unknown_level_names_are_refused_not_guessed(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        level_of(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        can_see("secret", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        can_see(bad, "public")  # type: ignore[arg-type]


def test_require_clearance_names_both_levels() -> None:
    require_clearance("confidential", "internal")
    with pytest.raises(PermissionDeniedError, match=r"classified secret.*clearance is internal"):
        require_clearance("internal", "secret", "the card")


# -- masking -----------------------------------------------------------------------------------


def test_id_numbers_keep_only_the_first_and_last_character() -> None:
    assert mask_id_number(GB_EXAMPLE) == "1****************X"
    masked = mask_id_number(ID_A)
    assert len(masked) == 18 and masked.count("*") == 16
    # Neither the birth date (digits 7-14) nor the county (1-6) survives.
    assert "19900307" not in masked and "110105" not in masked


def test_mobile_numbers_keep_prefix_and_last_four() -> None:
    assert mask_phone("13812345678") == "138****5678"


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三明", "张*明"), ("张三", "张*"), ("张", "*"), ("欧阳娜娜", "欧**娜"), ("", "")],
)
def test_names(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_emails_keep_first_letter_and_domain_and_hide_the_length() -> None:
    assert mask_email("zhang.san@example.com") == "z***@example.com"
    assert mask_email("z@example.com") == "z***@example.com"


def test_bank_cards_keep_the_last_four_digits() -> None:
    assert mask_bank_card("6222020200112345678") == "*" * 15 + "5678"


@pytest.mark.parametrize(
    ("kind", "odd"),
    [
        ("id_number", "1101051990"),
        ("phone", "1381234"),
        ("phone", "138-1234-5678"),
        ("email", "not-an-address"),
        ("bank_card", "6222-0202"),
        ("unknown-kind", "secret value"),
    ],
)
def test_values_of_the_wrong_shape_are_masked_completely(kind: str, odd: str) -> None:
    assert set(mask(kind, odd)) == {"*"}
    assert len(mask(kind, odd)) == len(odd)


# -- resident ID numbers (GB 11643-1999, ISO 7064 MOD 11-2) -----------------------------------


def test_check_character_of_the_standard_example() -> None:
    assert id_number_check_character(GB_EXAMPLE[:17]) == "X"
    assert id_number_check_character(ID_A[:17]) == ID_A[17]
    assert id_number_check_character(ID_B[:17]) == ID_B[17]


def test_valid_numbers_are_normalised_to_upper_case_without_spaces() -> None:
    assert normalise_id_number(" 110105 19491231 002x ") == GB_EXAMPLE
    assert normalise_id_number("１１０１０５１９４９１２３１００２Ｘ") == GB_EXAMPLE  # full-width


@pytest.mark.parametrize(
    "bad",
    [
        ID_A[:17] + "5",  # wrong check digit
        "11010519491231002Y",  # not a digit or X
        "110105194912310",  # 15-digit first generation, invalid since 2013
        "010105194912310026",  # region cannot start with 0 (check character right)
        "110105190002300019",  # 30 February (check character right)
        "110105180001010010",  # born before 1900 (check character right)
        "",
    ],
)
def test_invalid_id_numbers_are_refused(bad: str) -> None:
    assert not is_valid_id_number(bad)
    with pytest.raises(InvalidInputError):
        normalise_id_number(bad)


def test_every_single_digit_error_is_caught() -> None:
    """MOD 11-2 detects all single-digit substitutions: flip each position in turn."""
    for position in range(17):
        for digit in "0123456789":
            if digit == ID_A[position]:
                continue
            altered = ID_A[:position] + digit + ID_A[position + 1 :]
            assert id_number_check_character(altered[:17]) != ID_A[17]


# -- mobile numbers, bank cards, names, email --------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["13812345678", "+86 138 1234 5678", "0086-138-1234-5678", "86 13812345678", "(138)12345678"],
)
def test_mobile_numbers_in_any_spelling_normalise_to_eleven_digits(spelling: str) -> None:
    assert normalise_phone(spelling) == "13812345678"


@pytest.mark.parametrize(
    "bad", ["12812345678", "1381234567", "138123456789", "010-12345678", "+1 13812345678", ""]
)
def test_non_mainland_mobile_numbers_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        normalise_phone(bad)


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("6222020200112345679")
    assert not luhn_valid("6222020200112345678")
    assert not luhn_valid("")
    assert not luhn_valid("42a2")
    assert normalise_bank_card("6222 0202 0011 2345 679") == "6222020200112345679"
    for bad in ("6222020200112345678", "4111 1111 11", "4" * 20):
        with pytest.raises(InvalidInputError):
            normalise_bank_card(bad)


def test_names_are_normalised_for_matching() -> None:
    assert normalise_name("  张  三 ") == "张三"
    assert normalise_name("阿依古丽 • 买买提") == "阿依古丽·买买提"  # one interpunct
    assert normalise_name("Li   Ming") == "Li Ming"
    for bad in ("", "   ", "张三1", "Robert'); DROP TABLE", "x" * 65, "张\x00三"):
        with pytest.raises(InvalidInputError):
            normalise_name(bad)


def test_email_and_dispatch() -> None:
    assert normalise_email_address(" Zhang@Example.COM ") == "zhang@example.com"
    assert normalise("phone", "+8613812345678") == "13812345678"
    with pytest.raises(InvalidInputError):
        normalise_email_address("zhang@localhost")
    with pytest.raises(InvalidInputError):
        normalise("passport", "E12345678")
    with pytest.raises(InvalidInputError):
        normalise("phone", 13812345678)  # type: ignore[arg-type]
