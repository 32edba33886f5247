"""Shared building blocks for the backup tests (no tests here).

``S3Server`` runs moto's standalone S3 server (``ThreadedMotoServer``) on a loopback port: a
stand-in for MinIO / AWS S3 that speaks the real S3 HTTP API to boto3, so the destination code
under test is exactly what talks to a production endpoint. ``Instance`` is what the tests
compare before and after a restore: every contract, signer, signature, document revision (and
its decrypted content's hash), audit entry and ledger leaf.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from flows import SENDER, invitation_tokens, make_org, sign_as
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.ledger.log import Ledger
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.blobs import StoredObject
from pactvault.store.models import AuditEvent, Contract, DocumentRevision, Signature, Signer

ACCESS_KEY = "pactvault-test"
SECRET_KEY = "pactvault-test-secret"  # moto accepts any credentials


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """moto's S3 server on loopback; each test gets its own bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self.port = _free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = "pv-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name

    def spec(self, bucket: str, prefix: str = "pactvault", *, optional: bool = False) -> str:
        head = "optional:" if optional else ""
        return f"{head}s3://{bucket}/{prefix}?endpoint={self.endpoint}&addressing=path"

    def stop(self) -> None:
        self._server.stop()


def running_s3() -> Iterator[S3Server]:
    """For a module-scoped fixture: one S3 server per test module."""
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


def s3_settings() -> dict[str, str]:
    return {"backup_s3_access_key_id": ACCESS_KEY, "backup_s3_secret_access_key": SECRET_KEY}


# -- building an instance worth backing up -------------------------------------------------


@dataclass
class Population:
    org_id: str
    completed: str
    partial: str
    draft: str
    #: The invitation token of the signer of ``partial`` who has not signed yet.
    pending_token: str


def populate(platform: Platform, mailer: MemoryMailer) -> Population:
    """Three contracts: one completed by two signers, one half signed, one draft."""
    org_id = make_org(platform)
    signers = [
        SignerSpec(name="张三 Zhang San", email="zhang@example.test", routing_order=1),
        SignerSpec(name="Bob Li", email="bob@example.test", routing_order=2),
    ]

    def sent(title: str) -> str:
        contract = platform.contracts.create(
            SENDER, org_id, title=title, pdf=sample_pdf(), signers=signers
        )
        platform.contracts.send(SENDER, org_id, contract.id)
        return contract.id

    completed = sent("租赁合同 Lease")
    for _ in range(2):  # routing order: the second invitation goes out after the first signs
        sign_as(platform, open_tokens(platform, mailer, completed)[0])
    partial = sent("服务协议 Services")
    sign_as(platform, open_tokens(platform, mailer, partial)[0])
    draft = platform.contracts.create(
        SENDER, org_id, title="Draft", pdf=sample_pdf(), signers=signers[:1]
    ).id
    return Population(org_id, completed, partial, draft, open_tokens(platform, mailer, partial)[0])


def open_tokens(platform: Platform, mailer: MemoryMailer, contract_id: str) -> list[str]:
    """Invitation tokens of the contract's signers who were invited and have not signed."""
    tokens = invitation_tokens(mailer, contract_id)
    with platform.db.read() as session:
        signers = session.execute(
            select(Signer)
            .where(Signer.contract_id == contract_id, Signer.signed_at.is_(None))
            .order_by(Signer.routing_order)
        ).scalars()
        return [tokens[s.id] for s in signers if s.id in tokens]


# -- what must survive -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    contracts: list[tuple[Any, ...]]
    signers: list[tuple[Any, ...]]
    signatures: list[tuple[Any, ...]]
    revisions: list[tuple[Any, ...]]
    documents: dict[tuple[str, int], str]
    audit: list[tuple[int, str]]
    ledger: list[bytes]
    ledger_root: bytes


def capture(platform: Platform) -> Instance:
    with platform.db.read() as session:
        contracts = [
            (c.id, c.org_id, c.title, c.status, c.current_version, c.completed_at)
            for c in session.execute(select(Contract).order_by(Contract.id)).scalars()
        ]
        signers = [
            (s.id, s.contract_id, s.status, s.signed_at, s.consent_document_sha256)
            for s in session.execute(select(Signer).order_by(Signer.id)).scalars()
        ]
        signatures = [
            (
                s.id,
                s.contract_id,
                s.signer_id,
                s.document_sha256_before,
                s.document_sha256_after,
                s.timestamp_token_sha256,
                s.certificate_serial,
                s.stepup_proof_sha256,
            )
            for s in session.execute(select(Signature).order_by(Signature.id)).scalars()
        ]
        rows = list(
            session.execute(
                select(DocumentRevision).order_by(
                    DocumentRevision.contract_id, DocumentRevision.version
                )
            ).scalars()
        )
        revisions = [
            (r.contract_id, r.version, r.kind, r.blob_key, r.plaintext_sha256, r.ciphertext_sha256)
            for r in rows
        ]
        documents = {}
        for r in rows:
            data = platform.blobs.read(
                session,
                org_id=r.org_id,
                object_id=r.contract_id,
                version=r.version,
                stored=StoredObject(
                    r.blob_key,
                    r.wrapped_key,
                    r.plaintext_size,
                    r.plaintext_sha256,
                    r.ciphertext_sha256,
                ),
            )
            documents[(r.contract_id, r.version)] = hashlib.sha256(data).hexdigest()
        audit = [
            (e.seq, e.entry_hash)
            for e in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
        ]
        ledger = Ledger(session)
        head = ledger.head()
        leaves = [leaf.data for leaf in ledger.leaves(0, head.size)]
    return Instance(
        contracts, signers, signatures, revisions, documents, audit, leaves, head.root_hash
    )


def recreate_postgres_database(url: str) -> None:
    """Drop the database (the disaster) and create an empty one under the same name."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{parsed.database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def blob_objects(root: Path) -> list[Path]:
    return sorted((root / "objects").rglob("*"), key=lambda p: p.name)
