"""A pyHanko ``Signer`` backed by a ``cryptography`` key object — or by any signing callable.

pyHanko's own ``SimpleSigner`` re-serialises and re-parses its private key on every signature;
here the key object is used as is, and the certificate chain is converted to asn1crypto once,
at construction. The callable form exists so an HSM/KMS backend can plug in later without
touching the PAdES code: it only has to turn bytes into a raw signature.

pyHanko decides *what* goes into the CMS (its attribute providers choose the signed and unsigned
attributes); this class only changes *how* the result is encoded. asn1crypto re-encodes nested
structures built in Python once per nesting level and level again, and re-encodes everything,
certificates and timestamp token included, whenever some length ends in the byte 0x80 (see
``pactvault.crypto.der``) — ~15 ms per signature, with 100+ ms spikes. So the attributes are
encoded one level at a time, and the SignedData around them is put together from DER pieces
that were each encoded once (certificates and token: their original bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

from asn1crypto import algos, cms, core, parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pyhanko.sign.attributes import CMSAttributeProvider
from pyhanko.sign.general import simple_cms_attribute
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import process_pss_params

from pactvault.crypto.der import (
    INTEGER,
    OCTET_STRING,
    EncodedAttributes,
    EncodedContentInfo,
    encoded,
    sequence,
    set_of,
    tlv,
)
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
        # Constant DER pieces of every CMS this signer makes. pyHanko embeds the signer's
        # certificate and, with embed_roots, every certificate of the registry, once each.
        ders = {encoded(signing_cert)} | {encoded(c) for c in registry}
        self._certificates_der = tlv(0xA0, b"".join(sorted(ders)))  # [0] IMPLICIT SET OF
        self._sid_der = sequence(  # IssuerAndSerialNumber
            encoded(signing_cert.issuer), core.Integer(signing_cert.serial_number).dump()
        )

    # -- encoding (see the module docstring) ------------------------------------------------

    async def signed_attrs(  # type: ignore[no-untyped-def]
        self,
        data_digest: bytes,
        digest_algorithm: str,
        attr_settings: PdfCMSSignedAttributes | None = None,
        content_type="data",
        use_pades=False,
        timestamper=None,
        dry_run=False,
        is_pdf_sig=True,
    ) -> cms.CMSAttributes:
        """pyHanko's signed attributes (same providers, same values), encoded once."""
        providers = getattr(self, "_signed_attr_providers", None)
        if providers is None:  # pyHanko internals changed: let pyHanko build and encode them
            return await super().signed_attrs(  # type: ignore[no-any-return]
                data_digest,
                digest_algorithm,
                attr_settings=attr_settings,
                content_type=content_type,
                use_pades=use_pades,
                timestamper=timestamper,
                dry_run=dry_run,
                is_pdf_sig=is_pdf_sig,
            )
        provs = providers(
            data_digest=data_digest,
            digest_algorithm=digest_algorithm,
            attr_settings=attr_settings or PdfCMSSignedAttributes(),
            timestamper=timestamper,
            use_cades=use_pades,
            is_pdf_sig=is_pdf_sig,
        )
        # As pyHanko's format_signed_attributes: content type and digest first, then the
        # providers' attributes, values of the same type merged into one attribute.
        fixed = [
            simple_cms_attribute("content_type", content_type),
            simple_cms_attribute("message_digest", data_digest),
        ]
        der = await _attributes_from(list(provs), fixed, dry_run=dry_run)
        return EncodedAttributes.load(der)

    async def unsigned_attrs(  # type: ignore[no-untyped-def]
        self,
        digest_algorithm: str,
        signature: bytes,
        signed_attrs: cms.CMSAttributes,
        timestamper=None,
        dry_run=False,
    ) -> cms.CMSAttributes | None:
        """pyHanko's unsigned attributes (the signature timestamp), encoded once."""
        providers = getattr(self, "_unsigned_attr_providers", None)
        if providers is None:
            return await super().unsigned_attrs(  # type: ignore[no-any-return]
                digest_algorithm,
                signature,
                signed_attrs=signed_attrs,
                timestamper=timestamper,
                dry_run=dry_run,
            )
        provs = providers(
            signature=signature,
            signed_attrs=signed_attrs,
            digest_algorithm=digest_algorithm,
            timestamper=timestamper,
        )
        der = await _attributes_from(list(provs), [], dry_run=dry_run)
        return EncodedAttributes.load(der) if der != set_of() else None

    def _package_signature(  # type: ignore[no-untyped-def]
        self,
        *,
        digest_algorithm: str,
        cms_version,
        signed_attrs: cms.CMSAttributes,
        signature: bytes,
        unsigned_attrs: cms.CMSAttributes | None,
        encap_content_info,
    ) -> cms.ContentInfo:
        """pyHanko's SignedData for a detached signature, assembled from DER pieces.

        Anything beyond what PAdES signatures use here (encapsulated content, attribute
        certificates, SHAKE256) takes pyHanko's own path.
        """
        if (
            encap_content_info is not None
            or self.attribute_certs
            or digest_algorithm == "shake256"
            or cms_version != "v1"
        ):
            return super()._package_signature(  # type: ignore[no-any-return]
                digest_algorithm=digest_algorithm,
                cms_version=cms_version,
                signed_attrs=signed_attrs,
                signature=signature,
                unsigned_attrs=unsigned_attrs,
                encap_content_info=encap_content_info,
            )
        digest_algorithm_der = algos.DigestAlgorithm({"algorithm": digest_algorithm}).dump()
        signer_info = [
            _V1,
            self._sid_der,
            digest_algorithm_der,
            tlv(0xA0, signed_attrs.contents),  # [0] IMPLICIT SET OF Attribute
            self.get_signature_mechanism_for_digest(digest_algorithm).dump(),
            tlv(OCTET_STRING, signature),
        ]
        if unsigned_attrs is not None and len(unsigned_attrs):
            signer_info.append(tlv(0xA1, _set_body(_attributes_der(unsigned_attrs))))
        signed_data = sequence(
            _V1,
            set_of(digest_algorithm_der),
            _DATA_CONTENT_INFO,
            self._certificates_der,
            set_of(sequence(*signer_info)),
        )
        return EncodedContentInfo.load(sequence(_SIGNED_DATA_OID, tlv(0xA0, signed_data)))

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


