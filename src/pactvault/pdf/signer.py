"""A pyHanko ``Signer`` backed by a ``cryptography`` key object — or by any signing callable.

pyHanko's own ``SimpleSigner`` re-serialises and re-parses its private key on every signature;
here the key object is used as is, and the certificate chain is converted to asn1crypto once,
at construction. The callable form exists so an HSM/KMS backend can plug in later without
touching the PAdES code: it only has to turn bytes into a raw signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import process_pss_params

from pactvault.errors import SigningError

SigningKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
# ``sign(data, hash_algorithm)``: raw signature over ``data`` (the DER of the signed attributes,
# not a digest), hashed inside with ``hash_algorithm`` ("sha256", ...). ECDSA signatures are
# DER-encoded (r, s); RSA uses PKCS#1 v1.5 unless the signer was built with ``prefer_pss``.
SignCallable: TypeAlias = Callable[[bytes, str], bytes]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    """cryptography → asn1crypto, the representation pyHanko works with."""
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


class KeySigner(Signer):
    """Signs CMS signer infos with an in-memory key (or a callable standing in for one)."""

    def __init__(
        self,
        private_key: SigningKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
        *,
        prefer_pss: bool = False,
    ) -> None:
        if not isinstance(private_key, SigningKey):
            raise SigningError("the signing key must be an ECDSA, RSA or Ed25519 private key")
        if _spki(private_key.public_key()) != _spki(certificate.public_key()):
            raise SigningError("the private key does not belong to the signer certificate")
        self._private_key: SigningKey | None = private_key
        self._callable: SignCallable | None = None
        self._setup(certificate, chain, prefer_pss=prefer_pss)

    @classmethod
    def from_callable(
        cls,
        sign_callable: SignCallable,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
        *,
        prefer_pss: bool = False,
    ) -> KeySigner:
        """A signer whose key lives elsewhere (HSM, KMS): ``sign_callable(data, hash_name)``.

        The callable must produce a signature matching ``certificate``'s key and the mechanism
        pyHanko announces in the CMS (ECDSA-with-hash, or RSA PKCS#1 v1.5 / PSS per
        ``prefer_pss``). Whatever it raises is reported as :class:`SigningError`.
        """
        self = cls.__new__(cls)
        self._private_key = None
        self._callable = sign_callable
        self._setup(certificate, chain, prefer_pss=prefer_pss)
        return self

    def _setup(
        self, certificate: x509.Certificate, chain: Sequence[x509.Certificate], *, prefer_pss: bool
    ) -> None:
        signing_cert = to_asn1(certificate)
        registry = SimpleCertificateStore.from_certs([signing_cert, *map(to_asn1, chain)])
        super().__init__(
            prefer_pss=prefer_pss,
            # The root travels along: some validators (and humans reading the CMS) build paths
            # only from what is embedded, and trust is decided by the verifier anyway.
            embed_roots=True,
            signing_cert=signing_cert,
            cert_registry=registry,
        )
        self.certificate = certificate
        self.chain: tuple[x509.Certificate, ...] = tuple(chain)

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        """pyHanko's hook: raw signature over ``data`` (already DER signed attributes)."""
        if self._callable is not None:
            try:
                return self._callable(data, digest_algorithm)
            except SigningError:
                raise
            except Exception as exc:
                raise SigningError(f"the signing backend failed: {type(exc).__name__}") from exc
        return self._sign_with_key(data, digest_algorithm)

    def _sign_with_key(self, data: bytes, digest_algorithm: str) -> bytes:
        key = self._private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        hash_cls = _HASHES.get(digest_algorithm)
        if hash_cls is None:
            raise SigningError(f"unsupported digest algorithm {digest_algorithm!r}")
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_cls()))
        assert isinstance(key, rsa.RSAPrivateKey)
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        if mechanism.signature_algo == "rsassa_pss":
            # Use exactly the parameters pyHanko writes into the CMS, or verification fails.
            pss, pss_hash = process_pss_params(mechanism["parameters"])
            return key.sign(data, pss, pss_hash)
        return key.sign(data, padding.PKCS1v15(), hash_cls())


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


__all__ = ["KeySigner", "SignCallable", "SigningKey", "to_asn1"]
