"""Real-name verification: providers, evidence, review with four-eyes, expiry, certificates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from PIL import Image
from sqlalchemy import func, select

from identity_kit import SYSTEM, Kit, make_kit
from pactvault.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from pactvault.identity.personal_data import PersonalDataService
from pactvault.identity.principal import Principal
from pactvault.identity.realname.admin_review import AdminReviewProvider
from pactvault.identity.realname.certificates import (
    VERIFICATION_METHOD_OIDS,
    VerifiedSubjectIdentity,
    certificate_verification,
    signer_subject,
)
from pactvault.identity.realname.evidence import EvidenceFiles
from pactvault.identity.realname.providers import (
    Evidence,
    IdDocument,
    ProviderConfigurationError,
    ProviderResult,
    VerificationRequest,
)
from pactvault.identity.realname.service import IdentityClaim, VerificationService
from pactvault.identity.realname.subjects import Subject, VerifiedIdentity
from pactvault.identity.realname.testing import TestProvider
from pactvault.keys.local import LocalKeyService, LocalKeyStore
from pactvault.pki.authority import CertificateAuthority
from pactvault.pki.identity import ASSURANCE_POLICY_OIDS
from pactvault.store.blobs import EncryptedBlobStore, FilesystemBlobStore
from pactvault.store.models import AuditEvent, Base, Contract, Signer
from pactvault.store.realname_models import IdentityVerification, VerificationEvidence
from pactvault.store.sweep import sweep_orphan_blobs

NAME = "张三明"
ID_VERIFIED = "110105199003071239"  # sequence 123: the test provider verifies
ID_REJECTED = "110105199003079994"  # sequence 999: rejected
ID_PENDING = "110105199003079986"  # sequence 998: answered later
ID_OUTAGE = "110105199003079978"  # sequence 997: the provider fails
PHONE = "13812345678"
MY_TABLES = {
    "personal_data_index_keys",
    "personal_data",
    "identity_verifications",
    "identity_evidence",
}


def image(kind: str = "PNG", size: tuple[int, int] = (60, 40)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, kind)
    return out.getvalue()


def three_factor(id_number: str = ID_VERIFIED, phone: str = PHONE) -> IdentityClaim:
    return IdentityClaim(name=NAME, id_number=id_number, phone=phone)


def documents_claim() -> IdentityClaim:
    return IdentityClaim(
        name=NAME,
        id_number=ID_VERIFIED,
        documents=(IdDocument("front", image("PNG")), IdDocument("back", image("JPEG"))),
    )


class Overclaiming:
    """A provider that offers a three-factor check but answers as if it had seen a face."""

    name = "greedy"
    checks = frozenset({"id_number"})

    def verify(self, request: VerificationRequest) -> ProviderResult:
        return ProviderResult(
            status="verified", checked_at=datetime.now(UTC), assurance_level="verified-face"
        )


@dataclass
class World:
    kit: Kit
    keys: LocalKeyService
    blob_dir: Path
    blob_store: FilesystemBlobStore
    service: VerificationService
    owner: Principal
    alice: Principal  # a plain member
    rita: Principal  # an administrator, the reviewer

    def status(self, verification_id: str) -> str:
        with self.kit.db.read() as s:
            row = s.get(IdentityVerification, verification_id)
            assert row is not None
            return row.status

    def signer(self, email: str, name: str = NAME) -> str:
        """A signer row of a draft contract of the owner's organisation."""
        with self.kit.db.write() as s:
            contract = Contract(org_id=self.owner.org_id, title="Lease", created_by="pytest")
            s.add(contract)
            s.flush()
            signer = Signer(
                contract_id=contract.id,
                org_id=self.owner.org_id,
                position=1,
                name=name,
                email=email,
                field_name="Signature1",
                field_box=[0.0, 0.0, 100.0, 50.0],
            )
            s.add(signer)
            s.flush()
            return signer.id


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    kit = make_kit(database_url)
    keys = LocalKeyService(LocalKeyStore(tmp_path / "keys", None).initialise())
    blob_store = FilesystemBlobStore(tmp_path / "blobs")
    blobs = EncryptedBlobStore(blob_store, keys)
    vault = PersonalDataService(kit.db, keys, kit.access)
    providers = [
        AdminReviewProvider(clock=kit.clock),
        TestProvider(allow_in_tests=True, environ={}, clock=kit.clock),
        Overclaiming(),
    ]
    service = VerificationService(kit.db, kit.access, vault, blobs, providers, clock=kit.clock)
    owner = kit.organisation()
    alice = kit.member(owner, "alice@acme.test", "member")
    rita = kit.member(owner, "rita@acme.test", "admin")
    try:
        yield World(kit, keys, tmp_path / "blobs", blob_store, service, owner, alice, rita)
    finally:
        kit.close()


