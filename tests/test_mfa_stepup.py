"""Step-up before signing: a fresh factor bound to the document hash, kept as a proof that a
third party can re-check, spent on exactly one signature."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from identity_kit import CLIENT
from mfa_kit import MfaKit, SoftAuthenticator, b64url, make_mfa_kit, wrong
from pactvault.errors import ConflictError, InvalidInputError, VerificationError
from pactvault.identity.mfa import StepUpProof, StepUpSubject, verify_passkey_proof
from pactvault.identity.mfa.errors import ChallengeGoneError, SecondFactorError
from pactvault.identity.mfa.proof import CodeEvidence, PasskeyEvidence, passkey_challenge
from pactvault.store.mfa_models import OtpCode
from pactvault.store.mfa_models import StepUpChallenge as StepUpRow

DOC = hashlib.sha256(b"%PDF-1.7 purchase agreement, final").hexdigest()
OTHER_DOC = hashlib.sha256(b"%PDF-1.7 purchase agreement, altered").hexdigest()
PHONE = "+8613900139000"


@pytest.fixture
def kit(database_url: str, tmp_path: Path) -> Iterator[MfaKit]:
    instance = make_mfa_kit(database_url, tmp_path)
    yield instance
    instance.close()


def external_signer(kit: MfaKit) -> StepUpSubject:
    """Someone without an account, known only by their signing invitation."""
    org_id = kit.base.organisation().org_id
    return StepUpSubject.signer(str(uuid.uuid4()), org_id, "Sam.Signer@Client.test", PHONE)


def test_sms_code_is_bound_to_the_document(kit: MfaKit) -> None:
    signer = external_signer(kit)
    started = kit.stepup.begin(signer, DOC.upper(), "sms", CLIENT)
    assert (started.method, started.document_sha256) == ("sms", DOC)
    assert started.destination == "+86*******9000" and started.passkey_options is None
    text = kit.last_sms(PHONE)
    assert DOC[:12] in text and "意愿认证" in text
    code = kit.last_sms_code(PHONE)

    # The right code presented for another document: refused, and the challenge is burned.
    with pytest.raises(SecondFactorError, match="another document"):
        kit.stepup.complete(started.challenge_id, code, OTHER_DOC, CLIENT)
    with pytest.raises(ChallengeGoneError):
        kit.stepup.complete(started.challenge_id, code, DOC, CLIENT)

    # A code sent for document A does not verify a challenge for document B.
    for_a = kit.stepup.begin(signer, DOC, "sms", CLIENT)
    code_a = kit.last_sms_code(PHONE)
    for_b = kit.stepup.begin(signer, OTHER_DOC, "sms", CLIENT)
    code_b = kit.last_sms_code(PHONE)
    if code_a != code_b:
        with pytest.raises(SecondFactorError):
            kit.stepup.complete(for_b.challenge_id, code_a, OTHER_DOC, CLIENT)
    with pytest.raises(SecondFactorError):
        kit.stepup.complete(for_a.challenge_id, wrong(code_a), DOC, CLIENT)

    proof = kit.stepup.complete(for_a.challenge_id, code_a, DOC, CLIENT)
    assert (proof.method, proof.subject_type, proof.subject_id) == ("sms", "signer", signer.id)
    assert proof.document_sha256 == DOC and proof.verified_at == kit.clock.now
    assert isinstance(proof.evidence, CodeEvidence)
    assert proof.evidence.destination == "+86*******9000"
    with kit.db.read() as s:
        row = s.get(StepUpRow, for_a.challenge_id)
        stored_hmac = s.execute(
            select(OtpCode.code_hmac).where(OtpCode.context_id == for_a.challenge_id)
        ).scalar_one()
    assert row is not None and row.proof_json == proof.to_json()
    assert proof.evidence.code_hmac == stored_hmac and code_a not in row.proof_json
    # Verified once: the same answer again is refused.
    with pytest.raises(ChallengeGoneError):
        kit.stepup.complete(for_a.challenge_id, code_a, DOC, CLIENT)

    verified = kit.events("stepup.verified")
    assert [e.details["proof_sha256"] for e in verified] == [proof.sha256()]
    assert verified[0].actor_type == "signer" and verified[0].actor_id == signer.id
    reasons = [e.details["reason"] for e in kit.events("stepup.failed")]
    assert reasons[0] == "document-mismatch" and "wrong-or-expired-code" in reasons


def test_expired_challenges_and_bad_requests_are_refused(kit: MfaKit) -> None:
    signer = external_signer(kit)
    started = kit.stepup.begin(signer, DOC, "email", CLIENT)
    assert started.destination == "s***r@client.test"
    code = kit.last_email_code("sam.signer@client.test")
    kit.clock.advance(minutes=5, seconds=1)
    with pytest.raises(ChallengeGoneError):
        kit.stepup.complete(started.challenge_id, code, DOC, CLIENT)
    with pytest.raises(InvalidInputError):
        kit.stepup.begin(signer, "not-a-hash", "email", CLIENT)
    with pytest.raises(InvalidInputError):  # signers have no passkeys
        kit.stepup.begin(signer, DOC, "passkey", CLIENT)
    with pytest.raises(InvalidInputError):  # TOTP cannot be bound to a document
        kit.stepup.begin(signer, DOC, "totp", CLIENT)
    with pytest.raises(InvalidInputError):
        kit.stepup.begin(dataclasses.replace(signer, phone=None), DOC, "sms", CLIENT)


def test_a_proof_is_spent_on_one_signature_while_fresh(kit: MfaKit) -> None:
    signer = external_signer(kit)
    started = kit.stepup.begin(signer, DOC, "email", CLIENT)
    proof = kit.stepup.complete(
        started.challenge_id, kit.last_email_code("sam.signer@client.test"), DOC, CLIENT
    )
    someone_else = dataclasses.replace(signer, id=str(uuid.uuid4()))
    for subject, document in ((someone_else, DOC), (signer, OTHER_DOC)):
        with pytest.raises(ConflictError), kit.db.write() as s:
            kit.stepup.consume(
                s, started.challenge_id, subject=subject, document_sha256=document, used_for="x"
            )
    with kit.db.write() as s:
        spent = kit.stepup.consume(
            s, started.challenge_id, subject=signer, document_sha256=DOC, used_for="signature-1"
        )
    assert spent == proof
    with pytest.raises(ConflictError), kit.db.write() as s:
        kit.stepup.consume(
            s, started.challenge_id, subject=signer, document_sha256=DOC, used_for="signature-2"
        )
    kit.stepup.record_refusal(CLIENT, started.challenge_id, "proof already spent")
    [refused] = kit.events("stepup.refused")
    assert refused.object_id == started.challenge_id
    [consumed] = kit.events("stepup.consumed")
    assert consumed.details == {"used_for": "signature-1", "proof_sha256": proof.sha256()}
    assert kit.stepup.proof(started.challenge_id, signer.org_id) == proof

    # A proof left lying around too long is no longer good for a signature.
    late = kit.stepup.begin(signer, DOC, "email", CLIENT)
    kit.stepup.complete(
        late.challenge_id, kit.last_email_code("sam.signer@client.test"), DOC, CLIENT
    )
    kit.clock.advance(minutes=16)
    with pytest.raises(ConflictError), kit.db.write() as s:
        kit.stepup.consume(
            s, late.challenge_id, subject=signer, document_sha256=DOC, used_for="late"
        )


def test_passkey_assertion_covers_the_document_and_verifies_offline(kit: MfaKit) -> None:
    owner = kit.base.organisation()
    device = SoftAuthenticator()
    kit.mfa.finish_passkey(owner, device.register(kit.mfa.begin_passkey(owner)))
    subject = kit.stepup.subject_for_user(owner)
    assert (subject.type, subject.email) == ("user", "owner@acme.test")

    started = kit.stepup.begin(subject, DOC, "passkey", CLIENT)
    options = json.loads(started.passkey_options or "{}")
    assert options["userVerification"] == "required"
    # An assertion made for another challenge (another document's) is refused.
    other = kit.stepup.begin(subject, OTHER_DOC, "passkey", CLIENT)
    with pytest.raises(SecondFactorError):
        kit.stepup.complete(
            started.challenge_id, device.assertion(other.passkey_options or ""), DOC, CLIENT
        )
    proof = kit.stepup.complete(
        started.challenge_id, device.assertion(started.passkey_options or ""), DOC, CLIENT
    )
    evidence = proof.evidence
    assert isinstance(evidence, PasskeyEvidence)
    assert evidence.challenge == options["challenge"]
    assert options["challenge"] == b64url(passkey_challenge(proof.nonce, DOC))
    assert evidence.sign_count == device.sign_count and evidence.rp_id == "localhost"

    # Offline: only the proof and the stored public key are needed.
    public_key = device.cose_public_key()
    verify_passkey_proof(StepUpProof.from_json(proof.to_json()), public_key)
    verify_passkey_proof(proof, public_key, rp_id="localhost", origins=["http://localhost:5000"])
    with pytest.raises(VerificationError):
        verify_passkey_proof(proof, SoftAuthenticator().cose_public_key())
    with pytest.raises(VerificationError):  # the same assertion claimed for another document
        verify_passkey_proof(dataclasses.replace(proof, document_sha256=OTHER_DOC), public_key)
    with pytest.raises(VerificationError):
        verify_passkey_proof(proof, public_key, rp_id="pactvault.example")
    tampered = dataclasses.replace(
        proof, evidence=dataclasses.replace(evidence, signature=b64url(b"\x30\x00"))
    )
    with pytest.raises(VerificationError):
        verify_passkey_proof(tampered, public_key)


def test_proof_json_is_canonical_and_parsed_strictly(kit: MfaKit) -> None:
    signer = external_signer(kit)
    started = kit.stepup.begin(signer, DOC, "sms", CLIENT)
    proof = kit.stepup.complete(started.challenge_id, kit.last_sms_code(PHONE), DOC, CLIENT)
    text = proof.to_json()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data["type"] == "pactvault/step-up-proof" and data["version"] == 1
    assert data["subject"] == {"type": "signer", "id": signer.id, "org_id": signer.org_id}
    assert StepUpProof.from_json(text) == proof
    assert proof.sha256() == hashlib.sha256(text.encode()).hexdigest()
    for broken in (
        json.dumps(data, indent=1),  # not canonical
        text.replace('"version":1', '"version":2'),
        text.replace(DOC, "zz" * 32),
        "[]",
    ):
        with pytest.raises(VerificationError):
            StepUpProof.from_json(broken)
