"""Service errors as sentences in the reader's language.

Services raise ``PactvaultError``s with English ``detail``s written for API clients. Pages show a
translated sentence instead: chosen by the error's type (and a stable ``reason`` where the error
has one, like ``PasswordRejectedError``), or by the exact detail of a few well-known refusals;
anything else gets the translated generic message of its class. Wording that would reveal whether
an account exists is never produced here: the services already answer alike, and so do we.
"""

from __future__ import annotations

from pactvault.delivery import DeliveryError
from pactvault.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PactvaultError,
    PayloadTooLargeError,
    PdfRejectedError,
    PermissionDeniedError,
    VerificationError,
)
from pactvault.identity.errors import (
    LoginFailedError,
    PasswordRejectedError,
    ReauthenticationRequiredError,
    TooManyAttemptsError,
)
from pactvault.identity.mfa.errors import ChallengeGoneError, SecondFactorError
from pactvault.identity.mfa.grants import INVALID_GRANT
from pactvault.identity.people import INVALID_INVITATION
from pactvault.web.i18n import Translator

#: Exact details of refusals people meet often, and the catalog key that says it in their words.
KNOWN_DETAILS = {
    INVALID_INVITATION: "errors.invitation_invalid",
    INVALID_GRANT: "errors.enrolment_expired",
    "the setup token is invalid, used or expired": "errors.setup_token_invalid",
    "an account with this email already exists; sign in to accept the invitation": (
        "errors.invitation_sign_in_first"
    ),
    "an account with this email address already exists": "errors.account_exists",
    "an authenticator app is already set up; remove it first": "errors.totp_exists",
    "your organisation requires a second factor; add another one before removing this": (
        "errors.last_factor"
    ),
    "set up a second factor first": "errors.enrol_first",
    "the passkey could not be registered; please try again": "errors.passkey_rejected",
    "passkeys are not available on this server": "errors.passkeys_unavailable",
    "the file is not a PDF": "errors.not_a_pdf",
    "the PDF is damaged or could not be parsed": "errors.pdf_damaged",
    "the PDF is encrypted; signatures cannot be verified": "errors.pdf_encrypted",
    "you are already a member of this organisation": "errors.already_member",
    "organisation name must be 1 to 200 characters": "errors.org_name",
    "the name must be 1 to 200 characters": "errors.display_name",
    "a valid email address is required": "errors.email_invalid",
    "enter the mobile number in international form with its country code, "
    "e.g. +86 138 0013 8000": "errors.phone_invalid",
}

_BY_CLASS: tuple[tuple[type[BaseException], str], ...] = (
    (LoginFailedError, "errors.login_failed"),
    (ReauthenticationRequiredError, "errors.reauthenticate"),
    (SecondFactorError, "errors.second_factor"),
    (ChallengeGoneError, "errors.challenge_gone"),
    (PayloadTooLargeError, "errors.too_large"),
    (PdfRejectedError, "errors.pdf_rejected"),
    (VerificationError, "errors.verification"),
    (AuthenticationError, "errors.authentication"),
    (PermissionDeniedError, "errors.forbidden"),
    (NotFoundError, "errors.not_found"),
    (ConflictError, "errors.conflict"),
    (InvalidInputError, "errors.invalid_input"),
    (DeliveryError, "errors.delivery"),
)


def error_message(exc: BaseException, t: Translator) -> str:
    """One translated sentence for ``exc`` (never its internals)."""
    if isinstance(exc, TooManyAttemptsError):
        return t("errors.too_many_attempts", seconds=max(1, int(exc.retry_after)))
    if isinstance(exc, PasswordRejectedError):
        key = f"errors.password.{exc.reason}"
        return t(key) if t.has(key) else t("errors.password.invalid")
    detail = getattr(exc, "detail", None)
    if isinstance(detail, str) and detail in KNOWN_DETAILS:
        return t(KNOWN_DETAILS[detail])
    for cls, key in _BY_CLASS:
        if isinstance(exc, cls):
            return t(key)
    if isinstance(exc, PactvaultError) and exc.status < 500:
        return t("errors.invalid_input")
    return t("errors.internal")


def error_status(exc: BaseException) -> int:
    if isinstance(exc, PactvaultError):
        return exc.status
    if isinstance(exc, DeliveryError):
        return 502
    return 500
