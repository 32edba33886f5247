"""``kill -9`` of a real platform process in the middle of signing, then a restart.

The server is ``pactvault run`` in a subprocess on a loopback port, driven over HTTP like a
signer's browser would. To kill it at the worst moment every time — the signed revision's blob
is on disk, the unit of work that records it (signature row, audit entry, ledger leaf) is not
committed — the subprocess is started through a tiny wrapper that pauses right after that blob
is written and touches a marker file; the test then sends SIGKILL. Nothing else is changed in
the process.

After the crash: the contract is exactly as before the attempt (no signature row, no new
revision, signer not signed), the audit chain and the ledger are intact, and once the blob is
older than the sweep's grace period a restart removes it (``store/sweep.py``), leaving no blob
that no row refers to. Then the signer signs successfully on the restarted server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from flows import sent_contract
from pactvault.audit.journal import verify_chain
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec
from pactvault.demo import signing_code
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import Contract, DocumentRevision, Signature, Signer
from pactvault.store.realname_models import VerificationEvidence

PUBLIC_URL = "http://127.0.0.1:8000"  # names the instance (ledger origin, certificates)
SIGNER = SignerSpec(name="Crash Test", email="crash@example.test")

WRAPPER = """
import os, sys, time, pathlib
from pactvault.store import blobs

marker = pathlib.Path(os.environ["PV_TEST_PAUSE_MARKER"])
original = blobs.FilesystemBlobStore.put

def put(self, key, chunks):
    written = original(self, key, chunks)
    if "/doc/" in key and not marker.exists():
        marker.write_text(key)   # the signed revision is on disk; its transaction is open
        time.sleep(600)          # the test kills the process here
    return written

blobs.FilesystemBlobStore.put = put
from pactvault.cli import main
sys.argv = ["pactvault", "run"]
main()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, home: Path, script: Path, marker: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PACTVAULT_HOME": str(home),
            "PACTVAULT_PORT": str(self.port),
            "PACTVAULT_PUBLIC_URL": PUBLIC_URL,
            "PV_TEST_PAUSE_MARKER": str(marker),
        }
        env.pop("PACTVAULT_DATABASE_URL", None)
        env.pop("PACTVAULT_PASSPHRASE", None)
        self.log = (home.parent / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(script)], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self._tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"the server did not start: {self._tail()}")

    def _tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def _state(settings: Settings, contract_id: str) -> dict[str, object]:
    platform = Platform.open(settings, mailer=MemoryMailer())
    try:
        with platform.db.read() as session:
            contract = session.get(Contract, contract_id)
            assert contract is not None
            referenced = set(session.execute(select(DocumentRevision.blob_key)).scalars())
            referenced |= set(session.execute(select(VerificationEvidence.blob_key)).scalars())
            chain = verify_chain(session)
            return {
                "status": contract.status,
                "version": contract.current_version,
                "revisions": len(
                    session.execute(
                        select(DocumentRevision.id).where(
                            DocumentRevision.contract_id == contract_id
                        )
                    ).all()
                ),
                "signatures": len(session.execute(select(Signature.id)).all()),
                "signed": [
                    s.signed_at is not None for s in session.execute(select(Signer)).scalars()
                ],
                "referenced": referenced,
                "stored": set(platform.blob_store.keys("org/")),
                "chain_ok": chain.ok,
                "audit_entries": chain.entries,
                "integrity_ok": platform.integrity.run().ok,
            }
    finally:
        platform.close()


def _prepare_to_sign(server: Server, token: str, outbox: Path) -> dict[str, str]:
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        view = http.get("/api/v1/signer/contract", headers=auth)
        assert view.status_code == 200, view.text
        challenge = http.post("/api/v1/signer/stepup", headers=auth, json={"method": "email"})
        assert challenge.status_code == 201, challenge.text
        challenge_id = challenge.json()["challenge_id"]
        code = signing_code(outbox, SIGNER.email)
        confirmed = http.post(
            f"/api/v1/signer/stepup/{challenge_id}", headers=auth, json={"code": code}
        )
        assert confirmed.is_success, confirmed.text
    return {
        "document_sha256": view.json()["document_sha256"],
        "consent": True,  # type: ignore[dict-item]
        "stepup_challenge_id": challenge_id,
    }


def test_kill_9_while_signing_leaves_no_half_signed_contract_and_no_orphan(
    tmp_path: Path,
) -> None:
    home = tmp_path / "data"
    settings = Settings(home=home, public_url=PUBLIC_URL)
    mailer = MemoryMailer()
    platform, _ = Platform.initialise(settings, mailer=mailer)
    _org, contract_id, tokens = sent_contract(platform, mailer, [SIGNER])
    platform.close()
    (token,) = tokens.values()
    before = _state(settings, contract_id)
    script = tmp_path / "serve.py"
    script.write_text(WRAPPER)
    marker = tmp_path / "paused"

    server = Server(home, script, marker)
    try:
        body = _prepare_to_sign(server, token, settings.outbox_dir)
        outcome: dict[str, object] = {}

        def sign() -> None:
            try:
                outcome["response"] = httpx.post(
                    f"{server.url}/api/v1/signer/sign",
                    headers={"Authorization": f"Bearer {token}"},
                    json=body,
                    timeout=120,
                )
            except httpx.HTTPError as exc:  # the server dies under the request
                outcome["error"] = exc

        signer = threading.Thread(target=sign, daemon=True)
        signer.start()
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline, "signing never reached the blob write"
            time.sleep(0.05)
        server.kill()  # kill -9, with the signed revision written and not committed
        signer.join(timeout=30)
        assert "error" in outcome  # the signer got no answer: nothing claims it was signed
    finally:
        server.kill()

    orphan = marker.read_text()
    after_crash = _state(settings, contract_id)
    assert orphan in after_crash["stored"] and orphan not in after_crash["referenced"]
    for field in ("status", "version", "revisions", "signatures", "signed", "referenced"):
        assert after_crash[field] == before[field], field
    assert after_crash["chain_ok"] and after_crash["integrity_ok"]

    # A restart once the orphan is older than the sweep's grace period removes it.
    old = time.time() - 2 * 3600
    os.utime(home / "blobs" / orphan, (old, old))
    server = Server(home, script, marker)
    try:
        swept = _state(settings, contract_id)
        assert swept["stored"] == swept["referenced"]  # no blob without a row
        assert swept["chain_ok"] and swept["integrity_ok"]
        # The signer signs again, for real this time.
        body = _prepare_to_sign(server, token, settings.outbox_dir)
        signed = httpx.post(
            f"{server.url}/api/v1/signer/sign",
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            timeout=120,
        )
        assert signed.is_success, signed.text
    finally:
        server.stop()
    final = _state(settings, contract_id)
    assert final["status"] == "completed" and final["signatures"] == 1
    assert final["stored"] == final["referenced"]
    assert final["chain_ok"] and final["integrity_ok"]
    assert final["audit_entries"] > after_crash["audit_entries"]
