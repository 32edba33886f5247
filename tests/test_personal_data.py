"""The personal data vault: encrypted fields, masking by clearance, audited reads, keyed search."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from conftest import database_bytes
from identity_kit import Kit, make_kit
from pactvault.access.classification import mask
from pactvault.errors import IntegrityError, InvalidInputError, NotFoundError, PermissionDeniedError
from pactvault.identity.personal_data import FieldRef, Owner, PersonalDataService
from pactvault.identity.principal import Principal
from pactvault.keys.local import LocalKeyService, LocalKeyStore
from pactvault.store.realname_models import PersonalDataField, PersonalDataIndexKey

ID_NUMBER = "110105199003071239"
PHONE = "13812345678"
CARD = "6222020200112345679"
NAME = "张三明"


@dataclass
class Env:
    kit: Kit
    vault: PersonalDataService
    owner: Principal
    bob: Principal

    def store(self, owner: Owner, kind: str, value: str, level: str | None = None) -> FieldRef:
        return self.vault.store(self.owner, owner=owner, kind=kind, value=value, level=level)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    kit = make_kit(database_url)
    keys = LocalKeyService(LocalKeyStore(tmp_path / "keys", None).initialise())
    owner = kit.organisation()
    bob = kit.member(owner, "bob@acme.test", "member")
    try:
        yield Env(kit, PersonalDataService(kit.db, keys, kit.access), owner, bob)
    finally:
        kit.close()


def bob_of(env: Env) -> Owner:
    return Owner("user", env.bob.user_id or "")


def test_the_database_never_holds_id_or_phone_numbers_nor_their_plain_hashes(env: Env) -> None:
    env.store(bob_of(env), "id_number", "110105 19900307 1239")
    env.store(bob_of(env), "phone", "+86 138-1234-5678")
    env.store(bob_of(env), "bank_card", CARD)
    env.store(bob_of(env), "name", NAME)
    at_rest = database_bytes(env.kit.db)
    kind_of = {ID_NUMBER: "id_number", PHONE: "phone", CARD: "bank_card"}
    assert b"personal_data" in at_rest  # the dump did capture our table
    for value in (ID_NUMBER, PHONE, CARD):
        assert value.encode() not in at_rest
        digest = hashlib.sha256(value.encode())
        assert digest.hexdigest().encode() not in at_rest
        assert digest.digest() not in at_rest
        # nor a masked form: its visible digits would be a partial leak
        assert mask(kind_of[value], value).encode() not in at_rest
    assert NAME.encode() not in at_rest
    with env.kit.db.read() as s:
        rows = s.execute(select(PersonalDataField)).scalars().all()
    assert len(rows) == 4
    assert all(len(row.search_hash) == 64 for row in rows)


def test_plaintext_only_with_clearance_and_every_plaintext_read_is_audited(env: Env) -> None:
    phone = env.store(bob_of(env), "phone", PHONE)
    assert phone.level == "confidential"  # the floor for mobile numbers
    shown = env.vault.read(env.owner, phone.id, clearance="internal")
    assert (shown.value, shown.masked) == ("138****5678", True)
    assert env.kit.events("personal_data.read") == []  # a masked view reveals nothing

    shown = env.vault.read(env.owner, phone.id, clearance="confidential", purpose="support call")
    assert (shown.value, shown.masked) == (PHONE, False)
    [event] = env.kit.events("personal_data.read")
    assert event.object_id == phone.id and event.actor_id == env.owner.user_id
    assert event.details == {
        "kind": "phone",
        "level": "confidential",
        "purpose": "support call",
        "own_data": False,
    }
    stored = env.kit.events("personal_data.store")
    assert len(stored) == 1 and PHONE not in str(stored[0].details)


def test_people_read_their_own_data_in_clear_but_not_others(env: Env) -> None:
    own = env.vault.store(env.bob, owner=bob_of(env), kind="id_number", value=ID_NUMBER)
    shown = env.vault.read(env.bob, own.id, clearance="public")
    assert (shown.value, shown.masked) == (ID_NUMBER, False)
    assert env.kit.events("personal_data.read")[-1].details["own_data"] is True

    owners = env.store(Owner("user", env.owner.user_id or ""), "phone", PHONE)
    with pytest.raises(PermissionDeniedError):  # a plain member has no member.read
        env.vault.read(env.bob, owners.id, clearance="secret")
    with pytest.raises(PermissionDeniedError):  # nor may store data about others
        env.vault.store(env.bob, owner=Owner("signer", "s-1"), kind="phone", value=PHONE)
    denials = env.kit.events("access.denied")
    assert [d.details["action"] for d in denials[-2:]] == [
        "personal_data.read",
        "personal_data.store",
    ]


def test_exact_match_search_by_keyed_hash(env: Env) -> None:
    first = env.store(bob_of(env), "id_number", ID_NUMBER)
    env.store(Owner("signer", "s-1"), "id_number", "440308198512240012")
    found = env.vault.find_by(env.owner, "id_number", "110105 19900307 1239", clearance="secret")
    assert [ref.id for ref in found] == [first.id]
    assert found[0].owner == bob_of(env)
    assert env.vault.find_by(env.owner, "phone", PHONE, clearance="secret") == []
    assert env.kit.events("personal_data.search")[-1].details == {"kind": "phone", "matches": 0}
    with env.kit.db.read() as s:
        stored = s.get(PersonalDataField, first.id)
        assert stored is not None
        assert stored.search_hash != hashlib.sha256(ID_NUMBER.encode()).hexdigest()


def test_searching_needs_clearance_for_the_kind(env: Env) -> None:
    env.store(bob_of(env), "bank_card", CARD)
    with pytest.raises(PermissionDeniedError, match="classified secret"):
        env.vault.find_by(env.owner, "bank_card", CARD, clearance="confidential")
    [denial] = env.kit.events("access.denied")
    assert denial.details["action"] == "personal_data.search"
    assert env.kit.events("personal_data.search") == []


def test_tenants_are_isolated(env: Env) -> None:
    mine = env.store(bob_of(env), "id_number", ID_NUMBER)
    other = env.kit.organisation("Other Co", "owner@other.test")
    theirs = env.vault.store(
        other, owner=Owner("user", other.user_id or ""), kind="id_number", value=ID_NUMBER
    )
    with pytest.raises(NotFoundError) as crossed:
        env.vault.read(other, mine.id, clearance="secret")
    with pytest.raises(NotFoundError) as missing:
        env.vault.read(other, "00000000-0000-0000-0000-000000000000", clearance="secret")
    assert str(crossed.value) == str(missing.value)
    found = env.vault.find_by(other, "id_number", ID_NUMBER, clearance="secret")
    assert [ref.id for ref in found] == [theirs.id]
    with env.kit.db.read() as s:
        hashes = {s.get(PersonalDataField, ref.id).search_hash for ref in (mine, theirs)}  # type: ignore[union-attr]
        assert s.execute(select(func.count()).select_from(PersonalDataIndexKey)).scalar() == 2
    assert len(hashes) == 2  # the same number hashes differently in each organisation


def test_a_ciphertext_moved_to_another_row_does_not_open(env: Env) -> None:
    victim = env.store(bob_of(env), "phone", PHONE)
    decoy = env.store(Owner("signer", "s-1"), "phone", "13900000000")
    with env.kit.db.write() as s:
        source = s.get(PersonalDataField, victim.id)
        assert source is not None
        s.execute(
            update(PersonalDataField)
            .where(PersonalDataField.id == decoy.id)
            .values(ciphertext=source.ciphertext, wrapped_key=source.wrapped_key)
        )
    with pytest.raises(IntegrityError):
        env.vault.read(env.owner, decoy.id, clearance="secret")
    assert env.vault.read(env.owner, victim.id, clearance="secret").value == PHONE


def test_levels_can_be_raised_but_never_lowered(env: Env) -> None:
    with pytest.raises(InvalidInputError, match="confidential or higher"):
        env.store(bob_of(env), "id_number", ID_NUMBER, level="internal")
    secret = env.store(bob_of(env), "id_number", ID_NUMBER, level="secret")
    assert secret.level == "secret"
    shown = env.vault.read(env.owner, secret.id, clearance="confidential")
    assert shown.masked and shown.value == "1****************9"


def test_invalid_values_are_refused_before_anything_is_stored(env: Env) -> None:
    for kind, value in (("phone", "12345"), ("id_number", ID_NUMBER[:17] + "0"), ("email", "x")):
        with pytest.raises(InvalidInputError):
            env.store(bob_of(env), kind, value)
    with env.kit.db.read() as s:
        assert s.execute(select(func.count()).select_from(PersonalDataField)).scalar() == 0
    assert env.kit.events("personal_data.store") == []
