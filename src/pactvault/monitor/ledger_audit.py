"""The integrity auditor's ledger checks: leaves against the stored tree, the database against
the leaves, and every published checkpoint against today's tree.

For each stored leaf, in index order and in batches:

* its data must hash to the leaf hash the Merkle tiles hold at that index (a rewritten leaf row
  is named by its index; the root is not reported on top of it, it differs by implication);
* the root recomputed from all leaf data (a compact range, O(log n) memory) must equal the head's
  root and the root the tiles give at that size (catches damaged interior nodes and heads);
* a leaf that records a document revision must agree with the database row of that revision;
* the audit journal entry a leaf names (``audit_entry_sha256``, and ``audit_seq`` for anchors)
  must exist with that hash, which catches a journal re-hashed from a deleted entry onwards — a
  rewrite the chain check alone cannot see.

Which leaf records which revision: the contract service stores revision *k* of a contract and
appends, in the same transaction, one leaf carrying ``document_sha256`` of that revision
(``contract.create`` → the original, ``contract.send`` → the prepared document,
``contract.sign`` → each signed revision, ``contract.complete`` → the sealed one, and
``document.revision`` for any other). A contract's leaves are appended under its row lock, so
the *k*-th such leaf of a contract, in leaf order, is revision *k*. The auditor keeps one counter
per contract to follow this (memory grows with the number of contracts, never with documents).

Checkpoints are re-checked one by one (signature under the log key, row equal to its signed
note, consistency proof from storage to today's tree, no two roots for one size), so each
finding names the checkpoint's ``seq`` — the same checks as ``CheckpointStore.verify_history``,
with a structured result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pactvault.crypto.hashing import equal
from pactvault.errors import IntegrityError, PactvaultError
from pactvault.ledger.checkpoint import Checkpoint, check_consistent, find_forks, open_checkpoint
from pactvault.ledger.errors import EvidenceRecordError, ForkDetectedError
from pactvault.ledger.log import Ledger, TreeHead
from pactvault.ledger.merkle import EMPTY_ROOT, fold_perfect, leaf_hash, node_hash
from pactvault.ledger.note import Verifier
from pactvault.ledger.publish import CheckpointStore
from pactvault.ledger.records import EvidenceRecord
from pactvault.ledger.tiles import TILE_WIDTH, TileSet, key_of_id, tile_id
from pactvault.monitor.findings import (
    CHECKPOINT_PHASE,
    CRITICAL,
    LEDGER_PHASE,
    WARNING,
    Finding,
    Progress,
    ProgressUpdate,
)
from pactvault.store.ledger_models import LedgerCheckpoint, LedgerLeaf, LedgerTile
from pactvault.store.models import AuditEvent, Contract, DocumentRevision

__all__ = ["DOCUMENT_EVENTS", "LedgerEvidence", "audit_checkpoints", "audit_ledger"]

#: Leaf types whose ``document_sha256`` announces a new revision of the contract.
DOCUMENT_EVENTS = frozenset(
    {"contract.create", "contract.send", "contract.sign", "contract.complete", "document.revision"}
)

Sink = Callable[[Finding], None]


@dataclass
class LedgerEvidence:
    """How many revision leaves each contract has, up to leaf ``scanned_to``."""

    available: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    scanned_to: int = 0
    head: TreeHead | None = None

    def count(self, record: EvidenceRecord) -> int | None:
        """Count a revision leaf; returns the version it announces (None for other leaves)."""
        if (
            record.type in DOCUMENT_EVENTS
            and record.contract_id is not None
            and record.document_sha256 is not None
        ):
            version = self.counts.get(record.contract_id, 0) + 1
            self.counts[record.contract_id] = version
            return version
        return None

    def catch_up(self, session: Session) -> None:
        """Count the revision leaves appended since the scan (for revisions newer than it)."""
        # A gap or an unreadable leaf among these is named by the next run's full leaf checks.
        with contextlib.suppress(IntegrityError):
            for leaf in Ledger(session).leaves(start=self.scanned_to):
                with contextlib.suppress(EvidenceRecordError):
                    self.count(leaf.record())
                self.scanned_to = leaf.index + 1


@dataclass(frozen=True)
class _RevisionClaim:
    leaf_index: int
    contract_id: str
    version: int
    document_sha256: str


@dataclass(frozen=True)
class _AuditClaim:
    leaf_index: int
    contract_id: str | None
    entry_hash: str
    seq: int | None


class _CompactRange:
    """The right edge of a Merkle tree being built leaf by leaf: one hash per set bit of n."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []

    def append(self, value: bytes) -> None:
        level = 0
        while self._stack and self._stack[-1][0] == level:
            value = node_hash(self._stack.pop()[1], value)
            level += 1
        self._stack.append((level, value))

    def root(self) -> bytes:
        return fold_perfect([h for _, h in self._stack]) if self._stack else EMPTY_ROOT


