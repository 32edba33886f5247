"""The per-request decision: blocked, suspended, step-up required, rate-limited — or go on.

Nothing here speaks HTTP (``api/middleware/guard.py`` does): a request is reduced to its method,
path, client address and credential digest, and the answer is a :class:`Decision`. Checks, in
order, before any route runs:

1. the address is blocked → 403 ``blocked``;
2. the credential belongs to a suspended user, token or signing link → 403 ``suspended``;
3. the user owes a step-up and the request is sensitive (a change, or a document's bytes) →
   403 ``step-up-required``;
4. the request is counted against its route class's limits — per address and per credential —
   plus the strict ``slow-down`` limit of a slowed target → 429 with ``Retry-After``.

Blocked requests are refused before they are counted: refusing them costs no database write.

What is in force comes from ``monitor_responses`` (so every process agrees), re-read at most
every ``cache_seconds`` (and at once after this process changed it). Credentials are resolved to
their user, token or signer by digest once and remembered (the mapping never changes; a bounded
LRU keeps memory flat under a flood of random tokens). Counting is one atomic upsert in the
shared ``rate_limit_counters`` (``ratelimit``).

Route classes and default limits (``PACTVAULT_RATE_LIMITS`` overrides any, e.g.
``login.ip=20/60,api.subject=600/60``):

=========  ========================================================  ============  ===========
class      paths                                                     per address   per credential
=========  ========================================================  ============  ===========
login      password sign-in, invitations, setup                       30/min        —
otp        second-factor answers and code sending, signing step-up   30/min        20/min
signing    signing links (``/api/v1/signer/…``)                       120/min       60/min
verify     the public verification page and API                      30/min        30/min
api        every other ``/api/…`` route                              3000/min      1200/min
public     pages, ledger, PKI, TSA, witness                           600/min       600/min
=========  ========================================================  ============  ===========

``/healthz``, ``/readyz``, ``/metrics`` and ``/static`` are not limited (probes, scrapers and
cached assets; ``/metrics`` has its own access rule).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from pactvault.errors import InvalidInputError
from pactvault.monitor.networks import address_key
from pactvault.monitor.ratelimit import CounterStore, Limit, Verdict, parse_limit
from pactvault.monitor.responses import SLOW_DOWN, ActiveResponses, ResponseService
from pactvault.store.db import Database
from pactvault.store.identity_models import ApiTokenOwner, UserSession
from pactvault.store.models import ApiToken, Signer
from pactvault.tokens import API_PREFIX, SIGNING_PREFIX, token_digest

__all__ = [
    "DEFAULT_LIMITS",
    "PASS",
    "ClassLimits",
    "Credential",
    "Decision",
    "RequestFacts",
    "RequestGuard",
    "Subject",
    "classify",
    "parse_limits",
    "sensitive",
]

SESSION_PREFIX = "pvsess_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ClassLimits:
    ip: Limit | None
    subject: Limit | None


DEFAULT_LIMITS: Mapping[str, ClassLimits] = {
    "login": ClassLimits(Limit(30, 60), None),
    "otp": ClassLimits(Limit(30, 60), Limit(20, 60)),
    "signing": ClassLimits(Limit(120, 60), Limit(60, 60)),
    "verify": ClassLimits(Limit(30, 60), Limit(30, 60)),
    "api": ClassLimits(Limit(3000, 60), Limit(1200, 60)),
    "public": ClassLimits(Limit(600, 60), Limit(600, 60)),
}

#: (class, path prefix), first match wins; None: not limited.
_PREFIXES: tuple[tuple[str | None, str], ...] = (
    (None, "/healthz"),
    (None, "/readyz"),
    (None, "/metrics"),
    (None, "/static/"),
    ("otp", "/api/v1/auth/mfa"),
    ("otp", "/api/v1/signer/stepup"),
    ("otp", "/api/v1/me/security/step-up"),
    ("otp", "/sign-in/verify"),
    ("otp", "/sign-in/enrol"),
    ("login", "/api/v1/auth/login"),
    ("login", "/api/v1/auth/reauthenticate"),
    ("login", "/api/v1/setup"),
    ("login", "/api/v1/org/invitations/accept"),
    ("login", "/sign-in"),
    ("login", "/setup"),
    ("login", "/invitations/accept"),
    ("signing", "/api/v1/signer/"),
    ("signing", "/api/v1/signer"),
    ("verify", "/api/v1/verify"),
    ("verify", "/verify"),
    ("api", "/api/"),
)

#: Requests that stay possible while a step-up is owed: proving it, leaving, reading.
_STEP_UP_OPEN = (
    "/api/v1/me/security/step-up",
    "/api/v1/auth/logout",
    "/api/v1/auth/mfa",
    "/sign-out",
    "/sign-in",
)
_DOCUMENT_READ = re.compile(r"/documents?(/[^/]+)?/?$")


def classify(path: str) -> str | None:
    """The route class of a path (None: not limited)."""
    for cls, prefix in _PREFIXES:
        if path.startswith(prefix):
            return cls
    return "public"


def sensitive(method: str, path: str) -> bool:
    """A change, or reading a document's bytes: what a step-up requirement holds back."""
    if path.startswith(_STEP_UP_OPEN):
        return False
    if method not in SAFE_METHODS:
        return True
    return bool(_DOCUMENT_READ.search(path))