_V1 = tlv(INTEGER, b"\x01")
_SIGNED_DATA_OID = cms.ContentType("signed_data").dump()
_DATA_CONTENT_INFO = sequence(cms.ContentType("data").dump())  # detached: no content


async def _attributes_from(
    providers: list[CMSAttributeProvider], fixed: list[cms.CMSAttribute], *, dry_run: bool
) -> bytes:
    """DER SET OF Attribute from pyHanko attribute providers, each value encoded once."""
    groups: dict[str, tuple[bytes, list[bytes]]] = {}

    def add(type_: core.ObjectIdentifier, values: list[bytes]) -> None:
        groups.setdefault(type_.dotted, (encoded(type_), []))[1].extend(values)

    for attribute in fixed:
        add(attribute["type"], [encoded(v) for v in attribute["values"]])
    for provider in providers:
        if type(provider).get_attribute is CMSAttributeProvider.get_attribute:
            value = await provider.build_attr_value(dry_run=dry_run)
            if value is None:
                continue
            if isinstance(value, core.Asn1Value):
                add(cms.CMSAttributeType(provider.attribute_type), [encoded(value)])
                continue
            attribute = simple_cms_attribute(provider.attribute_type, value)
        else:  # a provider with its own idea of the attribute: take it as it comes
            attribute = await provider.get_attribute(dry_run=dry_run)
            if attribute is None:
                continue
        add(attribute["type"], [encoded(v) for v in attribute["values"]])
    return set_of(*(sequence(type_der, set_of(*values)) for type_der, values in groups.values()))


def _set_body(set_der: bytes) -> bytes:
    """The members of a DER SET (what an IMPLICIT [n] SET OF carries)."""
    _, _, _, _, body, _ = parser.parse(set_der, strict=True)
    return body  # type: ignore[no-any-return]


def _attributes_der(attributes: cms.CMSAttributes) -> bytes:
    """DER SET OF Attribute, encoding each attribute value once (values may be deep)."""
    return set_of(
        *(
            sequence(
                encoded(attribute["type"]),
                set_of(*(encoded(value) for value in attribute["values"])),
            )
            for attribute in attributes
        )
    )


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


__all__ = ["KeySigner", "SignCallable", "SigningKey", "to_asn1"]
