"""``pactvault demo``: a two-party contract driven through the public HTTP API.

It starts the real server on a loopback port, creates a contract as a sender would, reads the two
invitations from the development outbox (as the signers would read their email), signs as each
signer, and writes the signed PDF and our CA root for checking with outside tools.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from pactvault.audit.journal import Actor
from pactvault.platform import Platform

SAMPLE_LINES = [
    "SERVICE AGREEMENT (SAMPLE)",
    "",
    "This agreement is made between Alice Example Ltd (the Client)",
    "and Bob Example Co (the Provider).",
    "",
    "1. The Provider will deliver the services described in Annex A.",
    "2. The Client will pay the agreed fees within 30 days of invoice.",
    "3. This agreement is governed by the laws of the People's Republic of China.",
    "",
    "Signed electronically with pactvault: PAdES signatures, RFC 3161 timestamps.",
]


def sample_pdf(lines: list[str] = SAMPLE_LINES) -> bytes:
    """A small, valid one-page A4 PDF with the given Latin-1 text (built-in demo contract)."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = ["BT /F1 12 Tf 16 TL 72 770 Td"]
    for i, line in enumerate(lines):
        size = 16 if i == 0 else 12
        content.append(f"/F1 {size} Tf ({esc(line)}) Tj T*")
    content.append("ET")
    stream = "\n".join(content).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@contextmanager
def serve_in_background(platform: Platform, port: int = 0) -> Iterator[str]:
    """Run the real API server on a loopback port (ephemeral by default); yields its URL."""
    from pactvault.api.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(platform), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class DemoResult:
    contract_id: str
    signed_pdf: Path
    ca_root: Path
    verification: dict  # type: ignore[type-arg]


def invitation_tokens(outbox: Path, contract_id: str) -> dict[str, str]:
    """Signer id → signing token, read from the development outbox like a mail client would."""
    tokens: dict[str, str] = {}
    for path in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes())
        if message.get("X-Pactvault-Contract") == contract_id and message.get(
            "X-Pactvault-Signing-Token"
        ):
            tokens[message["X-Pactvault-Signer"]] = message["X-Pactvault-Signing-Token"]
    return tokens


def signing_code(outbox: Path, address: str) -> str:
    """The code in the newest signing-code message to ``address`` in the development outbox."""
    newest: tuple[int, str] | None = None
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] != address or "signing code" not in str(message["Subject"]):
            continue
        body = message.get_body(preferencelist=("plain",))
        found = re.search(r" is (\d{6,8})\.", body.get_content() if body else "")
        stamp = path.stat().st_mtime_ns
        if found and (newest is None or stamp > newest[0]):
            newest = (stamp, found.group(1))
    if newest is None:
        raise RuntimeError(f"no signing code for {address} in the outbox")
    return newest[1]


def run_demo(
    platform: Platform,
    out_dir: Path,
    pdf: bytes | None = None,
    progress: Callable[[str], None] = print,
) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    issued = platform.tokens.operator_token(
        "Demo organisation 演示机构", Actor(type="operator-cli", id="pactvault demo")
    )
    document = pdf if pdf is not None else sample_pdf()
    with serve_in_background(platform) as base, httpx.Client(base_url=base, timeout=60) as http:
        sender = {"Authorization": f"Bearer {issued.token}"}
        metadata = {
            "title": "服务协议 Service Agreement (demo)",
            "message": "请审阅并签署 / Please review and sign.",
            "signers": [
                {
                    "name": "张三 Zhang San",
                    "email": "zhang.san@example.com",
                    "organisation": "Alice Example Ltd",
                    "routing_order": 1,
                },
                {
                    "name": "Bob Li 李博",
                    "email": "bob.li@example.com",
                    "organisation": "Bob Example Co",
                    "routing_order": 2,
                },
            ],
            "send": True,
        }
        response = http.post(
            "/api/v1/contracts",
            headers=sender,
            files={"file": ("contract.pdf", document, "application/pdf")},
            data={"metadata": json.dumps(metadata, ensure_ascii=False)},
        )
        _check(response)
        contract = response.json()
        progress(f"created and sent contract {contract['id']}")
        for signer in contract["signers"]:
            token = invitation_tokens(platform.settings.outbox_dir, contract["id"]).get(
                signer["id"]
            )
            if token is None:
                raise RuntimeError(f"no invitation in the outbox for {signer['name']}")
            auth = {"Authorization": f"Bearer {token}"}
            view = _check(http.get("/api/v1/signer/contract", headers=auth)).json()
            document_bytes = _check(http.get("/api/v1/signer/document", headers=auth)).content
            progress(f"{signer['name']} read {len(document_bytes)} bytes; confirming by email code")
            challenge = _check(
                http.post("/api/v1/signer/stepup", headers=auth, json={"method": "email"})
            ).json()
            code = signing_code(platform.settings.outbox_dir, signer["email"])
            _check(
                http.post(
                    f"/api/v1/signer/stepup/{challenge['challenge_id']}",
                    headers=auth,
                    json={"code": code},
                )
            )
            _check(
                http.post(
                    "/api/v1/signer/sign",
                    headers=auth,
                    json={
                        "document_sha256": view["document_sha256"],
                        "consent": True,
                        "stepup_challenge_id": challenge["challenge_id"],
                    },
                )
            )
        final = _check(http.get(f"/api/v1/contracts/{contract['id']}", headers=sender)).json()
        if final["status"] != "completed":
            raise RuntimeError(f"the contract ended {final['status']}, not completed")
        signed = _check(
            http.get(f"/api/v1/contracts/{contract['id']}/document", headers=sender)
        ).content
        root = _check(http.get("/pki/root.pem")).content
        verification = _check(
            http.post("/api/v1/verify", files={"file": ("signed.pdf", signed, "application/pdf")})
        ).json()
    signed_path = out_dir / "signed.pdf"
    root_path = out_dir / "ca-root.pem"
    signed_path.write_bytes(signed)
    root_path.write_bytes(root)
    return DemoResult(contract["id"], signed_path, root_path, verification)


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} failed: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response
