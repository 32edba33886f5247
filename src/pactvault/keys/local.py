"""The local key backend: a root key in ``<directory>/root-key.json`` and the key service on top.

``LocalKeyStore`` owns the root key and never hands it out: it only seals and opens KEKs. The file
is written atomically (temp file, fsync, link/rename, directory fsync) with mode 0600 in a 0700
directory, and an existing root key is never overwritten — losing it loses every document.

With a passphrase the root key is sealed (AES-256-GCM) under a key derived by argon2id (see
``keys.passphrase``), so the data directory alone — a stolen disk or backup — reveals nothing.
Without one the key is stored raw, marked ``"protection": "none"``, and ``warning`` tells the
operator what that means.

``LocalKeyService`` implements :class:`~pactvault.keys.service.KeyService` with AES-256-GCM
wrapping: root key → per-organisation KEK (``key_encryption_keys``) → data keys and PKCS#8
signing keys. Unwrapped KEKs and parsed private keys are cached per process (bounded LRU), but
every call still reads the key's row first, so tenant checks and ``destroyed`` state always come
from the database, not from the cache.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.crypto import aead
from pactvault.crypto.atomic import atomic_write
from pactvault.crypto.encoding import encode_fields
from pactvault.errors import (
    IntegrityError,
    InvalidInputError,
    KeyServiceError,
    NotFoundError,
)
from pactvault.keys import passphrase as kdf
from pactvault.keys.cache import LRUCache
from pactvault.keys.context import data_key_context, kek_context, signing_key_context
from pactvault.keys.service import (
    ALGORITHMS,
    EC_P256,
    PURPOSES,
    KeyService,
    PrivateKey,
    SigningKeyHandle,
    SigningKeyRef,
    WrappedKey,
)
from pactvault.keys.signing import (
    LocalSigningKeyHandle,
    generate_private_key,
    load_private_key,
    private_key_der,
    public_key_der,
)
from pactvault.store.base import utcnow
from pactvault.store.key_models import KeyEncryptionKey, SigningKey

__all__ = ["ROOT_KEY_FILE", "UNPROTECTED_WARNING", "LocalKeyService", "LocalKeyStore"]

ROOT_KEY_FILE = "root-key.json"
FILE_FORMAT = "pactvault-root-key"
FILE_FORMAT_VERSION = 1
UNPROTECTED_WARNING = (
    "WARNING: the root key is stored without passphrase protection. Anyone who can read the data "
    "directory (or a backup of it) can decrypt every stored contract and use every signing key. "
    "Set a passphrase (PACTVAULT_PASSPHRASE) for production deployments."
)
_LOOSE_PERMISSIONS_WARNING = (
    "WARNING: the root key file is readable by other users; restrict it with chmod 600."
)
_WRONG_PASSPHRASE = "wrong passphrase or corrupted root key"  # noqa: S105 - a message
_NOT_FOUND = "key not found"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def _file_seal_context(version: int) -> bytes:
    """AAD for sealing a root key under the passphrase key: format and root key version."""
    return encode_fields(FILE_FORMAT, FILE_FORMAT_VERSION, version)


def _root_wrap_context(version: int, aad: bytes) -> bytes:
    """AAD for anything the root key seals: its own version, then the caller's context."""
    return encode_fields("pactvault/root-wrap/v1", version, aad)


