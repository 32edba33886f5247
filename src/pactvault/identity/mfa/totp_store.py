"""Users' TOTP factors: enrolment, confirmation, verification with replay protection, removal.

The seed is sealed with AES-256-GCM under a fresh data key wrapped by the *platform* KEK, with
the user and factor ids as associated data (a sealed seed copied to another row fails to open).
Why the platform KEK and not an organisation's: accounts are global and may belong to several
organisations, so no single tenant owns the seed; and crypto-shredding one tenant's KEK must not
lock its former members out of their accounts in other organisations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from pactvault.crypto import aead
from pactvault.crypto.encoding import encode_fields
from pactvault.errors import ConflictError
from pactvault.identity.mfa import totp
from pactvault.keys.secrets import PLATFORM_ORG
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.store.mfa_models import TotpFactor, new_id


@dataclass(frozen=True)
class TotpSetup:
    """Shown once to the person enrolling: the QR-code URI and the same secret as text."""

    factor_id: str
    secret: str  # base32, for manual entry
    uri: str  # otpauth://totp/pactvault:<email>?secret=…&issuer=pactvault


def _aad(user_id: str, factor_id: str) -> bytes:
    return encode_fields("pactvault/totp-secret/v1", user_id, factor_id)


class TotpFactors:
    def __init__(
        self,
        keys: KeyService,
        clock: Callable[[], datetime],
        params: totp.TotpParameters = totp.DEFAULT_PARAMETERS,
        *,
        window: int = 1,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._params = params
        self._window = window

    def begin(self, session: Session, user_id: str, account: str) -> TotpSetup:
        """A new pending seed (replacing a pending one); an active factor must be removed first."""
        row = self._row(session, user_id)
        if row is not None and row.state == "active":
            raise ConflictError("an authenticator app is already set up; remove it first")
        if row is not None:
            session.delete(row)
            session.flush()
        secret = totp.new_secret()
        factor_id = new_id()
        data_key, wrapped = self._keys.new_data_key(
            session, PLATFORM_ORG, aad=_aad(user_id, factor_id)
        )
        session.add(
            TotpFactor(
                id=factor_id,
                user_id=user_id,
                state="pending",
                wrapped_key=wrapped.to_bytes(),
                sealed_secret=aead.seal(data_key, secret, aad=_aad(user_id, factor_id)),
                algorithm=self._params.algorithm,
                digits=self._params.digits,
                period=self._params.period,
                created_at=self._clock(),
            )
        )
        session.flush()
        return TotpSetup(
            factor_id,
            totp.secret_base32(secret),
            totp.provisioning_uri(secret, account, self._params),
        )

    def verify(self, session: Session, user_id: str, code: str, *, pending: bool = False) -> bool:
        """Check ``code`` and spend its time step; False for wrong, replayed or no factor."""
        row = self._row(session, user_id)
        if row is None or row.state != ("pending" if pending else "active"):
            return False
        params = totp.TotpParameters(row.algorithm, row.digits, row.period)
        step = totp.matching_step(
            self._secret(session, row),
            code,
            self._clock(),
            params,
            window=self._window,
            after_step=row.last_used_step,
        )
        if step is None:
            return False
        # Conditional update: of two concurrent uses of one code, exactly one wins.
        spent = session.execute(
            update(TotpFactor)
            .where(
                TotpFactor.id == row.id,
                or_(TotpFactor.last_used_step.is_(None), TotpFactor.last_used_step < step),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        )
        return spent.rowcount == 1  # type: ignore[attr-defined]

    def activate(self, session: Session, user_id: str) -> None:
        row = self._row(session, user_id)
        assert row is not None
        row.state = "active"
        row.confirmed_at = self._clock()
        session.flush()

    def is_active(self, session: Session, user_id: str) -> bool:
        row = self._row(session, user_id, lock=False)
        return row is not None and row.state == "active"

    def remove(self, session: Session, user_id: str) -> bool:
        result = session.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def _row(self, session: Session, user_id: str, *, lock: bool = True) -> TotpFactor | None:
        query = select(TotpFactor).where(TotpFactor.user_id == user_id)
        if lock:
            query = query.with_for_update()
        return session.execute(query.execution_options(populate_existing=True)).scalar_one_or_none()

    def _secret(self, session: Session, row: TotpFactor) -> bytes:
        aad = _aad(row.user_id, row.id)
        data_key = self._keys.unwrap_data_key(
            session, PLATFORM_ORG, WrappedKey.from_bytes(row.wrapped_key), aad=aad
        )
        return aead.open_sealed(data_key, row.sealed_secret, aad=aad)
