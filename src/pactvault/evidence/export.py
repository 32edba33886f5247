"""Producing offline evidence from the platform database: whole-log exports and proof bundles.

The formats are defined (and verified) by ``evidence.offline`` and ``evidence.bundle``; this
module only reads the ledger and writes them, so nothing here is needed to *check* them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pactvault.crypto.atomic import atomic_write
from pactvault.errors import IntegrityError, InvalidInputError, NotFoundError
from pactvault.evidence.bundle import make_bundle
from pactvault.evidence.offline import (
    CHECKPOINTS_FILE,
    EXPORT_FORMAT,
    LEAVES_FILE,
    MANIFEST_FILE,
    VKEY_FILE,
)
from pactvault.ledger.cosignatures import attach_cosignatures
from pactvault.ledger.log import Leaf, Ledger
from pactvault.ledger.note import ALG_ED25519, verifier_key
from pactvault.ledger.publish import published_checkpoint
from pactvault.ledger.service import LOG_ROLE, LedgerService
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.ledger_models import LedgerCheckpoint
from pactvault.store.ledger_ops_models import LedgerKey
from pactvault.store.models import Signature

__all__ = ["ExportSummary", "build_bundle", "export_log"]

Progress = Callable[[int, int], None]  # (leaves written, leaves to write)


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    origin: str
    verifier_key: str
    tree_size: int
    checkpoints: int


def export_log(
    db: Database, out_dir: str | Path, *, progress: Progress | None = None
) -> ExportSummary:
    """Write every leaf, every published checkpoint and the verifier key to ``out_dir``.

    The directory must be new or empty: an export is one snapshot, never merged with another.
    Checkpoints are read before the tree size, so every exported checkpoint is covered by the
    exported leaves; the manifest is written last and marks the export complete.
    """
    directory = Path(out_dir)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InvalidInputError(f"{directory} must be a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    with db.read() as session:
        key = session.get(LedgerKey, LOG_ROLE)
        if key is None:
            raise NotFoundError("the ledger has no log key yet: publish a checkpoint first")
        vkey = verifier_key(key.name, ALG_ED25519, bytes(key.public_key))
        rows = session.execute(select(LedgerCheckpoint).order_by(LedgerCheckpoint.seq)).scalars()
        # As served: each note with the witness cosignatures held for it, so an offline
        # verifier can require a witness quorum (`pactvault ledger verify --witness`).
        checkpoints = [
            {"seq": p.seq, "published_at": p.published_at.isoformat(), "note": p.note}
            for p in attach_cosignatures(session, [published_checkpoint(row) for row in rows])
        ]
        ledger = Ledger(session)
        size = ledger.head().size
        atomic_write(directory / LEAVES_FILE, _lines(ledger.leaves(0, size), size, progress))
    _write_json(directory / CHECKPOINTS_FILE, checkpoints)
    atomic_write(directory / VKEY_FILE, [vkey.encode("ascii") + b"\n"])
    _write_json(
        directory / MANIFEST_FILE,
        {
            "format": EXPORT_FORMAT,
            "origin": key.name,
            "tree_size": size,
            "checkpoints": len(checkpoints),
            "exported_at": utcnow().isoformat(),
        },
    )
    return ExportSummary(directory, key.name, vkey, size, len(checkpoints))


def _lines(leaves: Iterator[Leaf], size: int, progress: Progress | None) -> Iterator[bytes]:
    for leaf in leaves:
        if b"\n" in leaf.data:  # canonical JSON never holds a raw newline
            raise IntegrityError(f"ledger leaf {leaf.index} is not canonical JSON")
        yield leaf.data + b"\n"
        if progress is not None and (leaf.index + 1) % 1024 == 0:
            progress(leaf.index + 1, size)
    if progress is not None:
        progress(size, size)


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, [json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"])


def build_bundle(ledger: LedgerService, db: Database, contract_id: str) -> dict[str, Any]:
    """The proof bundle of one contract: its evidence leaves, each with an inclusion proof to
    one signed checkpoint (published now if the latest does not yet cover them)."""
    leaves = ledger.contract_leaves(contract_id)
    if not leaves:
        raise NotFoundError(f"the ledger holds no evidence for contract {contract_id}")
    latest = ledger.latest_checkpoint()
    if latest is None or latest.checkpoint.size <= leaves[-1].index:
        latest = ledger.publish_checkpoint()
    size = latest.checkpoint.size
    proven = [
        (leaf.index, leaf.data, list(ledger.inclusion_proof(leaf.index, size).hashes))
        for leaf in leaves
    ]
    return make_bundle(
        contract_id, ledger.verifier_key(), latest.note, proven, stepup_proofs(db, contract_id)
    )


def stepup_proofs(db: Database, contract_id: str) -> list[str]:
    """The step-up proofs kept with the contract's signatures, in signing order."""
    with db.read() as session:
        rows = session.execute(
            select(Signature.stepup_proof)
            .where(Signature.contract_id == contract_id, Signature.stepup_proof.is_not(None))
            .order_by(Signature.revision_version)
        ).scalars()
        return [proof for proof in rows if proof is not None]
