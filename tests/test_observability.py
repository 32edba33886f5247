"""Request hygiene, security headers, structured logs and health checks, against the real app.

Everything goes through ``create_app`` with a real platform (SQLite, blob store, key service,
embedded TSA); the only additions are a few test-only routes (slow, failing) to reach the
deadline and error paths. The real-server tests (streamed bodies on a socket) are in
``test_observability_server.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from identity_kit import FAST, PASSWORD
from pactvault import __version__
from pactvault.api.app import create_app
from pactvault.api.deps import CSRF_HEADER, PUBLIC, SESSION_COOKIE
from pactvault.api.middleware.headers import CONTENT_SECURITY_POLICY
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.demo import sample_pdf
from pactvault.errors import InvalidInputError
from pactvault.identity.passwords import PasswordHasher
from pactvault.identity.people import NewAccount
from pactvault.notify import MemoryMailer
from pactvault.observability.health import Check, ReadinessProbe
from pactvault.observability.logs import JsonFormatter, redact
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent

SYSTEM = Actor(type="system", id="pytest")
REQUEST_LIMIT = 16 * 1024
UPLOAD_LIMIT = 1024 * 1024
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    settings = Settings(
        home=tmp_path / "data",
        max_upload_bytes=UPLOAD_LIMIT,
        max_request_bytes=REQUEST_LIMIT,
        readiness_timeout_seconds=1.0,
    )
    instance, _ = Platform.initialise(
        settings, mailer=MemoryMailer(), password_hasher=PasswordHasher(FAST)
    )
    instance.people.create_organisation(
        SYSTEM, "Acme", "owner@acme.test", NewAccount("Olive", PASSWORD)
    )
    try:
        yield instance
    finally:
        instance.close()


def app_for(platform: Platform) -> FastAPI:
    return create_app(platform, maintenance_interval=3600)


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(app_for(platform)) as c:
        yield c


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything logged under ``pactvault`` while the test runs, as the JSON lines we emit."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pactvault")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def log_lines(stream: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [line for line in log_lines(stream) if line["logger"] == "pactvault.access"]


def sign_in_events(platform: Platform) -> int:
    """Audit entries of sign-in attempts (background jobs write others meanwhile)."""
    with platform.db.read() as session:
        return session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("auth.%"))
        ).scalar_one()


def assert_problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/" + slug), body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def assert_security_headers(response, *, cache: str = "no-store") -> None:  # type: ignore[no-untyped-def]
    headers = response.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert directive in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "camera=()" in headers["permissions-policy"]
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cache-control"] == cache
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", headers["x-request-id"])
    assert len(headers.get_list("x-request-id")) == 1


def login(client: TestClient, **kwargs: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/auth/login", json={"email": "owner@acme.test", "password": PASSWORD}, **kwargs
    )


# -- security headers -----------------------------------------------------------------------------


def test_security_headers_on_success_error_and_refusal_responses(client: TestClient) -> None:
    responses = {
        "ok": client.get("/healthz"),
        "openapi": client.get("/openapi.json"),
        "not found": client.get("/no/such/page"),
        "unauthenticated": client.get("/api/v1/auth/me"),
        "method": client.put("/healthz"),
        "invalid": client.post("/api/v1/auth/login", json={"email": 1}),
        "unsupported type": client.post(
            "/api/v1/auth/login", content=b"{}", headers={"content-type": "text/plain"}
        ),
        "too large": client.post("/api/v1/auth/login", content=b"x" * (3 * 1024 * 1024)),
    }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "ok": 200,
        "openapi": 200,
        "not found": 404,
        "unauthenticated": 401,
        "method": 405,
        "invalid": 422,
        "unsupported type": 415,
        "too large": 413,
    }
    for name, response in responses.items():
        assert_security_headers(response), name
        assert "strict-transport-security" not in response.headers  # plain-HTTP public URL
    assert responses["method"].headers["allow"] == "GET"  # the exception's headers are kept


def test_a_response_that_sets_a_header_itself_keeps_its_value(platform: Platform) -> None:
    app = app_for(platform)

    def cacheable() -> JSONResponse:
        return JSONResponse({}, headers={"Cache-Control": "public, max-age=60"})

    app.add_api_route("/test/cacheable", cacheable, dependencies=[PUBLIC])
    with TestClient(app) as client:
        response = client.get("/test/cacheable")
    assert_security_headers(response, cache="public, max-age=60")
    assert len(response.headers.get_list("cache-control")) == 1


def test_hsts_only_when_the_public_url_is_https(platform: Platform) -> None:
    secure = Platform.open(replace(platform.settings, public_url="https://sign.example.test"))
    try:
        with TestClient(app_for(secure)) as https_client:
            response = https_client.get("/healthz")
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")
        assert_security_headers(response)
    finally:
        secure.close()


# -- request ids --------------------------------------------------------------------------------


def test_request_id_generated_echoed_when_safe_and_replaced_otherwise(client: TestClient) -> None:
    generated = client.get("/api/v1/auth/me")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    assert (
        assert_problem(generated, 401, "unauthenticated")["request_id"]
        == (generated.headers["x-request-id"])
    )
    assert client.get("/healthz").headers["x-request-id"] != generated.headers["x-request-id"]

    echoed = client.get("/api/v1/auth/me", headers={"X-Request-ID": "lb-7f3a.9_Z"})
    assert echoed.headers["x-request-id"] == "lb-7f3a.9_Z"
    assert echoed.json()["request_id"] == "lb-7f3a.9_Z"

    for unsafe in ("a b", "x" * 65, "<script>", "id;drop", ""):
        response = client.get("/api/v1/auth/me", headers={"X-Request-ID": unsafe})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), unsafe
        assert not unsafe or unsafe not in response.text


# -- strict content types -------------------------------------------------------------------------


def test_json_routes_refuse_other_content_types_and_change_nothing(
    client: TestClient, platform: Platform
) -> None:
    body = json.dumps({"email": "owner@acme.test", "password": PASSWORD}).encode()
    before = sign_in_events(platform)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        refused = client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": content_type}
        )
        detail = assert_problem(refused, 415, "unsupported-media-type")["detail"]
        assert "application/json" in detail
        assert "set-cookie" not in refused.headers
    no_type = client.post("/api/v1/auth/login", content=body)  # a body without a type
    assert_problem(no_type, 415, "unsupported-media-type")
    assert sign_in_events(platform) == before  # no sign-in was attempted, nothing was recorded

    for content_type in ("application/json", "Application/JSON; charset=utf-8"):
        accepted = client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": content_type}
        )
        assert accepted.status_code == 200, (content_type, accepted.text)
    # A structured +json type is JSON too; an empty body needs no type (validation answers).
    plus = client.post(
        "/api/v1/auth/login", content=body, headers={"content-type": "application/merge-patch+json"}
    )
    assert plus.status_code == 200
    assert client.post("/api/v1/auth/login").status_code == 422


def test_the_type_is_checked_before_the_caller_is(client: TestClient, platform: Platform) -> None:
    with platform.db.read() as session:
        denials = (
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "access.denied")
        )
        before = session.execute(denials).scalar_one()
    forged = {"Cookie": f"{SESSION_COOKIE}=pvsess_forged", CSRF_HEADER: "x"}
    response = client.post(
        "/api/v1/org/invitations",
        content=b"email=a",
        headers={**forged, "content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "unsupported-media-type")
    with platform.db.read() as session:
        assert session.execute(denials).scalar_one() == before  # refused before authentication


def test_uploads_and_raw_protocol_routes_keep_their_own_types(client: TestClient) -> None:
    pdf = sample_pdf()
    verified = client.post("/api/v1/verify", files={"file": ("c.pdf", pdf, "application/pdf")})
    assert verified.status_code == 200, verified.text
    assert_problem(client.post("/api/v1/verify", json={"file": "x"}), 415, "unsupported-media-type")
    # /tsa reads the raw body and checks its own type: we neither refuse nor re-type it.
    from asn1crypto import tsp

    query = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x22" * 32,
            },
            "cert_req": True,
        }
    ).dump()
    stamped = client.post(
        "/tsa", content=query, headers={"content-type": "application/timestamp-query"}
    )
    assert stamped.status_code == 200
    assert stamped.headers["content-type"] == "application/timestamp-reply"
    wrong = client.post("/tsa", content=query, headers={"content-type": "text/plain"})
    assert_problem(wrong, 422, "invalid-input")
    # The C2SP text/plain ledger routes answer as before.
    assert client.get("/ledger/key").headers["content-type"].startswith("text/plain")


# -- body size ----------------------------------------------------------------------------------


def test_request_bodies_over_the_limit_are_refused(client: TestClient, platform: Platform) -> None:
    before = sign_in_events(platform)
    padding = "x" * REQUEST_LIMIT
    big = {"email": "owner@acme.test", "password": PASSWORD, "padding": padding}
    declared = client.post("/api/v1/auth/login", json=big)
    assert_problem(declared, 413, "payload-too-large")
    assert str(REQUEST_LIMIT) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield json.dumps(big).encode()

    streamed = client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(streamed, 413, "payload-too-large")
    assert sign_in_events(platform) == before


def test_upload_routes_take_uploads_larger_than_the_request_limit(client: TestClient) -> None:
    pdf = sample_pdf()
    padded = pdf + b"\n%" + b"0" * (8 * REQUEST_LIMIT) + b"\n"
    response = client.post("/api/v1/verify", files={"file": ("c.pdf", padded, "application/pdf")})
    assert response.status_code != 413, response.text
    over = pdf + b"\n%" + b"0" * (UPLOAD_LIMIT + 1)
    too_big = client.post("/api/v1/verify", files={"file": ("c.pdf", over, "application/pdf")})
    assert_problem(too_big, 413, "payload-too-large")


# -- deadline and unexpected errors ---------------------------------------------------------------


def test_a_slow_request_gets_503_without_waiting_for_the_worker(platform: Platform) -> None:
    quick = Platform.open(replace(platform.settings, request_timeout_seconds=1.0))
    app = app_for(quick)
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_sync() -> dict[str, str]:
        entered.set()
        release.wait(30)  # blocks its worker thread until the test has seen the answer
        finished.set()
        return {"result": "LATE-RESULT"}

    async def slow_async() -> dict[str, str]:
        await asyncio.sleep(30)
        return {"result": "LATE-RESULT"}

    app.add_api_route("/test/slow-sync", slow_sync, dependencies=[PUBLIC])
    app.add_api_route("/test/slow-async", slow_async, dependencies=[PUBLIC])
    try:
        with TestClient(app) as client:
            for path in ("/test/slow-sync", "/test/slow-async"):
                began = time.monotonic()
                response = client.get(path, headers={"X-Request-ID": "slow-1"})
                elapsed = time.monotonic() - began
                assert_problem(response, 503, "timeout")
                assert_security_headers(response)
                assert "LATE-RESULT" not in response.text
                assert elapsed < 10, f"{path} answered after {elapsed:.2f}s"
                assert not finished.is_set()  # answered while the worker was still busy
            # Meaningful only if the endpoint was running (a request that times out before its
            # endpoint starts is cancelled and never runs it).
            assert entered.is_set(), "the endpoint did not start within the timeout"
            release.set()
            assert finished.wait(10)  # the worker thread runs to its end in the background
            assert client.get("/healthz").status_code == 200  # and the app serves on
    finally:
        release.set()
        quick.close()


def test_an_unexpected_error_answers_500_with_headers_and_no_internals(
    platform: Platform, logs: io.StringIO
) -> None:
    app = app_for(platform)
    leaked = "pva_" + "S3cr3tT0k3n" * 3

    def broken() -> None:
        raise RuntimeError(f"database password=hunter2 token {leaked}")

    app.add_api_route("/test/broken", broken, dependencies=[PUBLIC])
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test/broken", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500, "internal")
    assert_security_headers(response)
    assert "hunter2" not in response.text and leaked not in response.text
    assert body["request_id"] == "boom-1"
    lines = log_lines(logs)
    assert any(line.get("request_id") == "boom-1" and "exception" in line for line in lines)
    assert leaked not in logs.getvalue()  # the traceback is logged, the token in it is masked


# -- structured logs ----------------------------------------------------------------------------


def test_one_json_access_line_per_request_with_no_secrets(
    client: TestClient, platform: Platform, logs: io.StringIO
) -> None:
    signed_in = login(client)
    assert signed_in.status_code == 200
    cookie = client.cookies.get(SESSION_COOKIE)
    csrf = signed_in.json()["csrf_token"]
    assert cookie and csrf
    owner = platform.sessions.authenticate(cookie)
    api_token = platform.tokens.create_user_token(owner, "logs", ["member.read"]).token
    query_secret = "pvs_" + "Q" * 30

    client.get("/api/v1/auth/me", headers={"X-Request-ID": "me-1"})
    client.post(
        "/api/v1/org/invitations",
        json={"email": "new@acme.test", "role": "member"},
        headers={CSRF_HEADER: csrf},
    )
    client.cookies.clear()
    contract_id = "0" * 8 + "-1111-2222-3333-" + "4" * 12
    client.get(
        f"/api/v1/contracts/{contract_id}?token={query_secret}",
        headers={"Authorization": f"Bearer {api_token}"},
    )
    client.get(f"/ledger/leaves?start=0&end=1&secret={query_secret}")

    text = logs.getvalue()
    for secret in (PASSWORD, cookie, csrf, api_token, query_secret, contract_id):
        assert secret not in text, "a secret or raw path reached the log"
    lines = access_lines(logs)
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("POST", "/api/v1/auth/login", 200),
        ("GET", "/api/v1/auth/me", 200),
        ("POST", "/api/v1/org/invitations", 201),
        ("GET", "/api/v1/contracts/{contract_id}", 403),
        ("GET", "/ledger/leaves", lines[-1]["status"]),
    ]
    for line in lines:
        assert set(line) >= {
            "time",
            "level",
            "logger",
            "message",
            "request_id",
            "method",
            "route",
            "status",
            "duration_ms",
            "client_ip",
        }
        assert line["time"].endswith("Z") and line["duration_ms"] >= 0
        assert line["client_ip"] == "testclient"
    assert lines[1]["request_id"] == "me-1"
    assert len({line["request_id"] for line in lines}) == len(lines)


def test_unmatched_paths_are_not_logged_raw_and_principal_is_logged_when_known(
    platform: Platform, logs: io.StringIO
) -> None:
    app = app_for(platform)

    def whoami(request: Request) -> dict[str, str]:
        request.state.principal_id = "user-42"
        return {}

    app.add_api_route("/test/whoami", whoami, dependencies=[PUBLIC])
    with TestClient(app) as client:
        client.get("/test/whoami")
        client.get("/no/pvs_" + "Z" * 20 + "/here")
    known, unmatched = access_lines(logs)
    assert known["principal"] == "user-42" and known["route"] == "/test/whoami"
    assert unmatched["route"] is None and unmatched["status"] == 404
    assert "ZZZZZZZZ" not in logs.getvalue()


def test_log_lines_of_a_request_carry_its_id_even_from_worker_threads(
    client: TestClient, platform: Platform, logs: io.StringIO
) -> None:
    _break_blob_store(platform)
    response = client.get("/readyz", headers={"X-Request-ID": "ready-1"})
    assert response.status_code == 503
    warnings = [line for line in log_lines(logs) if line["logger"] == "pactvault.health"]
    assert warnings and all(line["request_id"] == "ready-1" for line in warnings)
    assert any("exception" in line for line in warnings)  # the details are logged, not answered


def test_redaction_and_one_line_per_record() -> None:
    message = (
        "login with pvsess_abcdefgh1234 and\n"
        "Authorization: Bearer abc.def-ghi secret whsec_aGVsbG8="
    )
    record = logging.LogRecord("pactvault.test", logging.INFO, __file__, 1, message, None, None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert "pvsess_abcdefgh1234" not in line and "abc.def-ghi" not in line
    assert "aGVsbG8" not in line
    assert parsed["message"].count("[redacted]") == 3
    assert redact("contract 123e4567 by pva") == "contract 123e4567 by pva"  # no false alarms


def test_configure_json_logging_writes_json_lines_to_stdout(tmp_path: Path) -> None:
    script = (
        "import logging\n"
        "from pactvault.observability.logs import configure_json_logging\n"
        "configure_json_logging()\n"
        "configure_json_logging()  # idempotent: still one handler\n"
        "log = logging.getLogger('pactvault.maintenance')\n"
        "log.info('expired %d contract(s)', 3)\n"
        "log.warning('token %s\\nsecond line', 'pvs_abcdefghijklmnop')\n"
        "logging.getLogger('pactvault.x').debug('not at info level')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["level"], line["logger"]) for line in lines] == [
        ("info", "pactvault.maintenance"),
        ("warning", "pactvault.maintenance"),
    ]
    assert lines[0]["message"] == "expired 3 contract(s)"
    assert "pvs_abcdefghijklmnop" not in result.stdout and result.stderr == ""


# -- liveness and readiness -----------------------------------------------------------------------


def _break_blob_store(platform: Platform) -> None:
    """Make the blob directory unusable for writes, even for root: a file where it should be."""
    shutil.rmtree(platform.settings.blob_dir)
    platform.settings.blob_dir.write_bytes(b"")


def test_readyz_checks_every_dependency(client: TestClient, platform: Platform) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert {name: c["status"] for name, c in body["checks"].items()} == {
        "database": "ok",
        "blob_store": "ok",
        "key_service": "ok",
        "tsa": "ok",
    }
    assert_security_headers(response)
    # The probe object is gone again, and nothing landed where the sweep or the auditor look.
    blobs = platform.blob_store
    assert list(blobs.keys("health/")) == [] and list(blobs.keys("org/")) == []
    assert client.get("/healthz").json() == {"status": "ok", "version": __version__}


def test_readyz_fails_when_the_blob_store_cannot_write(
    client: TestClient, platform: Platform, tmp_path: Path
) -> None:
    _break_blob_store(platform)
    response = client.get("/readyz")
    body = assert_problem(response, 503, "not-ready")
    assert body["failing"] == ["blob_store"]
    assert body["checks"]["blob_store"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"
    assert "blob_store" in body["detail"]
    for internal in ("Traceback", "NotADirectory", "Errno", str(tmp_path)):
        assert internal not in response.text
    assert client.get("/healthz").status_code == 200  # liveness does not depend on it


@pytest.fixture
def silent_tsa() -> Iterator[int]:
    """A loopback 'TSA' that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _with_external_tsa(platform: Platform, port: int, tmp_path: Path) -> Platform:
    trust = tmp_path / "tsa-root.pem"
    with platform.db.read() as session:
        trust.write_bytes(platform.ca.root_pem(session))
    settings = replace(
        platform.settings,
        tsa_url=f"http://127.0.0.1:{port}/tsa",
        tsa_trust=trust,
        readiness_timeout_seconds=0.5,
    )
    return Platform.open(settings)


