"""The REST API: authentication, problem+json errors, the signing flow over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from flows import last_code
from pactvault.api.app import create_app
from pactvault.demo import sample_pdf
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

PDF = sample_pdf()
META = {
    "title": "采购合同 Purchase",
    "signers": [
        {"name": "王五", "email": "wang@example.com", "routing_order": 1},
        {"name": "Eve", "email": "eve@example.com", "routing_order": 2},
    ],
}


@pytest.fixture
def client(sqlite_platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_platform), base_url="http://testserver") as http:
        yield http


@pytest.fixture
def admin(client: TestClient, sqlite_platform: Platform) -> dict[str, str]:
    setup = sqlite_platform.tokens.create_setup_token()
    assert setup is not None and setup.startswith("pvsetup_")
    response = client.post(
        "/api/v1/setup", json={"setup_token": setup, "organisation_name": "Example Ltd"}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def create(client: TestClient, headers: dict[str, str], meta: dict | None = None, pdf: bytes = PDF):  # type: ignore[no-untyped-def,type-arg]
    return client.post(
        "/api/v1/contracts",
        headers=headers,
        files={"file": ("c.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps(meta or META)},
    )


def signing_tokens(mailer: MemoryMailer, contract_id: str) -> dict[str, str]:
    return {
        dict(m.tags)["Signer"]: dict(m.tags)["Signing-Token"]
        for m in mailer.messages
        if dict(m.tags).get("Contract") == contract_id and "Signing-Token" in dict(m.tags)
    }


def assert_problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_setup_token_is_single_use_and_no_default_credentials(
    client: TestClient, sqlite_platform: Platform
) -> None:
    setup = sqlite_platform.tokens.create_setup_token()
    assert_problem(
        client.post(
            "/api/v1/setup", json={"setup_token": "pvsetup_wrong", "organisation_name": "X"}
        ),
        401,
        "unauthenticated",
    )
    first = client.post("/api/v1/setup", json={"setup_token": setup, "organisation_name": "X"})
    assert first.status_code == 201
    again = client.post("/api/v1/setup", json={"setup_token": setup, "organisation_name": "Y"})
    assert_problem(again, 401, "unauthenticated")
    assert sqlite_platform.tokens.create_setup_token() is None, "set-up happens once"


def test_requests_without_a_valid_token_are_refused(client: TestClient, admin: dict) -> None:  # type: ignore[type-arg]
    for headers in ({}, {"Authorization": "Bearer pva_forged"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/contracts", headers=headers)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"


def test_full_signing_flow_over_http(
    client: TestClient,
    admin: dict,
    mailer: MemoryMailer,
    sqlite_platform: Platform,  # type: ignore[type-arg]
) -> None:
    response = create(client, admin)
    assert response.status_code == 201, response.text
    contract = response.json()
    assert contract["status"] == "draft"
    assert "token" not in json.dumps(contract).lower().replace("signing", "")
    sent = client.post(f"/api/v1/contracts/{contract['id']}/send", headers=admin)
    assert sent.json()["status"] == "sent"
    assert "pvs_" not in sent.text, "the sender never sees signing tokens"

    for signer in contract["signers"]:
        token = signing_tokens(mailer, contract["id"])[signer["id"]]
        auth = {"Authorization": f"Bearer {token}"}
        view = client.get("/api/v1/signer/contract", headers=auth).json()
        document = client.get("/api/v1/signer/document", headers=auth)
        assert document.headers["content-type"] == "application/pdf"
        assert document.headers["x-content-type-options"] == "nosniff"
        assert "attachment" in document.headers["content-disposition"]
        import hashlib

        assert hashlib.sha256(document.content).hexdigest() == view["document_sha256"]
        unverified = client.post(
            "/api/v1/signer/sign",
            headers=auth,
            json={
                "document_sha256": view["document_sha256"],
                "consent": True,
                "stepup_challenge_id": "00000000-0000-4000-8000-000000000000",
            },
        )
        assert_problem(unverified, 409, "conflict")
        challenge = client.post("/api/v1/signer/stepup", headers=auth, json={"method": "email"})
        assert challenge.status_code == 201, challenge.text
        assert challenge.json()["document_sha256"] == view["document_sha256"]
        assert "@" in challenge.json()["destination"] and signer["email"] not in challenge.text
        verified = client.post(
            f"/api/v1/signer/stepup/{challenge.json()['challenge_id']}",
            headers=auth,
            json={"code": last_code(mailer)},
        )
        assert verified.status_code == 200, verified.text
        body = {
            "document_sha256": view["document_sha256"],
            "consent": True,
            "stepup_challenge_id": challenge.json()["challenge_id"],
        }
        signed = client.post("/api/v1/signer/sign", headers=auth, json=body)
        assert signed.status_code == 200, signed.text
        assert signed.json()["stepup_proof_sha256"] == verified.json()["proof_sha256"]
        again = client.post("/api/v1/signer/sign", headers=auth, json=body)
        assert_problem(again, 409, "conflict")

    final = client.get(f"/api/v1/contracts/{contract['id']}", headers=admin).json()
    assert final["status"] == "completed"
    pdf = client.get(f"/api/v1/contracts/{contract['id']}/document", headers=admin).content
    verdict = client.post("/api/v1/verify", files={"file": ("s.pdf", pdf, "application/pdf")})
    assert verdict.status_code == 200
    assert verdict.json()["valid"] is True
    assert len(verdict.json()["signatures"]) == 3  # two parties + completion seal

    audit = client.get(f"/api/v1/contracts/{contract['id']}/audit", headers=admin).json()
    assert [e["action"] for e in audit].count("contract.sign") == 2
    assert all(len(e["entry_hash"]) == 64 for e in audit)


def test_bad_input_gets_problem_json(client: TestClient, admin: dict) -> None:  # type: ignore[type-arg]
    assert_problem(create(client, admin, pdf=b"not a pdf"), 422, "pdf-rejected")
    assert_problem(create(client, admin, pdf=b""), 422, "pdf-rejected")
    bad_meta = client.post(
        "/api/v1/contracts",
        headers=admin,
        files={"file": ("c.pdf", PDF, "application/pdf")},
        data={"metadata": "{not json"},
    )
    assert_problem(bad_meta, 422, "invalid-input")
    wrong_type = {
        **META,
        "signers": [{"name": "A", "email": "a@example.com", "routing_order": "x"}],
    }
    assert_problem(create(client, admin, meta=wrong_type), 422, "invalid-input")
    assert_problem(client.get("/api/v1/contracts/does-not-exist", headers=admin), 404, "not-found")
    assert_problem(
        client.get("/api/v1/contracts?limit=100000", headers=admin), 422, "invalid-input"
    )
    draft = create(client, admin).json()
    assert_problem(
        client.post(f"/api/v1/contracts/{draft['id']}/void", headers=admin, json={}),
        422,
        "invalid-input",
    )
    client.post(f"/api/v1/contracts/{draft['id']}/void", headers=admin, json={"reason": "test"})
    assert_problem(
        client.post(f"/api/v1/contracts/{draft['id']}/send", headers=admin),
        409,
        "illegal-state-transition",
    )
    assert_problem(
        client.get("/api/v1/signer/contract", headers={"Authorization": "Bearer pvs_unknown"}),
        404,
        "not-found",
    )


def test_oversized_upload_is_refused_before_reading(client: TestClient, admin: dict) -> None:  # type: ignore[type-arg]
    huge = b"%PDF-1.7\n" + b"0" * (7 * 1024 * 1024)
    assert_problem(create(client, admin, pdf=huge), 413, "payload-too-large")


def test_other_tenants_ids_answer_as_not_found(
    client: TestClient,
    admin: dict,
    sqlite_platform: Platform,  # type: ignore[type-arg]
) -> None:
    from pactvault.audit.journal import Actor

    other = sqlite_platform.tokens.operator_token("Other Co", Actor(type="test"))
    other_headers = {"Authorization": f"Bearer {other.token}"}
    theirs = create(client, other_headers).json()
    for method, path in (
        ("get", f"/api/v1/contracts/{theirs['id']}"),
        ("get", f"/api/v1/contracts/{theirs['id']}/document"),
        ("get", f"/api/v1/contracts/{theirs['id']}/audit"),
        ("post", f"/api/v1/contracts/{theirs['id']}/send"),
    ):
        mine = getattr(client, method)(path, headers=admin)
        missing = getattr(client, method)(path.replace(theirs["id"], "0" * 36), headers=admin)
        assert_problem(mine, 404, "not-found")
        assert mine.json()["detail"] == missing.json()["detail"]


def test_security_headers_openapi_and_docs(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/v1/contracts", "/api/v1/signer/sign", "/api/v1/verify", "/tsa"):
        assert path in paths
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/v1/contracts" in docs.text
    assert "<script" not in docs.text


def test_trust_endpoints(client: TestClient, sqlite_platform: Platform) -> None:
    from asn1crypto import tsp
    from cryptography import x509

    root = x509.load_pem_x509_certificate(client.get("/pki/root.pem").content)
    assert root.subject == root.issuer
    crl = x509.load_der_x509_crl(client.get("/pki/issuing.crl").content)
    issuing = x509.load_der_x509_certificate(client.get("/pki/issuing.crt").content)
    assert crl.is_signature_valid(issuing.public_key())
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x11" * 32,
            },
            "nonce": 12345,
            "cert_req": True,
        }
    )
    answer = client.post(
        "/tsa", content=request.dump(), headers={"Content-Type": "application/timestamp-query"}
    )
    assert answer.headers["content-type"] == "application/timestamp-reply"
    reply = tsp.TimeStampResp.load(answer.content)
    assert reply["status"]["status"].native == "granted"
    assert_problem(
        client.post("/tsa", content=b"x", headers={"Content-Type": "text/plain"}),
        422,
        "invalid-input",
    )


def test_background_maintenance_expires_overdue_contracts(
    sqlite_platform: Platform,
    admin: dict,  # type: ignore[type-arg]
) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    from pactvault.store.models import Contract

    with TestClient(create_app(sqlite_platform, maintenance_interval=0.2)) as http:
        meta = {
            **META,
            "send": True,
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
        contract = create(http, admin, meta=meta).json()
        assert contract["status"] == "sent"
        with sqlite_platform.db.write() as session:
            session.get(Contract, contract["id"]).expires_at = datetime.now(UTC) - timedelta(
                seconds=1
            )
        deadline = time.monotonic() + 10
        status = "sent"
        while time.monotonic() < deadline and status != "expired":
            time.sleep(0.2)
            status = http.get(f"/api/v1/contracts/{contract['id']}", headers=admin).json()["status"]
    assert status == "expired"
