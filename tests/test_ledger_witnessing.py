"""Witnessing between two real instances: one runs the log, the other witnesses it.

The witness is a second ``Platform`` in its own data directory (and database), reached over HTTP
— a real uvicorn server on a loopback port where the network matters, FastAPI's in-process
client where only the protocol does. Everything is checked the way the other side would see it:
status codes and content types of c2sp.org/tlog-witness, cosignatures verified with
``open_checkpoint(..., witnesses=[key], quorum=1)``.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text

from conftest import PostgresServer, _free_port, database_bytes
from pactvault.api.app import create_app, run_maintenance
from pactvault.config import Settings
from pactvault.demo import serve_in_background
from pactvault.errors import IntegrityError, InvalidInputError
from pactvault.ledger import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    parse_cosigner_key,
    parse_verifier_key,
    sign_checkpoint,
)
from pactvault.ledger.cosigning import CosigningService, WitnessEndpoint, parse_witnesses
from pactvault.ledger.errors import NoteError
from pactvault.ledger.note import Ed25519NoteSigner, NoteSignature
from pactvault.ledger.service import LedgerService
from pactvault.ledger.witness import CosignatureSigner
from pactvault.ledger.witnessing import (
    MAX_PROOF_LINES,
    AddCheckpointRequest,
    MalformedWitnessRequestError,
    WitnessService,
    add_checkpoint_body,
    parse_add_checkpoint,
    parse_log_keys,
)
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent
from pactvault.store.witness_models import LedgerCosignature, LedgerWitnessState, WitnessKey
from witness_kit import (
    ORIGIN,
    TLOG_SIZE,
    WITNESS_NAME,
    Pair,
    append,
    log_signer,
    make_pair,
    post,
    proof,
    signed,
)

# -- two instances ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two fresh databases of one kind: the log's and the witness's."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'witness.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(), server.create_database()


@pytest.fixture
def pair(tmp_path: Path, database_urls: tuple[str, str]) -> Iterator[Pair]:
    instances = make_pair(tmp_path, *database_urls)
    try:
        yield instances
    finally:
        instances.close()


def witnessed_note(pair: Pair, note: str) -> SignedCheckpoint:
    """Open ``note`` as a client with a quorum-of-one witness policy would."""
    return open_checkpoint(
        note,
        origin=ORIGIN,
        verifiers=[parse_verifier_key(pair.vkey)],
        witnesses=[parse_cosigner_key(pair.wkey)],
        quorum=1,
    )


def cosigned(pair: Pair, note: str, lines: str) -> None:
    """The witness's answer, appended to the note, verifies as a quorum of one."""
    opened = witnessed_note(pair, note + lines)
    assert [sig.name for sig in opened.cosignatures] == [WITNESS_NAME]


def witnessed(pair: Pair) -> tuple[int, bytes] | None:
    states = pair.witness.witness.logs()
    return (states[0].tree_size, states[0].root_hash) if states else None


# -- end to end, over a real server -------------------------------------------------------------


