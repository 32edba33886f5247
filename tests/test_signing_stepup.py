"""Step-up before signing (意愿认证): no signature without a fresh second factor bound to the
document, and the proof kept with the signature, in its audit entry and in its ledger leaf."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from sqlalchemy import func, select

from flows import SIGNER_CLIENT, make_org, seen_digest, sent_contract, step_up
from pactvault.contracts.service import SignerSpec, SignInput
from pactvault.errors import AuthenticationError, ConflictError, InvalidInputError
from pactvault.identity.mfa.proof import StepUpProof
from pactvault.ledger import EvidenceRecord, Ledger
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent, Signature, Signer
from pactvault.store.realname_models import PersonalDataField

TWO = [
    SignerSpec(name="甲方 Alice", email="alice@example.com", routing_order=1),
    SignerSpec(name="乙方 Bob", email="bob@example.com", routing_order=1),
]


def _count(platform: Platform, model: type) -> int:
    with platform.db.read() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def _actions(platform: Platform, action: str) -> list[AuditEvent]:
    with platform.db.read() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def test_signing_without_a_verified_step_up_is_refused_and_audited(
    platform: Platform, mailer: MemoryMailer
) -> None:
    _, _, tokens = sent_contract(platform, mailer, TWO)
    token = next(iter(tokens.values()))
    digest = seen_digest(platform, token)
    for challenge in (None, "not-a-challenge"):
        with pytest.raises(ConflictError, match="step-up"):
            platform.contracts.sign(
                token,
                SIGNER_CLIENT,
                SignInput(document_sha256=digest, consent=True, stepup_challenge_id=challenge),
            )
    # Started but never answered: still refused.
    started = platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email")
    with pytest.raises(ConflictError, match="step-up"):
        platform.contracts.sign(
            token,
            SIGNER_CLIENT,
            SignInput(
                document_sha256=digest, consent=True, stepup_challenge_id=started.challenge_id
            ),
        )
    assert _count(platform, Signature) == 0
    assert len(_actions(platform, "stepup.refused")) == 3


def test_the_code_names_the_document_and_one_signers_proof_is_useless_to_another(
    platform: Platform, mailer: MemoryMailer
) -> None:
    _, _, tokens = sent_contract(platform, mailer, TWO)
    alice, bob = tokens.values()
    digest = seen_digest(platform, alice)
    challenge = platform.contracts.begin_stepup(alice, SIGNER_CLIENT, "email")
    message = mailer.messages[-1]
    assert message.to == "alice@example.com" and digest[:12] in message.body
    code = re.search(r" is (\d{6,8})\.", message.body)
    assert code is not None
    # Bob cannot answer Alice's challenge, even with her code: it answers as a missing one.
    with pytest.raises(AuthenticationError):
        platform.contracts.complete_stepup(bob, SIGNER_CLIENT, challenge.challenge_id, code[1])
    platform.contracts.complete_stepup(alice, SIGNER_CLIENT, challenge.challenge_id, code[1])
    # Nor spend her verified proof.
    with pytest.raises(ConflictError, match="step-up"):
        platform.contracts.sign(
            bob,
            SIGNER_CLIENT,
            SignInput(
                document_sha256=digest, consent=True, stepup_challenge_id=challenge.challenge_id
            ),
        )
    signed = platform.contracts.sign(
        alice,
        SIGNER_CLIENT,
        SignInput(document_sha256=digest, consent=True, stepup_challenge_id=challenge.challenge_id),
    )
    assert signed.stepup_proof_sha256
    # Spent once: Alice's proof cannot be spent again either (she has signed anyway).
    with pytest.raises(ConflictError):
        platform.contracts.sign(
            alice,
            SIGNER_CLIENT,
            SignInput(
                document_sha256=digest, consent=True, stepup_challenge_id=challenge.challenge_id
            ),
        )


def test_the_proof_is_kept_with_the_signature_its_audit_entry_and_ledger_leaf(
    platform: Platform, mailer: MemoryMailer
) -> None:
    _, contract_id, tokens = sent_contract(platform, mailer, TWO[:1])
    token = next(iter(tokens.values()))
    digest = seen_digest(platform, token)
    challenge_id = step_up(platform, token)
    signature = platform.contracts.sign(
        token,
        SIGNER_CLIENT,
        SignInput(document_sha256=digest, consent=True, stepup_challenge_id=challenge_id),
    )
    assert signature.stepup_proof is not None
    proof = StepUpProof.from_json(signature.stepup_proof)
    assert proof.challenge_id == challenge_id
    assert proof.method == "email"
    assert proof.document_sha256 == digest == signature.document_sha256_before
    assert (proof.subject_type, proof.subject_id) == ("signer", signature.signer_id)
    assert "alice@example.com" not in signature.stepup_proof, "the evidence masks the address"
    assert (
        hashlib.sha256(signature.stepup_proof.encode()).hexdigest() == signature.stepup_proof_sha256
    )

    [event] = [e for e in _actions(platform, "contract.sign") if e.object_id == contract_id]
    assert event.details["stepup_proof_sha256"] == signature.stepup_proof_sha256
    assert event.details["stepup_method"] == "email"
    with platform.db.read() as s:
        records = [EvidenceRecord.decode(leaf.data) for leaf in Ledger(s).leaves(0)]
    [leaf] = [r for r in records if r.type == "contract.sign" and r.contract_id == contract_id]
    assert leaf.stepup_proof_sha256 == signature.stepup_proof_sha256
    assert leaf.audit_entry_sha256 == event.entry_hash


def test_sms_codes_go_to_the_senders_number_which_is_stored_encrypted(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org = make_org(platform)
    with pytest.raises(InvalidInputError, match="signer 1"):
        platform.contracts.create(
            SIGNER_CLIENT,
            org,
            title="Bad phone",
            pdf=_pdf(),
            signers=[SignerSpec(name="X", email="x@example.com", phone="12")],
        )
    signers = [SignerSpec(name="王五", email="wang@example.com", phone="+86 138 0013 8000")]
    _, contract_id, tokens = sent_contract(platform, mailer, signers, org)
    token = next(iter(tokens.values()))
    with platform.db.read() as s:
        signer = s.execute(select(Signer).where(Signer.contract_id == contract_id)).scalar_one()
        stored = s.get(PersonalDataField, signer.phone_field_id)
        assert stored is not None and stored.kind == "phone"
        assert b"13800138000" not in stored.ciphertext
    challenge = platform.contracts.begin_stepup(token, SIGNER_CLIENT, "sms")
    assert challenge.destination and "13800138000" not in challenge.destination
    texts = [m for m in platform.sms.messages() if m.to == "+8613800138000"]  # type: ignore[attr-defined]
    assert texts, "the code went to the signer's mobile"
    code = re.search(r" is (\d{6,8})\.", texts[-1].text)
    assert code is not None
    platform.contracts.complete_stepup(token, SIGNER_CLIENT, challenge.challenge_id, code[1])
    signed = platform.contracts.sign(
        token,
        SIGNER_CLIENT,
        SignInput(
            document_sha256=seen_digest(platform, token),
            consent=True,
            stepup_challenge_id=challenge.challenge_id,
        ),
    )
    assert json.loads(signed.stepup_proof or "{}")["method"] == "sms"


def test_no_mobile_number_means_no_sms(platform: Platform, mailer: MemoryMailer) -> None:
    _, _, tokens = sent_contract(platform, mailer, TWO[:1])
    with pytest.raises(InvalidInputError, match="mobile"):
        platform.contracts.begin_stepup(next(iter(tokens.values())), SIGNER_CLIENT, "sms")


def _pdf() -> bytes:
    from pactvault.demo import sample_pdf

    return sample_pdf()


def test_a_signer_asked_for_real_name_verification_signs_only_once_verified(
    platform: Platform, mailer: MemoryMailer
) -> None:
    """The certificate then names the verified person and records how they were verified."""
    from io import BytesIO

    from cryptography import x509
    from PIL import Image

    from pactvault.audit.journal import Actor
    from pactvault.errors import PermissionDeniedError
    from pactvault.identity.people import NewAccount
    from pactvault.identity.realname.certificates import certificate_verification
    from pactvault.identity.realname.service import IdDocument, IdentityClaim
    from pactvault.store.models import Certificate

    def image(kind: str) -> bytes:
        out = BytesIO()
        Image.new("RGB", (60, 40), (200, 30, 30)).save(out, kind)
        return out.getvalue()

    created = platform.people.create_organisation(
        Actor(type="system", id="pytest"),
        "Acme",
        "owner@acme.test",
        NewAccount("Olive", "correct horse battery staple 42"),
    )
    owner = platform.sessions.authenticate(
        platform.login.login(
            "owner@acme.test", "correct horse battery staple 42", SIGNER_CLIENT
        ).token  # type: ignore[union-attr]
    )
    signers = [
        SignerSpec(
            name="typed by sender",
            email="zhang@example.com",
            required_assurance="verified-document",
        )
    ]
    with pytest.raises(InvalidInputError, match="assurance"):
        platform.contracts.create(
            SIGNER_CLIENT,
            created.org_id,
            title="x",
            pdf=_pdf(),
            signers=[SignerSpec(name="X", email="x@example.com", required_assurance="sort-of")],
        )
    _, contract_id, tokens = sent_contract(platform, mailer, signers, created.org_id)
    token = next(iter(tokens.values()))
    with pytest.raises(PermissionDeniedError, match="real-name verification"):
        platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email")

    contract = platform.contracts.get(created.org_id, contract_id)
    signer = contract.signers[0]
    pending = platform.verification.start_for_signer(
        SIGNER_CLIENT,
        org_id=created.org_id,
        signer_id=signer.id,
        email=signer.email,
        claim=IdentityClaim(
            name="张三明",
            id_number="110105199003071239",
            documents=(IdDocument("front", image("PNG")), IdDocument("back", image("JPEG"))),
        ),
        provider="admin-review",
        check="document",
    )
    platform.verification.review(
        owner, pending.id, approve=True, comment="matches", clearance="secret"
    )
    signature = platform.contracts.sign(
        token,
        SIGNER_CLIENT,
        SignInput(
            document_sha256=seen_digest(platform, token),
            consent=True,
            stepup_challenge_id=step_up(platform, token),
        ),
    )
    assert signature.signer_id == signer.id
    with platform.db.read() as s:
        der = s.get(Certificate, signature.certificate_serial).der  # type: ignore[union-attr]
    certificate = x509.load_der_x509_certificate(der)
    assert certificate_verification(certificate) == ("substantial", "verified-document")
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert names[0].value == "张三明", "the certificate names the verified person"
    assert b"110105199003071239" not in der, "never the ID number"


def test_basic_signers_get_a_basic_assurance_certificate(
    platform: Platform, mailer: MemoryMailer
) -> None:
    from cryptography import x509

    from pactvault.identity.realname.certificates import certificate_verification
    from pactvault.store.models import Certificate

    _, _, tokens = sent_contract(platform, mailer, TWO[:1])
    token = next(iter(tokens.values()))
    signature = platform.contracts.sign(
        token,
        SIGNER_CLIENT,
        SignInput(
            document_sha256=seen_digest(platform, token),
            consent=True,
            stepup_challenge_id=step_up(platform, token),
        ),
    )
    with platform.db.read() as s:
        der = s.get(Certificate, signature.certificate_serial).der  # type: ignore[union-attr]
    assert certificate_verification(x509.load_der_x509_certificate(der)) == ("basic", None)


def test_the_organisation_minimum_applies_to_every_signer(
    platform: Platform, mailer: MemoryMailer
) -> None:
    from pactvault.audit.journal import Actor
    from pactvault.errors import PermissionDeniedError
    from pactvault.identity.people import NewAccount

    created = platform.people.create_organisation(
        Actor(type="system", id="pytest"),
        "Acme",
        "owner@acme.test",
        NewAccount("Olive", "correct horse battery staple 42"),
    )
    owner = platform.sessions.authenticate(
        platform.login.login(
            "owner@acme.test", "correct horse battery staple 42", SIGNER_CLIENT
        ).token  # type: ignore[union-attr]
    )
    _, _, tokens = sent_contract(platform, mailer, TWO[:1], created.org_id)
    token = next(iter(tokens.values()))
    assert platform.signing_policy.minimum(created.org_id) == "basic"
    platform.signing_policy.set_minimum(owner, "verified-document")
    # Open contracts included: the basic signer must now verify first.
    with pytest.raises(PermissionDeniedError, match="verified-document"):
        platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email")
    [event] = _actions(platform, "org.signing-policy-changed")
    assert event.details == {"min_signer_assurance": "verified-document", "previous": "basic"}
    with pytest.raises(InvalidInputError):
        platform.signing_policy.set_minimum(owner, "sort-of")
    platform.signing_policy.set_minimum(owner, "basic")
    assert platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email").challenge_id
