"""The instance's backup identity: an instance id and the Ed25519 key that signs manifests.

Both live in ``system_state`` (so they are in every backup and survive a restore: a restored
instance goes on backing up as the same instance, into the same content-addressed objects). The
private key is never stored in clear: it is sealed (AES-256-GCM) under a data key that the key
service wraps with the platform KEK (org ``_platform``), bound to the instance id and public key
by the associated data — the same construction as the ledger's log key.

The *public* key is the verifier: written next to the backups at every destination
(``backup-signing-key.pem``, standard SubjectPublicKeyInfo PEM, so ``openssl pkeyutl -verify``
can check a manifest) and carried inside the key ceremony's shares, which is what a restore on a
new machine trusts. Its fingerprint is ``SHA256:`` + hex SHA-256 of the raw 32-byte key.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy.exc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_public_key,
)
from sqlalchemy.orm import Session

from pactvault.audit.journal import Actor, record
from pactvault.backup.errors import BackupIntegrityError
from pactvault.crypto import aead
from pactvault.crypto.encoding import encode_fields
from pactvault.crypto.hashing import equal
from pactvault.errors import IntegrityError, InvalidInputError
from pactvault.keys.secrets import PLATFORM_ORG
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.models import SystemState

__all__ = [
    "BackupIdentity",
    "BackupKeys",
    "fingerprint",
    "load_trusted_key",
]

STATE_INSTANCE = "backup:instance"
STATE_SIGNING_KEY = "backup:signing-key"
_FINGERPRINT = re.compile(r"SHA256:[0-9a-f]{64}")


def fingerprint(raw_public_key: bytes) -> str:
    return "SHA256:" + hashlib.sha256(raw_public_key).hexdigest()


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class BackupIdentity:
    instance_id: str
    public_key: Ed25519PublicKey

    @property
    def raw_public_key(self) -> bytes:
        return _raw(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw_public_key)

    def pem(self) -> bytes:
        return self.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def accepts(self, raw_public_key: bytes) -> bool:
        return equal(fingerprint(raw_public_key), self.fingerprint)

    def verify(self, message: bytes, signature: bytes, *, what: str) -> None:
        """Check an Ed25519 signature; failure → BackupIntegrityError naming ``what``."""
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            raise BackupIntegrityError(
                f"{what}: the signature does not verify with backup key {self.fingerprint}"
            ) from None


@dataclass(frozen=True)
class TrustedKey:
    """What a restore trusts: a whole public key, or only its fingerprint (from a share sheet),
    which the manifest's embedded key must match."""

    fingerprint: str
    public_key: Ed25519PublicKey | None = None

    def accepts(self, raw_public_key: bytes) -> bool:
        return equal(fingerprint(raw_public_key), self.fingerprint)


def load_trusted_key(value: str | Path) -> TrustedKey:
    """A PEM file (``backup-signing-key.pem``) or a ``SHA256:…`` fingerprint."""
    text = str(value).strip()
    if _FINGERPRINT.fullmatch(text.lower().replace("sha256:", "SHA256:")):
        return TrustedKey(fingerprint="SHA256:" + text.split(":", 1)[1].lower())
    path = Path(text)
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError:
        raise InvalidInputError(
            f"the trusted backup key {text!r} is neither a readable PEM file nor a "
            "SHA256:… fingerprint"
        ) from None
    except ValueError:
        raise InvalidInputError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError(f"{path} is not an Ed25519 public key")
    return TrustedKey(fingerprint(_raw(key)), key)


def _key_context(instance_id: str, public_key: bytes) -> bytes:
    return encode_fields("pactvault/backup-signing-key/v1", instance_id, public_key)


class BackupKeys:
    """Creates (once) and opens the backup identity in the platform database."""

    def __init__(self, db: Database, keys: KeyService) -> None:
        self._db = db
        self._keys = keys
        self._cached: tuple[BackupIdentity, Ed25519PrivateKey] | None = None

    def identity(self) -> BackupIdentity:
        return self._signer()[0]

    def sign(self, message: bytes) -> bytes:
        return self._signer()[1].sign(message)

    def _signer(self) -> tuple[BackupIdentity, Ed25519PrivateKey]:
        if self._cached is None:
            with self._db.read() as session:
                found = self._open(session)
            if found is None:
                try:
                    with self._db.write() as session:
                        found = self._open(session) or self._create(session)
                except sqlalchemy.exc.IntegrityError:  # another process created it just now
                    with self._db.read() as session:
                        found = self._open(session)
                if found is None:
                    raise IntegrityError("the backup signing key could not be stored")
            self._cached = found
        return self._cached

    def _open(self, session: Session) -> tuple[BackupIdentity, Ed25519PrivateKey] | None:
        instance = session.get(SystemState, STATE_INSTANCE)
        stored = session.get(SystemState, STATE_SIGNING_KEY)
        if instance is None or stored is None:
            return None
        try:
            instance_id = str(instance.value["instance_id"])
            public = bytes.fromhex(stored.value["public_key"])
            wrapped = WrappedKey.from_bytes(bytes.fromhex(stored.value["wrapped_key"]))
            sealed = bytes.fromhex(stored.value["sealed_private_key"])
        except (KeyError, TypeError, ValueError):
            raise IntegrityError("the stored backup signing key is malformed") from None
        context = _key_context(instance_id, public)
        data_key = self._keys.unwrap_data_key(session, PLATFORM_ORG, wrapped, aad=context)
        secret = aead.open_sealed(data_key, sealed, aad=context)
        try:
            private = Ed25519PrivateKey.from_private_bytes(secret)
        except ValueError:
            raise IntegrityError("the backup signing key is damaged") from None
        if not equal(_raw(private.public_key()), public):
            raise IntegrityError("the backup signing key does not match its public key")
        return BackupIdentity(instance_id, private.public_key()), private

    def _create(self, session: Session) -> tuple[BackupIdentity, Ed25519PrivateKey]:
        instance = session.get(SystemState, STATE_INSTANCE)
        instance_id = str(instance.value["instance_id"]) if instance else str(uuid.uuid4())
        private = Ed25519PrivateKey.generate()
        public = _raw(private.public_key())
        context = _key_context(instance_id, public)
        data_key, wrapped = self._keys.new_data_key(session, PLATFORM_ORG, aad=context)
        secret = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        if instance is None:
            session.add(SystemState(name=STATE_INSTANCE, value={"instance_id": instance_id}))
        session.add(
            SystemState(
                name=STATE_SIGNING_KEY,
                value={
                    "public_key": public.hex(),
                    "wrapped_key": wrapped.to_bytes().hex(),
                    "sealed_private_key": aead.seal(data_key, secret, aad=context).hex(),
                    "created_at": utcnow().isoformat(),
                },
            )
        )
        session.flush()
        identity = BackupIdentity(instance_id, private.public_key())
        record(
            session,
            Actor.system(),
            "backup.key.create",
            object_type="backup",
            details={"instance_id": instance_id, "fingerprint": identity.fingerprint},
        )
        return identity, private
