"""Password policy (NIST SP 800-63B-4 / ASVS 5) and argon2id hashing, without a database."""

from __future__ import annotations

import unicodedata

import pytest

from pactvault.identity.blocklist import (
    MIN_STORED_LENGTH,
    Blocklist,
    build,
    entry_key,
    shipped_blocklist,
)
from pactvault.identity.errors import PasswordRejectedError
from pactvault.identity.passwords import (
    DEFAULT_PARAMETERS,
    HashParameters,
    PasswordHasher,
    PasswordPolicy,
)

policy = PasswordPolicy()


def reason(password: str, *, mfa: bool = False, context: tuple[str, ...] = ()) -> str | None:
    try:
        policy.check(password, has_second_factor=mfa, context=context)
    except PasswordRejectedError as exc:
        return exc.reason
    return None


def test_stored_hash_is_argon2id_with_the_documented_parameters() -> None:
    hasher = PasswordHasher()  # production parameters, on purpose
    stored = hasher.hash("violet-anchor-meadow-42-quartz")
    assert HashParameters(3, 65536, 4, 32, 16) == DEFAULT_PARAMETERS
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "violet" not in stored
    assert hasher.verify(stored, "violet-anchor-meadow-42-quartz")
    assert not hasher.verify(stored, "violet-anchor-meadow-42-quartZ")
    assert not hasher.needs_rehash(stored)
    assert PasswordHasher(
        HashParameters(time_cost=1, memory_cost=8192, parallelism=1)
    ).needs_rehash(stored)


def test_a_missing_hash_never_verifies() -> None:
    hasher = PasswordHasher(HashParameters(time_cost=1, memory_cost=8192, parallelism=1))
    assert not hasher.verify(None, "anything at all")
    assert not hasher.verify(None, "pactvault dummy password for absent accounts")
    assert not hasher.verify("not a hash", "x")


def test_length_rules_depend_on_a_second_factor() -> None:
    assert reason("a" * 7 + "Q", mfa=True) is None  # 8 with a second factor
    assert reason("zq7Lw-mv", mfa=True) is None
    assert reason("zq7Lw-m", mfa=True) == "too-short"
    assert reason("zq7Lw-mvzq7Lw-m", mfa=False) is None  # 15 alone
    assert reason("zq7Lw-mvzq7Lw-", mfa=False) == "too-short"
    assert reason("x7" * 128) is None  # 256 accepted
    assert reason("x7" * 128 + "x") == "too-long"


def test_long_and_unicode_passphrases_are_accepted_without_composition_rules() -> None:
    sixty_four = "the quick brown fox naps under an old oak tree by the river bank"
    assert len(sixty_four) == 64
    assert reason(sixty_four) is None
    assert reason("我的合同签名密码是一条很长的中文句子吧") is None  # no ASCII at all
    assert reason("ünïcödé pässwörd wïth émoji 🔐🗝️") is None
    assert reason("alllowercaseletterswithoutanything") is None  # no composition rules


def test_passwords_are_nfkc_normalised_before_hashing() -> None:
    hasher = PasswordHasher(HashParameters(time_cost=1, memory_cost=8192, parallelism=1))
    half = "Passphrase for contract 2030"
    full = "Ｐａｓｓｐｈｒａｓｅ ｆｏｒ ｃｏｎｔｒａｃｔ ２０３０"  # full-width forms (an IME)
    assert full != half
    assert hasher.verify(hasher.hash(half), full)
    assert policy.check(full, has_second_factor=True) == half
    composed = "café au lait au bord du lac"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert hasher.verify(hasher.hash(composed), decomposed)
    assert not hasher.verify(hasher.hash(composed), composed.replace("é", "e"))


def test_blocklisted_passwords_are_refused_case_insensitively() -> None:
    for common in ("password1234", "PassWord1234", "iloveyouforever", "123456789012345"):
        assert reason(common, mfa=True) == "common", common
    assert reason("qwertyuiopasdfghjkl") == "common"
    # Full-width forms of a listed password are caught after NFKC as well.
    assert reason("ｐａｓｓｗｏｒｄ１２３４", mfa=True) == "common"


def test_context_words_are_refused() -> None:
    ctx = ("ming.li@example.com", "Ming Li")
    assert reason("pactvault", mfa=True) == "context"
    assert reason("PactVault2030!!", mfa=True) == "context"
    assert reason("ming.li@example.com", mfa=True, context=ctx) == "context"
    assert reason("ming.li2030", mfa=True, context=ctx) == "context"
    assert reason("ming li is signing today", mfa=True, context=ctx) is None


def test_the_shipped_blocklist_is_large_sorted_and_normalised() -> None:
    shipped = shipped_blocklist()
    assert len(shipped) >= 100_000
    assert shipped.is_sorted_and_unique()
    assert "iloveyou" in shipped
    assert "ILoveYou" in shipped
    assert "violet-anchor-meadow-42-quartz" not in shipped
    assert 42 not in shipped  # type: ignore[operator]


def test_blocklist_builder_normalises_drops_short_entries_and_is_deterministic() -> None:
    entries = ["  Summer2030 \r", "summer2030", "short", "ＣＯＮＴＲＡＣＴ２０３０", "zebra-zebra"]
    data = build(entries)
    assert data == build(reversed(entries))
    listed = Blocklist(data)
    assert len(listed) == 3  # duplicates merged, "short" dropped
    assert "SUMMER2030" in listed
    assert "contract2030" in listed
    assert "short" not in listed
    assert len("short") < MIN_STORED_LENGTH
    assert entry_key("Zebra-Zebra") == entry_key("zebra-zebra")
    with pytest.raises(ValueError):
        Blocklist(b"123")
