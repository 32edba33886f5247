"""Who a certificate is about, and the object identifiers pactvault puts into certificates.

The OIDs live here, next to the identity, because they are part of what a certificate *says*
about its subject (assurance level, seal or person) and verifiers outside pactvault will key on
them: once certificates are issued, these values can never change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pactvault.errors import InvalidInputError

# We have no IANA Private Enterprise Number. RFC 4122 §4 / ITU-T X.667 let anyone mint an OID
# arc from a UUID under 2.25 without registration; this one was generated once with uuid4 and is
# fixed forever (every issued certificate and timestamp token refers to it).
PACTVAULT_OID_ARC = "2.25.324662502124780138563255330115861910506"

# ARC.1 = certificate policies. ARC.1.1.<n> = assurance levels, ARC.1.2.1 = electronic seal.
CERTIFICATE_POLICY_ARC = f"{PACTVAULT_OID_ARC}.1"
ASSURANCE_POLICY_OIDS: dict[str, str] = {
    "basic": f"{CERTIFICATE_POLICY_ARC}.1.1",
    "substantial": f"{CERTIFICATE_POLICY_ARC}.1.2",
    "high": f"{CERTIFICATE_POLICY_ARC}.1.3",
}
SEAL_POLICY_OID = f"{CERTIFICATE_POLICY_ARC}.2.1"

# ARC.2 = timestamping. ARC.2.1 = the policy under which our TSA issues tokens (RFC 3161 §2.4.2).
TSA_POLICY_OID = f"{PACTVAULT_OID_ARC}.2.1"

# X.520 upper bounds; longer values make certificates that strict parsers reject.
_MAX_NAME_LENGTH = 64
# X520SerialNumber is a PrintableString: this is exactly its alphabet.
_PRINTABLE = re.compile(r"^[A-Za-z0-9 '()+,\-./:=?]+$")
# rfc822Name is an IA5String holding a plain (A-label) address; IDN mailboxes need SmtpUTF8.
_EMAIL = re.compile(r"^[!-?A-~]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class SubjectIdentity:
    """The subject of a signer or seal certificate.

    Validated on construction so that a bad value is reported as the caller's mistake
    (:class:`InvalidInputError`) instead of surfacing later as an encoder error deep inside the
    certificate builder.
    """

    common_name: str
    subject_id: str
    kind: Literal["person", "seal"] = "person"
    email: str | None = None
    organisation: str | None = None
    country: str | None = None
    assurance_level: str = "basic"

    def __post_init__(self) -> None:
        _check_text("common_name", self.common_name)
        _check_text("subject_id", self.subject_id)
        if not _PRINTABLE.match(self.subject_id):
            raise InvalidInputError(
                "subject_id may only contain letters, digits, spaces and ' ( ) + , - . / : = ?"
            )
        if self.kind not in ("person", "seal"):
            raise InvalidInputError("kind must be 'person' or 'seal'")
        if self.email is not None and (len(self.email) > 254 or not _EMAIL.match(self.email)):
            raise InvalidInputError("email must be a plain ASCII e-mail address")
        if self.organisation is not None:
            _check_text("organisation", self.organisation)
        if self.country is not None and not _COUNTRY.match(self.country):
            raise InvalidInputError("country must be a two-letter upper-case ISO 3166 code")
        if self.assurance_level not in ASSURANCE_POLICY_OIDS:
            levels = ", ".join(sorted(ASSURANCE_POLICY_OIDS))
            raise InvalidInputError(f"assurance_level must be one of: {levels}")

    @property
    def policy_oids(self) -> tuple[str, ...]:
        """Certificate policy OIDs this subject's certificate must carry, most specific first."""
        oids = [ASSURANCE_POLICY_OIDS[self.assurance_level]]
        if self.kind == "seal":
            oids.append(SEAL_POLICY_OID)
        return tuple(oids)


def _check_text(field: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{field} must not be empty")
    if len(value) > _MAX_NAME_LENGTH:
        raise InvalidInputError(f"{field} must be at most {_MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInputError(f"{field} must not contain control characters")