def alice_subject(world: World) -> Subject:
    return Subject.user(world.alice.user_id or "")


# -- the test provider must never run by accident ----------------------------------------------


def test_the_test_provider_must_be_enabled_explicitly_and_never_in_production() -> None:
    with pytest.raises(ProviderConfigurationError, match="explicitly"):
        TestProvider()
    with pytest.raises(ProviderConfigurationError, match="production"):
        TestProvider(allow_in_tests=True, environ={"PACTVAULT_ENV": "Production"})
    environ = {"PACTVAULT_ENV": "development"}
    provider = TestProvider(allow_in_tests=True, environ=environ)
    request = VerificationRequest("ref", "id_number", NAME, ID_VERIFIED, PHONE)
    assert provider.verify(request).status == "verified"
    environ["PACTVAULT_ENV"] = "production"  # checked again at every use, not only at start
    with pytest.raises(ProviderConfigurationError):
        provider.verify(request)


def test_uploaded_documents_must_be_real_png_or_jpeg_images_within_limits() -> None:
    assert IdDocument("front", image("PNG")).media_type == "image/png"
    assert IdDocument("back", image("JPEG")).media_type == "image/jpeg"
    gif = BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    for bad in (
        b"",
        gif.getvalue(),  # a real image, but not an accepted type
        b"\x89PNG\r\n\x1a\n" + b"not really a png",  # right magic bytes, no image
        b"%PDF-1.7\n",
        image("PNG")[:40],  # truncated
        b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024),  # over the size limit
    ):
        with pytest.raises(InvalidInputError):
            IdDocument("front", bad)
    with pytest.raises(InvalidInputError):
        IdDocument("selfie", image("PNG"))


# -- provider checks ---------------------------------------------------------------------------


def test_a_three_factor_check_yields_the_identity_certificates_need(world: World) -> None:
    info = world.service.start_for_user(
        world.alice, three_factor(), provider="test", check="id_number"
    )
    assert (info.status, info.assurance_level) == ("verified", "verified-3-factor")
    assert info.expires_at == world.kit.clock.now + timedelta(days=365)
    identity = world.service.current_identity(
        world.alice.org_id, alice_subject(world), actor=SYSTEM
    )
    assert identity is not None
    assert (identity.name, identity.masked_id_number) == (NAME, "1****************9")
    assert (identity.assurance_level, identity.verification_id) == ("verified-3-factor", info.id)
    assert [e.object_id for e in world.kit.events("realname.start")] == [info.id]
    assert [e.object_id for e in world.kit.events("realname.verified")] == [info.id]
    [name_read] = world.kit.events("personal_data.read")  # the clear name, for the certificate
    assert name_read.details["kind"] == "name" and name_read.details["purpose"] == "certificate"
    # The provider's answer is kept as evidence, encrypted on disk.
    with world.kit.db.read() as s:
        kinds = s.execute(
            select(VerificationEvidence.kind).where(VerificationEvidence.verification_id == info.id)
        ).scalars()
        assert list(kinds) == ["provider-response"]
    on_disk = b"".join(p.read_bytes() for p in world.blob_dir.rglob("*") if p.is_file())
    assert on_disk and b"outcome" not in on_disk and ID_VERIFIED.encode() not in on_disk
    # Nothing personal in the journal, which can never be erased.
    with world.kit.db.read() as s:
        journal = str([e.details for e in s.execute(select(AuditEvent)).scalars()])
    assert ID_VERIFIED not in journal and NAME not in journal and PHONE not in journal


