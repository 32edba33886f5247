"""Errors of the backup domain, each mapped once to an HTTP status / CLI exit code.

``BackupIntegrityError`` is the one an operator must read carefully: a backup object, manifest or
share failed a signature or hash check. Its message always names the object (and the destination)
that failed, never key material.
"""

from __future__ import annotations

from pactvault.errors import IntegrityError, InvalidInputError, PactvaultError


class BackupError(PactvaultError):
    """A backup, restore or drill could not be carried out (a destination failed, a tool is
    missing, the lease is held): operational, retrying later may help."""

    slug = "backup-failed"
    status = 503
    title = "Backup operation failed"


class BackupIntegrityError(IntegrityError):
    """A manifest signature, an object's hash or an encrypted archive failed verification.

    Never retried silently with the same copy: the restore either uses another destination's
    good copy or refuses, naming the object.
    """

    slug = "backup-integrity-failure"
    title = "A backup failed verification"


class ShareError(InvalidInputError):
    """Root key shares that cannot be combined: too few, mistyped, from different ceremonies,
    or tampered with."""

    slug = "invalid-key-share"
    title = "Invalid root key shares"


class RestoreTargetError(InvalidInputError):
    """The restore target is not empty, not of the backup's database kind, or lacks a root key."""

    slug = "restore-target"
    title = "Unsuitable restore target"
