"""Which hash goes with which key: one rule for certificates, CRLs, OCSP and timestamp tokens.

Keeping the choice in one place means a P-384 CA never ends up signing with SHA-256 in one
module and SHA-384 in another, which verifiers following NIST SP 800-57 pairing would flag.
"""

from __future__ import annotations

from typing import TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

IssuerPrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey: TypeAlias = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

# RSA below 2048 bits is not acceptable for anything we sign (NIST SP 800-131A).
MIN_RSA_BITS = 2048


def signature_hash(private_key: object) -> hashes.HashAlgorithm | None:
    """The digest to sign with ``private_key``; ``None`` for EdDSA, which hashes internally.

    ECDSA uses the hash matching the curve strength (P-256 → SHA-256, P-384 → SHA-384,
    P-521 → SHA-512); RSA uses SHA-256 with PKCS#1 v1.5, the combination every PDF reader and
    OpenSSL build verifies.
    """
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        size = private_key.curve.key_size
        if size >= 512:
            return hashes.SHA512()
        if size >= 384:
            return hashes.SHA384()
        return hashes.SHA256()
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        return hashes.SHA256()
    if isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    raise TypeError(f"unsupported private key type: {type(private_key).__name__}")


def public_key_der(public_key: object) -> bytes:
    """SubjectPublicKeyInfo DER, the canonical form for comparing two public keys."""
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_certificate(private_key: object, public_key: object) -> bool:
    """True when ``private_key`` is the counterpart of ``public_key``.

    Checked before signing anything so that a mixed-up key id produces a clear error instead of
    a CRL, OCSP answer or token that silently fails verification everywhere.
    """
    return public_key_der(private_key.public_key()) == public_key_der(public_key)  # type: ignore[attr-defined]
