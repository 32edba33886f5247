"""WebAuthn passkeys (py_webauthn): registration and authentication ceremonies.

- Challenges are 32 random bytes, single use and valid for 5 minutes. The server keeps only
  their SHA-256 (a registration row, or the login/step-up challenge that asked for them); the
  challenge the browser echoes in ``clientDataJSON`` is accepted only if its digest is the one
  we stored and the row is still open.
- User verification is required in both ceremonies: a platform authenticator (fingerprint, face,
  device PIN) must have verified the person, not merely seen a touch.
- The signature counter must grow whenever either side is non-zero (py_webauthn checks it);
  the stored counter only moves forward with a conditional update, so two concurrent uses of
  one assertion cannot both succeed. Authenticators that always report 0 (synced passkeys) are
  allowed, as the specification asks.
- Attestation is not requested ("none"): we do not make trust decisions on authenticator
  models, and asking for it would reveal the device model to us for no benefit. Responses that
  do carry an attestation statement are still verified by the library.
- Credentials are looked up only among the already-identified user's own credentials (we never
  run usernameless ceremonies), so the user handle adds nothing and is not relied on.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from pactvault.errors import InvalidInputError
from pactvault.identity.mfa.codes import same_digest, sha256_hex
from pactvault.store.mfa_models import Passkey, PasskeyRegistration

CEREMONY_LIFETIME = timedelta(minutes=5)
CHALLENGE_BYTES = 32
MAX_RESPONSE_CHARS = 64 * 1024
TIMEOUT_MS = int(CEREMONY_LIFETIME.total_seconds() * 1000)
_FAILURES = (WebAuthnException, ValueError, KeyError, TypeError, AttributeError)


class PasskeyRejected(Exception):
    """A ceremony response did not verify; ``reason`` is for the audit journal only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys belong to: the RP ID (a registrable domain) and the allowed origins."""

    id: str
    origins: tuple[str, ...]
    name: str = "pactvault"

    @classmethod
    def from_public_url(cls, url: str, name: str = "pactvault") -> RelyingParty:
        """From ``PACTVAULT_PUBLIC_URL``; refuses what browsers refuse (IP hosts, plain http
        anywhere but localhost), so a misconfiguration fails at start-up, not at sign-in."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or host.replace(".", "").isdigit() or ":" in host:
            raise InvalidInputError(
                "passkeys need a public URL with a domain name (not an IP address)"
            )
        if parts.scheme != "https" and not (parts.scheme == "http" and host == "localhost"):
            raise InvalidInputError("passkeys need an https:// public URL (or http://localhost)")
        return cls(id=host, origins=(f"{parts.scheme}://{parts.netloc.lower()}",), name=name)


@dataclass(frozen=True)
class PasskeyInfo:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    device_type: str
    backed_up: bool


@dataclass(frozen=True)
class VerifiedAssertion:
    """A verified assertion with everything needed to re-verify it later (base64url fields)."""

    passkey_id: str
    credential_id: str
    public_key: bytes
    sign_count: int
    origin: str
    authenticator_data: str
    client_data_json: str
    signature: str
    user_handle: str | None


