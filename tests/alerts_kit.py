"""Shared building blocks for the alert API and CLI tests (no tests here): real damage that the
integrity auditor detects, and a real webhook receiver on loopback."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import select, text

from pactvault.audit.journal import Actor
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.platform import Platform
from pactvault.store.models import AuditEvent, DocumentRevision

SENDER = Actor(type="system", id="pytest")


def draft_contract(platform: Platform, org_id: str, title: str = "Lease") -> str:
    """A contract with its first (encrypted, ledger-recorded) revision: cheap, no signing."""
    return platform.contracts.create(
        SENDER,
        org_id,
        title=title,
        pdf=sample_pdf(),
        signers=[SignerSpec(name="Party", email="party@example.test")],
    ).id


def blob_path(platform: Platform, contract_id: str, version: int = 1) -> Path:
    with platform.db.read() as session:
        revision = session.execute(
            select(DocumentRevision).where(
                DocumentRevision.contract_id == contract_id, DocumentRevision.version == version
            )
        ).scalar_one()
    return platform.settings.blob_dir / revision.blob_key


def flip_a_byte(platform: Platform, contract_id: str, version: int = 1) -> None:
    """Damage the stored (encrypted) document the way a bad disk or an intruder would."""
    path = blob_path(platform, contract_id, version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def delete_audit_entry(platform: Platform, action: str) -> int:
    """Delete the first journal entry of ``action`` as someone with table-owner rights would
    (switching off the append-only triggers first); returns its ``seq``."""
    with platform.db.read() as session:
        seq = (
            session.execute(
                select(AuditEvent.seq).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
            .scalars()
            .first()
        )
    assert seq is not None, f"no {action} entry"
    with platform.db.engine.begin() as conn:
        if platform.db.is_sqlite:
            names = conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                {"t": "audit_events"},
            ).scalars()
            for name in list(names):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": seq})
    return int(seq)


def audit_events(platform: Platform, action: str) -> list[AuditEvent]:
    with platform.db.read() as session:
        return list(
            session.execute(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            ).scalars()
        )


class Receiver:
    """A real HTTP server on loopback that records what it receives and answers with the
    statuses it is given (then 204)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pactvault"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