def test_rejections_failures_and_late_answers(world: World) -> None:
    start = world.service.start_for_user
    rejected = start(world.alice, three_factor(ID_REJECTED), provider="test", check="id_number")
    assert (rejected.status, rejected.reason) == ("rejected", "identity does not match")
    wrong_phone = start(
        world.alice, three_factor(phone="13800000000"), provider="test", check="id_number"
    )
    assert wrong_phone.status == "rejected"

    with pytest.raises(VerificationError):
        start(world.alice, three_factor(ID_OUTAGE), provider="test", check="id_number")
    [failure] = world.kit.events("realname.provider-error")
    assert world.status(failure.object_id or "") == "rejected"

    pending = start(world.alice, three_factor(ID_PENDING), provider="test", check="id_number")
    assert pending.status == "pending"
    with pytest.raises(ConflictError):  # one open check per person at a time
        start(world.alice, three_factor(), provider="test", check="id_number")
    assert (
        world.service.current_identity(pending.org_id, alice_subject(world), actor=SYSTEM) is None
    )

    answer = ProviderResult(
        status="verified",
        checked_at=world.kit.clock.now,
        assurance_level="verified-3-factor",
        provider_reference="cb-1",
        evidence=(Evidence.json("provider-callback", {"match": True}),),
    )
    with pytest.raises(NotFoundError):  # a callback in the name of another provider
        world.service.record_result(
            SYSTEM,
            org_id=pending.org_id,
            verification_id=pending.id,
            provider="greedy",
            result=answer,
        )
    done = world.service.record_result(
        SYSTEM, org_id=pending.org_id, verification_id=pending.id, provider="test", result=answer
    )
    assert (done.status, done.assurance_level) == ("verified", "verified-3-factor")
    with pytest.raises(ConflictError):  # decided once, never reopened
        world.service.record_result(
            SYSTEM,
            org_id=pending.org_id,
            verification_id=pending.id,
            provider="test",
            result=answer,
        )
    identity = world.service.current_identity(pending.org_id, alice_subject(world), actor=SYSTEM)
    assert identity is not None and identity.verification_id == pending.id


def test_a_provider_cannot_claim_more_assurance_than_its_check_gives(world: World) -> None:
    with pytest.raises(VerificationError):
        world.service.start_for_user(
            world.alice, three_factor(), provider="greedy", check="id_number"
        )
    [event] = world.kit.events("realname.provider-invalid")
    assert world.status(event.object_id or "") == "rejected"
    assert (
        world.service.current_identity(world.alice.org_id, alice_subject(world), actor=SYSTEM)
        is None
    )


def test_checks_need_their_inputs_and_a_configured_provider(world: World) -> None:
    claim = IdentityClaim(name=NAME, id_number=ID_VERIFIED)
    with pytest.raises(InvalidInputError, match="mobile"):
        world.service.start_for_user(world.alice, claim, provider="test", check="id_number")
    with pytest.raises(InvalidInputError, match="does not offer"):
        world.service.start_for_user(world.alice, claim, provider="test", check="document")
    with pytest.raises(ProviderConfigurationError):
        world.service.start_for_user(world.alice, claim, provider="nobody", check="id_number")
    bad_id = three_factor(ID_VERIFIED[:17] + "0")
    with pytest.raises(InvalidInputError):
        world.service.start_for_user(world.alice, bad_id, provider="test", check="id_number")
    with world.kit.db.read() as s:  # refused before anything was stored or sent
        assert s.execute(select(func.count()).select_from(IdentityVerification)).scalar() == 0


