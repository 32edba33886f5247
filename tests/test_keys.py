"""Tests of the key hierarchy: root key file, org KEKs, data keys, signing keys, isolation."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from conftest import database_bytes
from pactvault.errors import IntegrityError, InvalidInputError, KeyServiceError, NotFoundError
from pactvault.keys import passphrase as kdf
from pactvault.keys.local import ROOT_KEY_FILE, UNPROTECTED_WARNING, LocalKeyService, LocalKeyStore
from pactvault.keys.service import KeyService, SigningKeyHandle, WrappedKey
from pactvault.store.base import Base
from pactvault.store.db import Database
from pactvault.store.key_models import KeyEncryptionKey, SigningKey

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """An empty database of each supported kind (SQLite and PostgreSQL, see conftest)."""
    database = Database.from_url(database_url)
    Base.metadata.create_all(
        database.engine, tables=[KeyEncryptionKey.__table__, SigningKey.__table__]
    )
    yield database
    database.dispose()


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def service(key_dir: Path) -> LocalKeyService:
    return LocalKeyService(LocalKeyStore(key_dir, None).initialise())


def fresh_service(key_dir: Path, passphrase: str | None = None) -> LocalKeyService:
    """A new process's view: root key re-read from disk, empty caches."""
    return LocalKeyService(LocalKeyStore(key_dir, passphrase).open())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- root key store --------------------------------------------------------------------------


def test_root_key_without_passphrase(key_dir: Path) -> None:
    store = LocalKeyStore(key_dir, None).initialise()
    path = key_dir / ROOT_KEY_FILE
    document = json.loads(path.read_text())
    assert document["protection"] == "none"
    assert document["warning"] == UNPROTECTED_WARNING
    assert document["active_version"] == 1
    assert store.protected is False
    assert store.warning is not None and "without passphrase protection" in store.warning
    assert mode(path) == 0o600
    assert mode(key_dir) == 0o700
    # another instance (another process) opens the same root key
    version, sealed = store.wrap(b"kek", aad=b"ctx")
    reopened = LocalKeyStore(key_dir, None).open()
    assert reopened.root_key_version == version == 1
    assert reopened.unwrap(version, sealed, aad=b"ctx") == b"kek"
    with pytest.raises(IntegrityError):
        reopened.unwrap(version, sealed, aad=b"other")


def test_root_key_with_passphrase(key_dir: Path) -> None:
    store = LocalKeyStore(key_dir, PASSPHRASE).initialise()
    raw_root = store._keys[1]  # white-box: the only way to know what must not be on disk
    path = key_dir / ROOT_KEY_FILE
    content = path.read_bytes()
    for encoding in (raw_root, raw_root.hex().encode(), base64.b64encode(raw_root)):
        assert encoding not in content
    document = json.loads(content)
    assert document["protection"] == "passphrase"
    assert "key" not in document["keys"][0]
    params = document["kdf"]
    assert params["name"] == "argon2id"  # cryptography ships Argon2id on this OpenSSL
    assert params["memory_cost_kib"] >= kdf.ARGON2ID_MINIMUM["memory_cost_kib"]
    assert params["iterations"] >= kdf.ARGON2ID_MINIMUM["iterations"]
    assert len(base64.b64decode(params["salt"])) >= 16
    assert store.protected and store.warning is None
    assert mode(path) == 0o600 and mode(key_dir) == 0o700

    version, sealed = store.wrap(b"kek", aad=b"ctx")
    reopened = LocalKeyStore(key_dir, PASSPHRASE).open()
    assert reopened.unwrap(version, sealed, aad=b"ctx") == b"kek"

    with pytest.raises(KeyServiceError, match="wrong passphrase or corrupted root key"):
        LocalKeyStore(key_dir, "wrong " + PASSPHRASE).open()
    with pytest.raises(KeyServiceError, match="passphrase"):
        LocalKeyStore(key_dir, None).open()


def test_passphrase_is_unicode_normalised(key_dir: Path) -> None:
    LocalKeyStore(key_dir, "caf\u00e9 au lait").initialise()  # composed é
    LocalKeyStore(key_dir, "cafe\u0301 au lait").open()  # decomposed e + accent


