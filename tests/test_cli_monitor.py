"""``pactvault monitor …`` against a real instance: the operator lists and lifts blocks, blocks an
address by hand, tunes rules, and runs detection on demand; every change is audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor_kit import (
    alerts_of,
    count_events,
    make_platform,
    organisation,
    user_actor,
    write_events,
)
from pactvault.cli import app
from pactvault.platform import Platform


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    instance = make_platform(tmp_path / "data", database_url)
    instance.monitor.engine.start()
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def cli(platform: Platform):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {
        "PACTVAULT_HOME": str(platform.settings.home),
        "PACTVAULT_DATABASE_URL": platform.settings.resolved_database_url,
        "PACTVAULT_PUBLIC_URL": platform.settings.public_url,
        "PACTVAULT_PASSPHRASE": None,
    }

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["monitor", *args], env=env)

    return run


def test_block_list_and_unblock_an_address(cli, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    blocked = cli("block", "--ip", "198.51.100.23", "--minutes", "30", "--reason", "scanner")
    assert blocked.exit_code == 0, blocked.output
    assert "ip:198.51.100.23" in blocked.stdout
    # Another process (the server) sees it from the database, after its brief cache.
    assert "ip:198.51.100.23" in platform.monitor.responses.active().blocked_ips
    listed = cli("blocks", "--json")
    assert listed.exit_code == 0
    (item,) = json.loads(listed.stdout)["items"]
    assert item["action"] == "block-ip" and item["reason"] == "scanner" and item["org_id"] is None
    lifted = cli("unblock", "--ip", "198.51.100.23", "--note", "done")
    assert lifted.exit_code == 0, lifted.output
    assert "ip:198.51.100.23" not in platform.monitor.responses.active().blocked_ips
    assert json.loads(cli("blocks", "--json").stdout)["total"] == 0
    assert json.loads(cli("blocks", "--all", "--json").stdout)["items"][0]["lifted_by"]
    # Nothing left to lift, an unknown id, a bad address: usage errors.
    assert cli("unblock", "--ip", "198.51.100.23").exit_code == 2
    assert cli("unblock", "no-such-id").exit_code == 2
    assert cli("block", "--ip", "not-an-address").exit_code == 2
    assert count_events(platform, "monitor.response-applied") == 1
    assert count_events(platform, "monitor.response-lifted") == 1


def test_rules_run_and_unblock_by_id(cli, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    changed = cli("set-rule", "mass-download", "--threshold", "3", "--actions", "slow-down")
    assert changed.exit_code == 0, changed.output
    rules = {r["rule"]: r for r in json.loads(cli("rules", "--json").stdout)}
    assert rules["mass-download"]["threshold"] == 3
    assert rules["mass-download"]["actions"] == ["slow-down"]
    assert rules["mass-download"]["source"] == "platform"
    assert cli("set-rule", "mass-download", "--actions", "explode").exit_code == 2
    assert cli("set-rule", "no-such-rule", "--threshold", "1").exit_code == 2
    org, owner = organisation(platform, "Acme", "owner@acme.test")
    write_events(
        platform,
        [
            {
                "actor": user_actor(owner.user_id, org, "198.51.100.5"),
                "action": "document.download",
                "object_type": "contract",
                "object_id": f"c{i}",
                "org_id": org,
            }
            for i in range(4)
        ],
    )
    ran = cli("run", "--json")
    assert ran.exit_code == 0, ran.output
    assert ["mass-download", f"user:{owner.user_id}"] in json.loads(ran.stdout)["detections"]
    assert len(alerts_of(platform, "monitor.mass-download")) == 1
    (slowed,) = json.loads(cli("blocks", "--json", "--org", org).stdout)["items"]
    assert slowed["action"] == "slow-down" and slowed["target"] == owner.user_id
    assert cli("unblock", slowed["id"]).exit_code == 0
    assert cli("reset-rule", "mass-download").exit_code == 0
    rules = {r["rule"]: r for r in json.loads(cli("rules", "--json").stdout)}
    assert (
        rules["mass-download"]["threshold"] == 50 and rules["mass-download"]["source"] == "default"
    )