# -- administrator review ----------------------------------------------------------------------


def test_document_review_by_another_administrator_with_clearance(world: World) -> None:
    claim = documents_claim()
    pending = world.service.start_for_user(
        world.alice, claim, provider="admin-review", check="document"
    )
    assert pending.status == "pending"
    review = world.service.review

    with pytest.raises(PermissionDeniedError):  # a plain member cannot review
        review(world.alice, pending.id, approve=True, comment="", clearance="secret")
    with pytest.raises(PermissionDeniedError, match="classified confidential"):
        review(world.rita, pending.id, approve=True, comment="", clearance="internal")

    masked = world.service.review_packet(world.rita, pending.id, clearance="public")
    assert (masked.name.value, masked.id_number.value) == ("张*明", "1****************9")
    partly = world.service.review_packet(world.rita, pending.id, clearance="internal")
    assert (partly.name.masked, partly.id_number.masked) == (False, True)  # names are internal
    packet = world.service.review_packet(world.rita, pending.id, clearance="confidential")
    assert (packet.name.value, packet.id_number.value) == (NAME, ID_VERIFIED)
    kinds = {e.kind: e for e in packet.evidence}
    assert set(kinds) == {"id-document-front", "id-document-back", "review-receipt"}
    front = kinds["id-document-front"]
    assert front.size == len(claim.documents[0].content)
    with pytest.raises(PermissionDeniedError):
        world.service.evidence_content(world.rita, pending.id, front.id, clearance="internal")
    content = world.service.evidence_content(
        world.rita, pending.id, front.id, clearance="confidential"
    )
    assert content == claim.documents[0].content

    with pytest.raises(InvalidInputError, match="why"):
        review(world.rita, pending.id, approve=False, comment="  ", clearance="confidential")
    done = review(world.rita, pending.id, approve=True, comment="matches", clearance="secret")
    assert (done.status, done.assurance_level) == ("verified", "verified-document")
    with pytest.raises(ConflictError):
        review(world.rita, pending.id, approve=False, comment="changed my mind", clearance="secret")
    identity = world.service.current_identity(
        world.alice.org_id, alice_subject(world), actor=SYSTEM
    )
    assert identity is not None and identity.assurance_level == "verified-document"
    denied = [e.details["action"] for e in world.kit.events("access.denied")]
    assert denied.count("realname.review") == 2 and "realname.evidence" in denied


def test_nobody_reviews_their_own_verification(world: World) -> None:
    mine = world.service.start_for_user(
        world.rita, documents_claim(), provider="admin-review", check="document"
    )
    with pytest.raises(PermissionDeniedError, match="your own"):
        world.service.review(world.rita, mine.id, approve=True, comment="", clearance="secret")
    [denial] = world.kit.events("access.denied")
    assert denial.details["action"] == "realname.review" and denial.object_id == mine.id
    assert world.status(mine.id) == "pending"
    # An external signer who happens to be the reviewer (same email) is the same person too.
    signer_id = world.signer("RITA@acme.test")
    as_signer = world.service.start_for_signer(
        SYSTEM,
        org_id=world.owner.org_id,
        signer_id=signer_id,
        email="rita@acme.test",
        claim=documents_claim(),
        provider="admin-review",
        check="document",
    )
    with pytest.raises(PermissionDeniedError):
        world.service.review(world.rita, as_signer.id, approve=True, comment="", clearance="secret")
    ok = world.service.review(
        world.owner, mine.id, approve=False, comment="blurry", clearance="secret"
    )
    assert (ok.status, ok.reason) == ("rejected", "blurry")