class LocalKeyStore:
    """The root key, kept in a JSON file; seals and opens KEKs without exposing the root key.

    ``initialise()`` creates a root key (refusing if one exists); ``open()`` loads it. The file
    holds a list of versioned root keys with an active version, ready for rotation.
    """

    def __init__(self, directory: Path, passphrase: str | None) -> None:
        self._directory = Path(directory)
        self._passphrase = passphrase or None
        self._keys: dict[int, bytes] = {}
        self._active_version = 0
        self._protected = False
        self._loose_permissions = False

    @property
    def path(self) -> Path:
        return self._directory / ROOT_KEY_FILE

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def is_open(self) -> bool:
        return bool(self._keys)

    @property
    def protected(self) -> bool:
        """True if the root key file is passphrase-protected (valid once opened)."""
        return self._protected

    @property
    def warning(self) -> str | None:
        """A message the CLI must print at start-up, or None if the set-up is sound."""
        messages = []
        if self.is_open and not self._protected:
            messages.append(UNPROTECTED_WARNING)
        if self._loose_permissions:
            messages.append(_LOOSE_PERMISSIONS_WARNING)
        return "\n".join(messages) or None

    @property
    def root_key_version(self) -> int:
        self._require_open()
        return self._active_version

    # -- life cycle -------------------------------------------------------------------------

    def initialise(self) -> LocalKeyStore:
        """Create a fresh random 256-bit root key (version 1); never replaces an existing one."""
        if self.exists():
            raise KeyServiceError("a root key already exists; refusing to overwrite it")
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._directory, 0o700)
        version = 1
        root_key = aead.generate_key()
        document: dict[str, Any] = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "active_version": version,
        }
        if self._passphrase is None:
            document["protection"] = "none"
            document["warning"] = UNPROTECTED_WARNING
            document["keys"] = [{"version": version, "key": _b64(root_key)}]
        else:
            params = kdf.new_params()
            file_key = kdf.derive_key(self._passphrase, params)
            sealed = aead.seal(file_key, root_key, aad=_file_seal_context(version))
            document["protection"] = "passphrase"
            document["kdf"] = params
            document["keys"] = [{"version": version, "sealed": _b64(sealed)}]
        payload = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        try:
            atomic_write(self.path, [payload], no_clobber=True)
        except FileExistsError:
            raise KeyServiceError("a root key already exists; refusing to overwrite it") from None
        self._keys = {version: root_key}
        self._active_version = version
        self._protected = self._passphrase is not None
        return self

    def open(self) -> LocalKeyStore:
        """Load the root key(s). Wrong passphrase or a damaged file → KeyServiceError."""
        try:
            raw = self.path.read_bytes()
            file_mode = self.path.stat().st_mode
        except FileNotFoundError:
            raise KeyServiceError("no root key found; initialise the key store first") from None
        try:
            document = json.loads(raw)
            if document.get("format") != FILE_FORMAT:
                raise ValueError("not a root key file")
            if document.get("format_version") != FILE_FORMAT_VERSION:
                raise ValueError("unsupported format version")
            active = document["active_version"]
            entries = document["keys"]
            protection = document["protection"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyServiceError("the root key file is damaged or not a root key file") from None
        if protection == "none":
            if self._passphrase is not None:
                raise KeyServiceError(
                    "a passphrase was given but the root key is not passphrase-protected"
                )
            keys = self._read_plain(entries)
        elif protection == "passphrase":
            if self._passphrase is None:
                raise KeyServiceError("the root key is passphrase-protected; give the passphrase")
            keys = self._read_sealed(entries, document.get("kdf"))
        else:
            raise KeyServiceError("the root key file names an unknown protection")
        if not isinstance(active, int) or active not in keys:
            raise KeyServiceError("the root key file is damaged or not a root key file")
        self._keys = keys
        self._active_version = active
        self._protected = protection == "passphrase"
        self._loose_permissions = bool(stat.S_IMODE(file_mode) & 0o077)
        return self

    @staticmethod
    def _read_plain(entries: Any) -> dict[int, bytes]:
        try:
            keys = {int(e["version"]): _unb64(e["key"]) for e in entries}
        except (ValueError, KeyError, TypeError):
            raise KeyServiceError("the root key file is damaged or not a root key file") from None
        if not keys or any(len(k) != aead.KEY_SIZE for k in keys.values()):
            raise KeyServiceError("the root key file is damaged or not a root key file")
        return keys

    def _read_sealed(self, entries: Any, params: Any) -> dict[int, bytes]:
        assert self._passphrase is not None
        if not isinstance(params, dict):
            raise KeyServiceError("the root key file is damaged or not a root key file")
        file_key = kdf.derive_key(self._passphrase, params)
        keys: dict[int, bytes] = {}
        try:
            for entry in entries:
                version = int(entry["version"])
                sealed = _unb64(entry["sealed"])
                keys[version] = aead.open_sealed(file_key, sealed, aad=_file_seal_context(version))
        except (ValueError, KeyError, TypeError, IntegrityError):
            raise KeyServiceError(_WRONG_PASSPHRASE) from None
        if not keys or any(len(k) != aead.KEY_SIZE for k in keys.values()):
            raise KeyServiceError(_WRONG_PASSPHRASE)
        return keys

    # -- root wrapping (the root key itself never leaves this object) --------------------------

    def wrap(self, plaintext: bytes, *, aad: bytes) -> tuple[int, bytes]:
        """Seal under the active root key; returns (root key version, sealed bytes)."""
        self._require_open()
        version = self._active_version
        return version, aead.seal(
            self._keys[version], plaintext, aad=_root_wrap_context(version, aad)
        )

    def unwrap(self, version: int, sealed: bytes, *, aad: bytes) -> bytes:
        """Open something sealed by :meth:`wrap`. Altered or misplaced → IntegrityError."""
        self._require_open()
        key = self._keys.get(version)
        if key is None:
            raise KeyServiceError("the root key version needed is not in the key store")
        return aead.open_sealed(key, sealed, aad=_root_wrap_context(version, aad))

    def _require_open(self) -> None:
        if not self._keys:
            raise KeyServiceError("the key store is not open")


@dataclass(frozen=True)
class _CachedKek:
    org_id: str
    version: int
    wrapped: bytes
    key: bytes


@dataclass(frozen=True)
class _CachedSigningKey:
    org_id: str
    kek_id: str
    wrapped: bytes
    key: PrivateKey


class LocalKeyService(KeyService):
    """:class:`KeyService` over a :class:`LocalKeyStore`, wrapping with AES-256-GCM."""

    def __init__(
        self,
        key_store: LocalKeyStore,
        *,
        kek_cache_size: int = 1024,
        signing_key_cache_size: int = 256,
    ) -> None:
        if not key_store.is_open:
            key_store.open()
        self._store = key_store
        self._keks: LRUCache[str, _CachedKek] = LRUCache(kek_cache_size)
        self._signing: LRUCache[str, _CachedSigningKey] = LRUCache(signing_key_cache_size)

    def clear_caches(self) -> None:
        """Drop every cached KEK and private key (after destroying or rotating keys)."""
        self._keks.clear()
        self._signing.clear()

    # -- KEKs -------------------------------------------------------------------------------

    def ensure_org_kek(self, session: Session, org_id: str) -> str:
        """Return the active KEK id, creating the next version if the org has no active KEK.

        Two units of work creating an org's first KEK concurrently collide on the unique
        (org_id, version) constraint and one of them fails at flush/commit; create the KEK in the
        unit of work that creates the organisation to avoid that race altogether.
        """
        _check_org(org_id)
        active = session.scalars(
            select(KeyEncryptionKey)
            .where(KeyEncryptionKey.org_id == org_id, KeyEncryptionKey.state == "active")
            .order_by(KeyEncryptionKey.version.desc())
            .limit(1)
        ).first()
        if active is not None:
            return active.id
        latest = session.scalar(
            select(func.max(KeyEncryptionKey.version)).where(KeyEncryptionKey.org_id == org_id)
        )
        version = (latest or 0) + 1
        kek_id = str(uuid.uuid4())
        kek = aead.generate_key()
        root_version, wrapped = self._store.wrap(
            kek, aad=kek_context(org_id=org_id, kek_id=kek_id, version=version)
        )
        session.add(
            KeyEncryptionKey(
                id=kek_id,
                org_id=org_id,
                version=version,
                wrapped_key=wrapped,
                root_key_version=root_version,
                state="active",
                created_at=utcnow(),
            )
        )
        session.flush()
        self._keks.put(kek_id, _CachedKek(org_id, version, wrapped, kek))
        return kek_id

    def _kek_row(self, session: Session, org_id: str, kek_id: str) -> KeyEncryptionKey:
        row = session.get(KeyEncryptionKey, kek_id)
        if row is None or row.org_id != org_id:
            raise NotFoundError(_NOT_FOUND)
        if row.state == "destroyed":
            raise KeyServiceError("the key has been destroyed")
        return row

    def _kek_key(self, row: KeyEncryptionKey) -> bytes:
        cached = self._keks.get(row.id)
        if (
            cached is not None
            and cached.org_id == row.org_id
            and cached.version == row.version
            and cached.wrapped == row.wrapped_key
        ):
            return cached.key
        key = self._store.unwrap(
            row.root_key_version,
            row.wrapped_key,
            aad=kek_context(org_id=row.org_id, kek_id=row.id, version=row.version),
        )
        self._keks.put(row.id, _CachedKek(row.org_id, row.version, row.wrapped_key, key))
        return key

    # -- data keys --------------------------------------------------------------------------

    def new_data_key(
        self, session: Session, org_id: str, *, aad: bytes
    ) -> tuple[bytes, WrappedKey]:
        row = self._kek_row(session, org_id, self.ensure_org_kek(session, org_id))
        kek = self._kek_key(row)
        data_key = aead.generate_key()
        context = data_key_context(org_id=org_id, kek_id=row.id, kek_version=row.version, aad=aad)
        wrapped = WrappedKey(
            kek_id=row.id, kek_version=row.version, wrapped=aead.seal(kek, data_key, aad=context)
        )
        return data_key, wrapped

    def unwrap_data_key(
        self, session: Session, org_id: str, wrapped: WrappedKey, *, aad: bytes
    ) -> bytes:
        row = self._kek_row(session, org_id, wrapped.kek_id)
        if row.version != wrapped.kek_version:
            raise IntegrityError("wrapped key does not match its key-encryption key")
        context = data_key_context(org_id=org_id, kek_id=row.id, kek_version=row.version, aad=aad)
        return aead.open_sealed(self._kek_key(row), wrapped.wrapped, aad=context)

    # -- signing keys -----------------------------------------------------------------------

    def generate_signing_key(
        self, session: Session, org_id: str, *, purpose: str, algorithm: str = EC_P256
    ) -> SigningKeyRef:
        if purpose not in PURPOSES:
            raise InvalidInputError(f"unknown signing key purpose {purpose!r}")
        if algorithm not in ALGORITHMS:
            raise InvalidInputError(f"unsupported signing algorithm {algorithm!r}")
        kek_row = self._kek_row(session, org_id, self.ensure_org_kek(session, org_id))
        private = generate_private_key(algorithm)
        public_der = public_key_der(private.public_key())
        key_id = str(uuid.uuid4())
        context = signing_key_context(
            org_id=org_id,
            key_id=key_id,
            kek_id=kek_row.id,
            kek_version=kek_row.version,
            algorithm=algorithm,
            purpose=purpose,
            public_key_der=public_der,
        )
        wrapped = aead.seal(self._kek_key(kek_row), private_key_der(private), aad=context)
        session.add(
            SigningKey(
                id=key_id,
                org_id=org_id,
                purpose=purpose,
                algorithm=algorithm,
                public_key_der=public_der,
                wrapped_private_key=wrapped,
                kek_id=kek_row.id,
                created_at=utcnow(),
                use_count=0,
            )
        )
        session.flush()
        self._signing.put(key_id, _CachedSigningKey(org_id, kek_row.id, wrapped, private))
        return SigningKeyRef(key_id=key_id, algorithm=algorithm, public_key=private.public_key())

    def signing_key(self, session: Session, org_id: str, key_id: str) -> SigningKeyHandle:
        row = session.get(SigningKey, key_id)
        if row is None or row.org_id != org_id:
            raise NotFoundError(_NOT_FOUND)
        kek_row = self._kek_row(session, org_id, row.kek_id)
        cached = self._signing.get(key_id)
        if (
            cached is not None
            and cached.org_id == row.org_id
            and cached.kek_id == row.kek_id
            and cached.wrapped == row.wrapped_private_key
        ):
            private = cached.key
        else:
            context = signing_key_context(
                org_id=row.org_id,
                key_id=row.id,
                kek_id=kek_row.id,
                kek_version=kek_row.version,
                algorithm=row.algorithm,
                purpose=row.purpose,
                public_key_der=row.public_key_der,
            )
            der = aead.open_sealed(self._kek_key(kek_row), row.wrapped_private_key, aad=context)
            private = load_private_key(der, row.algorithm, row.public_key_der)
            self._signing.put(
                key_id, _CachedSigningKey(row.org_id, row.kek_id, row.wrapped_private_key, private)
            )

        def count_use() -> None:
            # Flushed with the caller's unit of work; rolled back with it if it fails.
            row.use_count = (row.use_count or 0) + 1

        return LocalSigningKeyHandle(row.id, row.algorithm, private, on_sign=count_use)


def _check_org(org_id: str) -> None:
    if not isinstance(org_id, str) or not org_id or len(org_id) > 64:
        raise InvalidInputError("org_id must be a non-empty string of at most 64 characters")
