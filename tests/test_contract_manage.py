"""The contract service's managing parts: reminders (new links, per-signer limit, audit) and
the list's search and filters (what the list shows must match what its reader may open)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from flows import SENDER, make_org, sign_as
from pactvault.api.app import create_app
from pactvault.audit.journal import verify_chain
from pactvault.config import Settings
from pactvault.contracts.reminders import REMIND_INTERVAL, ReminderTooSoonError
from pactvault.contracts.service import SignerSpec
from pactvault.contracts.states import ContractStateError
from pactvault.demo import sample_pdf
from pactvault.errors import InvalidInputError, NotFoundError
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent, Contract
from pactvault.tokens import SIGNING_PREFIX
from workflow_kit import organisation, upload_contract

CLIENT = SENDER


class Clock:
    """The time the contract service and the audit journal see (tests move it forward)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr("pactvault.contracts.service.utcnow", moved)
    monkeypatch.setattr("pactvault.audit.journal.utcnow", moved)
    return moved


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, MemoryMailer]]:
    mailer = MemoryMailer()
    home: Path = tmp_path_factory.mktemp("manage") / "data"
    platform, _ = Platform.initialise(Settings(home=home), mailer=mailer)
    try:
        yield platform, mailer
    finally:
        platform.close()


def _sent(platform: Platform, org_id: str, *signers: SignerSpec, title: str = "Lease") -> str:
    contract = platform.contracts.create(
        SENDER, org_id, title=title, pdf=sample_pdf(), signers=list(signers)
    )
    platform.contracts.send(SENDER, org_id, contract.id)
    return contract.id


def _mails(mailer: MemoryMailer, contract_id: str) -> list[tuple[str, str]]:
    """(recipient, signing token) of every signing link mailed for the contract, in order."""
    return [
        (m.to, dict(m.tags)["Signing-Token"])
        for m in mailer.messages
        if dict(m.tags).get("Contract") == contract_id and "Signing-Token" in dict(m.tags)
    ]


# -- reminders ------------------------------------------------------------------------------------


def test_a_reminder_sends_new_links_to_the_signers_whose_turn_it_is(
    world: tuple[Platform, MemoryMailer], clock: Clock
) -> None:
    platform, mailer = world
    org = make_org(platform)
    contract_id = _sent(
        platform,
        org,
        SignerSpec(name="Ann", email="ann@example.test", routing_order=1),
        SignerSpec(name="Ben", email="ben@example.test", routing_order=1),
        SignerSpec(name="Cai", email="cai@example.test", routing_order=2),
    )
    first = dict(_mails(mailer, contract_id))
    assert set(first) == {"ann@example.test", "ben@example.test"}

    # Just invited: nobody may be reminded for an hour, and nothing is sent.
    before = len(mailer.messages)
    with pytest.raises(ReminderTooSoonError) as refused:
        platform.contracts.remind(CLIENT, org, contract_id)
    assert 3500 <= refused.value.retry_after <= 3601
    assert refused.value.headers()["Retry-After"] == str(refused.value.retry_after)
    assert len(mailer.messages) == before

    clock.ahead = REMIND_INTERVAL + timedelta(minutes=1)
    done = platform.contracts.remind(CLIENT, org, contract_id)
    signers = {s.email: s.id for s in platform.contracts.get(org, contract_id).signers}
    assert set(done.reminded) == {signers["ann@example.test"], signers["ben@example.test"]}
    assert done.not_yet == ()
    links = _mails(mailer, contract_id)[2:]
    assert {to for to, _ in links} == {"ann@example.test", "ben@example.test"}  # not Cai yet
    reminder = next(m for m in mailer.messages[before:] if m.to == "ann@example.test")
    assert reminder.subject.startswith("提醒 / Reminder:")
    new = dict(links)
    for email, old_token in first.items():
        assert new[email] != old_token
        with pytest.raises(NotFoundError):  # the old link stops working
            platform.contracts.open_invitation(old_token, CLIENT)
        platform.contracts.open_invitation(new[email], CLIENT)  # the new one works

    # Audited, naming the signers, and never the tokens (the journal is permanent).
    with platform.db.read() as session:
        event = session.execute(
            select(AuditEvent).where(
                AuditEvent.action == "contract.remind", AuditEvent.object_id == contract_id
            )
        ).scalar_one()
        journal = " ".join(str(e.details) for e in session.execute(select(AuditEvent)).scalars())
    assert sorted(event.details["reminded"]) == sorted(done.reminded)
    assert event.actor_id == CLIENT.id and event.ip == CLIENT.ip
    assert not any(token in journal for token in [*first.values(), *new.values()])

    # Reminded a minute ago (by the moved clock): again too soon.
    with pytest.raises(ReminderTooSoonError):
        platform.contracts.remind(CLIENT, org, contract_id)

    # Ann signs with her new link; later only Ben, still to sign, is reminded.
    sign_as(platform, new["ann@example.test"])
    clock.ahead = 2 * REMIND_INTERVAL + timedelta(minutes=2)
    again = platform.contracts.remind(CLIENT, org, contract_id)
    assert again.reminded == (signers["ben@example.test"],)
    with platform.db.read() as session:
        assert verify_chain(session).ok


