"""``pactvault ledger witness …`` and offline verification with a witness quorum, against two real
instances (the witness served over HTTP), as an operator and an auditor would use them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from pactvault.commands.ledger import app
from pactvault.demo import serve_in_background
from pactvault.errors import VerificationError
from pactvault.evidence.offline import require_cosignatures, verify_exported_log
from pactvault.ledger import parse_cosigner_key
from pactvault.ledger.witness import CosignatureSigner
from witness_kit import LOG_URL, ORIGIN, WITNESS_NAME, WITNESS_URL, Pair, append, make_pair

CONTRACT = str(uuid.UUID(int=42))
Cli = Callable[..., Result]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    instances = make_pair(
        tmp_path, f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'witness.db'}"
    )
    try:
        yield instances
    finally:
        instances.close()


@pytest.fixture
def served(pair: Pair) -> Iterator[str]:
    with serve_in_background(pair.witness) as base:
        yield base


def runner_for(env: dict[str, str]) -> Cli:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, [str(a) for a in args], env=env)

    return run


@pytest.fixture
def log_cli(pair: Pair, served: str) -> Cli:
    """The log instance's CLI, configured with the witness at ``served``."""
    return runner_for(
        {
            "PACTVAULT_HOME": str(pair.log.settings.home),
            "PACTVAULT_DATABASE_URL": pair.log.settings.resolved_database_url,
            "PACTVAULT_PUBLIC_URL": LOG_URL,
            "PACTVAULT_LEDGER_WITNESSES": f"{pair.wkey} {served}/api/v1/witness",
        }
    )


@pytest.fixture
def witness_cli(pair: Pair) -> Cli:
    return runner_for(
        {
            "PACTVAULT_HOME": str(pair.witness.settings.home),
            "PACTVAULT_DATABASE_URL": pair.witness.settings.resolved_database_url,
            "PACTVAULT_PUBLIC_URL": WITNESS_URL,
            "PACTVAULT_WITNESS_LOGS": pair.vkey,
        }
    )


def stranger_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return CosignatureSigner("stranger.test/w", Ed25519PrivateKey.generate()).verifier.key_string()


def test_operator_commands_on_both_sides(pair: Pair, log_cli: Cli, witness_cli: Cli) -> None:
    assert witness_cli("witness", "key").stdout.strip() == pair.wkey
    never = witness_cli("witness", "logs")
    assert never.exit_code == 0 and ORIGIN in never.stdout and "never" in never.stdout

    append(pair.log, 25, CONTRACT)
    nothing = log_cli("witness", "request")
    assert nothing.exit_code == 2 and "no checkpoint" in nothing.output
    requested = log_cli("witness", "request", "--publish")
    assert requested.exit_code == 0, requested.output
    assert f"✓ {WITNESS_NAME}: cosigned size 25" in requested.stdout
    assert "quorum 1 met" in requested.stdout

    status = log_cli("witness", "status")
    assert status.exit_code == 0, status.output
    assert WITNESS_NAME in status.stdout and "quorum 1 met" in status.stdout
    again = log_cli("witness", "request")
    assert "already cosigned" in again.stdout

    served_note = log_cli("checkpoint").stdout
    assert served_note.startswith(f"{ORIGIN}\n25\n")
    assert f"\n— {WITNESS_NAME} " in served_note
    logs = witness_cli("witness", "logs")
    assert "25" in logs.stdout

    # The quorum is not met while the latest checkpoint waits for its cosignature: exit 1.
    append(pair.log, 5, CONTRACT)
    pair.log.ledger.publish_checkpoint()
    waiting = log_cli("witness", "status")
    assert waiting.exit_code == 1 and "not met" in waiting.stdout


