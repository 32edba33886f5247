"""From a verified identity to a certificate subject that records how the person was verified.

A signer certificate says two things about assurance, both as certificate policy OIDs (RFC 5280
§4.2.1.4, the place verifiers look for "how much do I trust this binding"):

1. the **level of assurance** on pactvault's three-step scale (``pki.identity``:
   basic / substantial / high), for relying parties that only want a threshold;
2. the **verification method** — which real-name check bound this key to this person — under a
   new arc, so an evidence report can state exactly what was checked.

OIDs assigned here (fixed forever once certificates carry them; ``ARC`` is
``pki.identity.PACTVAULT_OID_ARC``, policies are ``ARC.1``)::

    ARC.1.3      real-name verification methods
    ARC.1.3.1    verified-document   administrator review of ID document images
    ARC.1.3.2    verified-3-factor   name + ID number + mobile number (三要素)
    ARC.1.3.3    verified-4-factor   + bank card (四要素)
    ARC.1.3.4    verified-face       + liveness-checked face comparison (人脸核身)

Mapping to the level of assurance (conservative — understating is safe, overstating is not):
``verified-document``, ``-3-factor`` and ``-4-factor`` → **substantial** (checked against a
document or an authoritative record, but nothing shows the person present); ``verified-face``
→ **high**. ``basic`` (email only) cannot get a person's signer certificate from this module.

Privacy: the ID number never goes into a certificate — not in clear, not hashed. Certificates
are public and permanent; even a keyed hash would become a lifelong identifier that anyone who
ever obtains the key can reverse by enumeration. The subject's serialNumber stays pactvault's
own subject id, and the verification id links certificate and evidence inside pactvault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography import x509

from pactvault.errors import InvalidInputError, PermissionDeniedError
from pactvault.identity.realname.providers import assurance_rank
from pactvault.identity.realname.subjects import VerifiedIdentity
from pactvault.pki.identity import (
    ASSURANCE_POLICY_OIDS,
    CERTIFICATE_POLICY_ARC,
    SubjectIdentity,
)

__all__ = [
    "CERTIFICATE_ASSURANCE",
    "VERIFICATION_METHOD_ARC",
    "VERIFICATION_METHOD_OIDS",
    "VerifiedSubjectIdentity",
    "certificate_verification",
    "signer_subject",
]

VERIFICATION_METHOD_ARC = f"{CERTIFICATE_POLICY_ARC}.3"
VERIFICATION_METHOD_OIDS: Mapping[str, str] = MappingProxyType(
    {
        "verified-document": f"{VERIFICATION_METHOD_ARC}.1",
        "verified-3-factor": f"{VERIFICATION_METHOD_ARC}.2",
        "verified-4-factor": f"{VERIFICATION_METHOD_ARC}.3",
        "verified-face": f"{VERIFICATION_METHOD_ARC}.4",
    }
)
#: Real-name assurance → ``pki.identity`` level of assurance (its policy OID).
CERTIFICATE_ASSURANCE: Mapping[str, str] = MappingProxyType(
    {
        "verified-document": "substantial",
        "verified-3-factor": "substantial",
        "verified-4-factor": "substantial",
        "verified-face": "high",
    }
)
_METHOD_BY_OID: Mapping[str, str] = MappingProxyType(
    {oid: method for method, oid in VERIFICATION_METHOD_OIDS.items()}
)
_LEVEL_BY_OID: Mapping[str, str] = MappingProxyType(
    {oid: level for level, oid in ASSURANCE_POLICY_OIDS.items()}
)


@dataclass(frozen=True)
class VerifiedSubjectIdentity(SubjectIdentity):
    """A ``SubjectIdentity`` that also carries the verification-method policy OID.

    A subclass, so ``CertificateAuthority.issue`` and ``pki.ca.issue_signer_certificate`` accept
    it unchanged: they put every OID of ``policy_oids`` into the certificatePolicies extension.
    """

    verification_method: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.verification_method is not None:
            if self.verification_method not in VERIFICATION_METHOD_OIDS:
                raise InvalidInputError("unknown verification method")
            if self.kind != "person":
                raise InvalidInputError("only a person's certificate records real-name checks")
            expected = CERTIFICATE_ASSURANCE[self.verification_method]
            if self.assurance_level != expected:
                raise InvalidInputError(
                    f"a {self.verification_method} identity has assurance {expected}"
                )

    @property
    def policy_oids(self) -> tuple[str, ...]:
        """Verification method first (most specific), then the level of assurance."""
        base = super().policy_oids
        if self.verification_method is None:
            return base
        return (VERIFICATION_METHOD_OIDS[self.verification_method], *base)


def signer_subject(
    identity: VerifiedIdentity,
    *,
    subject_id: str,
    email: str | None = None,
    organisation: str | None = None,
    country: str | None = "CN",
    minimum_assurance: str = "verified-document",
) -> VerifiedSubjectIdentity:
    """The certificate subject for a verified person: CN = the verified legal name.

    ``subject_id`` is pactvault's id for the signer (never the ID number). Refuses identities
    below ``minimum_assurance`` (PermissionDeniedError): a certificate is only for a verified
    identity of sufficient strength.
    """
    if identity.assurance_level not in CERTIFICATE_ASSURANCE:
        raise PermissionDeniedError("a signer certificate needs a real-name verified identity")
    if assurance_rank(identity.assurance_level) < assurance_rank(minimum_assurance):
        raise PermissionDeniedError(
            f"a signer certificate needs real-name verification of at least {minimum_assurance}"
        )
    return VerifiedSubjectIdentity(
        common_name=identity.name,
        subject_id=subject_id,
        kind="person",
        email=email,
        organisation=organisation,
        country=country,
        assurance_level=CERTIFICATE_ASSURANCE[identity.assurance_level],
        verification_method=identity.assurance_level,
    )


def certificate_verification(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """Read back (level of assurance, verification method) from a certificate's policies.

    For evidence reports and verifiers; ``None`` where the certificate does not say.
    """
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None, None
    oids = [policy.policy_identifier.dotted_string for policy in policies]
    level = next((_LEVEL_BY_OID[oid] for oid in oids if oid in _LEVEL_BY_OID), None)
    method = next((_METHOD_BY_OID[oid] for oid in oids if oid in _METHOD_BY_OID), None)
    return level, method
