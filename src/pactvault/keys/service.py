"""The key service interface every backend implements (local file, PKCS#11 HSM, external KMS).

Callers never see a KEK or a private key's bytes: they get data keys (needed to encrypt a blob)
together with their wrapped form, and signing *handles*. Every method takes the caller's
SQLAlchemy session and only adds/flushes, never commits, so a contract row, its audit entry and
the key it needed commit (or roll back) as one unit of work.

Tenant isolation: asking for a key of another organisation fails exactly like asking for a key that
does not exist (``NotFoundError("key not found")``), so key ids cannot be probed across tenants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.orm import Session

from pactvault.crypto.encoding import decode_fields, encode_fields
from pactvault.errors import IntegrityError

__all__ = [
    "ALGORITHMS",
    "EC_P256",
    "PURPOSES",
    "RSA_3072",
    "KeyService",
    "PrivateKey",
    "PublicKey",
    "SigningKeyHandle",
    "SigningKeyRef",
    "WrappedKey",
]

EC_P256 = "ec-p256"
RSA_3072 = "rsa-3072"
ALGORITHMS = (EC_P256, RSA_3072)
PURPOSES = ("signer", "seal", "ca-root", "ca-issuing", "tsa", "ocsp")

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_WRAPPED_FORMAT = b"\x01"


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed under a KEK, plus which KEK (id and version) can open it."""

    kek_id: str
    kek_version: int
    wrapped: bytes

    def to_bytes(self) -> bytes:
        """Compact, versioned encoding for a database column or a blob header."""
        return _WRAPPED_FORMAT + encode_fields(self.kek_id, self.kek_version, self.wrapped)

    @classmethod
    def from_bytes(cls, data: bytes) -> WrappedKey:
        """Parse :meth:`to_bytes` output; malformed input is stored-data damage → IntegrityError."""
        if data[:1] != _WRAPPED_FORMAT:
            raise IntegrityError("wrapped key has an unknown format")
        try:
            fields = decode_fields(data[1:])
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError("wrapped key is malformed") from None
        match fields:
            case [str() as kek_id, int() as kek_version, bytes() as wrapped]:
                return cls(kek_id=kek_id, kek_version=kek_version, wrapped=wrapped)
        raise IntegrityError("wrapped key is malformed")


@dataclass(frozen=True)
class SigningKeyRef:
    """What the caller may keep about a signing key: its id, algorithm and public key."""

    key_id: str
    algorithm: str
    public_key: PublicKey


@runtime_checkable
class SigningKeyHandle(Protocol):
    """What signing code gets — an object that signs, never raw key bytes."""

    key_id: str
    algorithm: str

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes, hash_algorithm: str = "sha256") -> bytes:
        """ECDSA → DER-encoded signature; RSA → PKCS#1 v1.5."""
        ...

    def private_key(self) -> PrivateKey:
        """The ``cryptography`` key object, for APIs that insist on one (the x509 builders).

        Only the local backend can honour this; HSM/KMS backends raise ``KeyServiceError``.
        """
        ...


class KeyService(ABC):
    """Root key → per-organisation KEK → data keys and wrapped signing keys."""

    @abstractmethod
    def ensure_org_kek(self, session: Session, org_id: str) -> str:
        """Return the id of the organisation's active KEK, creating version 1 if it has none."""

    @abstractmethod
    def new_data_key(
        self, session: Session, org_id: str, *, aad: bytes
    ) -> tuple[bytes, WrappedKey]:
        """A fresh 256-bit data key and its wrapped form, bound to ``aad`` (the object's identity).

        The plaintext key is for immediate use only: encrypt, then drop it.
        """

    @abstractmethod
    def unwrap_data_key(
        self, session: Session, org_id: str, wrapped: WrappedKey, *, aad: bytes
    ) -> bytes:
        """Open a wrapped data key.

        A KEK of another organisation → NotFoundError; an altered or moved key → IntegrityError.
        """

    @abstractmethod
    def generate_signing_key(
        self, session: Session, org_id: str, *, purpose: str, algorithm: str = EC_P256
    ) -> SigningKeyRef:
        """Create and store (wrapped) a new key pair for ``purpose``."""

    @abstractmethod
    def signing_key(self, session: Session, org_id: str, key_id: str) -> SigningKeyHandle:
        """A handle to sign with; another org's key → NotFoundError("key not found")."""
