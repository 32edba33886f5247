"""``pactvault alerts …`` against a real instance (SQLite and PostgreSQL): what the operator sees
after real damage, how they handle organisation and platform-wide alerts, webhook delivery on
demand, and the exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from alerts_kit import Receiver, audit_events, delete_audit_entry, draft_contract, flip_a_byte
from flows import make_org
from pactvault.cli import app
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.webhooks import WebhookEndpoint, new_webhook_secret, verify_webhook
from pactvault.platform import Platform
from pactvault.store.monitor_models import AlertDelivery

WEBHOOK_ENV = ("PACTVAULT_ALERT_WEBHOOK_URL", "PACTVAULT_ALERT_WEBHOOK_SECRET")


@pytest.fixture
def cli(platform: Platform):  # type: ignore[no-untyped-def]
    """Run ``pactvault alerts …`` against the ``platform`` fixture's instance."""
    runner = CliRunner()
    base = {
        "PACTVAULT_HOME": str(platform.settings.home),
        "PACTVAULT_DATABASE_URL": platform.settings.resolved_database_url,
        "PACTVAULT_PUBLIC_URL": platform.settings.public_url,
        "PACTVAULT_PASSPHRASE": None,
        **dict.fromkeys(WEBHOOK_ENV),
    }

    def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["alerts", *args], env={**base, **(env or {})})

    return run


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def damaged_instance(platform: Platform) -> tuple[str, str, str]:
    """Real damage, found by the integrity auditor: a flipped byte in one organisation's
    document and a deleted audit entry. Returns (org id, its alert id, platform alert id)."""
    org = make_org(platform, "Damaged Ltd")
    contract = draft_contract(platform, org)
    flip_a_byte(platform, contract)
    assert platform.integrity.run().findings_total == 1
    delete_audit_entry(platform, "alert.raised")
    platform.integrity.run()
    (blob,) = platform.alerts.operator_alerts(org_id=org)
    (chain,) = platform.alerts.operator_alerts(platform_only=True)
    assert blob.kind == "integrity.decrypt-failed" and chain.kind == "integrity.audit-chain"
    return org, blob.id, chain.id


# -- list and show -----------------------------------------------------------------------------


