"""The login second step: challenges, recovery codes, email/SMS codes, throttling, and the
organisation MFA requirement with enrolment-only grants."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from identity_kit import CLIENT, PASSWORD, SYSTEM
from mfa_kit import MfaKit, SoftAuthenticator, enrol_totp, make_mfa_kit, wrong
from pactvault.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
)
from pactvault.identity.errors import LoginFailedError, TooManyAttemptsError
from pactvault.identity.login import MfaEnrolmentRequired, MfaRequired
from pactvault.identity.mfa import totp
from pactvault.identity.mfa.errors import ChallengeGoneError, SecondFactorError
from pactvault.identity.mfa.service import SEND_LIMIT
from pactvault.identity.people import NewAccount
from pactvault.identity.principal import Principal
from pactvault.identity.sessions import IssuedSession
from pactvault.store.mfa_models import LoginChallenge, RecoveryCode


@pytest.fixture
def kit(database_url: str, tmp_path: Path) -> Iterator[MfaKit]:
    instance = make_mfa_kit(database_url, tmp_path)
    yield instance
    instance.close()


def password_step(kit: MfaKit, email: str = "owner@acme.test") -> MfaRequired:
    outcome = kit.login.login(email, PASSWORD, CLIENT)
    assert isinstance(outcome, MfaRequired), outcome
    return outcome


def test_challenge_is_single_use_expires_and_is_stored_hashed(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    # No factor and no requirement: the password alone opens a session.
    assert isinstance(kit.login.login("owner@acme.test", PASSWORD, CLIENT), IssuedSession)
    assert kit.events("auth.mfa-required") == []
    seed = enrol_totp(kit, owner)
    signed_in_before = len(kit.events("auth.login"))  # the owner's session before enrolling
    step = password_step(kit)
    assert step.expires_at == kit.clock.now + timedelta(minutes=5)
    with kit.db.read() as s:
        stored = s.execute(select(LoginChallenge.token_sha256)).scalar_one()
    assert stored == hashlib.sha256(step.challenge.encode()).hexdigest()
    # A correct password alone opened no session.
    assert len(kit.events("auth.login")) == signed_in_before

    kit.clock.advance(minutes=5, seconds=1)
    with pytest.raises(ChallengeGoneError):
        kit.login.complete_mfa(step.challenge, "totp", totp.code_at(seed, kit.clock.now), CLIENT)

    step = password_step(kit)
    kit.clock.advance(seconds=30)
    kit.login.complete_mfa(step.challenge, "totp", totp.code_at(seed, kit.clock.now), CLIENT)
    kit.clock.advance(seconds=30)
    with pytest.raises(ChallengeGoneError):  # used
        kit.login.complete_mfa(step.challenge, "totp", totp.code_at(seed, kit.clock.now), CLIENT)
    with pytest.raises(ChallengeGoneError):  # never issued
        kit.login.complete_mfa("pvmfa_" + "A" * 43, "totp", "123456", CLIENT)
    with pytest.raises(InvalidInputError):  # not a method of this account
        kit.login.complete_mfa(password_step(kit).challenge, "sms", "123456", CLIENT)
    [login] = kit.events("auth.mfa-login")
    assert login.details["method"] == "totp" and login.actor_id == step_user(kit)


def step_user(kit: MfaKit) -> str:
    return kit.events("auth.mfa-required")[0].object_id


def test_wrong_codes_burn_the_challenge_and_lock_the_second_step(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    seed = enrol_totp(kit, owner)
    step = password_step(kit)
    kit.clock.advance(seconds=30)
    right = totp.code_at(seed, kit.clock.now)
    for _ in range(4):
        with pytest.raises(SecondFactorError):
            kit.login.complete_mfa(step.challenge, "totp", wrong(right), CLIENT)
    with pytest.raises(ChallengeGoneError):  # the fifth wrong answer burns it
        kit.login.complete_mfa(step.challenge, "totp", wrong(right), CLIENT)
    assert len(kit.events("mfa.challenge-burned")) == 1
    assert [e.details["failures"] for e in kit.events("mfa.failed")] == [1, 2, 3, 4, 5]
    # The password step still works, but the second step is locked for this user...
    fresh = password_step(kit)
    with pytest.raises(TooManyAttemptsError):
        kit.login.complete_mfa(fresh.challenge, "totp", right, CLIENT)
    # ...until an administrator lifts the lockout (the owner here, from a live session).
    assert kit.base.login.unlock_account(owner, owner.user_id or "") is True
    kit.login.complete_mfa(fresh.challenge, "totp", right, CLIENT)


def test_recovery_codes_are_single_use_hashed_and_replaced_together(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    setup = kit.mfa.begin_totp(owner)
    seed = totp_seed(setup.secret)
    codes = kit.mfa.confirm_totp(owner, totp.code_at(seed, kit.clock.now)).recovery_codes or []
    assert len(set(codes)) == 10 and all(len(c) == 11 and c[5] == "-" for c in codes)
    with kit.db.read() as s:
        stored = list(s.execute(select(RecoveryCode.code_hmac)).scalars())
    assert len(stored) == 10 and not {c.replace("-", "") for c in codes} & set(stored)

    step = password_step(kit)
    typed = codes[0].upper().replace("-", " ")  # as someone might type it
    kit.login.complete_mfa(step.challenge, "recovery", typed, CLIENT)
    assert kit.events("mfa.recovery-code-used")[0].details == {"recovery_codes_left": 9}
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(password_step(kit).challenge, "recovery", codes[0], CLIENT)

    fresh = kit.mfa.regenerate_recovery_codes(owner)
    assert not set(fresh) & set(codes)
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(password_step(kit).challenge, "recovery", codes[1], CLIENT)
    kit.login.complete_mfa(password_step(kit).challenge, "recovery", fresh[1], CLIENT)
    assert kit.mfa.status(owner).recovery_codes_left == 9


def totp_seed(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def test_sms_and_email_codes(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    sms = kit.mfa.begin_channel(owner, "sms", "+86 138-0013-8000")
    assert sms.destination == "+86*******8000"
    with pytest.raises(SecondFactorError):
        kit.mfa.confirm_channel(owner, sms.channel_id, wrong(kit.last_sms_code("+8613800138000")))
    enrolled = kit.mfa.confirm_channel(owner, sms.channel_id, kit.last_sms_code("+8613800138000"))
    assert enrolled.method == "sms" and enrolled.recovery_codes
    email = kit.mfa.begin_channel(owner, "email", "ignored@elsewhere.test")
    assert email.destination == "o***r@acme.test"  # always the account's own address
    kit.mfa.confirm_channel(owner, email.channel_id, kit.last_email_code("owner@acme.test"))
    assert kit.mfa.status(owner).methods == ["sms", "email", "recovery"]

    step = password_step(kit)
    sent = kit.login.send_login_code(step.challenge, "sms", CLIENT)
    assert sent.destination == "+86*******8000"
    first = kit.last_sms_code("+8613800138000")
    kit.login.send_login_code(step.challenge, "sms", CLIENT)  # a resend supersedes the first
    second = kit.last_sms_code("+8613800138000")
    if first != second:
        with pytest.raises(SecondFactorError):
            kit.login.complete_mfa(step.challenge, "sms", first, CLIENT)
    with pytest.raises(SecondFactorError):  # an SMS code is not an email code
        kit.login.complete_mfa(step.challenge, "email", second, CLIENT)
    kit.login.complete_mfa(step.challenge, "sms", second, CLIENT)

    step = password_step(kit)
    for _ in range(3):
        kit.login.send_login_code(step.challenge, "email", CLIENT)
    with pytest.raises(TooManyAttemptsError):  # three codes per sign-in at most
        kit.login.send_login_code(step.challenge, "email", CLIENT)
    code = kit.last_email_code("owner@acme.test")
    kit.login.complete_mfa(step.challenge, "email", code, CLIENT)
    with pytest.raises(ChallengeGoneError):
        kit.login.complete_mfa(step.challenge, "email", code, CLIENT)
    # The development SMS outbox says, in every file, that nothing was delivered.
    outbox = sorted((kit.sms.directory).glob("*.sms.json"))
    assert outbox and all(
        json.loads(p.read_text())["outbox"] == "DEVELOPMENT OUTBOX - NOT DELIVERED" for p in outbox
    )
    assert [e.details["channel"] for e in kit.events("mfa.code-sent")] == ["sms"] * 2 + [
        "email"
    ] * 3


def test_code_sending_is_rate_limited(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    for _ in range(SEND_LIMIT):
        kit.mfa.begin_channel(owner, "sms", "+8613800138000")
    with pytest.raises(TooManyAttemptsError):
        kit.mfa.begin_channel(owner, "sms", "+8613800138001")
    assert len(kit.sms.messages()) == SEND_LIMIT
    assert kit.events("mfa.throttled")[0].details["stage"] == "send"
    with pytest.raises(InvalidInputError):
        kit.mfa.begin_channel(owner, "sms", "138 0013 8000")  # no country code: refused


def test_organisation_requirement_and_enrolment_grants(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    member = kit.base.member(owner, "mia@acme.test", "member")
    with pytest.raises(PermissionDeniedError):
        kit.mfa.set_org_requirement(member, True)
    [denied] = kit.events("access.denied")
    assert denied.details["action"] == "org.manage" and denied.actor_id == member.user_id
    enrol_totp(kit, owner)
    kit.mfa.set_org_requirement(owner, True)
    assert kit.events("mfa.org-policy-changed")[0].details == {
        "require_mfa": True,
        "previous": False,
    }

    outcome = kit.login.login("mia@acme.test", PASSWORD, CLIENT)
    assert isinstance(outcome, MfaEnrolmentRequired)
    assert outcome.methods == ["passkey", "totp", "sms", "email"]
    [required] = kit.events("auth.mfa-enrolment-required")
    assert required.object_id == member.user_id
    enrollee = kit.mfa.enrollee(outcome.enrolment_token)
    assert (enrollee.user_id, enrollee.org_id) == (member.user_id, member.org_id)
    with pytest.raises(InvalidInputError):  # nothing enrolled yet
        kit.login.finish_enrolment(outcome.enrolment_token, CLIENT)
    device = SoftAuthenticator()
    kit.mfa.finish_passkey(enrollee, device.register(kit.mfa.begin_passkey(enrollee)))
    with pytest.raises(PermissionDeniedError):  # a grant can enrol, not remove
        kit.mfa.remove_passkey(enrollee, "anything")  # type: ignore[arg-type]
    assert kit.events("access.denied")[-1].details["action"] == "mfa.passkey-remove"
    issued = kit.login.finish_enrolment(outcome.enrolment_token, CLIENT)
    assert issued.user_id == member.user_id
    with pytest.raises(AuthenticationError):  # spent
        kit.login.finish_enrolment(outcome.enrolment_token, CLIENT)
    with pytest.raises(AuthenticationError):
        kit.mfa.enrollee(outcome.enrolment_token)
    assert kit.events("auth.mfa-login")[-1].details["method"] == "enrolment"

    # From now on the member signs in with the passkey, and cannot drop the last factor.
    step = password_step(kit, "mia@acme.test")
    kit.login.complete_mfa(
        step.challenge, "passkey", device.assertion(step.passkey_options or ""), CLIENT
    )
    full = kit.base.sessions.authenticate(
        kit.login.complete_mfa(
            (step := password_step(kit, "mia@acme.test")).challenge,
            "passkey",
            device.assertion(step.passkey_options or ""),
            CLIENT,
        ).token
    )
    [passkey] = kit.mfa.status(full).passkeys
    with pytest.raises(ConflictError):
        kit.mfa.remove_passkey(full, passkey.id)
    kit.mfa.set_org_requirement(owner, False)
    kit.mfa.remove_passkey(full, passkey.id)
    status = kit.mfa.status(full)
    assert status.methods == [] and status.recovery_codes_left == 0
    assert isinstance(kit.login.login("mia@acme.test", PASSWORD, CLIENT), IssuedSession)


def test_enrolment_grants_expire(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    enrol_totp(kit, owner)
    kit.mfa.set_org_requirement(owner, True)
    kit.base.people.invite(owner, "leo@acme.test", "member")
    kit.base.people.accept_invitation(
        kit.base.invitation_token("leo@acme.test"), CLIENT, account=NewAccount("Leo", PASSWORD)
    )
    outcome = kit.login.login("leo@acme.test", PASSWORD, CLIENT)
    assert isinstance(outcome, MfaEnrolmentRequired)
    enrollee = kit.mfa.enrollee(outcome.enrolment_token)
    kit.clock.advance(minutes=16)
    with pytest.raises(AuthenticationError):
        kit.mfa.begin_totp(enrollee)
    with pytest.raises(AuthenticationError):
        kit.login.finish_enrolment(outcome.enrolment_token, CLIENT)


def test_fails_closed_without_the_mfa_service_and_for_api_tokens(kit: MfaKit) -> None:
    seed = enrol_totp(kit, kit.base.organisation())
    plain = kit.base.login  # a LoginService built without MfaService
    step = plain.login("owner@acme.test", PASSWORD, CLIENT)
    assert isinstance(step, MfaRequired)
    with pytest.raises(AuthenticationError):
        plain.complete_mfa(step.challenge, "totp", totp.code_at(seed, kit.clock.now), CLIENT)
    with pytest.raises(LoginFailedError):
        plain.login("owner@acme.test", "wrong password entirely", CLIENT)

    # Factors are never managed with API tokens (a leaked token must not add its own phone).
    issued = kit.base.tokens.operator_token("Ops", SYSTEM)
    token_principal = kit.base.tokens.authenticate(issued.token)
    with pytest.raises(InvalidInputError):
        kit.mfa.begin_totp(token_principal)
    personal = Principal(org_id=token_principal.org_id, token_id="t", user_id="u")
    with pytest.raises(PermissionDeniedError):
        kit.mfa.begin_totp(personal)
    [denied] = kit.events("access.denied")
    assert (denied.details["action"], denied.object_id) == ("mfa.totp-enrol", "u")