def parse_limits(specs: Iterable[str]) -> dict[str, ClassLimits]:
    """Defaults with ``class.ip=N/S`` / ``class.subject=N/S`` overrides (``off`` removes one)."""
    limits = dict(DEFAULT_LIMITS)
    for spec in specs:
        name, _, value = spec.partition("=")
        cls, _, which = name.strip().partition(".")
        if cls not in limits or which not in ("ip", "subject") or not value.strip():
            raise InvalidInputError(
                f"PACTVAULT_RATE_LIMITS: {spec!r} is not <class>.<ip|subject>=<N>/<seconds> "
                f"with a class among {', '.join(limits)}"
            )
        limit = None if value.strip() == "off" else parse_limit(value)
        current = limits[cls]
        limits[cls] = (
            ClassLimits(limit, current.subject) if which == "ip" else ClassLimits(current.ip, limit)
        )
    return limits


@dataclass(frozen=True)
class Credential:
    """What the request presented, reduced to its kind and SHA-256 (never the secret)."""

    kind: str  # api-token | signing | session | other
    digest: str

    @classmethod
    def of(cls, bearer: str | None, session_cookie: str | None) -> Credential | None:
        if bearer:
            if bearer.startswith(API_PREFIX):
                kind = "api-token"
            elif bearer.startswith(SIGNING_PREFIX):
                kind = "signing"
            else:
                kind = "other"
            return cls(kind, token_digest(bearer[:200]))
        if session_cookie:
            kind = "session" if session_cookie.startswith(SESSION_PREFIX) else "other"
            return cls(kind, token_digest(session_cookie[:200]))
        return None


@dataclass(frozen=True)
class RequestFacts:
    method: str
    path: str
    ip: str | None
    credential: Credential | None = None


@dataclass(frozen=True)
class Subject:
    """Whom a credential belongs to: ``token:<id>`` (+ its owner ``user:<id>``), ``user:<id>``
    or ``signer:<id>``."""

    key: str
    owner: str | None = None

    def identities(self) -> tuple[str, ...]:
        return (self.key, self.owner) if self.owner else (self.key,)


@dataclass(frozen=True)
class Decision:
    #: None: go on (with ``headers`` added to the response); else the refusal's status.
    status: int | None = None
    reason: str | None = None  # blocked | suspended | step-up | rate-limited | slowed-down
    route_class: str | None = None
    detail: str = ""
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> bool:
        return self.status is None


PASS = Decision()


