"""Password hashing (argon2id) and the password policy (NIST SP 800-63B-4, OWASP ASVS 5 V6.2).

Policy, and why:
- length only: at least 15 characters for an account that signs in with its password alone, 8
  when a second factor is enrolled (SP 800-63B-4 §3.1.1.2); up to 256 accepted (≥ 64 required);
- no composition rules and no forced rotation: both push people to predictable patterns;
- refused if it is on the shipped blocklist of common/breached passwords or is a context word
  (the service name, the account's email or name, possibly with digits or symbols around it);
- any Unicode accepted; everything is NFKC-normalised before it is checked or hashed, so the same
  passphrase typed on two keyboards (full-width vs. half-width forms) verifies;
- never truncated: argon2 takes the whole input.

Hashing uses argon2id with explicit parameters (the RFC 9106 "second recommended" profile: t=3,
m=64 MiB, p=4; ~160 ms on the 2-core reference machine), recorded in each PHC string so that
raising them later only needs ``needs_rehash`` on the next successful login.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pactvault.identity.blocklist import Blocklist, shipped_blocklist
from pactvault.identity.errors import PasswordRejectedError

MIN_LENGTH_WITH_SECOND_FACTOR = 8
MIN_LENGTH_SINGLE_FACTOR = 15
MAX_LENGTH = 256
SERVICE_WORDS = ("pactvault",)


@dataclass(frozen=True)
class HashParameters:
    """argon2id cost parameters; memory in KiB."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024
    parallelism: int = 4
    hash_len: int = 32
    salt_len: int = 16


#: Production parameters: RFC 9106 §4 second recommended option (above OWASP's m=19 MiB, t=2).
DEFAULT_PARAMETERS = HashParameters()


def normalise_password(password: str) -> str:
    """NFKC, as SP 800-63B-4 asks, so equivalent Unicode input verifies the same way."""
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    """argon2id hashing with a dummy hash to verify against when there is no account."""

    def __init__(self, parameters: HashParameters = DEFAULT_PARAMETERS) -> None:
        self.parameters = parameters
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
            hash_len=parameters.hash_len,
            salt_len=parameters.salt_len,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(normalise_password(password))

    def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches ``stored``; with no stored hash, burn the same time.

        Unknown accounts are checked against a dummy hash made with the current parameters, so
        "no such account" and "wrong password" cost the same argon2 work.
        """
        candidate = normalise_password(password)
        if stored is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash("pactvault dummy password for absent accounts")
            stored_hash, expected = self._dummy, False
        else:
            stored_hash, expected = stored, True
        try:
            self._hasher.verify(stored_hash, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return expected

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


def _core(text: str) -> str:
    return re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text.casefold())


class PasswordPolicy:
    """Checks a new password: returns it normalised, or raises ``PasswordRejectedError``."""

    def __init__(self, blocklist: Blocklist | None = None) -> None:
        self._blocklist = blocklist

    @property
    def blocklist(self) -> Blocklist:
        if self._blocklist is None:
            self._blocklist = shipped_blocklist()
        return self._blocklist

    def check(self, password: str, *, has_second_factor: bool, context: Iterable[str] = ()) -> str:
        if not isinstance(password, str):
            raise PasswordRejectedError("invalid", "the password must be text")
        normalised = normalise_password(password)
        minimum = MIN_LENGTH_WITH_SECOND_FACTOR if has_second_factor else MIN_LENGTH_SINGLE_FACTOR
        if len(normalised) < minimum:
            hint = "" if has_second_factor else " (8 once a second factor is set up)"
            raise PasswordRejectedError(
                "too-short", f"the password must be at least {minimum} characters long{hint}"
            )
        if len(normalised) > MAX_LENGTH:
            raise PasswordRejectedError(
                "too-long", f"the password must be at most {MAX_LENGTH} characters long"
            )
        if normalised in self.blocklist:
            raise PasswordRejectedError(
                "common", "this password is too common or known from data breaches; choose another"
            )
        words = {_core(w) for w in (*SERVICE_WORDS, *context) if w}
        words |= {_core(w.split("@", 1)[0]) for w in context if w and "@" in w}
        if _core(normalised) in {w for w in words if len(w) >= 3}:
            raise PasswordRejectedError(
                "context", "the password must not be your name, email address or the service name"
            )
        return normalised
