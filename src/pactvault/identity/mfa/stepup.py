"""Step-up before signing ("real intention", 意愿认证): a fresh second factor bound to a document.

Every signature needs one, for account users and for external signers alike (the latter are
known only by their signing invitation: signer id, email, maybe a phone number). The signing flow
calls ``begin`` with the SHA-256 of the exact document about to be signed, the person answers,
``complete`` returns a ``StepUpProof``, and the signing transaction calls ``consume`` to spend
that proof on exactly one signature and keep it as evidence.

Binding to the document, by method:
- ``email`` / ``sms``: the message names the document-hash prefix, and the code's keyed digest
  covers the challenge, the full document hash and a random nonce: the code verifies for this
  document only;
- ``passkey`` (account users with a registered passkey): the WebAuthn challenge *is*
  SHA-256(nonce ‖ document hash), so the authenticator's signature covers the document.

TOTP and recovery codes are not offered: they cannot be bound to a document. A challenge lives 5
minutes, allows 5 wrong answers, verifies once; a proof must be consumed within
``proof_max_age`` of its verification and only once. Presenting another document's hash burns
the challenge.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.audit.journal import Actor, record
from pactvault.delivery.sms import normalise_phone
from pactvault.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from pactvault.identity.errors import TooManyAttemptsError
from pactvault.identity.members import normalise_email
from pactvault.identity.mfa import channels
from pactvault.identity.mfa.codes import same_digest, sha256_hex
from pactvault.identity.mfa.errors import ChallengeGoneError, SecondFactorError
from pactvault.identity.mfa.otp import stepup_message
from pactvault.identity.mfa.passkeys import PasskeyRejected
from pactvault.identity.mfa.passkeys import count as passkey_count
from pactvault.identity.mfa.proof import (
    CodeEvidence,
    PasskeyEvidence,
    StepUpProof,
    b64url,
    is_sha256_hex,
    passkey_challenge,
)
from pactvault.identity.mfa.service import SEND_LIMIT, MfaService
from pactvault.identity.mfa.throttling import subject_key
from pactvault.identity.principal import Principal
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.identity_models import User
from pactvault.store.mfa_models import StepUpChallenge as StepUpRow

METHODS = ("passkey", "sms", "email")
SUBJECT_TYPES = ("user", "signer")
CHALLENGE_LIFETIME = timedelta(minutes=5)
PROOF_MAX_AGE = timedelta(minutes=15)
MAX_FAILURES = 5
REQUIRED = "a fresh step-up verification for this document is required before signing"


@dataclass(frozen=True)
class StepUpSubject:
    """Who is about to sign: an account user or an external signer, and where codes can go."""

    type: str  # "user" | "signer"
    id: str  # user id or signer id
    org_id: str  # the organisation whose contract is being signed
    email: str | None = None
    phone: str | None = None  # E.164

    @classmethod
    def signer(
        cls, signer_id: str, org_id: str, email: str, phone: str | None = None
    ) -> StepUpSubject:
        return cls("signer", signer_id, org_id, email, phone)

    def actor(self, client: Actor | None) -> Actor:
        if client is None:
            return Actor(type=self.type, id=self.id, org_id=self.org_id)
        return client.acting_as(self.type, self.id, self.org_id)


@dataclass(frozen=True)
class StepUpChallenge:
    challenge_id: str
    method: str
    document_sha256: str
    expires_at: datetime
    destination: str | None = None  # masked, for email/sms
    passkey_options: str | None = None  # JSON for navigator.credentials.get()


def _document(document_sha256: str) -> str:
    value = (document_sha256 or "").strip().lower()
    if not is_sha256_hex(value):
        raise InvalidInputError("document_sha256 must be 64 hexadecimal digits")
    return value


class StepUpService:
    def __init__(
        self,
        db: Database,
        mfa: MfaService,
        *,
        clock: Callable[[], datetime] = utcnow,
        lifetime: timedelta = CHALLENGE_LIFETIME,
        proof_max_age: timedelta = PROOF_MAX_AGE,
    ) -> None:
        self._db = db
        self._mfa = mfa
        self._clock = clock
        self._lifetime = lifetime
        self._proof_max_age = proof_max_age

    def subject_for_user(self, principal: Principal) -> StepUpSubject:
        """The signed-in user as a step-up subject, with their email and confirmed phone."""
        if principal.user_id is None or principal.session_id is None:
            raise AuthenticationError("signing needs a signed-in user")
        with self._db.read() as s:
            user = s.get(User, principal.user_id)
            if user is None or user.status != "active":
                raise AuthenticationError("your session has ended; please sign in again")
            sms = channels.active(s, user.id).get("sms")
            return StepUpSubject(
                "user", user.id, principal.org_id, user.email, sms.destination if sms else None
            )

    # -- begin ------------------------------------------------------------------------------

    def begin(
        self,
        subject: StepUpSubject,
        document_sha256: str,
        method: str,
        client: Actor | None = None,
    ) -> StepUpChallenge:
        """Start a verification for ``document_sha256``: send the code, or return the passkey
        request options whose challenge covers the document hash."""
        document = _document(document_sha256)
        if subject.type not in SUBJECT_TYPES or not subject.id or len(subject.id) > 36:
            raise InvalidInputError("unknown step-up subject")
        if method not in METHODS:
            raise InvalidInputError(f"step-up method must be one of {', '.join(METHODS)}")
        destination = self._destination(subject, method)
        actor = subject.actor(client)
        now = self._clock()
        nonce = secrets.token_hex(32)
        issued = None
        wait = None
        with self._db.write() as s:
            if method == "passkey":
                options = self._passkey_options(s, subject, nonce, document)
            else:
                options = None
                send_key = "mfa-send:" + subject_key(subject.type, subject.id)
                wait = self._mfa.guard.reserve_sends(s, send_key, actor.ip, SEND_LIMIT)
            if wait is not None:
                record(
                    s,
                    actor,
                    "stepup.throttled",
                    details={"stage": "send", "method": method, "retry_after": wait},
                )
            else:
                row = StepUpRow(
                    subject_type=subject.type,
                    subject_id=subject.id,
                    org_id=subject.org_id,
                    document_sha256=document,
                    method=method,
                    nonce=nonce,
                    failures=0,
                    created_at=now,
                    expires_at=now + self._lifetime,
                )
                s.add(row)
                s.flush()
                if destination is not None:
                    issued = self._mfa.codes.issue(
                        s,
                        purpose="stepup",
                        context_id=row.id,
                        channel=method,
                        destination=destination,
                        binding=(document, nonce),
                    )
                    row.destination_masked = issued.masked
                record(
                    s,
                    actor,
                    "stepup.started",
                    object_type="stepup",
                    object_id=row.id,
                    details={
                        "method": method,
                        "document_sha256": document,
                        "destination": row.destination_masked,
                    },
                )
                result = StepUpChallenge(
                    row.id, method, document, row.expires_at, row.destination_masked, options
                )
        if wait is not None:
            raise TooManyAttemptsError(wait)
        if issued is not None:
            minutes = int(self._mfa.codes.lifetime.total_seconds() // 60)
            self._mfa.deliver(issued, *stepup_message(issued.code, document, minutes), actor=actor)
        return result

    def _destination(self, subject: StepUpSubject, method: str) -> str | None:
        if method == "email":
            if not subject.email or "@" not in subject.email:
                raise InvalidInputError("no email address to send the signing code to")
            return normalise_email(subject.email)
        if method == "sms":
            if not subject.phone:
                raise InvalidInputError("no mobile number to send the signing code to")
            return normalise_phone(subject.phone)
        return None

    def _passkey_options(
        self, s: Session, subject: StepUpSubject, nonce: str, document: str
    ) -> str:
        passkeys = self._mfa.passkeys
        if passkeys is None:
            raise InvalidInputError("passkeys are not available on this server")
        if subject.type != "user" or passkey_count(s, subject.id) == 0:
            raise InvalidInputError("signing with a passkey needs an account with a passkey")
        return passkeys.authentication_options(s, subject.id, passkey_challenge(nonce, document))

    # -- complete ---------------------------------------------------------------------------

    def complete(
        self,
        challenge_id: str,
        response: str | dict[str, Any],
        document_sha256: str,
        client: Actor | None = None,
        *,
        expected: StepUpSubject | None = None,
    ) -> StepUpProof:
        """Check the answer for ``document_sha256`` and return (and keep) the proof.

        ``expected``: the subject the caller authenticated (e.g. by signing link); a challenge
        of anyone else answers exactly like a missing one.
        """
        document = _document(document_sha256)
        now = self._clock()
        error: Exception | None = None
        proof: StepUpProof | None = None
        with self._db.write() as s:
            row = s.execute(
                select(StepUpRow).where(StepUpRow.id == (challenge_id or "")[:36]).with_for_update()
            ).scalar_one_or_none()
            anonymous = client or Actor(type="anonymous")
            foreign = (
                expected is not None
                and row is not None
                and (row.subject_type, row.subject_id, row.org_id)
                != (expected.type, expected.id, expected.org_id)
            )
            if row is None or foreign or row.closed_at is not None or row.expires_at <= now:
                record(
                    s,
                    anonymous,
                    "stepup.failed",
                    object_type="stepup",
                    object_id=row.id if row else None,
                    details={"reason": "challenge-foreign" if foreign else "challenge-gone"},
                )
                error = ChallengeGoneError()
            else:
                subject = StepUpSubject(row.subject_type, row.subject_id, row.org_id)
                error, proof = self._answer(s, row, subject.actor(client), response, document, now)
        if error is not None:
            raise error
        assert proof is not None
        return proof

    def _answer(
        self,
        s: Session,
        row: StepUpRow,
        actor: Actor,
        response: str | dict[str, Any],
        document: str,
        now: datetime,
    ) -> tuple[Exception | None, StepUpProof | None]:
        if not same_digest(document, row.document_sha256):
            row.closed_at = now
            self._failed(s, row, actor, "document-mismatch", burned=True)
            return SecondFactorError("this verification was started for another document"), None
        key = subject_key(row.subject_type, row.subject_id)
        wait = self._mfa.guard.reserve(s, key, actor.ip)
        if wait is not None:
            record(
                s,
                actor,
                "stepup.throttled",
                object_type="stepup",
                object_id=row.id,
                details={"retry_after": wait},
            )
            return TooManyAttemptsError(wait), None
        evidence, reason = self._evidence(s, row, response)
        if evidence is None:
            row.failures += 1
            burned = row.failures >= MAX_FAILURES
            if burned:
                row.closed_at = now
            self._failed(s, row, actor, reason, burned=burned)
            return (ChallengeGoneError() if burned else SecondFactorError()), None
        self._mfa.guard.succeeded(s, key, actor.ip)
        proof = StepUpProof(
            challenge_id=row.id,
            method=row.method,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            org_id=row.org_id,
            document_sha256=row.document_sha256,
            verified_at=now,
            nonce=row.nonce,
            evidence=evidence,
        )
        row.closed_at = now
        row.verified_at = now
        row.proof_json = proof.to_json()
        s.flush()
        record(
            s,
            actor,
            "stepup.verified",
            object_type="stepup",
            object_id=row.id,
            details={
                "method": row.method,
                "document_sha256": row.document_sha256,
                "proof_sha256": proof.sha256(),
            },
        )
        return None, proof

    def _evidence(
        self, s: Session, row: StepUpRow, response: str | dict[str, Any]
    ) -> tuple[CodeEvidence | PasskeyEvidence | None, str]:
        if row.method == "passkey":
            passkeys = self._mfa.passkeys
            if passkeys is None:
                return None, "passkeys-unavailable"
            challenge = passkey_challenge(row.nonce, row.document_sha256)
            try:
                a = passkeys.verify_assertion(s, row.subject_id, response, sha256_hex(challenge))
            except PasskeyRejected as exc:
                return None, exc.reason
            return (
                PasskeyEvidence(
                    rp_id=passkeys.rp.id,
                    origin=a.origin,
                    credential_id=a.credential_id,
                    authenticator_data=a.authenticator_data,
                    client_data_json=a.client_data_json,
                    signature=a.signature,
                    user_handle=a.user_handle,
                    public_key_sha256=sha256_hex(a.public_key),
                    sign_count=a.sign_count,
                    challenge=b64url(challenge),
                ),
                "ok",
            )
        if not isinstance(response, str):
            return None, "malformed-response"
        spent = self._mfa.codes.verify(
            s,
            purpose="stepup",
            context_id=row.id,
            code=response,
            binding=(row.document_sha256, row.nonce),
        )
        if spent is None:
            return None, "wrong-or-expired-code"
        return CodeEvidence(spent.channel, spent.masked, spent.code_hmac), "ok"

    @staticmethod
    def _failed(s: Session, row: StepUpRow, actor: Actor, reason: str, *, burned: bool) -> None:
        s.flush()
        record(
            s,
            actor,
            "stepup.failed",
            object_type="stepup",
            object_id=row.id,
            details={
                "method": row.method,
                "reason": reason,
                "failures": row.failures,
                "burned": burned,
            },
        )

    # -- spending a proof -------------------------------------------------------------------

    def consume(
        self,
        session: Session,
        challenge_id: str,
        *,
        subject: StepUpSubject,
        document_sha256: str,
        used_for: str,
        actor: Actor | None = None,
    ) -> StepUpProof:
        """Spend a verified proof on one signature, inside the signing transaction.

        Refuses (``ConflictError``) a proof that is missing, unverified, already spent, too old,
        or made for another subject or document; the signature must not be produced then.
        """
        document = _document(document_sha256)
        now = self._clock()
        row = session.execute(
            select(StepUpRow).where(StepUpRow.id == (challenge_id or "")[:36]).with_for_update()
        ).scalar_one_or_none()
        if (
            row is None
            or row.proof_json is None
            or row.verified_at is None
            or row.consumed_at is not None
            or row.verified_at + self._proof_max_age <= now
            or (row.subject_type, row.subject_id, row.org_id)
            != (subject.type, subject.id, subject.org_id)
            or not same_digest(row.document_sha256, document)
        ):
            raise ConflictError(REQUIRED)
        row.consumed_at = now
        row.consumed_for = used_for[:100]
        session.flush()
        proof = StepUpProof.from_json(row.proof_json)
        record(
            session,
            actor or subject.actor(None),
            "stepup.consumed",
            object_type="stepup",
            object_id=row.id,
            details={"used_for": row.consumed_for, "proof_sha256": proof.sha256()},
        )
        return proof

    @staticmethod
    def subject_of(session: Session, challenge_id: str | None) -> StepUpSubject | None:
        """Whose challenge this is (without contact details), or ``None`` if there is none."""
        row = session.get(StepUpRow, (challenge_id or "")[:36])
        if row is None:
            return None
        return StepUpSubject(row.subject_type, row.subject_id, row.org_id)

    def record_refusal(self, actor: Actor, challenge_id: str | None, reason: str) -> None:
        """Audit a signature refused for want of a valid proof, in a transaction of its own.

        ``consume`` raises inside the signing transaction, which rolls back (and would take an
        audit entry with it): call this after that rollback, like ``AccessControl.guard`` does.
        """
        with self._db.write() as s:
            record(
                s,
                actor,
                "stepup.refused",
                object_type="stepup",
                object_id=(challenge_id or None) and challenge_id[:36],
                details={"reason": reason[:200]},
            )

    def proof(self, challenge_id: str, org_id: str) -> StepUpProof:
        """A stored proof of ``org_id`` (for evidence packages); other tenants' look missing."""
        with self._db.read() as s:
            row = s.get(StepUpRow, (challenge_id or "")[:36])
            if row is None or row.org_id != org_id or row.proof_json is None:
                raise NotFoundError("step-up proof not found")
            return StepUpProof.from_json(row.proof_json)