class RequestGuard:
    def __init__(
        self,
        db: Database,
        counters: CounterStore,
        responses: ResponseService,
        *,
        limits: Mapping[str, ClassLimits] | None = None,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        max_subjects: int = 10_000,
    ) -> None:
        self._db = db
        self._counters = counters
        self._responses = responses
        self.limits = dict(limits or DEFAULT_LIMITS)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._active: tuple[float, ActiveResponses] | None = None
        self._subjects: OrderedDict[tuple[str, str], Subject | None] = OrderedDict()
        self._max_subjects = max_subjects

    # -- caches ---------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Re-read what is in force on the next request (this process changed it)."""
        with self._lock:
            self._active = None

    def active(self) -> ActiveResponses:
        now = self._clock()
        cached = self._active
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._lock:  # one thread re-reads; the others wait for it rather than pile on
            cached = self._active
            if cached is not None and now - cached[0] < self._cache_seconds:
                return cached[1]
            fresh = self._responses.active()
            self._active = (self._clock(), fresh)
            return fresh

    def resolve(self, credential: Credential | None) -> Subject | None:
        if credential is None or credential.kind == "other":
            return None
        cache_key = (credential.kind, credential.digest)
        with self._lock:
            if cache_key in self._subjects:
                self._subjects.move_to_end(cache_key)
                return self._subjects[cache_key]
        subject = self._lookup(credential)
        with self._lock:
            self._subjects[cache_key] = subject
            while len(self._subjects) > self._max_subjects:
                self._subjects.popitem(last=False)
        return subject

    def _lookup(self, credential: Credential) -> Subject | None:
        with self._db.read() as s:
            if credential.kind == "api-token":
                row = s.execute(
                    select(ApiToken.id, ApiTokenOwner.user_id)
                    .outerjoin(ApiTokenOwner, ApiTokenOwner.token_id == ApiToken.id)
                    .where(ApiToken.token_sha256 == credential.digest)
                ).first()
                if row is None:
                    return None
                return Subject(f"token:{row[0]}", f"user:{row[1]}" if row[1] else None)
            if credential.kind == "session":
                user = s.execute(
                    select(UserSession.user_id).where(UserSession.token_sha256 == credential.digest)
                ).scalar_one_or_none()
                return Subject(f"user:{user}") if user else None
            signer = s.execute(
                select(Signer.id).where(Signer.invitation_sha256 == credential.digest)
            ).scalar_one_or_none()
            return Subject(f"signer:{signer}") if signer else None

    # -- the decision ---------------------------------------------------------------------------

    def check(self, facts: RequestFacts) -> Decision:
        cls = classify(facts.path)
        if cls is None:
            return PASS
        active = self.active()
        now = datetime.now(UTC)
        ip = address_key(facts.ip)
        if ip is not None and ip in active.blocked_ips:
            return Decision(
                403,
                "blocked",
                cls,
                "requests from your address are blocked for a while after suspicious activity",
            )
        subject = self.resolve(facts.credential)
        for key in subject.identities() if subject else ():
            if key in active.suspended:
                return Decision(
                    403,
                    "suspended",
                    cls,
                    "this account, token or link is suspended for a while after suspicious "
                    "activity; an administrator can lift it",
                )
        if (
            subject is not None
            and any(k in active.step_up for k in subject.identities())
            and sensitive(facts.method, facts.path)
        ):
            return Decision(
                403,
                "step-up",
                cls,
                "confirm it is you first: POST /api/v1/me/security/step-up with a second factor",
            )
        return self._count(cls, facts, ip, subject, active, now)

    def _count(
        self,
        cls: str,
        facts: RequestFacts,
        ip: str | None,
        subject: Subject | None,
        active: ActiveResponses,
        now: datetime,
    ) -> Decision:
        limits = self.limits[cls]
        keys: list[tuple[str, Limit]] = []
        if ip is not None and limits.ip is not None:
            keys.append((f"{cls}|{ip}", limits.ip))
        ident = subject.key if subject else None
        if ident is None and facts.credential is not None:
            ident = f"cred:{facts.credential.digest[:32]}"
        if ident is not None and limits.subject is not None:
            keys.append((f"{cls}|{ident}", limits.subject))
        slowed = [
            t for t in (ip, *(subject.identities() if subject else ())) if t and t in active.slowed
        ]
        keys += [(f"slow|{t}", SLOW_DOWN) for t in slowed if active.slowed[t] > now]
        if not keys:
            return PASS
        verdicts = self._counters.hit(keys, self._clock())
        tightest = min(verdicts, key=lambda v: (v.remaining, v.reset))
        headers = _headers(tightest)
        denied = [v for v in verdicts if not v.allowed]
        if not denied:
            return Decision(route_class=cls, headers=headers)
        wait = max(v.retry_after for v in denied)
        reason = "slowed-down" if any(v.key.startswith("slow|") for v in denied) else "rate-limited"
        return Decision(
            429,
            reason,
            cls,
            f"too many requests; try again in {wait} seconds",
            (("Retry-After", str(wait)), *headers),
        )


def _headers(v: Verdict) -> tuple[tuple[str, str], ...]:
    """IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), for the tightest
    limit that applied."""
    return (
        ("RateLimit-Limit", str(v.limit.requests)),
        ("RateLimit-Remaining", str(v.remaining)),
        ("RateLimit-Reset", str(v.reset)),
        ("RateLimit-Policy", f"{v.limit.requests};w={v.limit.seconds}"),
    )