def test_cosigning_over_http_between_two_instances(pair: Pair) -> None:
    with serve_in_background(pair.witness) as base:
        assert httpx.get(base + "/api/v1/witness/key").text == pair.wkey + "\n"
        log = pair.reopen_log((f"{pair.wkey} {base}/api/v1/witness",))
        append(log, 10)
        run_maintenance(log)  # publishes the first checkpoint, then has it cosigned

        served = TestClient(create_app(log)).get("/ledger/checkpoint")
        assert served.status_code == 200
        opened = witnessed_note(pair, served.text)
        first = opened.checkpoint.size
        assert first >= 10  # our leaves, and the anchor of the audit journal
        # Without the witness key the note still verifies (cosignatures are ignored) ...
        open_checkpoint(served.text, origin=ORIGIN, verifiers=[parse_verifier_key(pair.vkey)])
        # ... and one witness is not a quorum of two.
        another = CosignatureSigner("other.test/w", Ed25519PrivateKey.generate()).verifier
        with pytest.raises(NoteError, match="1 trusted cosignatures, 2 required"):
            open_checkpoint(
                served.text,
                origin=ORIGIN,
                verifiers=[parse_verifier_key(pair.vkey)],
                witnesses=[parse_cosigner_key(pair.wkey), another],
                quorum=2,
            )

        # The log grows by 1,000 leaves: the next request carries a consistency proof 10 → 1010.
        append(log, 1000)
        log.ledger.publish_checkpoint()
        report = log.cosigning.run_due()
        assert report is not None and report.quorum_met
        size = first + 1000
        assert [(o.ok, o.detail) for o in report.outcomes] == [(True, f"cosigned size {size}")]
        latest = log.ledger.latest_checkpoint()
        assert latest is not None
        witnessed_note(pair, latest.note)
        assert witnessed(pair) == (size, latest.checkpoint.root_hash)
        listing = httpx.get(base + "/api/v1/witness/logs").json()
        assert listing["witness"] == WITNESS_NAME
        assert listing["logs"][0]["origin"] == ORIGIN
        assert listing["logs"][0]["tree_size"] == size

        # Nothing new: no witness is asked again for the same publication.
        assert log.cosigning.run_due().outcomes == ()  # type: ignore[union-attr]
        [status] = log.cosigning.status()
        assert (status.cosigned_size, status.cosigned_latest, status.failures) == (size, True, 0)


