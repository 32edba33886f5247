"""The contract lifecycle end to end, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from sqlalchemy import func, select

from conftest import database_bytes
from flows import (
    SENDER,
    SIGNER_CLIENT,
    invitation_tokens,
    make_org,
    seen_digest,
    sign_as,
    step_up,
)
from pactvault.audit.journal import verify_chain
from pactvault.contracts.service import SignerSpec, SignInput
from pactvault.contracts.states import ContractStateError
from pactvault.demo import sample_pdf
from pactvault.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PdfRejectedError,
    TimestampUnavailableError,
)
from pactvault.notify import MemoryMailer
from pactvault.pdf.validate import verify_pdf
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent, Contract, DocumentRevision, Signer
from pactvault.tsa.client import http_timestamper

PDF = sample_pdf()


tokens = invitation_tokens


def counts(platform: Platform) -> tuple[int, int, int, int]:
    with platform.db.read() as session:
        return (
            session.execute(select(func.count()).select_from(Contract)).scalar_one(),
            session.execute(select(func.count()).select_from(DocumentRevision)).scalar_one(),
            session.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
            len(list(platform.blob_store.keys())),
        )


def new_contract(platform: Platform, org: str, signers: list[SignerSpec], **kw: object):  # type: ignore[no-untyped-def]
    return platform.contracts.create(
        SENDER, org, title="租赁合同 Lease", pdf=PDF, signers=signers, **kw
    )


TWO = [
    SignerSpec(name="张三", email="zhang@example.com", organisation="甲方公司", routing_order=1),
    SignerSpec(name="Bob Li", email="bob@example.com", organisation="Bob Co", routing_order=2),
]


def test_two_parties_sign_in_order_and_the_result_verifies(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    assert contract.status == "draft"
    platform.contracts.send(SENDER, org, contract.id)
    contract = platform.contracts.get(org, contract.id)
    assert contract.status == "sent"
    first, second = contract.signers
    invited = tokens(mailer, contract.id)
    assert set(invited) == {first.id}, "only the first routing group is invited"

    sign_as(platform, invited[first.id])
    contract = platform.contracts.get(org, contract.id)
    assert contract.status == "partially_signed"
    invited = tokens(mailer, contract.id)
    assert set(invited) == {first.id, second.id}

    sign_as(platform, invited[second.id])
    contract = platform.contracts.get(org, contract.id)
    assert contract.status == "completed"
    kinds = [r.kind for r in contract.revisions]
    assert kinds == ["original", "prepared", "signed", "signed", "sealed"]
    assert [s.status for s in contract.signers] == ["signed", "signed"]

    _, signed = platform.contracts.download(SENDER, org, contract.id)
    with platform.db.read() as session:
        root = platform.ca.root_certificate(session)
    report = verify_pdf(signed, trust_roots=[root])
    assert report.valid, report.to_dict()
    assert [s.signer_name for s in report.signatures] == [
        "张三",
        "Bob Li",
        "pactvault Completion Seal",
    ]
    assert report.signatures[0].is_certification
    assert [s.signer_email for s in report.signatures[:2]] == [
        "zhang@example.com",
        "bob@example.com",
    ]
    assert report.signatures[-1].coverage == "entire-file"
    assert not any(s.modified_after for s in report.signatures)
    assert all(s.timestamp_valid and s.trusted and s.intact for s in report.signatures)

    # Every earlier revision is a byte prefix of the next: signatures are incremental.
    revisions = [
        platform.contracts.download(SENDER, org, contract.id, r.version)[1]
        for r in contract.revisions
    ]
    for older, newer in itertools.pairwise(revisions):
        assert newer.startswith(older)

    with platform.db.read() as session:
        assert verify_chain(session).ok
        actions = (
            session.execute(
                select(AuditEvent.action)
                .where(AuditEvent.object_id == contract.id)
                .order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
        signed_events = (
            session.execute(select(AuditEvent).where(AuditEvent.action == "contract.sign"))
            .scalars()
            .all()
        )
    assert actions[:3] == ["contract.create", "signer.invite", "contract.send"]
    assert actions.count("contract.sign") == 2
    last_sign = len(actions) - 1 - actions[::-1].index("contract.sign")
    assert actions[last_sign + 1] == "contract.complete"
    assert "document.download" in actions
    assert {e.ip for e in signed_events} == {"198.51.100.7"}
    assert all(e.details["document_sha256_seen"] for e in signed_events)
    completion = [m for m in mailer.messages if "completed" in m.subject]
    assert {m.to for m in completion} == {"zhang@example.com", "bob@example.com"}


def test_parallel_group_signs_in_any_order_before_the_next_group(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org = make_org(platform)
    signers = [
        SignerSpec(name="A", email="a@example.com", routing_order=1),
        SignerSpec(name="B", email="b@example.com", routing_order=1),
        SignerSpec(name="C", email="c@example.com", routing_order=2),
    ]
    contract = new_contract(platform, org, signers)
    platform.contracts.send(SENDER, org, contract.id)
    a, b, c = platform.contracts.get(org, contract.id).signers
    invited = tokens(mailer, contract.id)
    assert set(invited) == {a.id, b.id}
    sign_as(platform, invited[b.id])
    assert c.id not in tokens(mailer, contract.id)
    sign_as(platform, invited[a.id])
    sign_as(platform, tokens(mailer, contract.id)[c.id])
    assert platform.contracts.get(org, contract.id).status == "completed"


def test_signer_cannot_sign_before_earlier_groups(platform: Platform, mailer: MemoryMailer) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    second = platform.contracts.get(org, contract.id).signers[1]
    # Give the second signer a live link early (as a mistaken resend would).
    from pactvault.tokens import SIGNING_PREFIX, new_token

    token, digest = new_token(SIGNING_PREFIX)
    with platform.db.write() as session:
        row = session.get(Signer, second.id)
        row.invitation_sha256, row.status = digest, "invited"
    digest = seen_digest(platform, token)
    before = counts(platform)
    with pytest.raises(ContractStateError, match="not your turn"):
        sign_as(platform, token, digest)
    assert counts(platform) == before


def test_second_signature_by_the_same_signer_is_refused(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    token = next(iter(tokens(mailer, contract.id).values()))
    digest = platform.contracts.get(org, contract.id).revisions[-1].plaintext_sha256
    sign_as(platform, token)
    before = counts(platform)
    with pytest.raises(ConflictError, match="already signed"):
        platform.contracts.sign(
            token, SIGNER_CLIENT, SignInput(document_sha256=digest, consent=True)
        )
    assert counts(platform) == before


def test_voided_contract_cannot_be_signed_or_voided_again(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    token = next(iter(tokens(mailer, contract.id).values()))
    platform.contracts.void(SENDER, org, contract.id, "wrong counterparty")
    assert platform.contracts.get(org, contract.id).status == "voided"
    with pytest.raises(ContractStateError, match="voided"):
        sign_as(platform, token)
    with pytest.raises(ContractStateError, match="voided"):
        platform.contracts.void(SENDER, org, contract.id, "again")
    with pytest.raises(ContractStateError):
        platform.contracts.send(SENDER, org, contract.id)
    with pytest.raises(InvalidInputError):
        platform.contracts.void(SENDER, org, contract.id, "  ")


def test_decline_ends_the_contract(platform: Platform, mailer: MemoryMailer) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    token = next(iter(tokens(mailer, contract.id).values()))
    with pytest.raises(InvalidInputError, match="reason"):
        platform.contracts.decline(token, SIGNER_CLIENT, "")
    platform.contracts.decline(token, SIGNER_CLIENT, "价格不对 / price is wrong")
    contract = platform.contracts.get(org, contract.id)
    assert contract.status == "declined"
    assert contract.status_reason == "价格不对 / price is wrong"
    assert [s.status for s in contract.signers] == ["declined", "closed"]
    with pytest.raises(ContractStateError):
        sign_as(platform, token)
    with pytest.raises(ContractStateError):
        platform.contracts.void(SENDER, org, contract.id, "too late")


def test_draft_cannot_be_signed_and_sending_twice_is_refused(
    platform: Platform, mailer: MemoryMailer
) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    assert tokens(mailer, contract.id) == {}
    platform.contracts.send(SENDER, org, contract.id)
    with pytest.raises(ContractStateError, match="sent cannot become sent"):
        platform.contracts.send(SENDER, org, contract.id)


def test_expired_contract_refuses_signatures(platform: Platform, mailer: MemoryMailer) -> None:
    org = make_org(platform)
    soon = datetime.now(UTC) + timedelta(hours=1)
    contract = new_contract(platform, org, TWO, expires_at=soon)
    platform.contracts.send(SENDER, org, contract.id)
    token = next(iter(tokens(mailer, contract.id).values()))
    with platform.db.write() as session:
        session.get(Contract, contract.id).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(ContractStateError, match="expired"):
        sign_as(platform, token)
    assert platform.contracts.get(org, contract.id).status == "expired"
    with pytest.raises(InvalidInputError, match="future"):
        new_contract(platform, org, TWO, expires_at=datetime.now(UTC) - timedelta(days=1))


def test_expiry_sweep(platform: Platform, mailer: MemoryMailer) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO, expires_at=datetime.now(UTC) + timedelta(days=1))
    platform.contracts.send(SENDER, org, contract.id)
    assert platform.contracts.expire_due(datetime.now(UTC)) == 0
    assert platform.contracts.expire_due(datetime.now(UTC) + timedelta(days=2)) == 1
    assert platform.contracts.get(org, contract.id).status == "expired"


def test_signing_what_was_not_seen_is_refused(platform: Platform, mailer: MemoryMailer) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    token = next(iter(tokens(mailer, contract.id).values()))
    before = counts(platform)
    with pytest.raises(ConflictError, match="changed since you opened it"):
        platform.contracts.sign(
            token, SIGNER_CLIENT, SignInput(document_sha256="0" * 64, consent=True)
        )
    with pytest.raises(InvalidInputError, match="consent"):
        platform.contracts.sign(
            token, SIGNER_CLIENT, SignInput(document_sha256="0" * 64, consent=False)
        )
    assert counts(platform) == before


def test_no_timestamp_means_no_signature_and_no_trace(
    platform: Platform, mailer: MemoryMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    token = next(iter(tokens(mailer, contract.id).values()))
    # A TSA that cannot be reached: closed loopback port.
    monkeypatch.setattr(
        platform.contracts,
        "_timestamper",
        lambda session: http_timestamper("http://127.0.0.1:9/tsa", timeout=2),
    )
    digest = seen_digest(platform, token)
    given = SignInput(
        document_sha256=digest, consent=True, stepup_challenge_id=step_up(platform, token)
    )
    before = counts(platform)
    with pytest.raises(TimestampUnavailableError):
        platform.contracts.sign(token, SIGNER_CLIENT, given)
    assert counts(platform) == before, "no revision, blob or audit entry may remain"
    contract = platform.contracts.get(org, contract.id)
    assert contract.status == "sent"
    assert contract.signers[0].status == "invited"
    # The step-up proof was spent inside the failed transaction, so the rollback kept it usable.
    monkeypatch.undo()
    assert platform.contracts.sign(token, SIGNER_CLIENT, given).stepup_proof_sha256


def test_other_tenants_contracts_look_missing(platform: Platform, mailer: MemoryMailer) -> None:
    mine, theirs = make_org(platform, "Mine"), make_org(platform, "Theirs")
    contract = new_contract(platform, theirs, TWO)
    for call in (
        lambda: platform.contracts.get(mine, contract.id),
        lambda: platform.contracts.download(SENDER, mine, contract.id),
        lambda: platform.contracts.send(SENDER, mine, contract.id),
        lambda: platform.contracts.void(SENDER, mine, contract.id, "x"),
    ):
        with pytest.raises(NotFoundError) as theirs_error:
            call()
        with pytest.raises(NotFoundError) as missing_error:
            platform.contracts.get(mine, "00000000-0000-0000-0000-000000000000")
        assert theirs_error.value.detail == missing_error.value.detail
    assert platform.contracts.list(mine) == ([], 0)
    assert platform.contracts.list(theirs)[1] == 1


def test_unknown_invitation_tokens(platform: Platform) -> None:
    for token in ("", "pvs_nope", "pva_" + "x" * 43, "pvs_" + "x" * 500):
        with pytest.raises(NotFoundError):
            platform.contracts.open_invitation(token, SIGNER_CLIENT)


@pytest.mark.parametrize(
    "data,error,reason",
    [
        (b"", PdfRejectedError, "empty"),
        (b"hello, this is not a PDF at all", PdfRejectedError, "not a PDF"),
        (PDF[: len(PDF) // 2], PdfRejectedError, "parse|corrupt|damaged|read"),
        (b"%PDF-1.7\n" + b"\0" * (6 * 1024 * 1024), PayloadTooLargeError, "limit|large"),
    ],
    ids=["empty", "not-pdf", "truncated", "oversized"],
)
def test_bad_uploads_leave_nothing_behind(
    platform: Platform, data: bytes, error: type[Exception], reason: str
) -> None:
    org = make_org(platform)
    before = counts(platform)
    with pytest.raises(error, match=reason):
        platform.contracts.create(SENDER, org, title="x", pdf=data, signers=TWO)
    assert counts(platform) == before


@pytest.mark.parametrize(
    "signers,message",
    [
        ([], "at least one signer"),
        ([SignerSpec(name="", email="a@example.com")], "name"),
        ([SignerSpec(name="A", email="not-an-email")], "email"),
        (
            [
                SignerSpec(name="A", email="a@example.com"),
                SignerSpec(name="B", email="A@example.com"),
            ],
            "twice",
        ),
        ([SignerSpec(name="A", email="a@example.com", page=7)], "page 7 does not exist"),
        ([SignerSpec(name="A", email="a@example.com", box=(0, 0, 9000, 10))], "outside the page"),
    ],
)
def test_bad_signer_lists(platform: Platform, signers: list[SignerSpec], message: str) -> None:
    org = make_org(platform)
    before = counts(platform)
    with pytest.raises(InvalidInputError, match=message):
        platform.contracts.create(SENDER, org, title="x", pdf=PDF, signers=signers)
    with pytest.raises(InvalidInputError, match="title"):
        platform.contracts.create(SENDER, org, title=" ", pdf=PDF, signers=TWO)
    assert counts(platform) == before


def test_altered_ciphertext_is_an_integrity_error(platform: Platform) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    revision = platform.contracts.get(org, contract.id).revisions[-1]
    path = platform.settings.blob_dir / revision.blob_key
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        platform.contracts.download(SENDER, org, contract.id)


def test_nothing_readable_at_rest(platform: Platform, mailer: MemoryMailer) -> None:
    """The data directory (and the PostgreSQL dump) holds no plaintext document or key."""
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    sign_as(platform, next(iter(tokens(mailer, contract.id).values())))
    contract = platform.contracts.get(org, contract.id)

    from cryptography.hazmat.primitives import serialization

    from pactvault.keys.service import WrappedKey
    from pactvault.pki.authority import PLATFORM_ORG
    from pactvault.store.models import Signature, SigningKey

    secrets_to_find: list[bytes] = [b"SERVICE AGREEMENT", b"Annex A"]
    with platform.db.read() as session:
        for revision in contract.revisions:
            aad = platform.blobs.aad(org_id=org, object_id=contract.id, version=revision.version)
            secrets_to_find.append(
                platform.keys.unwrap_data_key(
                    session, org, WrappedKey.from_bytes(revision.wrapped_key), aad=aad
                )
            )
        key_ids = session.execute(select(SigningKey.id)).scalars().all()
        for key_id in key_ids:
            key = platform.keys.signing_key(session, PLATFORM_ORG, key_id).private_key()
            secrets_to_find.append(
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            secrets_to_find.append(key.private_numbers().private_value.to_bytes(32, "big"))
        assert session.execute(select(Signature)).scalars().first() is not None
        root_certificate_der = platform.ca.root_certificate(session).public_bytes(
            serialization.Encoding.DER
        )
    platform.close()

    blobs = [p.read_bytes() for p in platform.settings.home.rglob("*") if p.is_file()]
    blobs.append(database_bytes(platform.db))
    assert len(secrets_to_find) > 6
    # The scan looks at the right bytes: public material (the root certificate) is there.
    root_der = root_certificate_der
    assert any(root_der in c or root_der.hex().encode() in c for c in blobs)
    for secret in secrets_to_find:
        for content in blobs:
            assert secret not in content
            assert secret.hex().encode() not in content


def _javascript_pdf() -> bytes:
    from pyhanko.pdf_utils import generic

    from pdf_helpers import make_pdf

    action = generic.DictionaryObject(
        {
            generic.pdf_name("/S"): generic.pdf_name("/JavaScript"),
            generic.pdf_name("/JS"): generic.pdf_string("app.alert('hi')"),
        }
    )
    return make_pdf(extra_root={"/OpenAction": action})


def _encrypted_pdf() -> bytes:
    import io

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

    writer = PdfFileWriter()
    writer.insert_page(
        PageObject(writer.add_object(generic.StreamObject(stream_data=b"")), (0, 0, 595, 842))
    )
    writer.encrypt("owner-secret", "user-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_refused(platform: Platform) -> None:
    org = make_org(platform)
    before = counts(platform)
    with pytest.raises(PdfRejectedError, match="encrypted"):
        platform.contracts.create(SENDER, org, title="x", pdf=_encrypted_pdf(), signers=TWO)
    assert counts(platform) == before


def test_active_content_rejected_by_default_and_flagged_by_policy(
    platform: Platform, mailer: MemoryMailer
) -> None:
    from dataclasses import replace

    org = make_org(platform)
    before = counts(platform)
    with pytest.raises(PdfRejectedError, match="JavaScript"):
        platform.contracts.create(SENDER, org, title="x", pdf=_javascript_pdf(), signers=TWO)
    assert counts(platform) == before

    lenient = Platform.open(replace(platform.settings, active_content_policy="flag"), mailer=mailer)
    try:
        contract = lenient.contracts.create(
            SENDER, org, title="x", pdf=_javascript_pdf(), signers=TWO
        )
        assert contract.content_warnings == ["the document contains JavaScript"]
        with lenient.db.read() as session:
            event = session.execute(
                select(AuditEvent).where(
                    AuditEvent.object_id == contract.id, AuditEvent.action == "contract.create"
                )
            ).scalar_one()
        assert event.details["warnings"] == ["the document contains JavaScript"]
    finally:
        lenient.close()


def test_already_signed_uploads_are_refused(platform: Platform, mailer: MemoryMailer) -> None:
    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    sign_as(platform, next(iter(tokens(mailer, contract.id).values())))
    _, signed = platform.contracts.download(SENDER, org, contract.id)
    with pytest.raises(InvalidInputError, match="already carries signatures"):
        platform.contracts.create(SENDER, org, title="again", pdf=signed, signers=TWO)


def test_concurrent_signatures_serialise_without_losing_either(
    platform: Platform, mailer: MemoryMailer
) -> None:
    """Two parallel signers press "sign" at the same moment on the same revision.

    The contract row lock makes one wait for the other; the second then sees that the document
    changed under it and is told to review again — no lost update, no forked revision history.
    """
    import threading

    org = make_org(platform)
    signers = [
        SignerSpec(name="A", email="a@example.com", routing_order=1),
        SignerSpec(name="B", email="b@example.com", routing_order=1),
    ]
    contract = new_contract(platform, org, signers)
    platform.contracts.send(SENDER, org, contract.id)
    invited = list(tokens(mailer, contract.id).values())
    digests = [seen_digest(platform, t) for t in invited]
    assert digests[0] == digests[1]
    confirmed = [
        SignInput(
            document_sha256=digests[i], consent=True, stepup_challenge_id=step_up(platform, t)
        )
        for i, t in enumerate(invited)
    ]
    barrier = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = platform.contracts.sign(invited[i], SIGNER_CLIENT, confirmed[i])
        except Exception as exc:  # collected and asserted below
            outcomes[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1, outcomes
    assert isinstance(errors[0], ConflictError) and "changed since" in errors[0].detail
    loser = outcomes.index(errors[0])
    sign_as(platform, invited[loser])  # after reviewing the new revision, it goes through
    final = platform.contracts.get(org, contract.id)
    assert final.status == "completed"
    assert [r.version for r in final.revisions] == list(range(1, len(final.revisions) + 1))
    with platform.db.read() as session:
        assert verify_chain(session).ok


def test_every_lifecycle_event_lands_in_the_evidence_ledger(
    platform: Platform, mailer: MemoryMailer
) -> None:
    """Each leaf names the contract and the hashes of what happened — and nothing else."""
    from pactvault.ledger import EvidenceRecord, Ledger, verify_inclusion
    from pactvault.pki.ca import certificate_fingerprint
    from pactvault.store.models import Certificate, Signature

    org = make_org(platform)
    contract = new_contract(platform, org, TWO)
    platform.contracts.send(SENDER, org, contract.id)
    first = tokens(mailer, contract.id)
    sign_as(platform, next(iter(first.values())))
    second = next(t for s, t in tokens(mailer, contract.id).items() if s not in first)
    sign_as(platform, second)
    voided = new_contract(platform, org, TWO)
    platform.contracts.void(SENDER, org, voided.id, "duplicate")

    contract = platform.contracts.get(org, contract.id)
    with platform.db.read() as session:
        ledger = Ledger(session)
        head = ledger.head()
        leaves = list(ledger.leaves())
        records = [leaf.record() for leaf in leaves]
        audit = {e.entry_hash: e for e in session.execute(select(AuditEvent)).scalars()}
        signatures = (
            session.execute(select(Signature).where(Signature.contract_id == contract.id))
            .scalars()
            .all()
        )
        fingerprints = {
            certificate_fingerprint(x509.load_der_x509_certificate(c.der))
            for c in session.execute(select(Certificate)).scalars()
        }
        proofs = [ledger.inclusion_proof(leaf.index, head.size) for leaf in leaves]
    mine = [r for r in records if r.contract_id == contract.id]
    assert [r.type for r in mine] == [
        "contract.create",
        "contract.send",
        "contract.sign",
        "contract.sign",
        "contract.complete",
    ]
    assert [r.type for r in records if r.contract_id == voided.id] == [
        "contract.create",
        "contract.void",
    ]
    hashes = [r.plaintext_sha256 for r in contract.revisions]
    assert [r.document_sha256 for r in mine] == [
        hashes[0],
        hashes[1],
        hashes[2],
        hashes[3],
        hashes[4],
    ]
    for record in records:  # each leaf points at its audit entry, which says the same thing
        entry = audit[record.audit_entry_sha256]
        assert (entry.action, entry.object_id) == (record.type, record.contract_id)
    for record in (r for r in mine if r.type in ("contract.sign", "contract.complete")):
        assert record.signature_sha256 and record.timestamp_token_sha256
        assert record.certificate_sha256 in fingerprints
    assert {s.document_sha256_after for s in signatures} == {hashes[2], hashes[3]}
    for leaf, proof in zip(leaves, proofs, strict=True):
        verify_inclusion(leaf.leaf_hash, leaf.index, head.size, proof.hashes, head.root_hash)
        assert EvidenceRecord.decode(leaf.data) == leaf.record()
        assert b"Lease" not in leaf.data and b"example.com" not in leaf.data  # no content, no PII
