"""Backups: throughput of backup, verification and restore, and RTO, for 10,000 contracts.

``.venv/bin/python bench/backup.py [--contracts 10000] [--signed 100] [--s3]`` builds an
embedded (SQLite) instance in a temporary directory and prints:

* **build** (not a result, for context) — ``--contracts`` contracts created through
  ``ContractService.create`` (each: PDF checked, encrypted blob, audit entry, ledger leaf), of
  which ``--signed`` are sent and signed by their signer (step-up code, PAdES B-T signature,
  timestamp): signing every contract would measure signing, not backups.
* **full backup** — the first ``BackupService.run()`` to every destination: snapshot (SQLite
  online backup API), encryption of the snapshot, copy of every blob, confirmation of every
  object (directories re-read and re-hash what they wrote), manifest signature. Throughput is
  bytes of the backup per second of wall time.
* **incremental backup** — after 1 % more contracts: only new blobs travel.
* **verify** — ``verify()``: every object at every destination re-read and re-hashed.
* **restore** — into a new data directory from the directory destination: fetch and hash every
  object, decrypt and install the database, write every blob, compare the database with the
  manifest (**data RTO**); then open the platform and run every post-restore check: integrity
  auditor (every revision decrypted and re-hashed), audit journal head, ledger proofs, and every
  signature of every signed contract validated (**verified RTO**, the figure a drill reports).

With ``--s3`` a second destination is moto's local S3 server (``moto[server]``, a stand-in for
MinIO/S3 speaking the real HTTP API on loopback), so the backup figures include it.

Say which interpreter ran it when quoting figures (printed first): the image's default
``python3`` runs pure-Python code about 2× slower than Debian's ``/usr/bin/python3.11``.
"""

from __future__ import annotations

import argparse
import platform as host
import re
import shutil
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from pactvault.audit.journal import Actor
from pactvault.backup.destinations import parse_destinations
from pactvault.backup.restore import restore
from pactvault.backup.rootkey import CeremonyKeyStore, install_root_key
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec, SignInput
from pactvault.demo import sample_pdf
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import Organisation

SENDER = Actor(type="api-token", id="bench")


def _mib(count: int) -> float:
    return count / (1 << 20)


def _rate(count: int, seconds: float) -> str:
    return f"{_mib(count) / seconds:8.1f} MiB/s" if seconds > 0 else "-"


def _sign(platform: Platform, mailer: MemoryMailer, token: str, i: int) -> None:
    # One client address per signer: step-up codes are rate-limited per address and per IP.
    signer = Actor(type="anonymous", ip=f"198.51.{i // 250 % 256}.{i % 250 + 1}", user_agent="b")
    contract, _ = platform.contracts.open_invitation(token, signer)
    digest = contract.revisions[-1].plaintext_sha256
    challenge = platform.contracts.begin_stepup(token, signer, "email")
    code = next(
        found.group(1)
        for message in reversed(mailer.messages)
        if (found := re.search(r" is (\d{6,8})\.", message.body))
    )
    platform.contracts.complete_stepup(token, signer, challenge.challenge_id, code)
    platform.contracts.sign(
        token,
        signer,
        SignInput(document_sha256=digest, consent=True, stepup_challenge_id=challenge.challenge_id),
    )


