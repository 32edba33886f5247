"""The identity-provider interface: what is checked, how results come back, assurance levels.

A provider answers one question — does this claimed identity belong to a real person, and how
sure are we — for the checks it supports:

=================  ====================================================  =====================
check              what the subject supplies                             assurance if verified
=================  ====================================================  =====================
``document``       name, ID number, photos of the ID document            ``verified-document``
``id_number``      name, ID number, mobile (三要素, carrier data)         ``verified-3-factor``
``bank_card``      name, ID number, mobile, bank card (四要素)            ``verified-4-factor``
``face_liveness``  name, ID number, a live face capture (人脸核身)        ``verified-face``
=================  ====================================================  =====================

Assurance levels, weakest first (``ASSURANCE_LEVELS``):

- ``basic`` — only control of an email address (an invitation link). Not a real-name check;
  never the outcome of a verification, listed so certificates without one have a name.
- ``verified-document`` — an organisation administrator compared uploaded ID document images with
  the claim. A human judgement on images, without an authoritative data source.
- ``verified-3-factor`` — name, ID number and mobile number matched by a provider against carrier
  records (the mobile account is registered to that identity).
- ``verified-4-factor`` — additionally a bank card matched against the bank's KYC records.
- ``verified-face`` — name and ID number matched, and a liveness-checked face capture compared
  with the photo on record. The only level that shows the person present is the person named.

A provider may report a *lower* level than its check's ceiling, never a higher one; the
verification service refuses a result that claims more (a misbehaving or compromised provider
must not be able to mint high assurance).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

from PIL import Image, UnidentifiedImageError

from pactvault.canonical import canonical_json
from pactvault.errors import InvalidInputError, PactvaultError, VerificationError

__all__ = [
    "ASSURANCE_LEVELS",
    "CHECKS",
    "CHECK_CEILING",
    "MAX_DOCUMENTS",
    "MAX_DOCUMENT_BYTES",
    "Evidence",
    "IdDocument",
    "IdentityProvider",
    "ProviderConfigurationError",
    "ProviderResult",
    "VerificationRequest",
    "assurance_rank",
]

#: Weakest first; ``assurance_rank`` compares them.
ASSURANCE_LEVELS: tuple[str, ...] = (
    "basic",
    "verified-document",
    "verified-3-factor",
    "verified-4-factor",
    "verified-face",
)
_RANK: Mapping[str, int] = MappingProxyType({name: i for i, name in enumerate(ASSURANCE_LEVELS)})

#: The checks a provider can offer, and the highest assurance each can justify.
CHECK_CEILING: Mapping[str, str] = MappingProxyType(
    {
        "document": "verified-document",
        "id_number": "verified-3-factor",
        "bank_card": "verified-4-factor",
        "face_liveness": "verified-face",
    }
)
CHECKS: tuple[str, ...] = tuple(CHECK_CEILING)

Status = Literal["verified", "rejected", "pending"]
STATUSES: tuple[str, ...] = ("verified", "rejected", "pending")

# Photos of an ID card from a phone are 2–6 MB; the limits leave room and stop abuse.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_DOCUMENT_PIXELS = 50_000_000
MAX_DOCUMENTS = 4
MAX_EVIDENCE_BYTES = 20 * 1024 * 1024
MAX_EVIDENCE_ITEMS = 8
_IMAGE_TYPES: Mapping[str, tuple[bytes, str]] = MappingProxyType(
    {"PNG": (b"\x89PNG\r\n\x1a\n", "image/png"), "JPEG": (b"\xff\xd8\xff", "image/jpeg")}
)
DOCUMENT_SIDES: tuple[str, ...] = ("front", "back", "other")


class ProviderConfigurationError(PactvaultError):
    """A provider is missing, unknown or not allowed in this environment (operator's problem)."""

    slug = "identity-provider-unavailable"
    status = 503
    title = "Identity provider unavailable"


def assurance_rank(level: str) -> int:
    """Position of ``level`` in ``ASSURANCE_LEVELS``; unknown → InvalidInputError."""
    if level not in _RANK:
        raise InvalidInputError(f"assurance level must be one of: {', '.join(ASSURANCE_LEVELS)}")
    return _RANK[level]


def _image_media_type(content: bytes) -> str:
    """Check magic bytes *and* that the image decodes within the size limits."""
    if not isinstance(content, bytes) or not content:
        raise InvalidInputError("an ID document image must not be empty")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(f"an ID document image may be at most {MAX_DOCUMENT_BYTES} bytes")
    declared = next(
        (name for name, (magic, _) in _IMAGE_TYPES.items() if content.startswith(magic)), None
    )
    if declared is None:
        raise InvalidInputError("an ID document image must be a PNG or JPEG file")
    try:
        with Image.open(BytesIO(content)) as image:
            if image.format != declared or image.width * image.height > MAX_DOCUMENT_PIXELS:
                raise InvalidInputError("the ID document image is not a usable PNG or JPEG file")
            image.load()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInputError("the ID document image could not be decoded") from None
    return _IMAGE_TYPES[declared][1]


@dataclass(frozen=True)
class IdDocument:
    """One uploaded image of an ID document; validated on construction (type, size, decodes)."""

    side: str
    content: bytes = field(repr=False)
    media_type: str = field(init=False)

    def __post_init__(self) -> None:
        if self.side not in DOCUMENT_SIDES:
            raise InvalidInputError(f"document side must be one of: {', '.join(DOCUMENT_SIDES)}")
        object.__setattr__(self, "media_type", _image_media_type(self.content))


@dataclass(frozen=True)
class VerificationRequest:
    """What a provider is asked to check. Values are already validated and normalised.

    ``reference`` is pactvault's verification id: providers should use it as their idempotency
    key, and return it in asynchronous callbacks.
    """

    reference: str
    check: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    phone: str | None = field(default=None, repr=False)
    bank_card: str | None = field(default=None, repr=False)
    face_image: bytes | None = field(default=None, repr=False)
    documents: tuple[IdDocument, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Evidence:
    """A piece of evidence a provider returns (its signed response, a report), kept encrypted."""

    kind: str
    media_type: str
    content: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.kind or len(self.kind) > 32 or not self.kind.replace("-", "").isalnum():
            raise InvalidInputError("evidence kind must be 1 to 32 letters, digits or hyphens")
        if not self.media_type or len(self.media_type) > 100:
            raise InvalidInputError("evidence media type must be 1 to 100 characters")
        if not isinstance(self.content, bytes) or len(self.content) > MAX_EVIDENCE_BYTES:
            raise InvalidInputError(f"evidence must be bytes, at most {MAX_EVIDENCE_BYTES}")

    @classmethod
    def json(cls, kind: str, value: object) -> Evidence:
        """Canonical JSON evidence (sorted keys), so equal facts give equal bytes."""
        return cls(kind=kind, media_type="application/json", content=canonical_json(value))

    def decoded_json(self) -> object:
        return json.loads(self.content)


@dataclass(frozen=True)
class ProviderResult:
    """A provider's answer. ``verified`` needs an assurance level; the others must not have one."""

    status: Status
    checked_at: datetime
    assurance_level: str | None = None
    provider_reference: str | None = None
    reason: str | None = None
    evidence: tuple[Evidence, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise VerificationError(f"provider status must be one of: {', '.join(STATUSES)}")
        if self.checked_at.tzinfo is None:
            raise VerificationError("provider checked_at must be timezone-aware")
        if self.status == "verified":
            if self.assurance_level is None or assurance_rank(self.assurance_level) == 0:
                raise VerificationError("a verified result needs a real-name assurance level")
        elif self.assurance_level is not None:
            raise VerificationError("only a verified result carries an assurance level")
        if self.provider_reference is not None and len(self.provider_reference) > 200:
            raise VerificationError("provider reference must be at most 200 characters")
        if len(self.evidence) > MAX_EVIDENCE_ITEMS:
            raise VerificationError(f"at most {MAX_EVIDENCE_ITEMS} evidence items per result")


@runtime_checkable
class IdentityProvider(Protocol):
    """An identity provider: a name (stored with every result) and the checks it offers.

    ``verify`` may call out to a remote service; the verification service never calls it inside
    a database transaction. It returns ``pending`` when the answer comes later (a human review,
    an asynchronous callback), and raises for failures (which are recorded as such).
    """

    name: str
    checks: frozenset[str]

    def verify(self, request: VerificationRequest) -> ProviderResult: ...


def provider_table(providers: Iterable[IdentityProvider]) -> Mapping[str, IdentityProvider]:
    """Providers by name; duplicate names or unknown checks are configuration errors."""
    table: dict[str, IdentityProvider] = {}
    for provider in providers:
        if not isinstance(provider, IdentityProvider):
            raise ProviderConfigurationError("not an identity provider")
        if not provider.name or len(provider.name) > 64 or provider.name in table:
            raise ProviderConfigurationError(f"identity provider name {provider.name!r} is invalid")
        unknown = set(provider.checks) - set(CHECKS)
        if unknown or not provider.checks:
            raise ProviderConfigurationError(
                f"identity provider {provider.name!r} offers unknown checks: {sorted(unknown)}"
            )
        table[provider.name] = provider
    return MappingProxyType(table)
