"""Key-pair generation, (de)serialisation and the in-process signing handle.

Kept apart from the key service so HSM/KMS backends can reuse the algorithm table and the
signature conventions (ECDSA → DER-encoded (r, s); RSA → PKCS#1 v1.5, which is what CMS/PAdES
validators expect by default).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pactvault.errors import InvalidInputError, KeyServiceError
from pactvault.keys.service import EC_P256, RSA_3072, PrivateKey, PublicKey

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def generate_private_key(algorithm: str) -> PrivateKey:
    if algorithm == EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == RSA_3072:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise InvalidInputError(f"unsupported signing algorithm {algorithm!r}")


def private_key_der(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER — only ever handed straight to the AEAD that wraps it."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(der: bytes, algorithm: str, expected_public_der: bytes) -> PrivateKey:
    """Parse PKCS#8 and check it is the algorithm and key pair the row claims.

    The wrapped key authenticated, so a mismatch here means a bug rather than an attack, but
    signing with a key that does not match the published certificate must never happen silently.
    """
    key = serialization.load_der_private_key(der, password=None)
    if algorithm == EC_P256:
        ok = isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    elif algorithm == RSA_3072:
        ok = isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    else:
        ok = False
    if not ok or public_key_der(key.public_key()) != expected_public_der:
        raise KeyServiceError("stored signing key does not match its public key")
    return key  # type: ignore[return-value]


def hash_for(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]()
    except KeyError:
        raise InvalidInputError(f"unsupported hash algorithm {name!r}") from None


def sign_with(key: PrivateKey, data: bytes, hash_algorithm: str) -> bytes:
    algorithm = hash_for(hash_algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    return key.sign(data, padding.PKCS1v15(), algorithm)


class LocalSigningKeyHandle:
    """Signing handle over an in-process ``cryptography`` key object.

    ``on_sign`` lets the service count uses (``signing_keys.use_count``) in the caller's unit of
    work without the handle knowing about the database.
    """

    def __init__(
        self,
        key_id: str,
        algorithm: str,
        key: PrivateKey,
        on_sign: Callable[[], None] | None = None,
    ) -> None:
        self.key_id = key_id
        self.algorithm = algorithm
        self._key = key
        self._on_sign = on_sign

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes, hash_algorithm: str = "sha256") -> bytes:
        signature = sign_with(self._key, data, hash_algorithm)
        if self._on_sign is not None:
            self._on_sign()
        return signature

    def private_key(self) -> PrivateKey:
        return self._key

    def __repr__(self) -> str:  # never let a debug print reach the key object
        return f"LocalSigningKeyHandle(key_id={self.key_id!r}, algorithm={self.algorithm!r})"
