"""Multi-factor authentication, the login second step, and step-up before signing.

Modules, one job each:
- ``totp`` (RFC 6238, pure) and ``totp_store`` (sealed seeds, replay-safe verification);
- ``recovery`` (single-use recovery codes), ``otp`` (email/SMS one-time codes and the
  ``CodeSender`` seam), ``channels`` (where codes go), ``passkeys`` (WebAuthn ceremonies);
- ``keyring`` (the keys behind code digests), ``throttling`` (guess and send limits),
  ``factors`` (who has what, which organisations require MFA), ``grants`` (enrolment-only
  access when an organisation requires MFA);
- ``service`` (``MfaService``: managing factors and the organisation requirement), ``stepup``
  (``StepUpService``) and ``proof`` (``StepUpProof`` and its offline verification).

``identity.login.LoginService`` runs the second step of a sign-in with ``MfaService``.
"""

from pactvault.identity.mfa.grants import Enrollee
from pactvault.identity.mfa.otp import CodeSender, EmailCodeSender, SmsCodeSender
from pactvault.identity.mfa.passkeys import RelyingParty
from pactvault.identity.mfa.proof import StepUpProof, verify_passkey_proof
from pactvault.identity.mfa.service import MfaService
from pactvault.identity.mfa.stepup import StepUpService, StepUpSubject

__all__ = [
    "CodeSender",
    "EmailCodeSender",
    "Enrollee",
    "MfaService",
    "RelyingParty",
    "SmsCodeSender",
    "StepUpProof",
    "StepUpService",
    "StepUpSubject",
    "verify_passkey_proof",
]
