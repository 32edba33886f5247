"""``pactvault backup …`` as an operator uses it: back up, hold the key ceremony, lose the
machine, rebuild the root key from shares, restore, drill — with the documented exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backup_kit import flip_byte, populate
from pactvault.backup import manifest as layout
from pactvault.cli import app
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform


@pytest.fixture
def cli(sqlite_platform: Platform, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    base = {
        "PACTVAULT_HOME": str(sqlite_platform.settings.home),
        "PACTVAULT_DATABASE_URL": None,
        "PACTVAULT_PUBLIC_URL": sqlite_platform.settings.public_url,
        "PACTVAULT_PASSPHRASE": None,
        "PACTVAULT_BACKUP_DESTINATIONS": str(tmp_path / "vault"),
        "PACTVAULT_BACKUP_SCRATCH_DIR": str(tmp_path / "scratch"),
    }

    def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["backup", *args], env={**base, **(env or {})})

    return run


def test_backup_ceremony_and_restore_from_the_command_line(
    cli, sqlite_platform: Platform, mailer: MemoryMailer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    populate(sqlite_platform, mailer)

    done = cli("run", "--json")
    assert done.exit_code == 0, done.output
    backup = json.loads(done.stdout)
    assert backup["complete"] and backup["counts"]["signatures"] == 3

    listed = json.loads(cli("list", "--json").stdout)
    assert [b["backup_id"] for b in listed["backups"]] == [backup["backup_id"]]
    verified = cli("verify", "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"]

    ceremony = cli("export-root-key", "--shares", "3", "--threshold", "2", "--json")
    assert ceremony.exit_code == 0, ceremony.output
    sheet = json.loads(ceremony.stdout)
    shares = sheet["shares"]
    assert len(shares) == 3 and sheet["fingerprint"].startswith("SHA256:")
    assert sheet["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")

    # Custodians rehearse: their shares rebuild this instance's root key.
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text(f"custodian one\n{shares[0]}\n")
    two.write_text(f"custodian three\n{shares[2]}\n")
    check = cli("import-root-key", "--check", "--shares-file", str(one), "--shares-file", str(two))
    assert check.exit_code == 0, check.output
    assert "rebuild this instance's root key" in check.stdout

    drill = cli("drill", "--json")
    assert drill.exit_code == 0, drill.output
    report = json.loads(drill.stdout)
    assert report["ok"] and report["rpo_seconds"] >= 0 and report["rto_seconds"] > 0
    assert not any((tmp_path / "scratch").iterdir())

    # The machine is lost. On a new one: one share is not enough, two are.
    new = tmp_path / "new-home"
    short = cli("import-root-key", "--home", str(new), "--shares-file", str(one))
    assert short.exit_code == 2 and "2 different shares" in short.output
    rebuilt = cli(
        "import-root-key", "--home", str(new), "--shares-file", str(one), "--shares-file", str(two)
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (new / "keys" / "root-key.json").exists()
    assert (new / "keys" / "backup-signing-key.pem").read_text() == sheet["public_key_pem"]

    restored = cli("restore", "--home", str(new), "--json")
    assert restored.exit_code == 0, restored.output
    result = json.loads(restored.stdout)
    assert result["ok"] and result["backup_id"] == backup["backup_id"]
    assert all(check["ok"] for check in result["checks"])

    again = cli("restore", "--home", str(new))
    assert again.exit_code == 2 and "restore into a new, empty data directory" in again.output

    # The backup's database archive rots: the restore refuses and names it (exit 1).
    database = tmp_path / "vault" / layout.database_name(backup["backup_id"])
    flip_byte(database)
    other = tmp_path / "other-home"
    assert (
        cli(
            "import-root-key",
            "--home",
            str(other),
            "--shares-file",
            str(one),
            "--shares-file",
            str(two),
        ).exit_code
        == 0
    )
    refused = cli("restore", "--home", str(other))
    assert refused.exit_code == 1
    assert layout.database_name(backup["backup_id"]) in refused.output
    assert not (other / "pactvault.db").exists()
    bad = cli("verify")
    assert bad.exit_code == 1 and "database.pvbk" in bad.output

    pruned = cli("prune", "--dry-run", "--json")
    assert pruned.exit_code == 0 and json.loads(pruned.stdout)["dry_run"]


def test_restore_needs_a_root_key_and_a_trusted_key(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("run").exit_code == 0
    empty = tmp_path / "empty"
    missing = cli("restore", "--home", str(empty))
    assert missing.exit_code == 2 and "import-root-key" in missing.output
    both = cli("restore", "--home", str(empty), "--backup", "x", "--at", "2026-01-01T00:00:00Z")
    assert both.exit_code == 2
