"""Throttling of second-factor guesses, on the same database counters as password logins.

Keys are per subject (``mfa:user:<id>``, ``mfa:signer:<id>``) and per client address (shared with
the password step, so one address spraying codes across accounts is slowed down too). Each
attempt is reserved (counted) before the code is checked and released on success, exactly as in
``identity.throttle``; callers check and record in ONE transaction and raise only after it has
committed, so a failed guess is never rolled back with the exception it causes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from pactvault.identity.throttle import LoginThrottler, ThrottlePolicy, ip_key

#: Five wrong codes lock the subject for a minute, doubling per lockout up to an hour. With a
#: ±1-step TOTP window that is at most 15 of 10^6 codes per minute at first, far fewer later.
DEFAULT_MFA_THROTTLE = ThrottlePolicy(
    account_max_failures=5,
    ip_max_failures=50,
    base_lockout=timedelta(minutes=1),
    max_lockout=timedelta(hours=1),
)


def subject_key(subject_type: str, subject_id: str) -> str:
    return f"mfa:{subject_type}:{subject_id}"


class AttemptGuard:
    def __init__(self, policy: ThrottlePolicy, clock: Callable[[], datetime]) -> None:
        self.policy = policy
        self._throttler = LoginThrottler(policy, clock)

    def reserve(self, session: Session, key: str, ip: str | None) -> int | None:
        """Count one attempt; seconds to wait if the subject or address is locked."""
        return self._throttler.reserve(
            session,
            [(key, self.policy.account_max_failures), (ip_key(ip), self.policy.ip_max_failures)],
        )

    def reserve_sends(self, session: Session, key: str, ip: str | None, limit: int) -> int | None:
        """Count one code *sent* (never released): bounds how often anyone can make us send
        email or SMS to a destination (message bombing, SMS toll fraud)."""
        return self._throttler.reserve(
            session, [(key, limit), ("mfa-send:" + ip_key(ip), self.policy.ip_max_failures)]
        )

    def succeeded(self, session: Session, key: str, ip: str | None) -> None:
        self._throttler.succeeded(session, key, ip_key(ip))

    def clear(self, session: Session, key: str) -> bool:
        return self._throttler.clear(session, key)
