"""schemathesis against ``/openapi.json`` of a real server: no server errors, nothing off-schema.

The schemathesis command runs every operation of the document against uvicorn on loopback,
as an organisation administrator and without credentials, through its phases: the documented
examples, *coverage* (boundary and wrong-type values for every parameter: huge integers, numbers
where a time is expected, missing fields, other methods) and *fuzzing* (Hypothesis). Seeded and
deterministic, so CI is repeatable. Every answer is checked: not a server error, a documented
status code and content type, a body and headers matching the schema (``api/openapi.py``
documents our problem+json errors on every operation), ``Allow`` on 405, invalid input refused.

One check is left out on purpose: ``positive_data_acceptance`` (every schema-valid request must
be accepted). Our routes validate beyond what a JSON schema can say — a PDF must be a PDF, an
email an address, a state transition legal, a code correct — and refuse the rest with a
documented 4xx problem; refusing is right, crashing or answering outside the document is not.

Rate limits are off for this server (``monitor_enabled=False``): otherwise most generated
requests would be answered ``429`` and the run would test the limiter instead of the API (the
limiter has its own tests in ``test_monitor_ratelimit.py``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from pactvault.api.app import create_app
from pactvault.config import Settings
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SEED = "20261122"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Platform]]:
    home = tmp_path_factory.mktemp("schemathesis")
    settings = Settings(home=home / "data", max_upload_bytes=5 * 1024 * 1024, monitor_enabled=False)
    platform, _ = Platform.initialise(settings, mailer=MemoryMailer())
    port = _free_port()
    app = create_app(platform, maintenance_interval=3600)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not runner.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield base, platform
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
        platform.close()


@pytest.fixture(scope="module")
def admin_token(server: tuple[str, Platform]) -> str:
    """The first administrator's API token (setup happens once per instance)."""
    base, platform = server
    setup = platform.tokens.create_setup_token()
    response = httpx.post(
        f"{base}/api/v1/setup", json={"setup_token": setup, "organisation_name": "Fuzz Ltd"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def _schemathesis(
    base: str, workdir: Path, *extra: str, examples: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{base}/openapi.json",
            "--phases=examples,coverage,fuzzing",
            "--exclude-checks=positive_data_acceptance",
            f"--max-examples={examples}",
            f"--seed={SEED}",
            "--generation-deterministic",
            "--no-color",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,  # it keeps a .schemathesis/ folder where it runs
        timeout=600,
        check=False,
    )


def _verdict(run: subprocess.CompletedProcess[str]) -> str:
    return f"schemathesis exit {run.returncode}\n{run.stdout[-12000:]}\n{run.stderr[-2000:]}"


def test_the_documented_api_holds_for_an_administrator(
    server: tuple[str, Platform], admin_token: str, tmp_path: Path
) -> None:
    base, _ = server
    header = f"--header=Authorization: Bearer {admin_token}"
    run = _schemathesis(base, tmp_path, header, examples=10)
    assert run.returncode == 0, _verdict(run)
    assert "Tested: 1" in run.stdout  # it did test operations (a 3-digit count follows)


def test_the_documented_api_holds_without_credentials(
    server: tuple[str, Platform], tmp_path: Path
) -> None:
    base, _ = server
    run = _schemathesis(base, tmp_path, examples=3)
    assert run.returncode == 0, _verdict(run)


def test_errors_are_documented_as_problems_everywhere(server: tuple[str, Platform]) -> None:
    base, platform = server
    spec = TestClient(create_app(platform, maintenance_interval=3600)).get("/openapi.json").json()
    assert spec == httpx.get(f"{base}/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for code in ("4XX", "503"):
                content = responses[code]["content"]
                assert list(content) == ["application/problem+json"], (method, path, code)
            if "422" in responses:
                assert "application/problem+json" in responses["422"]["content"], (method, path)


def test_a_wrong_method_names_every_allowed_one(server: tuple[str, Platform]) -> None:
    base, _ = server
    response = httpx.request("PUT", f"{base}/api/v1/contracts")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-05-01T12:00:00", "yesterday"])
def test_a_time_filter_must_be_iso_8601_with_a_zone(
    server: tuple[str, Platform], admin_token: str, value: str
) -> None:
    base, _ = server
    response = httpx.get(
        f"{base}/api/v1/org/alerts",
        params={"since": value},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 422, response.text
