"""Password sign-in: enumeration resistance, throttling and lockout, unlocks, rehashing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from identity_kit import CLIENT, PASSWORD, SYSTEM, Kit, make_kit
from pactvault.audit.journal import Actor
from pactvault.errors import NotFoundError, PermissionDeniedError
from pactvault.identity.errors import LOGIN_FAILED, LoginFailedError, TooManyAttemptsError
from pactvault.identity.passwords import HashParameters
from pactvault.identity.throttle import ThrottlePolicy, ip_key
from pactvault.store.identity_models import LoginThrottle, User

STRICT = ThrottlePolicy(
    account_max_failures=3,
    ip_max_failures=1000,
    base_lockout=timedelta(minutes=1),
    max_lockout=timedelta(minutes=10),
)


@pytest.fixture
def kit(database_url: str) -> Iterator[Kit]:
    instance = make_kit(database_url, throttle=STRICT)
    yield instance
    instance.close()


def failed(kit: Kit, email: str, password: str = "wrong password, sorry", **kw: object) -> str:
    with pytest.raises(LoginFailedError) as caught:
        kit.login.login(email, password, kw.pop("client", CLIENT), **kw)  # type: ignore[arg-type]
    return str(caught.value)


def test_unknown_account_and_wrong_password_fail_identically(kit: Kit) -> None:
    kit.organisation()
    messages = {
        failed(kit, "owner@acme.test"),
        failed(kit, "nobody@acme.test"),
        failed(kit, "OWNER@acme.test ", "x" * 5000),  # oversized input: same answer
    }
    assert messages == {LOGIN_FAILED}
    # The journal keeps the real reason for the operator, never the password.
    reasons = [e.details["reason"] for e in kit.events("auth.login-failed")]
    assert reasons == ["wrong-password", "unknown-account", "wrong-password"]
    assert all("wrong password" not in str(e.details) for e in kit.events("auth.login-failed"))


def test_login_succeeds_case_insensitively_and_audits(kit: Kit) -> None:
    kit.organisation()
    principal = kit.sign_in("  Owner@ACME.test")
    assert principal.role == "owner" and "org.manage" in principal.permissions
    event = kit.events("auth.login")[-1]
    assert (event.actor_type, event.actor_id, event.ip) == ("user", principal.user_id, CLIENT.ip)


def test_unknown_user_and_wrong_password_take_comparable_time(database_url: str) -> None:
    # Realistic cost (OWASP's argon2id minimum) so hashing, not noise, dominates a login.
    kit = make_kit(
        database_url,
        parameters=HashParameters(time_cost=2, memory_cost=19 * 1024, parallelism=1),
        throttle=ThrottlePolicy(account_max_failures=1000, ip_max_failures=1000),
    )
    try:
        kit.organisation()

        def timed(email: str) -> float:
            start = time.perf_counter()
            failed(kit, email)
            return time.perf_counter() - start

        timed("owner@acme.test"), timed("ghost@acme.test")  # warm up (dummy hash, caches)
        known, unknown = [], []
        for _ in range(7):
            known.append(timed("owner@acme.test"))
            unknown.append(timed("ghost@acme.test"))
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.6 < ratio < 1.6, (known, unknown)
        # And both really ran argon2 (not a short-cut on one path).
        assert min(unknown) > 0.01 and min(known) > 0.01
    finally:
        kit.close()


def test_lockout_after_failures_then_unlock_by_time_with_backoff(kit: Kit) -> None:
    kit.organisation()
    for _ in range(STRICT.account_max_failures):
        failed(kit, "owner@acme.test")
    with pytest.raises(TooManyAttemptsError) as locked:
        kit.login.login("owner@acme.test", PASSWORD, CLIENT)  # even the right password
    assert 1 <= locked.value.retry_after <= 60 and locked.value.status == 429
    kit.clock.advance(seconds=61)
    # A second round of failures locks for twice as long (exponential back-off).
    for _ in range(STRICT.account_max_failures):
        failed(kit, "owner@acme.test")
    with pytest.raises(TooManyAttemptsError) as again:
        kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    assert 60 < again.value.retry_after <= 120
    kit.clock.advance(seconds=121)
    assert kit.sign_in("owner@acme.test").role == "owner"
    # Success resets the counters: the next lockout is back to the base duration.
    for _ in range(STRICT.account_max_failures):
        failed(kit, "owner@acme.test")
    with pytest.raises(TooManyAttemptsError) as fresh:
        kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    assert fresh.value.retry_after <= 60
    assert len(kit.events("auth.login-throttled")) == 3


def test_unknown_accounts_lock_out_too(kit: Kit) -> None:
    for _ in range(STRICT.account_max_failures):
        failed(kit, "ghost@acme.test")
    with pytest.raises(TooManyAttemptsError):
        kit.login.login("ghost@acme.test", "anything", CLIENT)


def test_administrator_unlock_is_audited_and_scoped(kit: Kit) -> None:
    owner = kit.organisation()
    member = kit.member(owner, "mia@acme.test", "member")
    for _ in range(STRICT.account_max_failures):
        failed(kit, "mia@acme.test")
    with pytest.raises(TooManyAttemptsError):
        kit.login.login("mia@acme.test", PASSWORD, CLIENT)
    # A plain member cannot unlock (themselves or anyone): denied and audited.
    with pytest.raises(PermissionDeniedError):
        kit.login.unlock_account(member, member.user_id or "")
    # Another organisation's administrator cannot even see the account.
    other = kit.organisation("Other Co", "boss@other.test")
    with pytest.raises(NotFoundError) as hidden:
        kit.login.unlock_account(other, member.user_id or "")
    with pytest.raises(NotFoundError) as missing:
        kit.login.unlock_account(other, "00000000-0000-0000-0000-000000000000")
    assert str(hidden.value) == str(missing.value)
    denied = kit.events("access.denied")
    assert [e.details["action"] for e in denied] == ["auth.unlock"] * 3
    assert {e.actor_id for e in denied} == {member.user_id, other.user_id}

    assert kit.login.unlock_account(owner, member.user_id or "") is True
    [unlock] = kit.events("auth.unlock")
    assert (unlock.actor_id, unlock.object_id) == (owner.user_id, member.user_id)
    assert kit.sign_in("mia@acme.test").user_id == member.user_id


def test_throttling_is_shared_between_service_instances(database_url: str) -> None:
    first = make_kit(database_url, throttle=STRICT)
    second = make_kit(database_url, throttle=STRICT, clock=first.clock, migrate_db=False)
    try:
        first.organisation()
        failed(first, "owner@acme.test")
        failed(second, "owner@acme.test")
        failed(first, "owner@acme.test")
        for instance in (first, second):
            with pytest.raises(TooManyAttemptsError):
                instance.login.login("owner@acme.test", PASSWORD, CLIENT)
    finally:
        first.close()
        second.close()


def test_per_address_throttling(database_url: str) -> None:
    kit = make_kit(
        database_url, throttle=ThrottlePolicy(account_max_failures=100, ip_max_failures=4)
    )
    try:
        kit.organisation()
        spray = Actor(type="anonymous", ip="2001:db8:1:2::17", user_agent="spray")
        for n in range(4):
            failed(kit, f"victim{n}@acme.test", client=spray)
        neighbour = Actor(type="anonymous", ip="2001:db8:1:2::99")  # same /64
        with pytest.raises(TooManyAttemptsError):
            kit.login.login("owner@acme.test", PASSWORD, neighbour)
        assert kit.sign_in("owner@acme.test").role == "owner"  # from another address: fine
        assert ip_key("2001:db8:1:2::17") == ip_key("2001:db8:1:2:ffff::1")
        assert ip_key("::ffff:192.0.2.1") == ip_key("192.0.2.1") == "ip:192.0.2.1"
        assert kit.login.unlock_address("2001:db8:1:2::1", SYSTEM) is True
        kit.login.login("owner@acme.test", PASSWORD, neighbour)
    finally:
        kit.close()


def test_counters_live_in_the_database_keyed_by_digest(kit: Kit) -> None:
    failed(kit, "Someone@Example.test")
    with kit.db.read() as s:
        keys = set(s.execute(select(LoginThrottle.key)).scalars())
    assert any(k.startswith("acct:") and len(k) == 69 for k in keys)
    assert not any("someone" in k.lower() for k in keys)


def test_hash_is_upgraded_on_login_when_parameters_change(database_url: str) -> None:
    old = make_kit(database_url)
    try:
        old.organisation()
    finally:
        old.close()
    stronger = HashParameters(time_cost=2, memory_cost=16 * 1024, parallelism=1)
    new = make_kit(database_url, parameters=stronger, migrate_db=False)
    try:
        new.sign_in("owner@acme.test")
        with new.db.read() as s:
            stored = s.execute(select(User.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$v=19$m=16384,t=2,p=1$")
        new.sign_in("owner@acme.test")  # and the upgraded hash verifies
    finally:
        new.close()


def test_change_password_requires_the_current_one_and_ends_other_sessions(kit: Kit) -> None:
    kit.organisation()
    laptop = kit.sign_in("owner@acme.test")
    phone_issued = kit.login.login("owner@acme.test", PASSWORD, CLIENT)
    with pytest.raises(LoginFailedError):
        kit.login.change_password(
            laptop, "not it", "a brand new passphrase 2030", has_second_factor=False
        )
    kit.login.change_password(
        laptop, PASSWORD, "a brand new passphrase 2030", has_second_factor=False
    )
    with pytest.raises(Exception, match="session has ended"):
        kit.sessions.authenticate(phone_issued.token)
    failed(kit, "owner@acme.test", PASSWORD)
    assert kit.sign_in("owner@acme.test", "a brand new passphrase 2030").user_id == laptop.user_id
