"""Identity-specific errors (all are ``PactvaultError`` subclasses, mapped once by interfaces)."""

from __future__ import annotations

from pactvault.errors import (
    AuthenticationError,
    InvalidInputError,
    PactvaultError,
    PermissionDeniedError,
)

#: The one message every failed password login gets, whatever the cause, so that an attacker
#: learns nothing about which emails have accounts (ASVS 5 V6.3.8, NIST SP 800-63B).
LOGIN_FAILED = "the email address or password is incorrect"


class LoginFailedError(AuthenticationError):
    def __init__(self) -> None:
        super().__init__(LOGIN_FAILED)


class ReauthenticationRequiredError(PermissionDeniedError):
    """A sensitive account change needs the password confirmed again in this session ("sudo
    mode"): a stolen, older session must not be able to add its own second factor or token."""

    slug = "reauthentication-required"
    title = "Confirm your password"
    status = 403

    def __init__(self) -> None:
        super().__init__(
            "confirm your password first (POST /api/v1/auth/reauthenticate): this change needs a "
            "recent sign-in"
        )


class TooManyAttemptsError(PactvaultError):
    """Login is throttled for this account or address; ``retry_after`` is in whole seconds.

    Unknown accounts are throttled exactly like real ones, so this does not reveal existence.
    Interfaces should send ``Retry-After: <retry_after>``.
    """

    slug = "too-many-attempts"
    status = 429
    title = "Too many attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-in attempts; try again in {retry_after} seconds")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, int(self.retry_after)))}


class PasswordRejectedError(InvalidInputError):
    """A new password breaks the policy; ``reason`` is a stable code for the interface."""

    slug = "password-rejected"
    title = "Password rejected"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