def test_list_and_show_name_the_damage(cli, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    org, blob, chain = damaged_instance(platform)

    listed = cli("list")
    assert listed.exit_code == 0, listed.output
    out = listed.stdout
    assert "Alerts 1-2 of 2" in out
    assert blob in out and chain in out  # whole ids, to copy into show/ack/resolve
    assert f"organisation {org}" in out and "platform-wide" in out
    assert "integrity.decrypt-failed ×2" in out  # found by both runs, one alert
    assert out.index(chain) < out.index(blob)  # newest first

    only_platform = cli("list", "--platform")
    assert chain in only_platform.stdout and blob not in only_platform.stdout
    only_org = cli("list", "--org", org)
    assert blob in only_org.stdout and chain not in only_org.stdout
    assert "no alerts" in cli("list", "--org", "00000000-0000-4000-8000-000000000000").stdout
    assert blob in cli("list", "--kind", "integrity.*", "--severity", "critical").stdout
    assert "no alerts" in cli("list", "--status", "resolved").stdout
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert "no alerts" in cli("list", "--since", tomorrow).stdout  # no offset: read as UTC

    page = json.loads(cli("list", "--json", "--limit", "1").stdout)
    assert page["total"] == 2 and [i["id"] for i in page["items"]] == [chain]
    assert page["items"][0]["org_id"] is None

    for bad in (
        ("--org", org, "--platform"),
        ("--status", "closed"),
        ("--kind", "Bad Kind"),
        ("--since", "last tuesday"),
        ("--limit", "0"),
    ):
        refused = cli("list", *bad)
        assert refused.exit_code == 2, (bad, refused.output)
        assert "error:" in refused.stderr

    shown = cli("show", blob)
    assert shown.exit_code == 0, shown.output
    detail = platform.alerts.operator_get(blob).alert.details
    for value in (detail["contract_id"], detail["blob_key"], detail["found_ciphertext_sha256"]):
        assert value in shown.stdout
    assert f"expected_ciphertext_sha256: {detail['expected_ciphertext_sha256']}" in shown.stdout
    assert "version: 1" in shown.stdout and "2 detection(s)" in shown.stdout
    assert "no webhook notifications" in shown.stdout

    as_json = json.loads(cli("show", chain, "--json").stdout)
    assert as_json["id"] == chain and as_json["org_id"] is None
    assert as_json["kind"] == "integrity.audit-chain" and as_json["deliveries"] == []

    unknown = cli("show", "00000000-0000-4000-8000-000000000000")
    assert unknown.exit_code == 2 and "alert not found" in unknown.stderr


# -- handling ----------------------------------------------------------------------------------


def test_ack_and_resolve_with_the_right_scope_are_audited(cli, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    org, blob, chain = damaged_instance(platform)

    # An organisation's alert needs that organisation named: a mistyped id stays harmless.
    unnamed = cli("ack", blob, "--note", "looking")
    assert unnamed.exit_code == 2
    assert f"--org {org}" in unnamed.stderr
    wrong = cli("ack", blob, "--org", make_org(platform, "Other"))
    assert wrong.exit_code == 2
    assert platform.alerts.operator_get(blob).alert.status == "open"
    assert audit_events(platform, "alert.acknowledge") == []

    acked = cli("ack", blob, "--org", org, "--note", "restoring revision 1 from backup")
    assert acked.exit_code == 0, acked.output
    assert f"acknowledged alert {blob}" in acked.stdout
    assert cli("ack", blob, "--org", org).exit_code == 2  # already acknowledged

    misplaced = cli("resolve", chain, "--org", org)
    assert misplaced.exit_code == 2 and "platform-wide" in misplaced.stderr
    resolved = cli("resolve", chain, "--note", "journal restored")
    assert resolved.exit_code == 0, resolved.output
    twice = cli("resolve", chain)
    assert twice.exit_code == 2 and "already resolved" in twice.stderr

    (ack,) = audit_events(platform, "alert.acknowledge")
    assert ack.object_id == blob and ack.org_id == org and ack.actor_type == "operator-cli"
    assert ack.details["note"] == "restoring revision 1 from backup"
    (res,) = audit_events(platform, "alert.resolve")
    assert res.object_id == chain and res.org_id is None and res.actor_type == "operator-cli"

    shown = cli("show", blob).stdout
    assert "acknowledged" in shown and "by operator-cli:" in shown
    assert "restoring revision 1 from backup" in shown
    assert cli("list", "--status", "acknowledged", "--json").stdout.count('"id"') == 1


# -- webhook delivery on demand ----------------------------------------------------------------


def server_alerts(platform: Platform, receiver: Receiver, secret: str) -> AlertService:
    """The alert service as the server has it: the ``default`` webhook configured."""
    endpoint = WebhookEndpoint("default", receiver.url, secret)
    return AlertService(platform.db, platform.access, [endpoint])


def test_deliver_sends_due_notifications_and_shows_their_state(  # type: ignore[no-untyped-def]
    cli, platform: Platform, receiver: Receiver
) -> None:
    secret = new_webhook_secret()
    configured = dict(zip(WEBHOOK_ENV, (receiver.url, secret), strict=True))
    server = server_alerts(platform, receiver, secret)
    org = make_org(platform)
    alert = server.raise_alert(
        "integrity.blob-missing",
        severity="critical",
        title="Contract c revision 2: the stored document is missing",
        details={"contract_id": "c", "version": 2},
        org_id=org,
    ).alert
    (delivery,) = platform.alerts.operator_get(alert.id).deliveries

    receiver.statuses = [500]
    failed = cli("deliver", env=configured)
    assert failed.exit_code == 3, failed.output
    assert delivery.id in failed.stdout and alert.id in failed.stdout
    assert "HTTP 500" in failed.stdout and "next attempt" in failed.stdout
    assert "did not go through" in failed.stdout
    assert len(receiver.requests) == 1

    waiting = cli("deliver", env=configured)  # backing off: nothing is due yet
    assert waiting.exit_code == 0, waiting.output
    assert "nothing was due now" in waiting.stdout and delivery.id in waiting.stdout
    assert len(receiver.requests) == 1

    with platform.db.write() as session:  # the back-off has passed
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery.id)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    sent = cli("deliver", "--json", env=configured)
    assert sent.exit_code == 0, sent.output
    report = json.loads(sent.stdout)
    assert (report["delivered"], report["retrying"], report["failed"]) == (1, 0, 0)
    (done,) = report["attempted"]
    assert done["id"] == delivery.id and done["status"] == "delivered" and done["attempts"] == 2
    assert report["waiting"] == []
    headers, body = receiver.requests[-1]
    assert headers["webhook-id"] == delivery.id
    assert verify_webhook(secret, headers, body, now=int(time.time()))
    assert json.loads(body)["alert"]["id"] == alert.id

    shown = cli("show", alert.id, env=configured)
    assert "delivered to default, 2 attempt(s)" in shown.stdout
    assert f"delivery {delivery.id}" in shown.stdout and "HTTP 204" in shown.stdout
    for output in (failed.stdout, sent.stdout, shown.stdout):
        assert secret not in output and receiver.url not in output
    assert cli("deliver", env=configured).stdout.strip() == "nothing to deliver"


def test_deliver_refuses_without_the_servers_webhook_settings(  # type: ignore[no-untyped-def]
    cli, platform: Platform, receiver: Receiver
) -> None:
    server = server_alerts(platform, receiver, new_webhook_secret())
    alert = server.raise_alert(
        "integrity.ledger-leaf", severity="critical", title="leaf 3", details={"leaf_index": 3}
    ).alert
    refused = cli("deliver")  # this shell lacks PACTVAULT_ALERT_WEBHOOK_*
    assert refused.exit_code == 2
    assert "not configured here: default" in refused.stderr and "nothing was sent" in refused.stderr
    (delivery,) = platform.alerts.operator_get(alert.id).deliveries
    assert (delivery.status, delivery.attempts) == ("pending", 0)  # not given up
    assert receiver.requests == []


def test_an_uninitialised_home_is_an_operational_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["alerts", "list", "--home", str(tmp_path / "nothing")])
    assert result.exit_code == 3 and "pactvault init" in result.stderr
