"""The exception hierarchy shared by every layer.

Each domain raises its own subclass; interfaces map them exactly once (``api/problems.py`` to RFC
9457 problem+json, ``cli.py`` to exit codes). Messages are written for the person who made the
request: they say what was wrong and never carry internals (SQL, key ids, stack traces).
"""

from __future__ import annotations


class PactvaultError(Exception):
    """Base of every error pactvault raises on purpose.

    ``slug`` names the problem type (it becomes the problem+json ``type``), ``status`` is the HTTP
    status an interface should answer with.
    """

    slug = "error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def headers(self) -> dict[str, str]:
        """Extra response headers an interface should send with this error (``Retry-After``)."""
        return {}


class InvalidInputError(PactvaultError):
    """The request itself is wrong: a missing field, a wrong type, a value out of range."""

    slug = "invalid-input"
    status = 422
    title = "Invalid input"


class NotFoundError(PactvaultError):
    """Unknown id — or an id that belongs to another tenant, which must look exactly the same."""

    slug = "not-found"
    status = 404
    title = "Not found"


class PermissionDeniedError(PactvaultError):
    """The caller is authenticated but the action is not allowed for them."""

    slug = "forbidden"
    status = 403
    title = "Forbidden"


class AuthenticationError(PactvaultError):
    """No credentials, or credentials that could not be proven."""

    slug = "unauthenticated"
    status = 401
    title = "Authentication required"


class ConflictError(PactvaultError):
    """The request conflicts with the current state (a second signature, an illegal transition)."""

    slug = "conflict"
    status = 409
    title = "Conflict"


class PayloadTooLargeError(PactvaultError):
    slug = "payload-too-large"
    status = 413
    title = "Upload too large"


class PdfRejectedError(PactvaultError):
    """An uploaded document is not a PDF we accept (corrupt, encrypted, active content, empty)."""

    slug = "pdf-rejected"
    status = 422
    title = "PDF rejected"


class IntegrityError(PactvaultError):
    """Stored data failed authentication: ciphertext, wrapped key or hash chain was altered.

    This is never recoverable by retrying; it means tampering or corruption and must be reported.
    """

    slug = "integrity-failure"
    status = 500
    title = "Stored data failed its integrity check"


class KeyServiceError(PactvaultError):
    """A key could not be found, unwrapped or used (wrong passphrase, missing root key)."""

    slug = "key-service"
    status = 500
    title = "Key service error"


class TimestampUnavailableError(PactvaultError):
    """No trustworthy RFC 3161 timestamp could be obtained. Signing must stop — fail closed."""

    slug = "timestamp-unavailable"
    status = 503
    title = "Timestamp authority unavailable"


class SigningError(PactvaultError):
    """Producing a PDF signature failed."""

    slug = "signing-failed"
    status = 500
    title = "Signing failed"


class VerificationError(PactvaultError):
    """A signature or document could not be verified."""

    slug = "verification-failed"
    status = 422
    title = "Verification failed"