def _load(response: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(response, str):
        if len(response) > MAX_RESPONSE_CHARS:
            raise PasskeyRejected("oversized-response")
        return response
    if isinstance(response, dict):
        if len(json.dumps(response)) > MAX_RESPONSE_CHARS:
            raise PasskeyRejected("oversized-response")
        return response
    raise PasskeyRejected("malformed-response")


class Passkeys:
    def __init__(
        self,
        rp: RelyingParty,
        clock: Callable[[], datetime],
        *,
        challenge_factory: Callable[[], bytes] | None = None,
    ) -> None:
        self.rp = rp
        self._clock = clock
        self._challenge_factory = challenge_factory or (
            lambda: secrets.token_bytes(CHALLENGE_BYTES)
        )

    def new_challenge(self) -> bytes:
        return self._challenge_factory()

    # -- registration -----------------------------------------------------------------------

    def registration_options(
        self, session: Session, user_id: str, account: str, display_name: str
    ) -> str:
        """``PublicKeyCredentialCreationOptions`` JSON for ``navigator.credentials.create``."""
        now = self._clock()
        challenge = self.new_challenge()
        existing = session.execute(
            select(Passkey.credential_id).where(Passkey.user_id == user_id)
        ).scalars()
        options = generate_registration_options(
            rp_id=self.rp.id,
            rp_name=self.rp.name,
            user_id=user_id.encode("utf-8"),
            user_name=account,
            user_display_name=display_name or account,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                authenticator_attachment=AuthenticatorAttachment.PLATFORM,
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in existing],
        )
        session.add(
            PasskeyRegistration(
                user_id=user_id,
                challenge_sha256=sha256_hex(challenge),
                created_at=now,
                expires_at=now + CEREMONY_LIFETIME,
            )
        )
        session.flush()
        return options_to_json(options)

    def finish_registration(
        self, session: Session, user_id: str, response: str | dict[str, Any], name: str
    ) -> Passkey:
        """Verify the attestation response and store the credential, or ``PasskeyRejected``.

        The ceremony row is spent before verification: a failed attempt cannot be retried with
        the same challenge. The caller must commit even when this raises.
        """
        now = self._clock()
        try:
            credential: RegistrationCredential = parse_registration_credential_json(_load(response))
            challenge = parse_client_data_json(credential.response.client_data_json).challenge
        except _FAILURES:
            raise PasskeyRejected("malformed-response") from None
        ceremony = session.execute(
            select(PasskeyRegistration)
            .where(
                PasskeyRegistration.user_id == user_id,
                PasskeyRegistration.challenge_sha256 == sha256_hex(challenge),
            )
            .with_for_update()
        ).scalar_one_or_none()
        if ceremony is None or ceremony.used_at is not None or ceremony.expires_at <= now:
            raise PasskeyRejected("unknown-or-spent-challenge")
        ceremony.used_at = now
        session.flush()
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp.id,
                expected_origin=list(self.rp.origins),
                require_user_verification=True,
            )
        except _FAILURES as exc:
            raise PasskeyRejected(f"attestation-invalid: {str(exc)[:120]}") from None
        digest = sha256_hex(verified.credential_id)
        if session.execute(
            select(Passkey.id).where(Passkey.credential_id_sha256 == digest)
        ).first():
            raise PasskeyRejected("credential-already-registered")
        row = Passkey(
            user_id=user_id,
            credential_id=verified.credential_id,
            credential_id_sha256=digest,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=[_text(t) for t in credential.response.transports or []],
            aaguid=verified.aaguid,
            attestation_format=_text(verified.fmt),
            device_type=_text(verified.credential_device_type),
            backed_up=verified.credential_backed_up,
            name=(name or "").strip()[:100] or "Passkey",
            created_at=now,
        )
        session.add(row)
        session.flush()
        return row

    # -- authentication ---------------------------------------------------------------------

    def authentication_options(self, session: Session, user_id: str, challenge: bytes) -> str:
        """``PublicKeyCredentialRequestOptions`` JSON limited to the user's own credentials."""
        ids = session.execute(
            select(Passkey.credential_id).where(Passkey.user_id == user_id)
        ).scalars()
        options = generate_authentication_options(
            rp_id=self.rp.id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in ids],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options)

    def verify_assertion(
        self,
        session: Session,
        user_id: str,
        response: str | dict[str, Any],
        expected_challenge_sha256: str,
    ) -> VerifiedAssertion:
        """Verify an assertion by one of ``user_id``'s passkeys over the expected challenge."""
        try:
            credential: AuthenticationCredential = parse_authentication_credential_json(
                _load(response)
            )
            client_data = parse_client_data_json(credential.response.client_data_json)
        except _FAILURES:
            raise PasskeyRejected("malformed-response") from None
        if not same_digest(sha256_hex(client_data.challenge), expected_challenge_sha256):
            raise PasskeyRejected("wrong-challenge")
        row = session.execute(
            select(Passkey)
            .where(
                Passkey.user_id == user_id,
                Passkey.credential_id_sha256 == sha256_hex(credential.raw_id),
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if row is None:
            raise PasskeyRejected("unknown-credential")
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=client_data.challenge,
                expected_rp_id=self.rp.id,
                expected_origin=list(self.rp.origins),
                credential_public_key=row.public_key,
                credential_current_sign_count=row.sign_count,
                require_user_verification=True,
            )
        except _FAILURES as exc:
            raise PasskeyRejected(f"assertion-invalid: {str(exc)[:120]}") from None
        moved = session.execute(
            update(Passkey)
            .where(Passkey.id == row.id, Passkey.sign_count == row.sign_count)
            .values(sign_count=verified.new_sign_count, last_used_at=self._clock())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise PasskeyRejected("concurrent-use")
        r = credential.response
        return VerifiedAssertion(
            passkey_id=row.id,
            credential_id=bytes_to_base64url(credential.raw_id),
            public_key=row.public_key,
            sign_count=verified.new_sign_count,
            origin=client_data.origin,
            authenticator_data=bytes_to_base64url(r.authenticator_data),
            client_data_json=bytes_to_base64url(r.client_data_json),
            signature=bytes_to_base64url(r.signature),
            user_handle=bytes_to_base64url(r.user_handle) if r.user_handle else None,
        )

    # -- management -------------------------------------------------------------------------

    def describe(self, session: Session, user_id: str) -> list[PasskeyInfo]:
        rows = session.execute(
            select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at)
        ).scalars()
        return [info(row) for row in rows]

    def remove(self, session: Session, user_id: str, passkey_id: str) -> bool:
        result = session.execute(
            delete(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _text(value: object) -> str:
    """An enum member's value or a plain string (py_webauthn returns either, by version)."""
    return str(getattr(value, "value", value))


def count(session: Session, user_id: str) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
        ).scalar_one()
    )


def info(row: Passkey) -> PasskeyInfo:
    return PasskeyInfo(
        row.id, row.name, row.created_at, row.last_used_at, row.device_type, row.backed_up
    )
