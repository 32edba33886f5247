"""What a restored instance must prove before anyone relies on it.

Run on the restored platform, after the data is in place and the schema is migrated:

1. **integrity auditor** (``monitor.integrity``) — the audit chain, every ledger leaf against the
   tree and the database, every published checkpoint, and every document revision decrypted and
   re-hashed against its row;
2. **audit journal head** — the entry at the manifest's ``last_seq`` has exactly the manifest's
   hash, so the restored journal is the one that was backed up (not merely *a* valid chain);
3. **ledger proofs** — the tree at the manifest's size has the manifest's root; inclusion proofs
   of a spread of leaves (all of them for up to 2,000 leaves; otherwise 2,000 evenly spaced plus
   the first and last) verify against that root; every checkpoint published up to that size is
   consistent with it (RFC 9162 consistency proofs). The auditor has already recomputed every
   leaf, so the sample adds an independent proof path rather than coverage;
4. **signatures** — for every contract with at least one signature, the newest revision is
   decrypted and every PAdES signature in it validated offline against the instance's trust
   roots (``pdf.validate``): all valid, and at least as many as the database records.

Each check is reported with what it counted; the first few problems are named (contract ids,
leaf indexes, sequence numbers — never content).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from pactvault.audit.journal import Actor
from pactvault.backup.manifest import Manifest
from pactvault.backup.progress import Progress, Step, ignore
from pactvault.crypto.hashing import equal
from pactvault.errors import PactvaultError
from pactvault.ledger.errors import ProofError
from pactvault.ledger.log import Ledger
from pactvault.ledger.proofs import verify_consistency, verify_inclusion
from pactvault.monitor.findings import ProgressUpdate
from pactvault.pdf.validate import verify_pdf
from pactvault.store.blobs import StoredObject
from pactvault.store.ledger_models import LedgerCheckpoint
from pactvault.store.models import AuditEvent, DocumentRevision, Signature

if TYPE_CHECKING:
    from pactvault.platform import Platform

__all__ = ["CheckResult", "RestoreChecks", "verify_restored"]

MAX_PROOF_SAMPLE = 2000
MAX_NAMED = 10


@dataclass
class CheckResult:
    name: str
    ok: bool
    checked: int = 0
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        if len(self.problems) < MAX_NAMED:
            self.problems.append(problem)


@dataclass
class RestoreChecks:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def to_dict(self) -> list[dict[str, Any]]:
        return [vars(r) for r in self.results]


def verify_restored(
    platform: Platform,
    manifest: Manifest,
    *,
    actor: Actor,
    progress: Progress = ignore,
) -> RestoreChecks:
    checks = RestoreChecks()
    for check in (_auditor, _audit_head, _ledger, _signatures):
        try:
            checks.results.append(check(platform, manifest, actor, progress))
        except PactvaultError as exc:
            checks.results.append(CheckResult(check.__name__.strip("_"), False, detail=exc.detail))
    return checks


def _auditor(
    platform: Platform, manifest: Manifest, actor: Actor, progress: Progress
) -> CheckResult:
    def forward(update: ProgressUpdate) -> None:
        progress(Step(f"audit {update.phase}", update.done, update.total))

    report = platform.integrity.run(progress=forward, actor=actor)
    result = CheckResult(
        "integrity auditor",
        report.ok,
        checked=report.audit_entries + report.ledger_leaves + report.revisions,
        detail=(
            f"{report.audit_entries} audit entries, {report.ledger_leaves} ledger leaves, "
            f"{report.checkpoints} checkpoints, {report.revisions} document revisions; "
            f"{report.findings_total} finding(s)"
        ),
    )
    for finding in report.findings[:MAX_NAMED]:
        result.problems.append(f"{finding.kind}: {finding.title}")
    return result


def _audit_head(
    platform: Platform, manifest: Manifest, actor: Actor, progress: Progress
) -> CheckResult:
    result = CheckResult("audit journal head", True, detail=f"entry {manifest.audit_seq}")
    if manifest.audit_seq == 0:
        return result
    with platform.db.read() as session:
        event = session.get(AuditEvent, manifest.audit_seq)
        count = session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.seq <= manifest.audit_seq)
        ).scalar_one()
    result.checked = int(count)
    if event is None or count != manifest.audit_seq:
        result.fail(f"the journal has {count} of the {manifest.audit_seq} backed-up entries")
    elif not equal(event.entry_hash, manifest.audit_head):
        result.fail(f"entry {manifest.audit_seq} differs from the backed-up journal head")
    return result


def _spread(size: int) -> list[int]:
    if size <= MAX_PROOF_SAMPLE:
        return list(range(size))
    step = size / MAX_PROOF_SAMPLE
    return sorted({0, size - 1, *(int(i * step) for i in range(MAX_PROOF_SAMPLE))})


def _ledger(
    platform: Platform, manifest: Manifest, actor: Actor, progress: Progress
) -> CheckResult:
    size = manifest.ledger_size
    root = bytes.fromhex(manifest.ledger_root)
    result = CheckResult("ledger proofs", True, detail=f"tree size {size}")
    if size == 0:
        return result
    with platform.db.read() as session:
        ledger = Ledger(session)
        if not equal(ledger.root(size), root):
            result.fail(f"the restored tree of size {size} has another root than backed up")
            return result
        indexes = _spread(size)
        for done, index in enumerate(indexes, start=1):
            try:
                proof = ledger.inclusion_proof(index, size)
                verify_inclusion(ledger.leaf(index).leaf_hash, index, size, proof.hashes, root)
            except (ProofError, PactvaultError) as exc:
                result.fail(f"leaf {index}: {exc}")
            if done % 250 == 0 or done == len(indexes):
                progress(Step("ledger proofs", done, len(indexes)))
        result.checked = len(indexes)
        checkpoints = session.execute(
            select(LedgerCheckpoint.tree_size, LedgerCheckpoint.root_hash).where(
                LedgerCheckpoint.tree_size <= size, LedgerCheckpoint.tree_size > 0
            )
        ).all()
        for checkpoint_size, checkpoint_root in checkpoints:
            try:
                proof = ledger.consistency_proof(int(checkpoint_size), size)
                verify_consistency(
                    int(checkpoint_size), size, bytes(checkpoint_root), root, proof.hashes
                )
            except (ProofError, PactvaultError) as exc:
                result.fail(f"checkpoint of size {checkpoint_size}: {exc}")
    result.detail = (
        f"tree size {size}: {len(indexes)} inclusion proofs, {len(checkpoints)} checkpoint "
        "consistency proofs"
    )
    return result


def _signatures(
    platform: Platform, manifest: Manifest, actor: Actor, progress: Progress
) -> CheckResult:
    result = CheckResult("signatures", True)
    with platform.db.read() as session:
        expected = dict(
            session.execute(
                select(Signature.contract_id, func.count()).group_by(Signature.contract_id)
            ).all()
        )
        roots = platform.trust_roots(session)
    total_signatures = 0
    for done, (contract_id, count) in enumerate(sorted(expected.items()), start=1):
        with platform.db.read() as session:
            revision = session.execute(
                select(DocumentRevision)
                .where(DocumentRevision.contract_id == contract_id)
                .order_by(DocumentRevision.version.desc())
                .limit(1)
            ).scalar_one_or_none()
            if revision is None:
                result.fail(f"contract {contract_id}: signed, but no document revision")
                continue
            try:
                data = platform.blobs.read(
                    session,
                    org_id=revision.org_id,
                    object_id=contract_id,
                    version=revision.version,
                    stored=_stored(revision),
                )
            except PactvaultError as exc:
                result.fail(f"contract {contract_id}: the signed document is unreadable ({exc})")
                continue
        report = verify_pdf(data, trust_roots=roots)
        total_signatures += len(report.signatures)
        if not report.valid:
            reasons = "; ".join(p for s in report.signatures for p in s.problems) or "; ".join(
                report.problems
            )
            result.fail(f"contract {contract_id}: not valid ({reasons[:200]})")
        elif len(report.signatures) < count:
            result.fail(
                f"contract {contract_id}: {len(report.signatures)} signatures in the document, "
                f"{count} recorded"
            )
        if done % 20 == 0 or done == len(expected):
            progress(Step("signatures", done, len(expected)))
    result.checked = total_signatures
    result.detail = f"{total_signatures} signatures in {len(expected)} contracts"
    return result


def _stored(revision: DocumentRevision) -> StoredObject:
    return StoredObject(
        blob_key=revision.blob_key,
        wrapped_key=revision.wrapped_key,
        plaintext_size=revision.plaintext_size,
        plaintext_sha256=revision.plaintext_sha256,
        ciphertext_sha256=revision.ciphertext_sha256,
    )


CheckFunction = Callable[["Platform", Manifest, Actor, Progress], CheckResult]