def test_other_tenants_see_nothing(world: World) -> None:
    pending = world.service.start_for_user(
        world.alice, documents_claim(), provider="admin-review", check="document"
    )
    other = world.kit.organisation("Other Co", "boss@other.test")
    with pytest.raises(NotFoundError) as crossed:
        world.service.review(other, pending.id, approve=True, comment="", clearance="secret")
    with pytest.raises(NotFoundError) as missing:
        world.service.get(other, "00000000-0000-0000-0000-000000000000")
    assert str(crossed.value) == str(missing.value)
    with pytest.raises(NotFoundError):
        world.service.get(other, pending.id)
    assert world.service.get(world.alice, pending.id).status == "pending"  # one's own
    assert world.service.current_identity(other.org_id, alice_subject(world), actor=SYSTEM) is None


# -- external signers, expiry -----------------------------------------------------------------


def test_a_signers_verification_is_bound_to_their_email(world: World) -> None:
    signer_id = world.signer("zhang@ext.test")
    face = IdentityClaim(name=NAME, id_number=ID_VERIFIED, face_image=b"\x00live-capture")
    start = world.service.start_for_signer
    with pytest.raises(NotFoundError):
        start(
            SYSTEM,
            org_id=world.owner.org_id,
            signer_id=signer_id,
            email="other@ext.test",
            claim=face,
            provider="test",
            check="face_liveness",
        )
    info = start(
        SYSTEM,
        org_id=world.owner.org_id,
        signer_id=signer_id,
        email="zhang@ext.test",
        claim=face,
        provider="test",
        check="face_liveness",
    )
    assert (info.status, info.assurance_level) == ("verified", "verified-face")
    current = world.service.current_identity
    same = current(world.owner.org_id, Subject.signer(signer_id, " Zhang@EXT.test"), actor=SYSTEM)
    assert same is not None and same.assurance_level == "verified-face"
    moved = current(world.owner.org_id, Subject.signer(signer_id, "new@ext.test"), actor=SYSTEM)
    assert moved is None


def test_pending_checks_and_verified_identities_expire(world: World) -> None:
    pending = world.service.start_for_user(
        world.alice, documents_claim(), provider="admin-review", check="document"
    )
    world.kit.clock.advance(days=8)
    with pytest.raises(ConflictError, match="expired"):
        world.service.review(world.rita, pending.id, approve=True, comment="", clearance="secret")
    assert world.status(pending.id) == "expired"  # committed although the review was refused
    assert [e.object_id for e in world.kit.events("realname.expired")] == [pending.id]

    verified = world.service.start_for_user(
        world.alice, three_factor(), provider="test", check="id_number"
    )
    subject = alice_subject(world)
    assert world.service.current_identity(verified.org_id, subject, actor=SYSTEM) is not None
    world.kit.clock.advance(days=366)
    assert world.service.current_identity(verified.org_id, subject, actor=SYSTEM) is None
    assert world.service.expire_due(SYSTEM) == 1
    assert world.status(verified.id) == "expired"
    assert world.service.expire_due(SYSTEM) == 0


# -- certificates ------------------------------------------------------------------------------


def verified(level: str) -> VerifiedIdentity:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    return VerifiedIdentity(
        verification_id="v-1",
        org_id="o-1",
        subject=Subject.user("u-1"),
        name=NAME,
        masked_id_number="1****************9",
        assurance_level=level,
        provider="test",
        method="id_number",
        verified_at=now,
        expires_at=now + timedelta(days=365),
    )


@pytest.mark.parametrize(
    ("level", "loa"),
    [
        ("verified-document", "substantial"),
        ("verified-3-factor", "substantial"),
        ("verified-4-factor", "substantial"),
        ("verified-face", "high"),
    ],
)
def test_each_assurance_level_maps_to_a_level_of_assurance_and_a_method_oid(
    level: str, loa: str
) -> None:
    subject = signer_subject(verified(level), subject_id="u-1", email="zhang@example.com")
    assert (subject.common_name, subject.assurance_level) == (NAME, loa)
    assert subject.policy_oids == (VERIFICATION_METHOD_OIDS[level], ASSURANCE_POLICY_OIDS[loa])
    assert ID_VERIFIED not in repr(subject)