def audit_ledger(
    session: Session, sink: Sink, progress: Progress, *, batch_size: int = 500
) -> LedgerEvidence:
    """Check every leaf, the tree and the leaves' claims; returns what the documents phase
    needs to match revisions to leaves."""
    evidence = LedgerEvidence()
    try:
        head = Ledger(session).head()
    except IntegrityError as exc:
        sink(_tree_finding("The evidence ledger's head row is missing", {}, exc.detail))
        evidence.available = False
        return evidence
    evidence.head = head
    progress(ProgressUpdate(LEDGER_PHASE, 0, head.size))
    edge = _CompactRange()
    problems = 0
    position = 0  # the next index we expect
    beyond_head = False
    while not beyond_head:
        # The table itself, not Ledger.leaves(): a gap or a row beyond the head is a finding
        # here, and the walk goes on after it.
        rows = session.execute(
            select(LedgerLeaf.leaf_index, LedgerLeaf.data)
            .where(LedgerLeaf.leaf_index >= position)
            .order_by(LedgerLeaf.leaf_index)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        tiles = _bottom_tiles(session, int(rows[0].leaf_index), int(rows[-1].leaf_index))
        revisions: list[_RevisionClaim] = []
        audits: list[_AuditClaim] = []
        for raw_index, raw_data in rows:
            index, data = int(raw_index), bytes(raw_data)
            if index >= head.size:
                sink(_extra_leaves_finding(index, head.size))
                problems += 1
                beyond_head = True
                break
            if index != position:
                sink(_missing_leaves_finding(position, index - 1))
                problems += 1
            position = index + 1
            edge.append(leaf_hash(data))
            trusted = _leaf_matches_tree(index, data, tiles, sink)
            if not trusted:
                problems += 1
            try:
                record = EvidenceRecord.decode(data)
            except EvidenceRecordError as exc:
                if trusted:  # the tree vouches for it, yet it is unreadable: report it once
                    sink(_leaf_finding(index, "its data is not a valid evidence record", exc))
                    problems += 1
                continue
            version = evidence.count(record)
            if not trusted:
                continue  # already reported: what a rewritten leaf claims is not evidence
            if version is not None:
                revisions.append(
                    _RevisionClaim(index, record.contract_id, version, record.document_sha256)  # type: ignore[arg-type]
                )
            if record.audit_entry_sha256 is not None:
                audits.append(
                    _AuditClaim(
                        index,
                        record.contract_id,
                        record.audit_entry_sha256,
                        # Anchors of the journal name the entry's seq too (newer record format).
                        getattr(record, "audit_seq", None),
                    )
                )
        _check_revision_claims(session, revisions, sink)
        _check_audit_claims(session, audits, sink)
        progress(ProgressUpdate(LEDGER_PHASE, min(position, head.size), head.size))
    if position < head.size and not beyond_head:
        sink(_missing_leaves_finding(position, head.size - 1))
        problems += 1
    evidence.scanned_to = head.size
    if not problems:
        _check_root(session, head, edge.root(), sink)
    progress(ProgressUpdate(LEDGER_PHASE, head.size, head.size))
    return evidence


def _bottom_tiles(session: Session, first: int, last: int) -> TileSet:
    ids = [tile_id((0, t)) for t in range(first // TILE_WIDTH, last // TILE_WIDTH + 1)]
    rows = session.execute(
        select(LedgerTile.tile_id, LedgerTile.hashes).where(LedgerTile.tile_id.in_(ids))
    ).all()
    return TileSet({key_of_id(int(key)): bytes(hashes) for key, hashes in rows})


def _leaf_matches_tree(index: int, data: bytes, tiles: TileSet, sink: Sink) -> bool:
    found = leaf_hash(data)
    try:
        recorded = tiles.node(0, index)
    except IntegrityError:
        sink(
            Finding(
                "integrity.ledger-tree",
                CRITICAL,
                f"The evidence ledger's tree has no hash for leaf {index}",
                {"leaf_index": index},
                {"leaf_index": index, "found_leaf_hash": found.hex()},
            )
        )
        return False
    if recorded == found:
        return True
    sink(
        Finding(
            "integrity.ledger-leaf",
            CRITICAL,
            f"Evidence ledger leaf {index} was rewritten: its data no longer matches the tree",
            {"leaf_index": index},
            {
                "leaf_index": index,
                "expected_leaf_hash": recorded.hex(),
                "found_leaf_hash": found.hex(),
            },
        )
    )
    return False


def _check_root(session: Session, head: TreeHead, recomputed: bytes, sink: Sink) -> None:
    subject = {"tree": "head"}
    if recomputed != head.root_hash:
        sink(
            _tree_finding(
                f"The evidence ledger's head root differs from its {head.size} leaves",
                subject,
                "head root differs from the root recomputed from the leaves",
                tree_size=head.size,
                expected_root=recomputed.hex(),
                found_root=head.root_hash.hex(),
            )
        )
        return
    try:
        stored = Ledger(session).root(head.size)
    except PactvaultError as exc:
        sink(_tree_finding("The evidence ledger's stored tree is damaged", subject, exc.detail))
        return
    if stored != recomputed:
        sink(
            _tree_finding(
                "The evidence ledger's stored tree differs from its leaves",
                subject,
                "the tiles' root differs from the root recomputed from the leaves",
                tree_size=head.size,
                expected_root=recomputed.hex(),
                found_root=stored.hex(),
            )
        )


def _check_revision_claims(session: Session, claims: Sequence[_RevisionClaim], sink: Sink) -> None:
    if not claims:
        return
    contract_ids = sorted({c.contract_id for c in claims})
    rows = session.execute(
        select(
            DocumentRevision.contract_id,
            DocumentRevision.version,
            DocumentRevision.plaintext_sha256,
            DocumentRevision.org_id,
        ).where(DocumentRevision.contract_id.in_(contract_ids))
    ).all()
    stored = {(r.contract_id, int(r.version)): (r.plaintext_sha256, r.org_id) for r in rows}
    orgs: dict[str, str | None] = {}
    for claim in claims:
        subject = {"contract_id": claim.contract_id, "version": claim.version}
        found = stored.get((claim.contract_id, claim.version))
        if found is None:
            if claim.contract_id not in orgs:
                orgs[claim.contract_id] = session.execute(
                    select(Contract.org_id).where(Contract.id == claim.contract_id)
                ).scalar_one_or_none()
            sink(
                Finding(
                    "integrity.ledger-mismatch",
                    CRITICAL,
                    f"Contract {claim.contract_id} revision {claim.version} is in the evidence "
                    "ledger but missing from the database",
                    subject,
                    {
                        **subject,
                        "leaf_index": claim.leaf_index,
                        "expected_sha256": claim.document_sha256,
                        "found_sha256": None,
                    },
                    orgs[claim.contract_id],
                )
            )
        elif not equal(found[0], claim.document_sha256):
            sink(
                Finding(
                    "integrity.ledger-mismatch",
                    CRITICAL,
                    f"Contract {claim.contract_id} revision {claim.version}: the database "
                    f"records a different document hash than ledger leaf {claim.leaf_index}",
                    subject,
                    {
                        **subject,
                        "leaf_index": claim.leaf_index,
                        "expected_sha256": claim.document_sha256,
                        "found_sha256": found[0],
                    },
                    found[1],
                )
            )


def _check_audit_claims(session: Session, claims: Sequence[_AuditClaim], sink: Sink) -> None:
    if not claims:
        return
    hashes = sorted({c.entry_hash for c in claims})
    seqs = {
        entry_hash: int(seq)
        for entry_hash, seq in session.execute(
            select(AuditEvent.entry_hash, AuditEvent.seq).where(AuditEvent.entry_hash.in_(hashes))
        )
    }
    for claim in claims:
        found = seqs.get(claim.entry_hash)
        if found is not None and (claim.seq is None or claim.seq == found):
            continue
        subject = {"leaf_index": claim.leaf_index}
        sink(
            Finding(
                "integrity.audit-evidence",
                CRITICAL,
                f"Evidence ledger leaf {claim.leaf_index} names an audit journal entry that "
                "is not in the journal as recorded",
                subject,
                {
                    **subject,
                    "contract_id": claim.contract_id,
                    "expected_audit_entry_sha256": claim.entry_hash,
                    "expected_seq": claim.seq,
                    "found_seq": found,
                },
            )
        )


def audit_checkpoints(
    session: Session,
    store: CheckpointStore | None,
    verifiers: Sequence[Verifier],
    head: TreeHead | None,
    sink: Sink,
    progress: Progress,
) -> int:
    """Re-check every published checkpoint; returns how many there are."""
    total = session.execute(select(func.count()).select_from(LedgerCheckpoint)).scalar_one()
    progress(ProgressUpdate(CHECKPOINT_PHASE, 0, total))
    if not total:
        return 0
    if store is None or not verifiers or head is None:
        sink(
            Finding(
                "integrity.checkpoint-unverifiable",
                WARNING,
                "Published ledger checkpoints cannot be checked: no log key is configured "
                "for the auditor (or the ledger head is unreadable)",
                {},
                {"checkpoints": total},
            )
        )
        return total
    ledger = Ledger(session)
    signed: list[Checkpoint] = []
    for done, published in enumerate(store.history(session), start=1):
        seq = published.seq
        try:
            checkpoint = open_checkpoint(
                published.note, origin=store.origin, verifiers=verifiers
            ).checkpoint
        except PactvaultError as exc:
            sink(_checkpoint_finding(seq, "its signed note does not verify", reason=exc.detail))
            continue
        row = published.checkpoint
        if (row.size, row.root_hash) != (checkpoint.size, checkpoint.root_hash):
            sink(
                _checkpoint_finding(
                    seq,
                    "its stored fields differ from its signed note",
                    expected_size=checkpoint.size,
                    expected_root=checkpoint.root_hash.hex(),
                    found_size=row.size,
                    found_root=row.root_hash.hex(),
                )
            )
        signed.append(checkpoint)
        try:
            _extends(ledger, checkpoint, head)
        except PactvaultError as exc:
            sink(
                _checkpoint_finding(
                    seq,
                    "today's ledger does not extend it",
                    checkpoint_size=checkpoint.size,
                    checkpoint_root=checkpoint.root_hash.hex(),
                    tree_size=head.size,
                    tree_root=head.root_hash.hex(),
                    reason=exc.detail,
                )
            )
        progress(ProgressUpdate(CHECKPOINT_PHASE, done, total))
    for first, second in find_forks(signed):
        sink(
            Finding(
                "integrity.checkpoint-inconsistent",
                CRITICAL,
                f"Two published ledger checkpoints of size {first.size} have different roots",
                {"fork_size": first.size},
                {
                    "fork_size": first.size,
                    "roots": sorted([first.root_hash.hex(), second.root_hash.hex()]),
                },
            )
        )
    return total


def _extends(ledger: Ledger, checkpoint: Checkpoint, head: TreeHead) -> None:
    """Raise unless the tree at ``head`` extends ``checkpoint`` (proof read from storage)."""
    current = Checkpoint(checkpoint.origin, head.size, head.root_hash)
    if checkpoint.size > head.size:
        raise ForkDetectedError(
            f"the ledger has {head.size} leaves but the checkpoint says {checkpoint.size}",
            (checkpoint, current),
        )
    proof: tuple[bytes, ...] = ()
    if 0 < checkpoint.size < head.size:
        proof = ledger.consistency_proof(checkpoint.size, head.size).hashes
    check_consistent(checkpoint, current, proof)


def _checkpoint_finding(seq: int, problem: str, **details: object) -> Finding:
    subject = {"checkpoint_seq": seq}
    return Finding(
        "integrity.checkpoint-inconsistent",
        CRITICAL,
        f"Published ledger checkpoint {seq}: {problem}",
        subject,
        {**subject, "problem": problem, **details},
    )


def _tree_finding(
    title: str, subject: dict[str, object], problem: str, **details: object
) -> Finding:
    return Finding(
        "integrity.ledger-tree",
        CRITICAL,
        title,
        subject,
        {**subject, "problem": problem, **details},
    )


def _leaf_finding(index: int, problem: str, exc: PactvaultError) -> Finding:
    return Finding(
        "integrity.ledger-leaf",
        CRITICAL,
        f"Evidence ledger leaf {index}: {problem}",
        {"leaf_index": index},
        {"leaf_index": index, "problem": problem, "reason": exc.detail},
    )


def _missing_leaves_finding(first: int, last: int) -> Finding:
    span = f"{first}" if first == last else f"{first} to {last}"
    return Finding(
        "integrity.ledger-leaf",
        CRITICAL,
        f"Evidence ledger leaf {span} is missing",
        {"leaf_index": first},
        {"leaf_index": first, "last_missing_index": last, "problem": "missing"},
    )


def _extra_leaves_finding(index: int, size: int) -> Finding:
    return Finding(
        "integrity.ledger-leaf",
        CRITICAL,
        f"Evidence ledger leaf {index} exists beyond the tree head ({size} leaves)",
        {"leaf_index": index},
        {"leaf_index": index, "tree_size": size, "problem": "beyond the head"},
    )
