"""``pactvault ledger …`` against a real instance: exit codes and what an operator sees."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from flows import SENDER, sent_contract, sign_as
from pactvault.commands.ledger import app
from pactvault.contracts.service import SignerSpec
from pactvault.ledger import EvidenceRecord, Ledger
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform


@pytest.fixture
def cli(platform: Platform):  # type: ignore[no-untyped-def]
    """Run a ledger command against the ``platform`` fixture's instance."""
    runner = CliRunner()
    env = {
        "PACTVAULT_HOME": str(platform.settings.home),
        "PACTVAULT_DATABASE_URL": platform.settings.resolved_database_url,
        "PACTVAULT_PUBLIC_URL": platform.settings.public_url,
    }

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env)

    return run


def append(platform: Platform, count: int) -> None:
    records = [
        EvidenceRecord("contract.void", contract_id=str(uuid.UUID(int=i))) for i in range(count)
    ]
    with platform.db.write() as session:
        Ledger(session).append_batch(records)


def test_checkpoint_export_and_offline_verify(cli, platform: Platform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    append(platform, 30)
    none_yet = cli("checkpoint")
    assert none_yet.exit_code == 2 and "no checkpoint" in none_yet.output

    published = cli("checkpoint", "--publish")
    assert published.exit_code == 0, published.output
    assert published.stdout.startswith("127.0.0.1:8000/pactvault/log\n30\n")
    assert cli("checkpoint").stdout == published.stdout
    vkey = cli("key").stdout.strip()
    assert vkey.startswith("127.0.0.1:8000/pactvault/log+")

    exported = cli("export", str(tmp_path / "dump"))
    assert exported.exit_code == 0, exported.output
    assert "exported 30 leaves and 1 checkpoints" in exported.stdout
    valid = cli("verify", str(tmp_path / "dump"), "--key", vkey)
    assert valid.exit_code == 0 and "VALID" in valid.stdout and "30 leaves" in valid.stdout
    (tmp_path / "log.vkey").write_text(f"\n{vkey}\n")
    assert cli("verify", str(tmp_path / "dump"), "--key", str(tmp_path / "log.vkey")).exit_code == 0

    leaves = tmp_path / "dump" / "leaves.jsonl"
    leaves.write_bytes(
        leaves.read_bytes().replace(
            b"00000000-0000-0000-0000-000000000007", b"00000000-0000-0000-0000-000000000008"
        )
    )
    invalid = cli("verify", str(tmp_path / "dump"), "--key", vkey)
    assert invalid.exit_code == 1
    assert "NOT VALID" in invalid.stdout and "checkpoint #1 (size 30)" in invalid.stdout

    assert cli("verify", str(tmp_path / "dump"), "--key", "nonsense+").exit_code == 2
    assert cli("verify", str(tmp_path / "nowhere"), "--key", vkey).exit_code == 2
    assert cli("export", str(tmp_path / "dump")).exit_code == 2  # not empty


def test_proof_bundle_for_a_contract_verifies_offline(  # type: ignore[no-untyped-def]
    cli, platform: Platform, mailer: MemoryMailer, tmp_path: Path
) -> None:
    org, contract_id, tokens = sent_contract(platform, mailer, [SignerSpec("李四", "l@example.cn")])
    sign_as(platform, next(iter(tokens.values())))
    _, pdf = platform.contracts.download(SENDER, org, contract_id)
    (tmp_path / "signed.pdf").write_bytes(pdf)
    (tmp_path / "other.pdf").write_bytes(pdf + b"%")

    made = cli("proof", "--contract", contract_id, "--out", str(tmp_path / "bundle.json"))
    assert made.exit_code == 0, made.output
    assert "4 evidence leaves" in made.stdout
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    vkey = cli("key").stdout.strip()
    assert bundle["verifier_key"] == vkey

    ok = cli(
        "verify-bundle",
        str(tmp_path / "bundle.json"),
        "--key",
        vkey,
        "--pdf",
        str(tmp_path / "signed.pdf"),
    )
    assert ok.exit_code == 0, ok.output
    assert hashlib.sha256(pdf).hexdigest() in ok.stdout and "matches the PDF" in ok.stdout
    wrong = cli(
        "verify-bundle",
        str(tmp_path / "bundle.json"),
        "--key",
        vkey,
        "--pdf",
        str(tmp_path / "other.pdf"),
    )
    assert wrong.exit_code == 1 and "NOT VALID" in wrong.stdout

    unknown = cli("proof", "--contract", str(uuid.uuid4()), "--out", str(tmp_path / "x.json"))
    assert unknown.exit_code == 2 and "no evidence" in unknown.output
    assert not (tmp_path / "x.json").exists()


def test_anchor_and_check_anchors(cli, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    anchored = cli("anchor")
    assert anchored.exit_code == 0 and "anchored audit entry" in anchored.stdout
    assert "nothing to anchor" in cli("anchor").stdout
    intact = cli("check-anchors")
    assert intact.exit_code == 0 and "intact" in intact.stdout

    with platform.db.engine.begin() as conn:
        if platform.db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        conn.execute(text("DELETE FROM audit_events WHERE seq = 1"))
    broken = cli("check-anchors")
    assert broken.exit_code == 1 and "audit entries 1 are missing" in broken.output