def test_bundles_verify_offline_with_a_witness_quorum(
    pair: Pair, log_cli: Cli, tmp_path: Path
) -> None:
    append(pair.log, 10, CONTRACT)
    bundle = tmp_path / "bundle.json"
    # The bundle's checkpoint is published for it and cosigned before it is written.
    made = log_cli("proof", "--contract", CONTRACT, "--out", bundle)
    assert made.exit_code == 0, made.output
    note = json.loads(bundle.read_text())["checkpoint"]
    assert f"\n— {WITNESS_NAME} " in note

    ok = log_cli("verify-bundle", bundle, "--key", pair.vkey, "--witness", pair.wkey)
    assert ok.exit_code == 0, ok.output
    assert f"cosigned by 1 witness(es): {WITNESS_NAME}" in ok.stdout
    keys = tmp_path / "witnesses.txt"
    keys.write_text(f"\n{pair.wkey}\n{stranger_key()}\n")
    one_of_two = log_cli(
        "verify-bundle", bundle, "--key", pair.vkey, "--witness", keys, "--quorum", "1"
    )
    assert one_of_two.exit_code == 0, one_of_two.output
    both = log_cli("verify-bundle", bundle, "--key", pair.vkey, "--witness", keys)
    assert both.exit_code == 1 and "cosigned by 1 of the 2 trusted witnesses; 2 required" in (
        both.stdout
    )
    wrong = log_cli("verify-bundle", bundle, "--key", pair.vkey, "--witness", stranger_key())
    assert wrong.exit_code == 1 and "NOT VALID" in wrong.stdout
    usage = log_cli("verify-bundle", bundle, "--key", pair.vkey, "--quorum", "1")
    assert usage.exit_code == 2
    not_a_key = log_cli("verify-bundle", bundle, "--key", pair.vkey, "--witness", pair.vkey)
    assert not_a_key.exit_code == 2 and "not a witness key" in not_a_key.output

    # A cosignature altered in transit does not count (and is reported as such).
    data = json.loads(bundle.read_text())
    line = next(x for x in data["checkpoint"].splitlines() if WITNESS_NAME in x)
    blob = bytearray(base64.b64decode(line.split(" ")[-1]))
    blob[-1] ^= 1  # the last byte of the Ed25519 signature
    forged = f"— {WITNESS_NAME} {base64.b64encode(bytes(blob)).decode()}"
    data["checkpoint"] = data["checkpoint"].replace(line, forged)
    bundle.write_text(json.dumps(data))
    tampered = log_cli("verify-bundle", bundle, "--key", pair.vkey, "--witness", pair.wkey)
    assert tampered.exit_code == 1 and "does not verify" in tampered.stdout
    # Without a witness policy the log's own signature still carries the bundle.
    assert log_cli("verify-bundle", bundle, "--key", pair.vkey).exit_code == 0


def test_an_export_carries_cosignatures_and_needs_a_witnessed_newest_checkpoint(
    pair: Pair, log_cli: Cli, tmp_path: Path
) -> None:
    append(pair.log, 12)
    assert log_cli("witness", "request", "--publish").exit_code == 0
    append(pair.log, 8)
    assert log_cli("witness", "request", "--publish").exit_code == 0
    dump = tmp_path / "dump"
    assert log_cli("export", dump).exit_code == 0

    # The export carries each checkpoint as served, with its witness cosignatures.
    served = {p.seq: p.note for p in pair.log.ledger.checkpoints()}
    entries = json.loads((dump / "checkpoints.json").read_text())
    assert [e["note"] for e in entries] == [served[e["seq"]] for e in entries]
    assert log_cli("verify", dump, "--key", pair.vkey).exit_code == 0
    witnessed = log_cli("verify", dump, "--key", pair.vkey, "--witness", pair.wkey)
    assert witnessed.exit_code == 0, witnessed.output
    assert "size 20 cosigned by at least 1 trusted witness(es)" in witnessed.stdout

    # Stripped of its cosignatures, the newest checkpoint no longer meets the quorum.
    plain = [dict(e, note=e["note"].split(f"— {WITNESS_NAME}")[0]) for e in entries]
    (dump / "checkpoints.json").write_text(json.dumps(plain))
    stripped = log_cli("verify", dump, "--key", pair.vkey, "--witness", pair.wkey)
    assert stripped.exit_code == 1
    assert "no checkpoint of the newest size 20 is cosigned by 1" in stripped.stdout
    (dump / "checkpoints.json").write_text(json.dumps(entries))

    report = verify_exported_log(dump, pair.vkey, witnesses=[pair.wkey, stranger_key()], quorum=2)
    assert not report.ok and report.witnessed_size is None
    report = verify_exported_log(dump, pair.vkey, witnesses=[pair.wkey, pair.wkey], quorum=1)
    assert not report.ok and "twice" in report.problems[0]

    # Only the older checkpoint witnessed: the newest size is not, and the report says so.
    entries[-1]["note"] = entries[-1]["note"].split(f"— {WITNESS_NAME}")[0]
    (dump / "checkpoints.json").write_text(json.dumps(entries))
    report = verify_exported_log(dump, pair.vkey, witnesses=[pair.wkey], quorum=1)
    assert report.witnessed_size == 12
    assert report.problems == [
        "no checkpoint of the newest size 20 is cosigned by 1 trusted witness(es) (at most 0); "
        "the largest witnessed size is 12"
    ]


def test_require_cosignatures_is_strict(pair: Pair) -> None:
    append(pair.log, 3)
    published = pair.log.ledger.publish_checkpoint()
    with pytest.raises(VerificationError, match="0 of the 1 trusted witnesses; 1 required"):
        require_cosignatures(published.note, pair.vkey, [pair.wkey], 1)
    with pytest.raises(VerificationError, match="at least that many witness keys"):
        require_cosignatures(published.note, pair.vkey, [pair.wkey], 2)
    with pytest.raises(VerificationError, match="checkpoint rejected"):
        require_cosignatures(published.note, stranger_key(), [pair.wkey], 1)
    assert parse_cosigner_key(pair.wkey).name == WITNESS_NAME