def test_tampered_root_key_file_fails(key_dir: Path) -> None:
    LocalKeyStore(key_dir, PASSPHRASE).initialise()
    path = key_dir / ROOT_KEY_FILE
    document = json.loads(path.read_text())
    sealed = bytearray(base64.b64decode(document["keys"][0]["sealed"]))
    sealed[-1] ^= 1
    document["keys"][0]["sealed"] = base64.b64encode(bytes(sealed)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(KeyServiceError, match="wrong passphrase or corrupted root key"):
        LocalKeyStore(key_dir, PASSPHRASE).open()
    path.write_text("not json")
    with pytest.raises(KeyServiceError):
        LocalKeyStore(key_dir, PASSPHRASE).open()


def test_initialise_refuses_to_overwrite(key_dir: Path) -> None:
    LocalKeyStore(key_dir, None).initialise()
    before = (key_dir / ROOT_KEY_FILE).read_bytes()
    with pytest.raises(KeyServiceError, match="already exists"):
        LocalKeyStore(key_dir, PASSPHRASE).initialise()
    assert (key_dir / ROOT_KEY_FILE).read_bytes() == before
    assert sorted(os.listdir(key_dir)) == [ROOT_KEY_FILE]


def test_open_errors(key_dir: Path) -> None:
    with pytest.raises(KeyServiceError, match="no root key"):
        LocalKeyStore(key_dir, None).open()
    LocalKeyStore(key_dir, None).initialise()
    with pytest.raises(KeyServiceError, match="not passphrase-protected"):
        LocalKeyStore(key_dir, PASSPHRASE).open()
    with pytest.raises(KeyServiceError, match="not open"):
        LocalKeyStore(key_dir, None).wrap(b"x", aad=b"")


def test_loose_file_permissions_produce_a_warning(key_dir: Path) -> None:
    LocalKeyStore(key_dir, PASSPHRASE).initialise()
    os.chmod(key_dir / ROOT_KEY_FILE, 0o644)
    store = LocalKeyStore(key_dir, PASSPHRASE).open()
    assert store.warning is not None and "chmod 600" in store.warning


# -- KEKs and data keys ----------------------------------------------------------------------


def test_local_service_implements_the_interface(service: LocalKeyService) -> None:
    assert isinstance(service, KeyService)


def test_kek_per_org_created_once(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        a1 = service.ensure_org_kek(session, "org-a")
        a2 = service.ensure_org_kek(session, "org-a")
        b1 = service.ensure_org_kek(session, "org-b")
    assert a1 == a2 != b1
    with db.read() as session:
        rows = session.scalars(select(KeyEncryptionKey).order_by(KeyEncryptionKey.org_id)).all()
        assert [(r.org_id, r.version, r.state, r.root_key_version) for r in rows] == [
            ("org-a", 1, "active", 1),
            ("org-b", 1, "active", 1),
        ]
        assert all(len(r.wrapped_key) == 1 + 12 + 32 + 16 for r in rows)


def test_service_never_commits(db: Database, service: LocalKeyService) -> None:
    with Session(db.engine) as session:
        service.ensure_org_kek(session, "org-a")
        service.new_data_key(session, "org-a", aad=b"obj")
        service.generate_signing_key(session, "org-a", purpose="signer")
        session.rollback()
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(KeyEncryptionKey)) == 0
        assert session.scalar(select(func.count()).select_from(SigningKey)) == 0


def test_new_kek_version_when_none_active(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        first = service.ensure_org_kek(session, "org-a")
        session.get(KeyEncryptionKey, first).state = "retired"
        session.flush()
        second = service.ensure_org_kek(session, "org-a")
        assert second != first
        assert session.get(KeyEncryptionKey, second).version == 2


def test_data_key_round_trip(db: Database, key_dir: Path, service: LocalKeyService) -> None:
    with db.write() as session:
        data_key, wrapped = service.new_data_key(session, "org-a", aad=b"doc-1|v1")
    assert len(data_key) == 32
    assert data_key not in wrapped.to_bytes()
    assert WrappedKey.from_bytes(wrapped.to_bytes()) == wrapped
    with db.read() as session:
        assert service.unwrap_data_key(session, "org-a", wrapped, aad=b"doc-1|v1") == data_key
        # a new process: root key from disk, KEK unwrapped from the database
        cold = fresh_service(key_dir)
        assert cold.unwrap_data_key(session, "org-a", wrapped, aad=b"doc-1|v1") == data_key
        with pytest.raises(IntegrityError):
            cold.unwrap_data_key(session, "org-a", wrapped, aad=b"doc-2|v1")
        tampered = WrappedKey(wrapped.kek_id, wrapped.kek_version, wrapped.wrapped[:-1] + b"\0")
        with pytest.raises(IntegrityError):
            cold.unwrap_data_key(session, "org-a", tampered, aad=b"doc-1|v1")
        wrong_version = WrappedKey(wrapped.kek_id, 2, wrapped.wrapped)
        with pytest.raises(IntegrityError):
            cold.unwrap_data_key(session, "org-a", wrong_version, aad=b"doc-1|v1")


def test_data_keys_are_fresh_per_object(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        k1, w1 = service.new_data_key(session, "org-a", aad=b"x")
        k2, w2 = service.new_data_key(session, "org-a", aad=b"x")
    assert k1 != k2 and w1.kek_id == w2.kek_id and w1.wrapped != w2.wrapped


def test_wrapped_key_of_another_org_is_not_found(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        _, wrapped_a = service.new_data_key(session, "org-a", aad=b"obj")
        kek_b = service.ensure_org_kek(session, "org-b")
    with db.read() as session:
        with pytest.raises(NotFoundError) as cross_tenant:
            service.unwrap_data_key(session, "org-b", wrapped_a, aad=b"obj")
        missing = WrappedKey("00000000-0000-0000-0000-000000000000", 1, wrapped_a.wrapped)
        with pytest.raises(NotFoundError) as unknown:
            service.unwrap_data_key(session, "org-b", missing, aad=b"obj")
        assert str(cross_tenant.value) == str(unknown.value) == "key not found"
        # relabelled to org B's KEK: the wrapping is bound to org A's KEK → integrity failure
        relabelled = WrappedKey(kek_b, 1, wrapped_a.wrapped)
        with pytest.raises(IntegrityError):
            service.unwrap_data_key(session, "org-b", relabelled, aad=b"obj")


def test_kek_moved_between_rows_fails(
    db: Database, key_dir: Path, service: LocalKeyService
) -> None:
    with db.write() as session:
        _, wrapped_b = service.new_data_key(session, "org-b", aad=b"obj")
        kek_a = service.ensure_org_kek(session, "org-a")
        # an attacker with database access copies org A's sealed KEK into org B's row
        row_a = session.get(KeyEncryptionKey, kek_a)
        session.get(KeyEncryptionKey, wrapped_b.kek_id).wrapped_key = row_a.wrapped_key
    with db.read() as session, pytest.raises(IntegrityError):
        fresh_service(key_dir).unwrap_data_key(session, "org-b", wrapped_b, aad=b"obj")


def test_destroyed_kek_cannot_be_used(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        _, wrapped = service.new_data_key(session, "org-a", aad=b"obj")
        session.get(KeyEncryptionKey, wrapped.kek_id).state = "destroyed"
    with db.read() as session, pytest.raises(KeyServiceError, match="destroyed"):
        service.unwrap_data_key(session, "org-a", wrapped, aad=b"obj")  # despite the cache


@pytest.mark.parametrize("data", [b"", b"\x02abc", b"\x01", b"\x01" + b"s\x00\x00\x00\x01x"])
def test_wrapped_key_from_bytes_rejects_garbage(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        WrappedKey.from_bytes(data)


# -- signing keys ----------------------------------------------------------------------------


def verify(public_key, signature: bytes, data: bytes, hash_algorithm=None) -> None:  # type: ignore[no-untyped-def]
    algorithm = hash_algorithm or hashes.SHA256()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    else:
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)


@pytest.mark.parametrize(
    ("algorithm", "key_type"),
    [("ec-p256", ec.EllipticCurvePrivateKey), ("rsa-3072", rsa.RSAPrivateKey)],
)
def test_signing_key_generate_sign_verify(
    db: Database, key_dir: Path, service: LocalKeyService, algorithm: str, key_type: type
) -> None:
    with db.write() as session:
        ref = service.generate_signing_key(session, "org-a", purpose="signer", algorithm=algorithm)
    assert ref.algorithm == algorithm
    with db.write() as session:
        # a cold service proves the key round-trips through the database and the root key file
        handle = fresh_service(key_dir).signing_key(session, "org-a", ref.key_id)
        assert isinstance(handle, SigningKeyHandle)
        assert handle.key_id == ref.key_id and handle.algorithm == algorithm
        signature = handle.sign(b"document digest input")
        verify(ref.public_key, signature, b"document digest input")
        verify(handle.public_key, handle.sign(b"x", "sha384"), b"x", hashes.SHA384())
        with pytest.raises(Exception):  # noqa: B017 - any cryptography InvalidSignature
            verify(ref.public_key, signature, b"another document")
        private = handle.private_key()
        assert isinstance(private, key_type)
        if algorithm == "rsa-3072":
            assert private.key_size == 3072
        with pytest.raises(InvalidInputError):
            handle.sign(b"x", "md5")
        assert repr(handle).startswith("LocalSigningKeyHandle(")
    with db.read() as session:
        row = session.get(SigningKey, ref.key_id)
        assert row.use_count == 2
        assert row.public_key_der == ref.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def test_signing_key_objects_are_cached(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        ref = service.generate_signing_key(session, "org-a", purpose="seal")
    with db.read() as session:
        first = service.signing_key(session, "org-a", ref.key_id).private_key()
        second = service.signing_key(session, "org-a", ref.key_id).private_key()
    assert first is second


def test_signing_key_of_another_org_is_not_found(db: Database, service: LocalKeyService) -> None:
    with db.write() as session:
        ref = service.generate_signing_key(session, "org-a", purpose="signer")
        service.ensure_org_kek(session, "org-b")
    with db.read() as session:
        with pytest.raises(NotFoundError) as cross_tenant:
            service.signing_key(session, "org-b", ref.key_id)
        with pytest.raises(NotFoundError) as unknown:
            service.signing_key(session, "org-b", "no-such-key")
    assert str(cross_tenant.value) == str(unknown.value) == "key not found"


def test_swapped_wrapped_private_keys_fail(
    db: Database, key_dir: Path, service: LocalKeyService
) -> None:
    with db.write() as session:
        one = service.generate_signing_key(session, "org-a", purpose="signer")
        two = service.generate_signing_key(session, "org-a", purpose="signer")
        wrapped_one = session.get(SigningKey, one.key_id).wrapped_private_key
        wrapped_two = session.get(SigningKey, two.key_id).wrapped_private_key
        session.execute(
            update(SigningKey)
            .where(SigningKey.id == one.key_id)
            .values(wrapped_private_key=wrapped_two)
        )
        session.execute(
            update(SigningKey)
            .where(SigningKey.id == two.key_id)
            .values(wrapped_private_key=wrapped_one)
        )
    cold = fresh_service(key_dir)
    with db.read() as session:
        with pytest.raises(IntegrityError):
            cold.signing_key(session, "org-a", one.key_id)
        with pytest.raises(IntegrityError):
            service.signing_key(session, "org-a", two.key_id)  # a stale cache is not trusted


def test_signing_key_rejects_unknown_purpose_and_algorithm(
    db: Database, service: LocalKeyService
) -> None:
    with db.write() as session:
        with pytest.raises(InvalidInputError):
            service.generate_signing_key(session, "org-a", purpose="everything")
        with pytest.raises(InvalidInputError):
            service.generate_signing_key(session, "org-a", purpose="signer", algorithm="dsa")


def test_no_plaintext_key_material_in_the_database_file(
    db: Database, tmp_path: Path, key_dir: Path
) -> None:
    store = LocalKeyStore(key_dir, PASSPHRASE).initialise()
    service = LocalKeyService(store)
    with db.write() as session:
        data_key, _ = service.new_data_key(session, "org-a", aad=b"obj")
        ec_ref = service.generate_signing_key(session, "org-a", purpose="signer")
        rsa_ref = service.generate_signing_key(
            session, "org-a", purpose="ca-root", algorithm="rsa-3072"
        )
        kek_id = service.ensure_org_kek(session, "org-a")
    with db.read() as session:
        secrets = {
            "root key": store._keys[1],  # white-box: the values that must never reach disk
            "kek": service._keks.get(kek_id).key,
            "data key": data_key,
        }
        for name, ref in (("ec pkcs8", ec_ref), ("rsa pkcs8", rsa_ref)):
            private = service.signing_key(session, "org-a", ref.key_id).private_key()
            der = private.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            secrets[name] = der
            secrets[name + " scalar"] = (
                private.private_numbers().private_value.to_bytes(32, "big")
                if isinstance(private, ec.EllipticCurvePrivateKey)
                else private.private_numbers().p.to_bytes(192, "big")
            )
    db.dispose()
    contents = database_bytes(db)
    assert len(contents) > 0
    for name, secret in secrets.items():
        assert secret not in contents, name
        assert secret.hex().encode() not in contents, name
    # and the public keys are there, so the scan does look at the right bytes (pg_dump writes
    # bytea as hex text, SQLite stores it raw)
    public_der = ec_ref.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public_der in contents or public_der.hex().encode() in contents
