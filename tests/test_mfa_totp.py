"""TOTP: RFC 6238 Appendix B vectors, enrolment, once-only codes, sealed seeds at rest."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select, update

from conftest import database_bytes
from identity_kit import CLIENT
from mfa_kit import MfaKit, enrol_totp, make_mfa_kit, wrong
from pactvault.errors import ConflictError, IntegrityError
from pactvault.identity.errors import TooManyAttemptsError
from pactvault.identity.login import MfaRequired
from pactvault.identity.mfa import totp
from pactvault.identity.mfa.errors import SecondFactorError
from pactvault.store.mfa_models import TotpFactor

# RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the hash's block-ish length.
SEED_SHA1 = b"12345678901234567890"
SEED_SHA256 = b"12345678901234567890123456789012"
SEED_SHA512 = b"1234567890123456789012345678901234567890123456789012345678901234"
VECTORS = [
    # (Unix time, SHA-1, SHA-256, SHA-512), 8 digits, 30-second steps.
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("unix", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_appendix_b_vectors(unix: int, sha1: str, sha256: str, sha512: str) -> None:
    moment = datetime.fromtimestamp(unix, UTC)
    for seed, algorithm, expected in (
        (SEED_SHA1, "sha1", sha1),
        (SEED_SHA256, "sha256", sha256),
        (SEED_SHA512, "sha512", sha512),
    ):
        params = totp.TotpParameters(algorithm=algorithm, digits=8, period=30)
        assert totp.code_at(seed, moment, params) == expected
        # Our verification accepts exactly that step, and refuses it once it has been used.
        step = totp.matching_step(seed, expected, moment, params)
        assert step == unix // 30
        assert totp.matching_step(seed, expected, moment, params, after_step=step) is None


def test_verification_window_is_one_step_each_way() -> None:
    params = totp.TotpParameters(digits=8)
    moment = datetime.fromtimestamp(1111111111, UTC)
    previous = totp.code_for_step(SEED_SHA1, 1111111111 // 30 - 1, params)
    two_back = totp.code_for_step(SEED_SHA1, 1111111111 // 30 - 2, params)
    assert totp.matching_step(SEED_SHA1, previous, moment, params) == 1111111111 // 30 - 1
    assert totp.matching_step(SEED_SHA1, two_back, moment, params) is None
    assert totp.matching_step(SEED_SHA1, "not-a-code", moment, params) is None
    assert totp.matching_step(SEED_SHA1, f" {previous[:4]} {previous[4:]} ", moment, params)


@pytest.fixture
def kit(database_url: str, tmp_path: Path) -> Iterator[MfaKit]:
    instance = make_mfa_kit(database_url, tmp_path)
    yield instance
    instance.close()


def test_enrolment_gives_an_otpauth_uri_and_needs_a_first_valid_code(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    setup = kit.mfa.begin_totp(owner)
    uri = urlsplit(setup.uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/pactvault:owner@acme.test"
    query = parse_qs(uri.query)
    assert query["issuer"] == ["pactvault"] and query["secret"] == [setup.secret]
    seed = base64.b32decode(setup.secret + "=" * (-len(setup.secret) % 8))
    assert len(seed) == 20
    # Pending: it does not count as a factor, and a wrong code does not activate it.
    assert kit.mfa.status(owner).methods == []
    with pytest.raises(SecondFactorError):
        kit.mfa.confirm_totp(owner, wrong(totp.code_at(seed, kit.clock.now)))
    enrolled = kit.mfa.confirm_totp(owner, totp.code_at(seed, kit.clock.now))
    assert enrolled.method == "totp" and len(enrolled.recovery_codes or []) == 10
    status = kit.mfa.status(owner)
    assert status.totp and status.methods == ["totp", "recovery"]
    assert status.recovery_codes_left == 10
    assert [e.action for e in kit.events("mfa.totp-enrolled")] == ["mfa.totp-enrolled"]
    assert kit.events("mfa.failed")[0].details["stage"] == "enrolment"
    # An active factor is not silently replaced.
    with pytest.raises(ConflictError):
        kit.mfa.begin_totp(owner)


def test_a_code_is_accepted_once_per_time_step(kit: MfaKit) -> None:
    seed = enrol_totp(kit, kit.base.organisation())
    code = totp.code_at(seed, kit.clock.now)  # the same step the enrolment just used
    first = kit.login.login("owner@acme.test", "violet-anchor-meadow-42-quartz", CLIENT)
    assert isinstance(first, MfaRequired) and first.methods == ["totp", "recovery"]
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(first.challenge, "totp", code, CLIENT)
    kit.clock.advance(seconds=30)
    fresh = totp.code_at(seed, kit.clock.now)
    issued = kit.login.complete_mfa(first.challenge, "totp", fresh, CLIENT)
    assert kit.base.sessions.authenticate(issued.token).user_id == issued.user_id
    # Replaying the accepted code, even on a brand-new challenge, fails.
    second = kit.login.login("owner@acme.test", "violet-anchor-meadow-42-quartz", CLIENT)
    assert isinstance(second, MfaRequired)
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(second.challenge, "totp", fresh, CLIENT)
    # The previous step's code (still inside the ±1 window) is older than the last used step.
    kit.clock.advance(seconds=30)
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(second.challenge, "totp", fresh, CLIENT)
    kit.login.complete_mfa(second.challenge, "totp", totp.code_at(seed, kit.clock.now), CLIENT)
    with kit.db.read() as s:
        last = s.execute(select(TotpFactor.last_used_step)).scalar_one()
    assert last == totp.time_step(kit.clock.now)


def test_confirmation_guesses_are_throttled(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    setup = kit.mfa.begin_totp(owner)
    seed = base64.b32decode(setup.secret + "=" * (-len(setup.secret) % 8))
    right = totp.code_at(seed, kit.clock.now)
    for _ in range(5):
        with pytest.raises(SecondFactorError):
            kit.mfa.confirm_totp(owner, wrong(right))
    with pytest.raises(TooManyAttemptsError):
        kit.mfa.confirm_totp(owner, right)  # locked: even the right code waits
    assert kit.events("mfa.throttled")
    kit.clock.advance(seconds=61)
    kit.mfa.confirm_totp(owner, totp.code_at(seed, kit.clock.now))


def test_seed_is_sealed_at_rest_and_bound_to_its_owner(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    other = kit.base.member(owner, "mia@acme.test", "member")
    seed = enrol_totp(kit, owner)
    dump = database_bytes(kit.db)
    assert seed not in dump
    assert base64.b32encode(seed).rstrip(b"=") not in dump
    # Moving the sealed seed to another user's row does not give them a working factor.
    enrol_totp(kit, other)
    with kit.db.write() as s:
        owner_row = s.execute(
            select(TotpFactor).where(TotpFactor.user_id != other.user_id)
        ).scalar_one()
        s.execute(
            update(TotpFactor)
            .where(TotpFactor.user_id == other.user_id)
            .values(sealed_secret=owner_row.sealed_secret, wrapped_key=owner_row.wrapped_key)
        )
    kit.clock.advance(seconds=30)
    with pytest.raises(IntegrityError), kit.db.write() as s:
        kit.mfa.totp.verify(s, other.user_id or "", totp.code_at(seed, kit.clock.now))