def test_only_open_contracts_with_someone_to_sign_can_be_reminded(
    world: tuple[Platform, MemoryMailer], clock: Clock
) -> None:
    platform, mailer = world
    org = make_org(platform)
    draft = platform.contracts.create(
        SENDER,
        org,
        title="Draft",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="Ann", email="ann@example.test")],
    )
    before = len(mailer.messages)
    with pytest.raises(ContractStateError):
        platform.contracts.remind(CLIENT, org, draft.id)
    voided = _sent(platform, org, SignerSpec(name="Ann", email="ann@example.test"))
    platform.contracts.void(SENDER, org, voided, "wrong party")
    clock.ahead = REMIND_INTERVAL * 2
    with pytest.raises(ContractStateError):
        platform.contracts.remind(CLIENT, org, voided)
    # Another organisation's contract is simply not there.
    with pytest.raises(NotFoundError):
        platform.contracts.remind(CLIENT, make_org(platform), voided)
    assert len(mailer.messages) == before + 1  # only the voided contract's first invitation


def test_a_reminder_never_outlives_the_signing_deadline(
    world: tuple[Platform, MemoryMailer], clock: Clock
) -> None:
    platform, mailer = world
    org = make_org(platform)
    deadline = datetime.now(UTC) + timedelta(days=1)
    contract = platform.contracts.create(
        SENDER,
        org,
        title="Soon",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="Ann", email="ann@example.test")],
        expires_at=deadline,
    )
    platform.contracts.send(SENDER, org, contract.id)
    clock.ahead = REMIND_INTERVAL * 2
    platform.contracts.remind(CLIENT, org, contract.id)
    signer = platform.contracts.get(org, contract.id).signers[0]
    assert signer.invitation_expires_at is not None
    assert signer.invitation_expires_at <= deadline + timedelta(seconds=1)
    # Past the deadline the contract expires (for good) instead of being reminded.
    with platform.db.write() as session:
        session.execute(
            update(Contract)
            .where(Contract.id == contract.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    clock.ahead = REMIND_INTERVAL * 4
    before = len(mailer.messages)
    with pytest.raises(ContractStateError):
        platform.contracts.remind(CLIENT, org, contract.id)
    assert platform.contracts.get(org, contract.id).status == "expired"
    assert len(mailer.messages) == before


# -- the list's filters ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listed(world: tuple[Platform, MemoryMailer]) -> tuple[Platform, str, dict[str, str]]:
    platform, _ = world
    org = make_org(platform)
    made = {}
    for title, name, email, company, level in (
        ("租赁合同 Lease", "张三", "zhang@tenant.test", None, "internal"),
        ("Supply agreement", "Bob Li", "bob@supplier.test", "Supplier Ltd", "internal"),
        ("Merger 100%_done", "Carol", "carol@bank.test", "Big Bank", "secret"),
    ):
        contract = platform.contracts.create(
            SENDER,
            org,
            title=title,
            pdf=sample_pdf(),
            signers=[SignerSpec(name=name, email=email, organisation=company)],
            classification=level,
        )
        made[title] = contract.id
    platform.contracts.send(SENDER, org, made["Supply agreement"])
    with platform.db.write() as session:  # an older contract, for the date filters
        session.execute(
            update(Contract)
            .where(Contract.id == made["租赁合同 Lease"])
            .values(created_at=datetime(2025, 3, 1, 12, tzinfo=UTC))
        )
    return platform, org, made


def _titles(platform: Platform, org: str, **filters: object) -> set[str]:
    items, total = platform.contracts.list(org, **filters)  # type: ignore[arg-type]
    assert total == len(items)
    return {c.title for c in items}


def test_search_matches_title_or_a_party_case_insensitively(
    listed: tuple[Platform, str, dict[str, str]],
) -> None:
    platform, org, _ = listed
    assert _titles(platform, org, search="lease") == {"租赁合同 Lease"}
    assert _titles(platform, org, search="租赁") == {"租赁合同 Lease"}
    assert _titles(platform, org, search="BOB@SUPPLIER") == {"Supply agreement"}
    assert _titles(platform, org, search="张三") == {"租赁合同 Lease"}
    # LIKE wildcards are literal: "%" finds the one title containing it, "_" likewise.
    assert _titles(platform, org, search="%") == {"Merger 100%_done"}
    assert _titles(platform, org, search="0%_d") == {"Merger 100%_done"}
    assert _titles(platform, org, search="  ") == _titles(platform, org)
    assert _titles(platform, org, search="nothing like it") == set()


def test_filters_by_party_status_classification_and_date(
    listed: tuple[Platform, str, dict[str, str]],
) -> None:
    platform, org, _ = listed
    assert _titles(platform, org, party="supplier ltd") == {"Supply agreement"}
    assert _titles(platform, org, party="carol") == {"Merger 100%_done"}
    assert _titles(platform, org, party="Supply") == set()  # titles are not parties
    assert _titles(platform, org, status="sent") == {"Supply agreement"}
    assert _titles(platform, org, classification="secret") == {"Merger 100%_done"}
    since = datetime(2025, 6, 1, tzinfo=UTC)
    assert "租赁合同 Lease" not in _titles(platform, org, created_from=since)
    assert _titles(platform, org, created_before=since) == {"租赁合同 Lease"}
    assert (
        _titles(platform, org, status="draft", classification="internal", created_from=since)
        == set()
    )


def test_a_clearance_hides_what_its_holder_could_not_open(
    listed: tuple[Platform, str, dict[str, str]],
) -> None:
    platform, org, _ = listed
    assert "Merger 100%_done" not in _titles(platform, org, clearance="internal")
    assert "Merger 100%_done" in _titles(platform, org, clearance="secret")
    assert _titles(platform, org, clearance="public") == set()


@pytest.mark.parametrize(
    "bad",
    [
        {"classification": "top"},
        {"clearance": "cosmic"},
        {"status": "lost"},
        {"search": "x" * 201},
        {"party": "y" * 201},
        {"created_from": datetime(2025, 1, 1)},  # no time zone
        {"limit": 0},
    ],
)
def test_bad_filters_are_refused(
    listed: tuple[Platform, str, dict[str, str]], bad: dict[str, object]
) -> None:
    platform, org, _ = listed
    with pytest.raises(InvalidInputError):
        platform.contracts.list(org, **bad)  # type: ignore[arg-type]


def test_another_organisations_contracts_never_match(
    listed: tuple[Platform, str, dict[str, str]],
) -> None:
    platform, _, _ = listed
    assert _titles(platform, make_org(platform), search="lease") == set()


def test_the_api_reminds_and_says_when_to_try_again(
    world: tuple[Platform, MemoryMailer], clock: Clock
) -> None:
    platform, mailer = world
    with TestClient(create_app(platform, maintenance_interval=3600)) as client:
        owner = organisation(client, platform, "Remind API", "owner@remind-api.test")
        contract_id = upload_contract(owner, signer_email="eve@example.test")
        assert owner.post(f"/api/v1/contracts/{contract_id}/send").status_code == 200
        first = dict(_mails(mailer, contract_id))["eve@example.test"]
        soon = owner.post(f"/api/v1/contracts/{contract_id}/remind")
        assert soon.status_code == 429
        assert soon.headers["content-type"].startswith("application/problem+json")
        assert 3500 <= int(soon.headers["retry-after"]) <= 3601
        clock.ahead = REMIND_INTERVAL + timedelta(minutes=1)
        done = owner.post(f"/api/v1/contracts/{contract_id}/remind")
        assert done.status_code == 200, done.text
        signer = platform.contracts.get(owner.principal.org_id, contract_id).signers[0]
        assert done.json() == {
            "contract_id": contract_id,
            "reminded_signer_ids": [signer.id],
            "not_yet_signer_ids": [],
        }
        new = dict(_mails(mailer, contract_id[:]))["eve@example.test"]
        assert new != first and new not in done.text and SIGNING_PREFIX not in done.text
        # Another tenant's contract: exactly like a missing one.
        other = organisation(client, platform, "Other", "owner@remind-other.test")
        hidden = other.post(f"/api/v1/contracts/{contract_id}/remind")
        missing = other.post(f"/api/v1/contracts/{uuid.uuid4()}/remind")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"] == missing.json()["detail"]
