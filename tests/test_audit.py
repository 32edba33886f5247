"""The audit journal: hash chain, tamper detection, and append-only enforcement in the database."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pactvault.audit.journal import GENESIS_HASH, Actor, entry_hash, record, verify_chain
from pactvault.errors import IntegrityError
from pactvault.platform import Platform

ALICE = Actor(type="api-token", id="tok-1", org_id=None, ip="203.0.113.5", user_agent="curl/8")


def write_entries(platform: Platform, n: int) -> None:
    for i in range(n):
        with platform.db.write() as session:
            record(
                session,
                ALICE,
                "contract.view",
                object_type="contract",
                object_id=f"c{i}",
                details={"i": i, "名字": "测试"},
            )


def test_chain_links_every_entry(platform: Platform) -> None:
    with platform.db.read() as session:
        before = verify_chain(session).entries
    write_entries(platform, 5)
    with platform.db.read() as session:
        report = verify_chain(session)
        rows = session.execute(
            text("SELECT seq, prev_hash, entry_hash, ip, user_agent FROM audit_events ORDER BY seq")
        ).all()
    assert report.ok and report.entries == before + 5
    assert rows[0].prev_hash == GENESIS_HASH
    for earlier, later in itertools.pairwise(rows):
        assert later.prev_hash == earlier.entry_hash
        assert later.seq == earlier.seq + 1
    assert rows[-1].ip == "203.0.113.5" and rows[-1].user_agent == "curl/8"
    assert report.head_hash == rows[-1].entry_hash


def test_rolled_back_work_leaves_no_entry(platform: Platform) -> None:
    with platform.db.read() as session:
        before = verify_chain(session)
    with pytest.raises(RuntimeError), platform.db.write() as session:
        record(session, ALICE, "contract.void", object_id="x")
        raise RuntimeError("the action failed")
    with platform.db.read() as session:
        after = verify_chain(session)
    assert after.ok and after.entries == before.entries and after.head_hash == before.head_hash


def test_database_refuses_update_and_delete(platform: Platform) -> None:
    write_entries(platform, 2)
    for statement in (
        "UPDATE audit_events SET action = 'contract.nothing' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"), platform.db.write() as session:
            session.execute(text(statement))
    with platform.db.read() as session:
        assert verify_chain(session).ok


def _bypass_triggers(platform: Platform, statement: str) -> None:
    """Simulate an attacker with raw database access who disables the guard first."""
    with platform.db.engine.begin() as conn:
        if platform.db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        conn.exec_driver_sql(statement)


@pytest.mark.parametrize(
    "statement,problem",
    [
        ("UPDATE audit_events SET ip = '10.0.0.1' WHERE seq = 2", "entry 2 was altered"),
        ("DELETE FROM audit_events WHERE seq = 2", "entry 2 is missing"),
        ("UPDATE audit_events SET prev_hash = entry_hash WHERE seq = 3", "does not link"),
    ],
)
def test_tampering_is_detected(platform: Platform, statement: str, problem: str) -> None:
    write_entries(platform, 4)
    _bypass_triggers(platform, statement)
    with platform.db.read() as session:
        report = verify_chain(session)
    assert not report.ok
    assert problem in report.problems[0]
    from pactvault.audit.journal import require_intact_chain

    with platform.db.read() as session, pytest.raises(IntegrityError):
        require_intact_chain(session)


def test_truncating_the_tail_is_detected_through_the_head(platform: Platform) -> None:
    write_entries(platform, 3)
    with platform.db.read() as session:
        last = verify_chain(session).entries
    _bypass_triggers(platform, f"DELETE FROM audit_events WHERE seq = {last}")
    with platform.db.read() as session:
        report = verify_chain(session)
    assert not report.ok and "chain head" in report.problems[0]


def test_entry_hash_is_reproducible_canonical_json() -> None:
    record_ = {"b": 1, "a": "中文"}
    import hashlib

    expected = hashlib.sha256(GENESIS_HASH.encode() + '{"a":"中文","b":1}'.encode()).hexdigest()
    assert entry_hash(GENESIS_HASH, record_) == expected
