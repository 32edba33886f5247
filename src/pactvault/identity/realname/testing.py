"""A deterministic identity provider for tests — and only for tests.

It "verifies" anyone, so it must never be reachable in a real deployment. Two locks:

1. it must be constructed with ``allow_in_tests=True`` (nobody enables it by accident through
   configuration that lists provider names), and
2. it refuses — at construction *and* at every check — when ``PACTVAULT_ENV`` is ``production``
   (or ``prod``). The environment is read here directly, not through ``Settings``, on purpose:
   this guard must hold even for code that builds the provider without any settings at hand.

Outcomes are chosen by the input, so tests can drive every path:

- ID number sequence code (characters 15–17) ``999`` → ``rejected`` ("identity does not match");
- sequence code ``998`` → ``pending`` (an asynchronous answer, delivered later with
  ``VerificationService.record_result``);
- sequence code ``997`` → the provider fails (raises), like an outage;
- a mobile number ending in ``0000`` → ``rejected`` (not registered to this identity);
- ``face_liveness`` with an empty face capture → ``rejected``;
- anything else → ``verified`` at the check's ceiling (see ``providers.CHECK_CEILING``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from datetime import datetime

from pactvault.errors import VerificationError
from pactvault.identity.realname.providers import (
    CHECK_CEILING,
    Evidence,
    ProviderConfigurationError,
    ProviderResult,
    VerificationRequest,
)
from pactvault.store.base import utcnow

__all__ = ["TEST_PROVIDER", "TestProvider"]

TEST_PROVIDER = "test"
_PRODUCTION = frozenset({"production", "prod"})


def _refuse_in_production(environ: Mapping[str, str]) -> None:
    if environ.get("PACTVAULT_ENV", "").strip().lower() in _PRODUCTION:
        raise ProviderConfigurationError(
            "the test identity provider cannot run with PACTVAULT_ENV=production"
        )


class TestProvider:
    """Deterministic outcomes by input; see the module docstring for the rules."""

    __test__ = False  # not a pytest test class, despite the name

    name = TEST_PROVIDER
    checks = frozenset({"id_number", "bank_card", "face_liveness"})

    def __init__(
        self,
        *,
        allow_in_tests: bool = False,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if allow_in_tests is not True:
            raise ProviderConfigurationError(
                "the test identity provider must be enabled explicitly (allow_in_tests=True)"
            )
        self._environ = os.environ if environ is None else environ
        _refuse_in_production(self._environ)
        self._clock = clock

    def verify(self, request: VerificationRequest) -> ProviderResult:
        _refuse_in_production(self._environ)
        if request.check not in self.checks:
            raise VerificationError(f"the test provider does not offer {request.check!r}")
        sequence = request.id_number[14:17]
        if sequence == "997":
            raise VerificationError("the test provider simulates an outage")
        if sequence == "998":
            return self._result("pending", request, None)
        if sequence == "999":
            return self._result("rejected", request, "identity does not match")
        if request.phone is not None and request.phone.endswith("0000"):
            return self._result("rejected", request, "mobile number not registered to identity")
        if request.check == "face_liveness" and not request.face_image:
            return self._result("rejected", request, "no live face capture")
        return self._result("verified", request, None)

    def _result(
        self, status: str, request: VerificationRequest, reason: str | None
    ) -> ProviderResult:
        reference = "test-" + hashlib.sha256(request.reference.encode()).hexdigest()[:16]
        return ProviderResult(
            status=status,  # type: ignore[arg-type]
            checked_at=self._clock(),
            assurance_level=CHECK_CEILING[request.check] if status == "verified" else None,
            provider_reference=reference,
            reason=reason,
            evidence=(
                Evidence.json(
                    "provider-response",
                    {
                        "provider": TEST_PROVIDER,
                        "reference": request.reference,
                        "check": request.check,
                        "outcome": status,
                    },
                ),
            ),
        )
