"""Two real instances for witnessing tests: one runs the log, the other witnesses it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from pactvault.api.app import create_app
from pactvault.config import Settings
from pactvault.ledger import Checkpoint, EvidenceRecord, Ledger, parse_cosigner_key, sign_checkpoint
from pactvault.ledger.cosigning import CosigningService, WitnessEndpoint
from pactvault.ledger.note import Ed25519NoteSigner
from pactvault.platform import Platform

LOG_URL = "http://log.test"
WITNESS_URL = "http://witness.test"
ORIGIN = "log.test/pactvault/log"
WITNESS_NAME = "witness.test/pactvault/witness"
TLOG_SIZE = "text/x.tlog.size"


@dataclass
class Pair:
    tmp: Path
    log_settings: Settings
    log: Platform
    witness: Platform
    http: TestClient  # the witness's API, in process

    @property
    def vkey(self) -> str:
        return self.log.ledger.verifier_key()

    @property
    def wkey(self) -> str:
        return self.witness.witness.verifier_key()

    def reopen_log(self, witnesses: tuple[str, ...], quorum: int | None = None) -> Platform:
        """Restart the log instance with witnesses configured (as after editing its env)."""
        self.log.close()
        settings = Settings(
            home=self.log_settings.home,
            database_url=self.log_settings.database_url,
            public_url=LOG_URL,
            ledger_witnesses=witnesses,
            ledger_witness_quorum=quorum,
        )
        self.log = Platform.open(settings)
        return self.log

    def in_process_witness(self, quorum: int | None = None) -> CosigningService:
        """The log's cosigning service, talking to the witness through the in-process client."""
        endpoint = WitnessEndpoint(parse_cosigner_key(self.wkey), WITNESS_URL + "/api/v1/witness")
        return CosigningService(
            self.log.db,
            self.log.ledger,
            [endpoint],
            quorum=quorum,
            client=self.http,
            alerts=self.log.alerts,
        )

    def close(self) -> None:
        self.log.close()
        self.witness.close()


def make_pair(tmp: Path, log_db: str, witness_db: str) -> Pair:
    log_settings = Settings(home=tmp / "log", database_url=log_db, public_url=LOG_URL)
    log, _ = Platform.initialise(log_settings)
    witness, _ = Platform.initialise(
        Settings(
            home=tmp / "witness",
            database_url=witness_db,
            public_url=WITNESS_URL,
            witness_logs=(log.ledger.verifier_key(),),
        )
    )
    return Pair(tmp, log_settings, log, witness, TestClient(create_app(witness)))


def append(platform: Platform, count: int, contract_id: str | None = None) -> None:
    with platform.db.write() as session:
        ledger = Ledger(session)
        start = ledger.head().size
        ledger.append_batch(
            [
                EvidenceRecord(
                    "contract.void", contract_id=contract_id or str(uuid.UUID(int=start + i))
                )
                for i in range(count)
            ]
        )


def log_signer(platform: Platform) -> Ed25519NoteSigner:
    return platform.ledger._log_signer()  # what only the log (or someone with its key) holds


def signed(platform: Platform, size: int, root: bytes | None = None) -> tuple[Checkpoint, str]:
    """A checkpoint of the log's tree at ``size`` (or with a forged ``root``), signed by the log."""
    with platform.db.read() as session:
        real = Ledger(session).root(size)
    checkpoint = Checkpoint(ORIGIN, size, root if root is not None else real)
    return checkpoint, sign_checkpoint(checkpoint, log_signer(platform))


def proof(platform: Platform, old: int, new: int) -> tuple[bytes, ...]:
    with platform.db.read() as session:
        return Ledger(session).consistency_proof(old, new).hashes


def post(http: TestClient | httpx.Client, body: bytes) -> httpx.Response:
    return http.post("/api/v1/witness/add-checkpoint", content=body)