def build(platform: Platform, mailer: MemoryMailer, contracts: int, signed: int) -> None:
    with platform.db.write() as session:
        org = Organisation(name="Bench Ltd")
        session.add(org)
        session.flush()
        org_id = org.id
    pdf = sample_pdf()
    started = time.monotonic()
    for i in range(contracts):
        signer = [SignerSpec(name="Bench Signer", email=f"signer-{i}@example.test")]
        contract = platform.contracts.create(
            SENDER, org_id, title=f"Contract {i}", pdf=pdf, signers=signer
        )
        if i < signed:
            platform.contracts.send(SENDER, org_id, contract.id)
            tokens = [
                dict(m.tags)["Signing-Token"]
                for m in mailer.messages
                if dict(m.tags).get("Contract") == contract.id
            ]
            _sign(platform, mailer, tokens[-1], i)
            mailer.messages.clear()
        if (i + 1) % 1000 == 0:
            elapsed = time.monotonic() - started
            print(f"  built {i + 1:>6} contracts in {elapsed:6.1f} s", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--contracts", type=int, default=10_000)
    parser.add_argument("--signed", type=int, default=100)
    parser.add_argument("--s3", action="store_true", help="also back up to a local S3 server")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: temporary)")
    args = parser.parse_args()
    print(f"interpreter: {sys.executable} (Python {host.python_version()}), {host.machine()}")
    base = args.keep or Path(tempfile.mkdtemp(prefix="pactvault-bench-backup-"))
    base.mkdir(parents=True, exist_ok=True)
    specs = [str(base / "vault")]
    extra: dict[str, object] = {}
    server = None
    if args.s3:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        bucket = "bench-" + uuid.uuid4().hex[:12]
        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        specs.append(f"s3://{bucket}/pv?endpoint=http://127.0.0.1:{port}&addressing=path")
        extra = {"backup_s3_access_key_id": "bench", "backup_s3_secret_access_key": "bench"}
    settings = Settings(home=base / "data", backup_destinations=tuple(specs), **extra)  # type: ignore[arg-type]
    mailer = MemoryMailer()
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        print(f"building {args.contracts} contracts ({args.signed} signed) in {base}")
        started = time.monotonic()
        build(platform, mailer, args.contracts, args.signed)
        print(f"  build: {time.monotonic() - started:.1f} s\n")

        full = platform.backups.run()
        assert full.complete, full.to_dict()
        print(
            f"full backup        {full.seconds:7.2f} s  {_mib(full.total_bytes):8.1f} MiB "
            f"{_rate(full.total_bytes * len(specs), full.seconds)} (all destinations) "
            f"{full.blobs} blobs, {full.blobs / full.seconds:7.0f} objects/s"
        )
        extra_contracts = max(1, args.contracts // 100)
        build(platform, mailer, extra_contracts, 0)
        second = platform.backups.run()
        uploaded = sum(d.bytes_uploaded for d in second.destinations)
        print(
            f"incremental backup {second.seconds:7.2f} s  {_mib(uploaded):8.1f} MiB uploaded in "
            f"{sum(d.objects_uploaded for d in second.destinations)} objects "
            f"({extra_contracts} new contracts)"
        )
        started = time.monotonic()
        checked = platform.backups.verify()
        seconds = time.monotonic() - started
        assert checked.ok, checked.to_dict()
        print(
            f"verify (re-hash)   {seconds:7.2f} s  {_mib(checked.bytes_checked):8.1f} MiB "
            f"{_rate(checked.bytes_checked, seconds)}"
        )
        identity = platform.backups.identity()
        material = CeremonyKeyStore(settings.key_dir, None).open().material()
        destinations = parse_destinations(specs[:1])
        rto: dict[bool, float] = {}
        for verify in (False, True):
            target = replace(settings, home=base / f"restored-{'verified' if verify else 'data'}")
            keys = install_root_key(target.key_dir, None, material)
            report = restore(target, destinations, keys, identity, verify=verify)
            assert report.ok, report.to_dict()
            rto[verify] = report.seconds
            label = "restore + verify  " if verify else "restore (data)    "
            timings = ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.items())
            moved = report.timings["fetch"] + report.timings["install"]
            print(
                f"{label} {report.seconds:7.2f} s  {_mib(report.bytes):8.1f} MiB "
                f"{_rate(report.bytes, moved)} ({timings})"
            )
            if report.checks:
                for check in report.checks.results:
                    print(f"    {check.name}: {check.detail}")
        print(
            f"\nRTO for {args.contracts + extra_contracts} contracts: data restored in "
            f"{rto[False]:.1f} s; a verified, working platform in {rto[True]:.1f} s"
        )
    finally:
        platform.close()
        if server is not None:
            server.stop()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
