"""Named instance-wide secrets (HMAC keys and the like), kept wrapped under the platform KEK.

Several API processes must agree on secrets such as the CSRF key, and none of them may keep it in
plaintext on disk or in the database. A secret here *is* a data key of the platform namespace:
generated once, stored only in its wrapped form in ``system_state``, unwrapped on demand. Rotating
the KEK re-wraps it like any other data key; destroying the root key destroys it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pactvault.errors import IntegrityError
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.store.models import SystemState

PLATFORM_ORG = "_platform"
STATE_PREFIX = "secret:"


def _aad(name: str) -> bytes:
    return b"pactvault platform secret v1\x00" + name.encode()


def platform_secret(session: Session, keys: KeyService, name: str) -> bytes:
    """The 32-byte secret ``name``, created on first use inside the caller's transaction.

    Call it from a write transaction the first time (``Platform.initialise`` does, for the secrets
    the platform needs), so concurrent processes never race to create different values.
    """
    state = session.get(SystemState, STATE_PREFIX + name)
    if state is None:
        secret, wrapped = keys.new_data_key(session, PLATFORM_ORG, aad=_aad(name))
        value = {"wrapped": wrapped.to_bytes().hex()}
        session.add(SystemState(name=STATE_PREFIX + name, value=value))
        session.flush()
        return secret
    try:
        wrapped = WrappedKey.from_bytes(bytes.fromhex(state.value["wrapped"]))
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(f"the stored platform secret {name!r} is malformed") from None
    return keys.unwrap_data_key(session, PLATFORM_ORG, wrapped, aad=_aad(name))
