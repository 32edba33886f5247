"""Shared rate-limit counters (SQLite and PostgreSQL), request classification, client addresses.

The counters are exercised as several API processes would use them: separate ``CounterStore``
instances (separate connection pools) on one database, and many threads at once — every request
must be counted exactly once, with no per-process state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pactvault.errors import InvalidInputError
from pactvault.monitor.guard import (
    Credential,
    classify,
    parse_limits,
    sensitive,
)
from pactvault.monitor.networks import TrustedProxies, address_key, network_of
from pactvault.monitor.ratelimit import CounterStore, Limit, counter_url, parse_limit
from pactvault.store import migrate
from pactvault.store.db import Database

T0 = 1_800_000_000.0  # a window boundary for 60-second windows (divisible by 60)


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    db = Database.from_url(database_url)
    migrate.upgrade(db.engine)
    db.dispose()
    yield database_url


@pytest.fixture
def store(url: str) -> Iterator[CounterStore]:
    counters = CounterStore(url)
    try:
        yield counters
    finally:
        counters.close()


def test_counts_refuses_past_the_limit_and_says_when_to_retry(store: CounterStore) -> None:
    limit = Limit(5, 60)
    verdicts = [store.hit([("login|ip:198.51.100.1", limit)], T0 + i)[0] for i in range(7)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 2
    assert [v.remaining for v in verdicts[:5]] == [4, 3, 2, 1, 0]
    assert verdicts[0].reset == 60 and verdicts[4].reset == 56
    # Retry-After: into the next window, until enough of this one has slid out.
    # 55 s to the window's end, then 20 s until 6 * (1 - t/60) + 1 <= 5.
    assert verdicts[5].retry_after == 75
    # Another key is untouched.
    assert store.hit([("login|ip:198.51.100.2", limit)], T0)[0].allowed


def test_the_window_slides(store: CounterStore) -> None:
    limit = Limit(10, 60)
    for i in range(10):
        assert store.hit([("k", limit)], T0 + 50 + i * 0.1)[0].allowed
    # Just after the boundary the previous window still weighs almost fully: refused.
    assert not store.hit([("k", limit)], T0 + 61)[0].allowed
    # Halfway through the next window half of it has slid out: allowed again.
    late = store.hit([("k", limit)], T0 + 95)[0]
    assert late.allowed and late.used == pytest.approx(10 * (1 - 35 / 60) + 2)
    # Two windows later everything is forgotten.
    fresh = store.hit([("k", limit)], T0 + 200)[0]
    assert fresh.used == 1


def test_one_request_counts_against_several_keys_at_once(store: CounterStore) -> None:
    tight, loose = Limit(2, 60), Limit(100, 60)
    for _ in range(2):
        store.hit([("api|ip:a", loose), ("api|user:u", tight)], T0)
    third = store.hit([("api|ip:a", loose), ("api|user:u", tight)], T0)
    assert [v.allowed for v in third] == [True, False]
    assert third[0].used == 3  # refused requests are counted too
    with pytest.raises(InvalidInputError):
        store.hit([("same", loose), ("same", tight)], T0)


def test_processes_share_the_counters(url: str) -> None:
    """Two stores (two processes' pools) on one database see one count."""
    first, second = CounterStore(url), CounterStore(url)
    try:
        limit = Limit(4, 60)
        assert first.hit([("shared", limit)], T0)[0].used == 1
        assert second.hit([("shared", limit)], T0)[0].used == 2
        assert first.hit([("shared", limit)], T0)[0].used == 3
        assert second.hit([("shared", limit)], T0)[0].used == 4
        assert not first.hit([("shared", limit)], T0)[0].allowed
    finally:
        first.close()
        second.close()


def test_concurrent_requests_are_each_counted_once(url: str) -> None:
    stores = [CounterStore(url) for _ in range(2)]
    limit = Limit(10_000, 3600)
    seen: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def hammer(store: CounterStore) -> None:
        try:
            for _ in range(25):
                used = store.hit([("hot", limit), ("api|ip:x", limit)], T0)[0].used
                with lock:
                    seen.append(used)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(stores[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        # Every request got its own count: 1..200, no duplicates, none lost.
        assert sorted(seen) == [float(n) for n in range(1, 201)]
    finally:
        for s in stores:
            s.close()


def test_forget_and_prune(store: CounterStore) -> None:
    limit = Limit(1, 60)
    store.hit([("login|ip:198.51.100.9", limit), ("api|ip:198.51.100.9", limit)], T0)
    store.hit([("api|ip:198.51.100.90", limit)], T0)
    assert store.forget("ip:198.51.100.9") == 2
    assert store.hit([("login|ip:198.51.100.9", limit)], T0)[0].used == 1
    assert store.prune(T0 + 3 * 86400) == 2


def test_limits_are_parsed_strictly() -> None:
    assert parse_limit("30/60") == Limit(30, 60)
    assert parse_limit("1000/hour") == Limit(1000, 3600)
    for bad in ("30", "x/60", "0/60", "5/0", "5/999999"):
        with pytest.raises(InvalidInputError):
            parse_limit(bad)
    limits = parse_limits(["login.ip=5/60", "api.subject=off"])
    assert limits["login"].ip == Limit(5, 60) and limits["api"].subject is None
    for bad in ("nope.ip=5/60", "login.user=5/60", "login.ip="):
        with pytest.raises(InvalidInputError):
            parse_limits([bad])


def test_route_classes_and_sensitive_requests() -> None:
    assert classify("/api/v1/auth/login") == "login"
    assert classify("/sign-in") == "login"
    assert classify("/api/v1/auth/mfa/code") == "otp"
    assert classify("/api/v1/signer/stepup/abc") == "otp"
    assert classify("/api/v1/signer/contract") == "signing"
    assert classify("/verify") == "verify"
    assert classify("/api/v1/verify") == "verify"
    assert classify("/api/v1/contracts/x/document") == "api"
    assert classify("/ledger/checkpoint") == "public"
    assert classify("/healthz") is None and classify("/metrics") is None
    assert classify("/static/app.css") is None
    assert sensitive("GET", "/api/v1/contracts/x/document")
    assert sensitive("GET", "/api/v1/org/verifications/v/documents/e")
    assert not sensitive("GET", "/api/v1/contracts/x")
    assert sensitive("POST", "/api/v1/tokens")
    assert not sensitive("POST", "/api/v1/me/security/step-up")
    assert not sensitive("POST", "/api/v1/auth/logout")


def test_credentials_are_reduced_to_their_digest() -> None:
    api = Credential.of("pva_secretsecret", None)
    assert api is not None and api.kind == "api-token" and "secret" not in api.digest
    assert Credential.of(None, "pvsess_abc").kind == "session"  # type: ignore[union-attr]
    assert Credential.of("pvs_link", "pvsess_abc").kind == "signing"  # type: ignore[union-attr]
    assert Credential.of(None, None) is None


def test_addresses_keys_and_networks() -> None:
    assert address_key("198.51.100.7") == "ip:198.51.100.7"
    assert address_key("::ffff:198.51.100.7") == "ip:198.51.100.7"
    assert address_key("2001:db8:1:2:3:4:5:6") == "ip:2001:db8:1:2::/64"
    assert address_key("testclient") is None and address_key(None) is None
    assert network_of("198.51.100.7") == "198.51.100.0/24"
    assert network_of("2001:db8:1:2::9") == "2001:db8:1::/48"


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    nobody = TrustedProxies()
    assert nobody.client("127.0.0.1", ["203.0.113.50"]) == "127.0.0.1"
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    # From a trusted proxy: the right-most address that is not a proxy.
    assert proxies.client("127.0.0.1", ["198.51.100.1, 203.0.113.50, 10.1.2.3"]) == "203.0.113.50"
    # A client cannot pick its address by prepending: only the hop the proxy added counts.
    assert proxies.client("127.0.0.1", ["6.6.6.6", "203.0.113.50"]) == "203.0.113.50"
    # Not from a proxy: the header is the client's own claim, ignored.
    assert proxies.client("203.0.113.9", ["198.51.100.1"]) == "203.0.113.9"
    # Garbage in the chain stops at the last trustworthy hop, never at the garbage.
    assert proxies.client("127.0.0.1", ["evil, 10.0.0.2"]) == "10.0.0.2"
    with pytest.raises(InvalidInputError):
        TrustedProxies(["not-a-network"])


def test_sqlite_counters_live_beside_the_database_postgres_in_it() -> None:
    assert counter_url("sqlite:////srv/pv/pactvault.db") == (
        "sqlite:////srv/pv/ratelimits.db",
        True,
    )
    pg = "postgresql+psycopg://pv@db.internal:5432/pactvault"
    assert counter_url(pg) == (pg, False)


def test_monitoring_settings_are_read_strictly() -> None:
    from pactvault.config import Settings

    settings = Settings.from_env(
        {
            "PACTVAULT_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "PACTVAULT_RATE_LIMITS": "login.ip=20/60,api.subject=off",
            "PACTVAULT_METRICS_TOKEN": "t" * 24,
            "PACTVAULT_MONITOR": "off",
        }
    )
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert settings.rate_limits == ("login.ip=20/60", "api.subject=off")
    assert settings.monitor_enabled is False and settings.metrics_token == "t" * 24
    assert "t" * 24 not in repr(settings)
    assert Settings.from_env({}).monitor_enabled is True
    for bad in ({"PACTVAULT_MONITOR": "maybe"}, {"PACTVAULT_METRICS_TOKEN": "short"}):
        with pytest.raises(InvalidInputError):
            Settings.from_env(bad)