def race(platform: Platform, bodies: list[bytes]) -> list[httpx.Response]:
    """POST every body at once (one thread and connection each) to a real server."""
    results: list[httpx.Response] = []
    with serve_in_background(platform) as base:
        barrier = threading.Barrier(len(bodies))

        def submit(body: bytes) -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                barrier.wait()
                results.append(post(client, body))

        threads = [threading.Thread(target=submit, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == len(bodies)
    return results


def test_concurrent_add_checkpoint_calls_advance_exactly_once(pair: Pair) -> None:
    append(pair.log, 40)
    bodies = [add_checkpoint_body(0, (), signed(pair.log, size)[1]) for size in (10, 20, 30, 40)]
    results = race(pair.witness, bodies * 2)
    won = [r for r in results if r.status_code == 200]
    assert len(won) == 1, [r.status_code for r in results]
    state = witnessed(pair)
    assert state is not None
    assert state == (state[0], signed(pair.log, state[0])[0].root_hash)
    for response in results:  # everyone else is told the size that won, never rolled back
        if response.status_code != 200:
            assert response.status_code == 409
            assert response.headers["content-type"] == TLOG_SIZE
            assert response.text == f"{state[0]}\n"

    # Now from the stored size on (the compare-and-swap UPDATE): again exactly one advances.
    append(pair.log, 10)
    old = state[0]
    body = add_checkpoint_body(old, proof(pair.log, old, 50), signed(pair.log, 50)[1])
    results = race(pair.witness, [body] * 6)
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409, 409]
    assert {r.text for r in results if r.status_code == 409} == {"50\n"}
    assert witnessed(pair) == (50, signed(pair.log, 50)[0].root_hash)


# -- the witness's refusals, by the spec ------------------------------------------------------


def test_witness_refusals_follow_the_spec(pair: Pair) -> None:
    http = pair.http
    append(pair.log, 30)
    cp20, note20 = signed(pair.log, 20)

    # A first checkpoint needs no proof (old 0); it is cosigned, and re-sending it is too.
    first = post(http, add_checkpoint_body(0, (), note20))
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/plain")
    cosigned(pair, note20, first.text)
    again = post(http, add_checkpoint_body(20, (), note20))
    assert again.status_code == 200
    cosigned(pair, note20, again.text)
    assert witnessed(pair) == (20, cp20.root_hash)

    def refused(body: bytes, status: int) -> httpx.Response:
        response = post(http, body)
        assert response.status_code == status, response.text
        assert witnessed(pair) == (20, cp20.root_hash)  # nothing moved
        return response

    # Stale old size: 409 with our size as text/x.tlog.size (exactly, no charset).
    stale = refused(add_checkpoint_body(0, (), signed(pair.log, 30)[1]), 409)
    assert stale.headers["content-type"] == TLOG_SIZE
    assert stale.content == b"20\n"

    # A rollback to a smaller tree: old must match what we hold, and cannot exceed the size.
    _, note10 = signed(pair.log, 10)
    assert (
        refused(add_checkpoint_body(20, (), note10), 400)
        .json()["type"]
        .endswith("malformed-witness-request")
    )
    assert refused(add_checkpoint_body(10, (), note10), 409).content == b"20\n"

    # A fork at the size already cosigned: 409, but not a size answer — and an alert with both
    # log-signed notes, which together prove the log showed two histories.
    forged_root = hashlib.sha256(b"another history").digest()
    _, fork20 = signed(pair.log, 20, forged_root)
    fork = refused(add_checkpoint_body(20, (), fork20), 409)
    assert fork.headers["content-type"] == "application/problem+json"
    assert fork.json()["type"].endswith("checkpoint-fork")
    [alert] = pair.witness.alerts.operator_alerts(kind="witness.log-fork")
    assert alert.severity == "critical"
    assert alert.details["conflicting_checkpoint"] == fork20
    assert alert.details["cosigned_checkpoint"] == note20

    # A fork that grows: consistent-looking proof, wrong root → 422; so is any bad proof.
    good = proof(pair.log, 20, 30)
    _, fork30 = signed(pair.log, 30, forged_root)
    refused(add_checkpoint_body(20, good, fork30), 422)
    _, note30 = signed(pair.log, 30)
    flipped = bytes([good[0][0] ^ 1]) + good[0][1:]
    assert (
        refused(add_checkpoint_body(20, (flipped, *good[1:]), note30), 422)
        .json()["type"]
        .endswith("invalid-proof")
    )
    refused(add_checkpoint_body(20, (), note30), 422)
    refused(add_checkpoint_body(20, good[:-1], note30), 422)
    refused(add_checkpoint_body(20, (*good, good[0]), note30), 422)
    refused(add_checkpoint_body(20, (good[0],), note20), 422)  # equal sizes need no proof
    # A garbage proof next to a genuine checkpoint is not the log's fault: no alert for it.
    assert len(pair.witness.alerts.operator_alerts(kind="witness.log-fork")) == 1

    # Signed by a key we do not trust for this log: 403; a log we do not witness: 404.
    stranger = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    cp30 = signed(pair.log, 30)[0]
    refused(add_checkpoint_body(20, good, sign_checkpoint(cp30, stranger)), 403)
    other = Ed25519NoteSigner("other.test/log", Ed25519PrivateKey.generate())
    other_cp = Checkpoint("other.test/log", 30, cp30.root_hash)
    refused(add_checkpoint_body(20, good, sign_checkpoint(other_cp, other)), 404)
    # A valid log signature next to a broken one by the same key is refused too.
    tampered = note30.replace(
        base64.b64encode(cp30.root_hash).decode(), base64.b64encode(forged_root).decode()
    )
    refused(add_checkpoint_body(20, good, tampered), 403)

    # Malformed bodies: 400 before any key is consulted.
    for body in (
        b"",
        b"old 20\n",  # no empty line, no checkpoint
        b"old 020\n\n" + note30.encode(),
        b"old -1\n\n" + note30.encode(),
        b"new 20\n\n" + note30.encode(),
        b"old 20\nnot base64!\n\n" + note30.encode(),
        b"old 20\n" + base64.b64encode(b"short") + b"\n\n" + note30.encode(),
        add_checkpoint_body(20, (good[0],) * (MAX_PROOF_LINES + 1), note30),
        b"old 20\n\n" + b"not a note",
        b"old 20\n\n\xff\xfe",
    ):
        refused(body, 400)
    assert post(http, b"x" * 70_000).status_code == 413

    # After all that, the genuine next checkpoint with its proof is cosigned.
    accepted = post(http, add_checkpoint_body(20, good, note30))
    assert accepted.status_code == 200, accepted.text
    cosigned(pair, note30, accepted.text)
    assert witnessed(pair) == (30, cp30.root_hash)


def test_request_format_round_trips_and_is_strict() -> None:
    hashes = (bytes(range(32)), bytes(32))
    body = add_checkpoint_body(7, hashes, "o\n1\nX\n\n— o AAAA\n")
    assert body.startswith(b"old 7\n")
    assert parse_add_checkpoint(body) == AddCheckpointRequest(7, hashes, "o\n1\nX\n\n— o AAAA\n")
    with pytest.raises(MalformedWitnessRequestError):
        parse_add_checkpoint(b"old 7\n" + base64.b64encode(bytes(32)).rstrip(b"=") + b"\n\nx")


def test_the_database_refuses_to_rewind_a_witnessed_log(pair: Pair) -> None:
    append(pair.log, 5)
    assert post(pair.http, add_checkpoint_body(0, (), signed(pair.log, 5)[1])).status_code == 200
    for statement in (
        "UPDATE witnessed_logs SET tree_size = 4",
        "UPDATE witnessed_logs SET root_hash = :other",
        "DELETE FROM witnessed_logs",
    ):
        with (
            pytest.raises(Exception, match="never forgets or rewinds"),
            pair.witness.db.write() as session,
        ):
            session.execute(text(statement), {"other": bytes(32)})
    assert witnessed(pair) is not None and witnessed(pair)[0] == 5  # type: ignore[index]


# -- the log side -------------------------------------------------------------------------------


def test_unreachable_witness_never_blocks_and_cosigning_catches_up(pair: Pair) -> None:
    port = _free_port()  # nothing listens here yet
    log = pair.reopen_log((f"{pair.wkey} http://127.0.0.1:{port}/api/v1/witness",))
    append(log, 12)
    run_maintenance(log)  # publishing goes ahead; the witness fails
    latest = log.ledger.latest_checkpoint()
    assert latest is not None and latest.checkpoint.size >= 12
    size = latest.checkpoint.size
    assert latest.note.count("\n— ") == 1  # the log's signature only
    [state] = log.cosigning.status()
    assert state.failures == 1 and "could not be reached" in (state.last_error or "")
    assert str(port) not in (state.last_error or "")  # no URL in errors
    report = log.cosigning.report()
    assert report is not None and not report.quorum_met
    append(log, 3)  # appending is not held up either
    run_maintenance(log)
    assert log.cosigning.status()[0].failures == 2

    with serve_in_background(pair.witness, port=port):
        report = log.cosigning.run_due()
    assert report is not None and report.quorum_met
    latest = log.ledger.latest_checkpoint()
    assert latest is not None
    witnessed_note(pair, latest.note)
    [state] = log.cosigning.status()
    assert (state.failures, state.last_error, state.cosigned_size) == (0, None, size)


def test_a_size_learned_from_409_is_used_for_the_proof(pair: Pair) -> None:
    cosigning = pair.in_process_witness()
    append(pair.log, 8)
    pair.log.ledger.publish_checkpoint()
    assert cosigning.run_due().quorum_met  # type: ignore[union-attr]
    with pair.log.db.write() as session:  # the log forgets what the witness holds
        session.execute(delete(LedgerWitnessState))
    append(pair.log, 9)
    pair.log.ledger.publish_checkpoint()
    report = cosigning.run_due()  # old 0 → 409 "8" → old 8 with a proof → 200
    assert report is not None and report.quorum_met, report
    assert witnessed(pair)[0] == 17  # type: ignore[index]
    assert cosigning.status()[0].cosigned_size == 17


def test_a_witness_that_saw_another_history_raises_an_alarm(pair: Pair) -> None:
    cosigning = pair.in_process_witness()
    append(pair.log, 6)
    # Someone with the log key showed the witness a different tree of size 6 (a split view).
    _, fork = signed(pair.log, 6, hashlib.sha256(b"split view").digest())
    assert post(pair.http, add_checkpoint_body(0, (), fork)).status_code == 200
    pair.log.ledger.publish_checkpoint()
    report = cosigning.run_due()
    assert report is not None and not report.quorum_met
    assert "possible fork" in report.outcomes[0].detail
    [alert] = pair.log.alerts.operator_alerts(kind="ledger.witness-conflict")
    assert alert.severity == "critical" and alert.details["tree_size"] == 6
    with pair.log.db.read() as session:
        assert session.scalars(select(LedgerCosignature)).all() == []


def test_a_witness_ahead_of_our_log_raises_an_alarm(pair: Pair) -> None:
    cosigning = pair.in_process_witness()
    append(pair.log, 30)
    pair.log.ledger.publish_checkpoint()
    # The log once signed size 31 and the witness cosigned it; then the log's database was
    # restored from a backup taken before that checkpoint was stored.
    append(pair.log, 1)
    _, lost = signed(pair.log, 31)
    assert post(pair.http, add_checkpoint_body(0, (), lost)).status_code == 200
    report = cosigning.run_due()  # our latest checkpoint is 30, the witness holds 31
    assert report is not None and not report.outcomes[0].ok
    assert "restored from a backup" in report.outcomes[0].detail
    [alert] = pair.log.alerts.operator_alerts(kind="ledger.witness-ahead")
    assert alert.details["witness_size"] == 31


def fake_witness(answer: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    """A remote witness that answers whatever the test says (not one of our services)."""
    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://fake.test")


def test_returned_cosignatures_are_verified_before_they_are_stored(pair: Pair) -> None:
    append(pair.log, 4)
    published = pair.log.ledger.publish_checkpoint()
    real = CosignatureSigner("fake.test/w", Ed25519PrivateKey.generate())
    other = CosignatureSigner("fake.test/w", Ed25519PrivateKey.generate())
    endpoint = WitnessEndpoint(real.verifier, "http://fake.test/w")

    def run(line: str, status: int = 200) -> str:
        client = fake_witness(lambda _request: httpx.Response(status, text=line))
        service = CosigningService(pair.log.db, pair.log.ledger, [endpoint], client=client)
        report = service.run_due()
        assert report is not None
        return report.outcomes[0].detail

    now = int(published.published_at.timestamp())
    good = real.cosign(published.checkpoint, now)
    wrong_key = other.cosign(published.checkpoint, now)  # same name, another key: other key ID
    flipped = bytes([good.signature[-1] ^ 1])  # always differs from the real last byte
    bad = NoteSignature(good.name, good.key_id, good.signature[:-1] + flipped)
    future = real.cosign(published.checkpoint, now + 86_400)
    assert "no cosignature by its configured key" in run(wrong_key.line())
    assert "does not verify" in run(bad.line())
    assert "dated in the future" in run(future.line())
    assert "not a list of signature lines" in run("hello\n")
    assert "HTTP 500" in run("", 500)
    with pair.log.db.read() as session:
        assert session.scalars(select(LedgerCosignature)).all() == []
    assert run(good.line()) == "cosigned size 4"
    with pair.log.db.read() as session:
        [stored] = session.scalars(select(LedgerCosignature)).all()
        assert bytes(stored.signature) == good.signature
    latest = pair.log.ledger.latest_checkpoint()
    assert latest is not None and latest.note.endswith(good.line())


def test_cosignatures_carry_over_to_a_republished_head(pair: Pair) -> None:
    cosigning = pair.in_process_witness()
    append(pair.log, 3)
    first = pair.log.ledger.publish_checkpoint()
    cosigning.run_due()
    with pair.log.db.write() as session:  # re-publish the unchanged head (as after max age)
        from pactvault.ledger.publish import CheckpointStore

        again = CheckpointStore(ORIGIN).publish(session, log_signer(pair.log), refresh=True)
    assert again.seq != first.seq
    latest = pair.log.ledger.latest_checkpoint()
    assert latest is not None and latest.seq == again.seq
    assert latest.note.count("\n— ") == 2  # the earlier cosignature is valid for the same body
    report = cosigning.run_due()  # but the witness is asked again, for a fresh timestamp
    assert report is not None and [o.ok for o in report.outcomes] == [True]
    pages = pair.log.ledger.checkpoints()
    assert [p.note.count("\n— ") for p in pages] == [2, 2]


# -- keys and configuration ---------------------------------------------------------------------


def test_the_witness_key_is_sealed_stable_and_audited(pair: Pair) -> None:
    platform = pair.witness
    vkey = platform.witness.verifier_key()
    assert vkey.startswith(WITNESS_NAME + "+")
    assert parse_cosigner_key(vkey).name == WITNESS_NAME
    with pytest.raises(NoteError):
        parse_verifier_key(vkey)  # a witness key is not a log key
    secret = platform.witness._witness_signer()._key.private_bytes_raw()
    assert secret not in database_bytes(platform.db)
    reopened = Platform.open(platform.settings)
    try:
        assert reopened.witness.verifier_key() == vkey
    finally:
        reopened.close()
    with platform.db.read() as session:
        created = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "witness.key.create")
        ).all()
        assert [e.details["verifier_key"] for e in created] == [vkey]
    with platform.db.write() as session:  # a damaged sealed key is refused, not used
        row = session.get(WitnessKey, 1)
        assert row is not None
        row.sealed_private_key = row.sealed_private_key[:-1] + bytes(
            [row.sealed_private_key[-1] ^ 1]
        )
    fresh = Platform.open(platform.settings)
    try:
        with pytest.raises(IntegrityError):
            fresh.witness.verifier_key()
    finally:
        fresh.close()