def test_readyz_fails_within_the_timeout_when_the_tsa_hangs(
    platform: Platform, silent_tsa: int, tmp_path: Path
) -> None:
    broken = _with_external_tsa(platform, silent_tsa, tmp_path)
    try:
        with TestClient(app_for(broken)) as client:
            began = time.monotonic()
            response = client.get("/readyz")
            elapsed = time.monotonic() - began
        body = assert_problem(response, 503, "not-ready")
        assert body["failing"] == ["tsa"]
        assert body["checks"]["tsa"]["status"] == "timeout"
        assert elapsed < 3, f"readiness took {elapsed:.1f}s"
    finally:
        broken.close()


def test_readyz_fails_when_the_tsa_refuses_connections(platform: Platform, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    broken = _with_external_tsa(platform, closed_port, tmp_path)
    try:
        with TestClient(app_for(broken)) as client:
            response = client.get("/readyz")
        body = assert_problem(response, 503, "not-ready")
        assert body["failing"] == ["tsa"] and body["checks"]["tsa"]["status"] == "error"
        assert str(closed_port) not in response.text
    finally:
        broken.close()


def test_readiness_reuses_a_fresh_result_and_never_piles_up_hung_checks() -> None:
    now = [0.0]
    calls = {"fast": 0, "hung": 0}
    release = threading.Event()

    def fast() -> None:
        calls["fast"] += 1

    def hung() -> None:
        calls["hung"] += 1
        release.wait(10)

    probe = ReadinessProbe(
        [Check("fast", fast, 1.0), Check("hung", hung, 0.2)], reuse_for=1.0, clock=lambda: now[0]
    )
    try:
        first = probe.check()
        assert not first.ready and first.failing == ["hung"]
        assert probe.check() is first  # reused within the window: nothing ran again
        assert calls == {"fast": 1, "hung": 1}
        now[0] += 5
        second = probe.check()
        assert second.failing == ["hung"]
        assert calls == {"fast": 2, "hung": 1}  # the stuck check was not started a second time
        release.set()
        time.sleep(0.2)
        now[0] += 5
        assert probe.check().ready and calls == {"fast": 3, "hung": 2}
    finally:
        release.set()


def test_limits_and_timeouts_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PACTVAULT_MAX_REQUEST_BYTES": "2048",
            "PACTVAULT_REQUEST_TIMEOUT_SECONDS": "30",
            "PACTVAULT_READINESS_TIMEOUT_SECONDS": "2",
        }
    )
    assert settings.max_request_bytes == 2048
    assert settings.request_timeout_seconds == 30
    assert settings.readiness_timeout_seconds == 2
    defaults = Settings.from_env({})
    assert (defaults.max_request_bytes, defaults.request_timeout_seconds) == (1024 * 1024, 60)
    with pytest.raises(InvalidInputError):
        Settings.from_env({"PACTVAULT_REQUEST_TIMEOUT_SECONDS": "0"})
