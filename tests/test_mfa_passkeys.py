"""WebAuthn passkeys: py_webauthn's recorded responses through our ceremonies, a software
authenticator for the rest, user verification required, counters only move forward."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from identity_kit import CLIENT, PASSWORD
from mfa_kit import (
    MfaKit,
    SoftAuthenticator,
    b64url,
    fixture,
    make_mfa_kit,
    unb64url,
)
from pactvault.errors import InvalidInputError
from pactvault.identity.login import MfaRequired
from pactvault.identity.mfa import RelyingParty
from pactvault.identity.mfa.codes import sha256_hex
from pactvault.identity.mfa.errors import SecondFactorError
from pactvault.identity.principal import Principal
from pactvault.store.mfa_models import Passkey


@pytest.fixture
def kit(database_url: str, tmp_path: Path) -> Iterator[MfaKit]:
    instance = make_mfa_kit(database_url, tmp_path)
    yield instance
    instance.close()


def store_credential(kit: MfaKit, user_id: str, recorded: dict, sign_count: int) -> None:
    """A credential registered earlier (its registration response is not in the fixtures)."""
    raw_id = unb64url(recorded["credential"]["rawId"])
    with kit.db.write() as s:
        s.add(
            Passkey(
                user_id=user_id,
                credential_id=raw_id,
                credential_id_sha256=sha256_hex(raw_id),
                public_key=unb64url(recorded["credential_public_key"]),
                sign_count=sign_count,
                transports=[],
                aaguid="00000000-0000-0000-0000-000000000000",
                attestation_format="none",
                device_type="single_device",
                backed_up=False,
                name="recorded",
                created_at=kit.clock.now,
            )
        )


def password_step(kit: MfaKit, email: str = "owner@acme.test") -> MfaRequired:
    outcome = kit.login.login(email, PASSWORD, CLIENT)
    assert isinstance(outcome, MfaRequired), outcome
    return outcome


@pytest.mark.parametrize("name", ["registration_none.json", "registration_packed.json"])
def test_registration_with_recorded_responses(kit: MfaKit, name: str) -> None:
    recorded = fixture(name)
    owner = kit.base.organisation()
    kit.challenges.queued.append(unb64url(recorded["challenge"]))
    options = json.loads(kit.mfa.begin_passkey(owner))
    assert options["challenge"] == recorded["challenge"]
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["authenticatorAttachment"] == "platform"

    enrolled = kit.mfa.finish_passkey(owner, recorded["credential"], name="Laptop")
    assert enrolled.method == "passkey" and len(enrolled.recovery_codes or []) == 10
    with kit.db.read() as s:
        row = s.execute(select(Passkey)).scalar_one()
    assert b64url(row.credential_id) == recorded["expected"]["credential_id"]
    assert row.attestation_format == recorded["expected"]["fmt"] and row.name == "Laptop"
    if "credential_public_key" in recorded["expected"]:
        assert b64url(row.public_key) == recorded["expected"]["credential_public_key"]
        assert row.sign_count == recorded["expected"]["sign_count"]
    [event] = kit.events("mfa.passkey-registered")
    assert event.details["passkey_id"] == row.id

    # The challenge was single use: the same response cannot register (anything) again.
    with pytest.raises(InvalidInputError):
        kit.mfa.finish_passkey(owner, recorded["credential"])
    [rejected] = kit.events("mfa.passkey-rejected")
    assert rejected.details["reason"] == "unknown-or-spent-challenge"


def test_registration_for_another_origin_or_without_a_ceremony_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    recorded = fixture("registration_none.json")
    kit = make_mfa_kit(database_url, tmp_path, rp=RelyingParty("localhost", ("https://localhost",)))
    try:
        owner = kit.base.organisation()
        with pytest.raises(InvalidInputError):  # no ceremony was started for this challenge
            kit.mfa.finish_passkey(owner, recorded["credential"])
        kit.challenges.queued.append(unb64url(recorded["challenge"]))
        kit.mfa.begin_passkey(owner)
        with pytest.raises(InvalidInputError):  # recorded on http://localhost:5000
            kit.mfa.finish_passkey(owner, recorded["credential"])
        reasons = [e.details["reason"] for e in kit.events("mfa.passkey-rejected")]
        assert reasons[0] == "unknown-or-spent-challenge"
        assert reasons[1].startswith("attestation-invalid") and "origin" in reasons[1]
        assert kit.mfa.status(owner).passkeys == []
    finally:
        kit.close()


def test_login_with_a_recorded_user_verified_assertion(kit: MfaKit) -> None:
    recorded = fixture("authentication_rsa_uv.json")
    owner = kit.base.organisation()
    store_credential(kit, owner.user_id or "", recorded, sign_count=recorded["sign_count"])
    kit.challenges.queued.append(unb64url(recorded["challenge"]))
    step = password_step(kit)
    assert step.methods == ["passkey"]
    options = json.loads(step.passkey_options or "{}")
    assert options["challenge"] == recorded["challenge"]
    assert options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [recorded["credential"]["id"]]

    issued = kit.login.complete_mfa(step.challenge, "passkey", recorded["credential"], CLIENT)
    assert issued.user_id == owner.user_id
    with kit.db.read() as s:
        assert s.execute(select(Passkey.sign_count)).scalar_one() == 1
    [event] = kit.events("auth.mfa-login")
    assert event.details["method"] == "passkey"

    # The same assertion again: on a new challenge it signs the wrong challenge, and even on
    # its own challenge the counter did not move past 1.
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(
            password_step(kit).challenge, "passkey", recorded["credential"], CLIENT
        )
    kit.challenges.queued.append(unb64url(recorded["challenge"]))
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(
            password_step(kit).challenge, "passkey", recorded["credential"], CLIENT
        )
    reasons = [e.details["reason"] for e in kit.events("mfa.failed")]
    assert reasons[0] == "wrong-challenge"
    assert reasons[1].startswith("assertion-invalid") and "sign count" in reasons[1]


def test_an_assertion_without_user_verification_is_refused(kit: MfaKit) -> None:
    recorded = fixture("authentication_ec2_no_uv.json")
    owner = kit.base.organisation()
    store_credential(kit, owner.user_id or "", recorded, sign_count=recorded["sign_count"])
    kit.challenges.queued.append(unb64url(recorded["challenge"]))
    step = password_step(kit)
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(step.challenge, "passkey", recorded["credential"], CLIENT)
    [failed] = kit.events("mfa.failed")
    assert "User verification is required" in failed.details["reason"]
    assert kit.events("auth.mfa-login") == []


def register(kit: MfaKit, principal: Principal, device: SoftAuthenticator) -> None:
    kit.mfa.finish_passkey(principal, device.register(kit.mfa.begin_passkey(principal)))


def test_software_authenticator_round_trip_and_counter_regression(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    device = SoftAuthenticator()
    register(kit, owner, device)

    step = password_step(kit)
    kit.login.complete_mfa(
        step.challenge, "passkey", device.assertion(step.passkey_options or ""), CLIENT
    )
    # A cloned authenticator shows up as a counter that does not grow: refused.
    step = password_step(kit)
    replayed = device.assertion(step.passkey_options or "", advance=0)
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(step.challenge, "passkey", replayed, CLIENT)
    # Another site's origin, or no user verification: refused too.
    for bad in (
        device.assertion(step.passkey_options or "", origin="https://evil.test"),
        device.assertion(step.passkey_options or "", uv=False),
    ):
        with pytest.raises(SecondFactorError):
            kit.login.complete_mfa(step.challenge, "passkey", bad, CLIENT)
    reasons = [e.details["reason"] for e in kit.events("mfa.failed")]
    assert "sign count" in reasons[0] and "origin" in reasons[1]
    assert "User verification" in reasons[2]
    # A passkey of another account is not accepted for this one.
    stranger = SoftAuthenticator()
    stranger.credential_id = device.credential_id + b"x"
    with pytest.raises(SecondFactorError):
        kit.login.complete_mfa(
            step.challenge, "passkey", stranger.assertion(step.passkey_options or ""), CLIENT
        )
    assert kit.events("mfa.failed")[-1].details["reason"] == "unknown-credential"


def test_registration_without_user_verification_is_refused(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    device = SoftAuthenticator()
    with pytest.raises(InvalidInputError):
        kit.mfa.finish_passkey(owner, device.register(kit.mfa.begin_passkey(owner), uv=False))
    assert kit.mfa.status(owner).passkeys == []


def test_relying_party_from_public_url() -> None:
    rp = RelyingParty.from_public_url("https://Sign.Example.com")
    assert (rp.id, rp.origins) == ("sign.example.com", ("https://sign.example.com",))
    assert RelyingParty.from_public_url("http://localhost:8000").origins == (
        "http://localhost:8000",
    )
    for refused in ("http://127.0.0.1:8000", "http://sign.example.com", "https://[::1]:8443"):
        with pytest.raises(InvalidInputError):
            RelyingParty.from_public_url(refused)
