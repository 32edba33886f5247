"""Errors of the second step. One message per kind of failure, never which part was wrong."""

from __future__ import annotations

from pactvault.errors import AuthenticationError

SECOND_FACTOR_FAILED = "the verification code or passkey response is not valid"
CHALLENGE_GONE = "this verification has expired or was already used; please start again"


class SecondFactorError(AuthenticationError):
    """A code, recovery code or passkey assertion did not verify (wrong, replayed, spent)."""

    slug = "second-factor-failed"
    title = "Second factor not accepted"

    def __init__(self, detail: str = SECOND_FACTOR_FAILED) -> None:
        super().__init__(detail)


class ChallengeGoneError(AuthenticationError):
    """The login or step-up challenge is unknown, expired, already used or burned."""

    slug = "challenge-gone"
    title = "Verification expired"

    def __init__(self, detail: str = CHALLENGE_GONE) -> None:
        super().__init__(detail)
