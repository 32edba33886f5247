"""The step-up proof: evidence that a person confirmed, with a fresh second factor, that they
intend to sign one specific document (意愿认证), in a form a third party can check.

The proof is a frozen value with one canonical JSON form (sorted keys, compact, UTF-8 — see
``pactvault.canonical``), so its SHA-256 is stable and can go into the evidence ledger. It says
who (subject type, id, organisation), what (the document's SHA-256), when (``verified_at``), how
(``method``) and carries the method's evidence:

- ``passkey``: the WebAuthn assertion exactly as the authenticator produced it (authenticator
  data, client data JSON, signature, credential id, all base64url), the RP ID and origin, and
  the SHA-256 of the credential's COSE public key. The challenge the authenticator signed is
  ``SHA-256(nonce ‖ document hash)`` (32 random bytes ‖ the 32-byte digest), so the signature
  covers the document hash. ``verify_passkey_proof`` re-checks it offline with the stored
  public key; any WebAuthn library can do the same.
- ``email`` / ``sms``: the channel, the masked destination and the HMAC-SHA256 (under the
  server's key) of the code bound to the challenge, the document hash and the nonce. A third
  party cannot recompute it (that needs the server key) but it pins what the server checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from webauthn import verify_authentication_response
from webauthn.helpers.exceptions import WebAuthnException

from pactvault.canonical import canonical_json
from pactvault.errors import VerificationError

PROOF_TYPE = "pactvault/step-up-proof"
PROOF_VERSION = 1
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_HEX64 = frozenset("0123456789abcdef")


def is_sha256_hex(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX64


def passkey_challenge(nonce: str, document_sha256: str) -> bytes:
    """The WebAuthn challenge of a passkey step-up: SHA-256(nonce ‖ document hash), raw bytes."""
    return hashlib.sha256(bytes.fromhex(nonce) + bytes.fromhex(document_sha256)).digest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class CodeEvidence:
    channel: str
    destination: str
    code_hmac: str
    algorithm: str = "HMAC-SHA256"


@dataclass(frozen=True)
class PasskeyEvidence:
    rp_id: str
    origin: str
    credential_id: str
    authenticator_data: str
    client_data_json: str
    signature: str
    user_handle: str | None
    public_key_sha256: str
    sign_count: int
    challenge: str  # base64url of SHA-256(nonce ‖ document hash), as in clientDataJSON


@dataclass(frozen=True)
class StepUpProof:
    challenge_id: str
    method: str
    subject_type: str
    subject_id: str
    org_id: str
    document_sha256: str
    verified_at: datetime
    nonce: str
    evidence: CodeEvidence | PasskeyEvidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": PROOF_TYPE,
            "version": PROOF_VERSION,
            "challenge_id": self.challenge_id,
            "method": self.method,
            "subject": {"type": self.subject_type, "id": self.subject_id, "org_id": self.org_id},
            "document_sha256": self.document_sha256,
            "verified_at": self.verified_at.astimezone(UTC).strftime(_TIME),
            "nonce": self.nonce,
            "evidence": asdict(self.evidence),
        }

    def to_json(self) -> str:
        """The canonical JSON text (what is stored, hashed and put into evidence)."""
        return canonical_json(self.to_dict()).decode("utf-8")

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes) -> StepUpProof:
        """Parse a proof strictly; anything unexpected is a ``VerificationError``."""
        try:
            data = json.loads(text)
            if data.get("type") != PROOF_TYPE or data.get("version") != PROOF_VERSION:
                raise ValueError("not a pactvault step-up proof of a known version")
            method = data["method"]
            raw_evidence = dict(data["evidence"])
            evidence: CodeEvidence | PasskeyEvidence
            if method == "passkey":
                evidence = PasskeyEvidence(**raw_evidence)
            elif method in ("email", "sms"):
                evidence = CodeEvidence(**raw_evidence)
            else:
                raise ValueError(f"unknown method {method!r}")
            subject = data["subject"]
            proof = cls(
                challenge_id=str(data["challenge_id"]),
                method=method,
                subject_type=str(subject["type"]),
                subject_id=str(subject["id"]),
                org_id=str(subject["org_id"]),
                document_sha256=data["document_sha256"],
                verified_at=datetime.strptime(data["verified_at"], _TIME).replace(tzinfo=UTC),
                nonce=data["nonce"],
                evidence=evidence,
            )
            if not is_sha256_hex(proof.document_sha256) or not is_sha256_hex(proof.nonce):
                raise ValueError("document hash and nonce must be 64 lower-case hex digits")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VerificationError(f"malformed step-up proof: {exc}") from None
        if proof.to_json() != (text.decode("utf-8") if isinstance(text, bytes) else text):
            raise VerificationError("the step-up proof is not in canonical form")
        return proof


def verify_passkey_proof(
    proof: StepUpProof,
    public_key: bytes,
    *,
    rp_id: str | None = None,
    origins: list[str] | None = None,
) -> None:
    """Re-verify a passkey proof offline against the credential's stored COSE public key.

    Checks that the key is the one the proof names, that the signed challenge is
    SHA-256(nonce ‖ document hash) of *this* proof, and the WebAuthn assertion itself (type,
    origin, RP ID hash, user presence and verification, signature). Pass the ``rp_id`` and
    ``origins`` you expect; by default the proof's own are used. Raises ``VerificationError``.
    """
    evidence = proof.evidence
    if proof.method != "passkey" or not isinstance(evidence, PasskeyEvidence):
        raise VerificationError("not a passkey step-up proof")
    fingerprint = hashlib.sha256(public_key).hexdigest()
    if not hmac.compare_digest(fingerprint, evidence.public_key_sha256):
        raise VerificationError("the public key is not the one this proof was made with")
    try:
        expected = passkey_challenge(proof.nonce, proof.document_sha256)
        verified = verify_authentication_response(
            credential={
                "id": evidence.credential_id,
                "rawId": evidence.credential_id,
                "type": "public-key",
                "response": {
                    "authenticatorData": evidence.authenticator_data,
                    "clientDataJSON": evidence.client_data_json,
                    "signature": evidence.signature,
                    **({"userHandle": evidence.user_handle} if evidence.user_handle else {}),
                },
                "clientExtensionResults": {},
            },
            expected_challenge=expected,
            expected_rp_id=rp_id or evidence.rp_id,
            expected_origin=origins or evidence.origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"the passkey assertion does not verify: {exc}") from None
    if verified.new_sign_count != evidence.sign_count:
        raise VerificationError("the proof's signature counter does not match the assertion")