def test_no_certificate_subject_without_sufficient_verification() -> None:
    with pytest.raises(PermissionDeniedError):
        signer_subject(verified("basic"), subject_id="u-1")
    with pytest.raises(PermissionDeniedError, match="verified-face"):
        signer_subject(
            verified("verified-3-factor"), subject_id="u-1", minimum_assurance="verified-face"
        )
    with pytest.raises(InvalidInputError):  # the method and the level of assurance must agree
        VerifiedSubjectIdentity(
            common_name=NAME,
            subject_id="u-1",
            assurance_level="high",
            verification_method="verified-document",
        )
    with pytest.raises(InvalidInputError):
        VerifiedSubjectIdentity(common_name=NAME, subject_id="u-1", verification_method="sms")
    assert len(set(VERIFICATION_METHOD_OIDS.values()) | set(ASSURANCE_POLICY_OIDS.values())) == 7


def test_the_issued_certificate_records_assurance_but_not_the_id_number(world: World) -> None:
    world.service.start_for_user(
        world.alice,
        IdentityClaim(name=NAME, id_number=ID_VERIFIED, face_image=b"live"),
        provider="test",
        check="face_liveness",
    )
    identity = world.service.current_identity(
        world.alice.org_id, alice_subject(world), actor=SYSTEM
    )
    assert identity is not None
    ca = CertificateAuthority(world.keys, public_url="http://127.0.0.1:8000")
    with world.kit.db.write() as s:
        ca.initialise(s)
        subject = signer_subject(
            identity, subject_id=world.alice.user_id or "", email="alice@acme.test"
        )
        cert = ca.issue(s, subject).certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NAME
    assert certificate_verification(cert) == ("high", "verified-face")
    der = cert.public_bytes(Encoding.DER)
    for form in (ID_VERIFIED, ID_VERIFIED[6:14], hashlib.sha256(ID_VERIFIED.encode()).hexdigest()):
        assert form.encode() not in der
    assert hashlib.sha256(ID_VERIFIED.encode()).digest() not in der
    # an older, unverified-style certificate says nothing about the method
    plain = replace(subject, verification_method=None, assurance_level="basic")
    with world.kit.db.write() as s:
        assert certificate_verification(ca.issue(s, plain).certificate) == ("basic", None)


# -- schema and housekeeping -------------------------------------------------------------------


def test_evidence_files_of_a_failed_unit_of_work_are_deleted(world: World) -> None:
    files = EvidenceFiles(EncryptedBlobStore(world.blob_store, world.keys))
    with pytest.raises(RuntimeError), files.tracking() as written, world.kit.db.write() as s:
        row = files.add(
            s,
            written,
            org_id=world.owner.org_id,
            verification_id="not-committed",
            kind="face-capture",
            media_type="application/octet-stream",
            content=b"face",
            created_at=world.kit.clock.now,
        )
        assert files.size(row) == 4 and len(list(world.blob_store.keys())) == 1
        raise RuntimeError("the unit of work fails after the blob was written")
    assert list(world.blob_store.keys()) == []


def test_the_migration_builds_exactly_these_tables(world: World) -> None:
    """Other branches' tables may still be in flux; ours must match the models exactly."""
    with world.kit.db.engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in drift if any(table in repr(d) for table in MY_TABLES)] == []
    assert set(Base.metadata.tables) >= MY_TABLES


def test_the_orphan_sweep_keeps_evidence_blobs(world: World) -> None:
    world.service.start_for_user(world.alice, three_factor(), provider="test", check="id_number")
    before = list(world.blob_store.keys())
    assert len(before) == 1
    sweep_orphan_blobs(world.kit.db, world.blob_store, now=datetime.now(UTC) + timedelta(days=1))
    assert list(world.blob_store.keys()) == before
