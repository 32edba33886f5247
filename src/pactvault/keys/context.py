"""Associated data that binds every wrapped key to exactly one place in the hierarchy.

A sealed KEK, data key or private key is only accepted in the row (and organisation) it was
created for: copy it elsewhere — another org, another KEK, another key id — and authentication
fails with IntegrityError. Each context starts with a distinct label so a value sealed for one
purpose can never be opened as another. Backends that wrap differently (HSM, KMS) should still pass
these bytes as their AAD / encryption context.
"""

from __future__ import annotations

from pactvault.crypto.encoding import encode_fields


def kek_context(*, org_id: str, kek_id: str, version: int) -> bytes:
    """AAD for sealing a KEK under the root key."""
    return encode_fields("pactvault/kek/v1", org_id, kek_id, version)


def data_key_context(*, org_id: str, kek_id: str, kek_version: int, aad: bytes) -> bytes:
    """AAD for wrapping a data key: the KEK's identity plus the caller's object identity."""
    return encode_fields("pactvault/data-key/v1", org_id, kek_id, kek_version, aad)


def signing_key_context(
    *,
    org_id: str,
    key_id: str,
    kek_id: str,
    kek_version: int,
    algorithm: str,
    purpose: str,
    public_key_der: bytes,
) -> bytes:
    """AAD for sealing a private key: binds it to its row and to its own public key."""
    return encode_fields(
        "pactvault/signing-key/v1",
        org_id,
        key_id,
        kek_id,
        kek_version,
        algorithm,
        purpose,
        public_key_der,
    )
