"""Field-level encryption and keyed search hashes for personal data (pure, no I/O).

A personal-data value (an ID number, a phone number…) is sealed with AES-256-GCM under its own
data key; the associated data binds the ciphertext to its organisation, record id and field kind,
so a ciphertext copied into another row, another tenant or another column fails to open.

Exact-match search cannot use the ciphertext (random nonces) and must not use a plain hash: an ID
number has well under 2^40 plausible values (county × birth date × sequence), so SHA-256 of it is
reversed by enumeration in hours. Instead the index holds HMAC-SHA256 under a secret *index key*;
without that key the stored hashes are useless to whoever copies the database. Index keys are
derived per organisation and per kind with HKDF, so equal values in two tenants (or an equal
digit string stored as a phone number and as a card number) do not produce equal hashes.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pactvault.crypto import aead
from pactvault.crypto.encoding import encode_fields
from pactvault.errors import IntegrityError

__all__ = [
    "derive_index_key",
    "field_context",
    "index_root_context",
    "keyed_hash",
    "open_field",
    "seal_field",
]

_FIELD_LABEL = "pactvault/personal-data/field/v1"
_INDEX_LABEL = "pactvault/personal-data/index/v1"


def field_context(*, org_id: str, record_id: str, kind: str) -> bytes:
    """The AAD of one field's data key and ciphertext: organisation, record id, kind."""
    return encode_fields(_FIELD_LABEL, org_id, record_id, kind)


def index_root_context(*, org_id: str) -> bytes:
    """The AAD the organisation's wrapped index root key is bound to."""
    return encode_fields(_INDEX_LABEL, org_id)


def seal_field(key: bytes, value: str, *, context: bytes) -> bytes:
    """AES-256-GCM of the UTF-8 value bound to ``context`` (see :func:`field_context`)."""
    return aead.seal(key, value.encode("utf-8"), aad=context)


def open_field(key: bytes, sealed: bytes, *, context: bytes) -> str:
    """Inverse of :func:`seal_field`; altered, moved or mis-keyed data → IntegrityError."""
    plaintext = aead.open_sealed(key, sealed, aad=context)
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:  # authenticated, so only a bug could get here; still fail closed
        raise IntegrityError("a personal data field is not valid UTF-8") from None


def derive_index_key(root_key: bytes, *, org_id: str, kind: str) -> bytes:
    """HKDF-SHA256 of the organisation's index root key, separated by organisation and kind."""
    if len(root_key) != aead.KEY_SIZE:
        raise IntegrityError("the index root key has the wrong length")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=encode_fields(_INDEX_LABEL, org_id, kind),
    ).derive(root_key)


def keyed_hash(index_key: bytes, normalised_value: str) -> str:
    """Lower-case hex HMAC-SHA256 of a normalised value: the only form the search index holds."""
    return hmac.new(index_key, normalised_value.encode("utf-8"), hashlib.sha256).hexdigest()