def test_configuration_is_checked_at_startup(pair: Pair) -> None:
    wkey, vkey = pair.wkey, pair.vkey
    assert Settings.from_env(
        {
            "PACTVAULT_WITNESS_LOGS": f"{vkey}, {vkey}\n",
            "PACTVAULT_LEDGER_WITNESSES": f"{wkey} https://w.example/api/v1/witness/\n",
            "PACTVAULT_LEDGER_WITNESS_QUORUM": "1",
        }
    ).ledger_witnesses == (f"{wkey} https://w.example/api/v1/witness/",)
    [endpoint] = parse_witnesses([f"{wkey} https://w.example/api/v1/witness/"])
    assert endpoint.url == "https://w.example/api/v1/witness"
    assert parse_log_keys([vkey, vkey]) == {ORIGIN: (parse_verifier_key(vkey),)}
    for entries in (
        [wkey],  # no URL
        [f"{vkey} https://w.example"],  # a log key is not a witness key
        [f"{wkey} ftp://w.example"],
        [f"{wkey} https://user:pw@w.example"],
        [f"{wkey} https://w.example", f"{wkey} https://w2.example"],
    ):
        with pytest.raises(InvalidInputError):
            parse_witnesses(entries)
    with pytest.raises(InvalidInputError):
        parse_log_keys([wkey])
    with pytest.raises(InvalidInputError):
        Settings.from_env({"PACTVAULT_LEDGER_WITNESS_QUORUM": "-1"})
    with pytest.raises(InvalidInputError):
        pair.reopen_log((f"{wkey} https://w.example",), quorum=2)


def test_a_process_that_loses_the_race_to_create_a_key_uses_the_stored_one(
    platform: Platform,
) -> None:
    """Both services create their key with INSERT … ON CONFLICT DO NOTHING. The loser of a race
    (it saw no row, then another process inserted first) must open the stored key, not keep the
    one it generated — on PostgreSQL too, where that insert reports no row count."""
    ledger = LedgerService(platform.db, platform.keys, platform.ledger.origin)
    with platform.db.write() as session:
        loser = ledger._create_key(session)
    assert loser.verifier.key_string() == platform.ledger.verifier_key()
    witness = WitnessService(platform.db, platform.keys, "elsewhere.test/w", {})
    with platform.db.write() as session:
        late = witness._create_key(session)
    assert late.verifier.key_string() == platform.witness.verifier_key()
