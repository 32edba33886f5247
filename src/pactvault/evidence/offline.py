"""Verifying an exported ledger offline: every leaf, every checkpoint, against a key you trust.

An export (written by ``evidence.export``) is a directory::

    manifest.json      {"format": "pactvault-ledger-export/1", "origin": …, "tree_size": N, …}
    leaves.jsonl       leaf i on line i: the exact leaf data (canonical JSON), newline-terminated
    checkpoints.json   [{"seq": …, "published_at": …, "note": "<signed checkpoint>"}, …]
    log.vkey           the log's verifier key (informational: trust comes from the caller)

:func:`verify_exported_log` rebuilds the RFC 9162 tree from the leaves, opens every checkpoint
with the trusted key, and checks that each signed root is the root of the exported leaves at its
size, that consecutive checkpoints are consistent (RFC 9162 consistency proofs computed from the
leaves, as a witness would check them), that the log never went backwards, and that no two
checkpoints sign different roots for one size (a fork: the log showed two histories). It reports
every problem with the checkpoint numbers and leaf ranges involved instead of stopping at the first.

Given witness keys and a quorum, it also requires the export's largest checkpoint size to be
vouched for by at least ``quorum`` of those witnesses (c2sp.org/tlog-cosignature lines on a
checkpoint note of that size): without that, a log could show the auditor a private fork.
:func:`require_cosignatures` applies the same rule to a single checkpoint (a proof bundle's).

Only the standard library, ``cryptography`` and the pure ledger modules are used. Memory is two
hashes per leaf (the tree's levels), about 64 MB per million leaves.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pactvault.errors import PactvaultError, VerificationError
from pactvault.ledger.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    check_consistent,
    open_checkpoint,
)
from pactvault.ledger.errors import ForkDetectedError
from pactvault.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Span,
    consistency_spans,
    leaf_hash,
    node_hash,
    span_hash,
)
from pactvault.ledger.note import Verifier, parse_verifier_key
from pactvault.ledger.records import EvidenceRecord
from pactvault.ledger.witness import CosignatureVerifier, parse_cosigner_key

__all__ = [
    "CHECKPOINTS_FILE",
    "EXPORT_FORMAT",
    "LEAVES_FILE",
    "MANIFEST_FILE",
    "VKEY_FILE",
    "ExportReport",
    "MerkleTree",
    "require_cosignatures",
    "verify_exported_log",
]

EXPORT_FORMAT = "pactvault-ledger-export/1"
MANIFEST_FILE = "manifest.json"
LEAVES_FILE = "leaves.jsonl"
CHECKPOINTS_FILE = "checkpoints.json"
VKEY_FILE = "log.vkey"
MAX_LEAF_PROBLEMS = 20  # past this, a garbled file would bury the summary

Progress = Callable[[int, int], None]  # (leaves done, leaves expected)


class MerkleTree:
    """An in-memory RFC 9162 tree that grows leaf by leaf and answers for any earlier size.

    Every complete node is kept, level by level, in one ``bytearray`` per level: the root at
    any size and any consistency proof are folds of stored nodes, with no re-hashing.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def append(self, hash_: bytes) -> None:
        index, level, value = self.size, 0, hash_
        self._levels[0] += value
        while index & 1:  # this node completes a pair: its parent is now final
            value = node_hash(self.node(level, index - 1), value)
            level, index = level + 1, index >> 1
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += value

    def node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def root(self, size: int) -> bytes:
        if not 0 <= size <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {size}")
        return EMPTY_ROOT if size == 0 else span_hash(Span(0, size), self.node)

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        if size1 == size2:
            return []
        return [span_hash(span, self.node) for span in consistency_spans(size1, size2)]


@dataclass
class ExportReport:
    """The outcome of :func:`verify_exported_log`: ``ok`` only if nothing at all was wrong."""

    origin: str | None = None
    leaves: int = 0
    checkpoints: int = 0
    verified_checkpoints: int = 0
    #: With witnesses: the quorum asked for, and the largest size that many of them cosigned.
    quorum: int = 0
    witnessed_size: int | None = None
    problems: list[str] = field(default_factory=list)
    forks: list[tuple[Checkpoint, ...]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Signed:
    seq: int
    checkpoint: Checkpoint
    cosigners: int = 0  # distinct trusted witnesses whose cosignature verified


def verify_exported_log(
    directory: str | Path,
    vkey: str,
    *,
    progress: Progress | None = None,
    witnesses: Sequence[str] = (),
    quorum: int = 0,
) -> ExportReport:
    """Check a whole exported log against its checkpoints, trusting only ``vkey`` — and, with
    ``witnesses`` and ``quorum``, that its newest size was cosigned by enough of them."""
    root = Path(directory)
    report = ExportReport(quorum=quorum)
    try:
        verifier = parse_verifier_key(vkey.strip())
    except PactvaultError as exc:
        report.problems.append(f"the trusted log key is not usable: {exc.detail}")
        return report
    try:
        cosigners = _witness_keys(witnesses, quorum)
    except PactvaultError as exc:
        report.problems.append(f"the trusted witness keys are not usable: {exc.detail}")
        return report
    report.origin = verifier.name
    manifest = _read_json(root / MANIFEST_FILE, dict, report)
    entries = _read_json(root / CHECKPOINTS_FILE, list, report)
    if manifest is None or entries is None:
        return report
    if manifest.get("format") != EXPORT_FORMAT:
        report.problems.append(f"{MANIFEST_FILE}: not a {EXPORT_FORMAT} export")
        return report
    if manifest.get("origin") != verifier.name:
        report.problems.append(
            f"the export is of log {manifest.get('origin')!r}, but the trusted key is for "
            f"{verifier.name!r}"
        )
        return report
    signed = _open_checkpoints(entries, verifier, cosigners, report)
    expected = manifest.get("tree_size")
    tree = _read_leaves(root / LEAVES_FILE, report, progress, expected)
    if tree is None:
        return report
    report.leaves = tree.size
    if expected != tree.size:
        report.problems.append(
            f"{MANIFEST_FILE} announces {expected} leaves but {LEAVES_FILE} holds {tree.size}"
        )
    _check_checkpoints(signed, tree, report)
    if quorum:
        _check_quorum(signed, quorum, report)
    return report


def require_cosignatures(
    note: str, vkey: str, witnesses: Sequence[str], quorum: int
) -> SignedCheckpoint:
    """Open a checkpoint signed by the log ``vkey`` and cosigned by at least ``quorum`` of the
    trusted ``witnesses``; VerificationError saying how many cosigned otherwise."""
    try:
        verifier = parse_verifier_key(vkey.strip())
        cosigners = _witness_keys(witnesses, quorum)
        signed = open_checkpoint(
            note, origin=verifier.name, verifiers=[verifier], witnesses=cosigners
        )
    except PactvaultError as exc:
        raise VerificationError(f"checkpoint rejected: {exc.detail}") from None
    if len(signed.cosignatures) < quorum:
        raise VerificationError(
            f"the checkpoint (size {signed.checkpoint.size}) is cosigned by "
            f"{len(signed.cosignatures)} of the {len(cosigners)} trusted witnesses; "
            f"{quorum} required"
        )
    return signed


def _witness_keys(witnesses: Sequence[str], quorum: int) -> list[CosignatureVerifier]:
    keys = [parse_cosigner_key(w.strip()) for w in witnesses]
    if len({(k.name, k.key_id) for k in keys}) != len(keys):
        raise VerificationError("the same witness key is given twice")
    if not 0 <= quorum <= len(keys):
        raise VerificationError(
            f"a witness quorum of {quorum} needs at least that many witness keys ({len(keys)} "
            "given)"
        )
    return keys


def _check_quorum(signed: list[_Signed], quorum: int, report: ExportReport) -> None:
    """The newest size must be witnessed: an unwitnessed head could be a private fork."""
    witnessed = [s.checkpoint.size for s in signed if s.cosigners >= quorum]
    report.witnessed_size = max(witnessed) if witnessed else None
    if not signed:
        return
    newest = max(s.checkpoint.size for s in signed)
    if report.witnessed_size == newest:
        return
    best = max((s.cosigners for s in signed if s.checkpoint.size == newest), default=0)
    since = (
        f"the largest witnessed size is {report.witnessed_size}"
        if report.witnessed_size is not None
        else "no checkpoint in the export is witnessed"
    )
    report.problems.append(
        f"no checkpoint of the newest size {newest} is cosigned by {quorum} trusted witness(es) "
        f"(at most {best}); {since}"
    )


def _read_json(path: Path, kind: type, report: ExportReport) -> Any:
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        report.problems.append(f"{path.name} is missing")
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        report.problems.append(f"{path.name} is not readable JSON")
        return None
    if not isinstance(value, kind):
        report.problems.append(f"{path.name} has the wrong shape")
        return None
    return value


def _open_checkpoints(
    entries: Sequence[Any],
    verifier: Verifier,
    witnesses: Sequence[Verifier],
    report: ExportReport,
) -> list[_Signed]:
    """Checkpoints whose signature verifies, in publication order."""
    report.checkpoints = len(entries)
    signed: list[_Signed] = []
    for n, entry in enumerate(entries):
        seq = entry.get("seq") if isinstance(entry, dict) else None
        note = entry.get("note") if isinstance(entry, dict) else None
        if type(seq) is not int or not isinstance(note, str):
            report.problems.append(f"{CHECKPOINTS_FILE}[{n}] is not a checkpoint entry")
            continue
        try:
            opened = open_checkpoint(
                note, origin=verifier.name, verifiers=[verifier], witnesses=witnesses
            )
        except PactvaultError as exc:
            report.problems.append(f"checkpoint #{seq}: {exc.detail}")
            continue
        signed.append(_Signed(seq, opened.checkpoint, len(opened.cosignatures)))
    signed.sort(key=lambda s: s.seq)
    report.verified_checkpoints = len(signed)
    return signed


def _read_leaves(
    path: Path, report: ExportReport, progress: Progress | None, expected: object
) -> MerkleTree | None:
    tree = MerkleTree()
    total = expected if type(expected) is int else 0
    bad = 0
    try:
        with path.open("rb") as lines:
            for line in lines:
                index = tree.size
                data = line[:-1] if line.endswith(b"\n") else line
                problem = None
                if not line.endswith(b"\n"):
                    problem = f"leaf {index} is not newline-terminated (truncated file?)"
                else:
                    try:
                        EvidenceRecord.decode(data)
                    except PactvaultError as exc:
                        problem = f"leaf {index}: {exc.detail}"
                if problem is not None:
                    bad += 1
                    if bad <= MAX_LEAF_PROBLEMS:
                        report.problems.append(problem)
                tree.append(leaf_hash(data))
                if progress is not None and tree.size % 1024 == 0:
                    progress(tree.size, total)
    except FileNotFoundError:
        report.problems.append(f"{LEAVES_FILE} is missing")
        return None
    except OSError as exc:
        report.problems.append(f"{LEAVES_FILE} cannot be read: {exc.strerror}")
        return None
    if bad > MAX_LEAF_PROBLEMS:
        report.problems.append(f"… and {bad - MAX_LEAF_PROBLEMS} more malformed leaves")
    if progress is not None:
        progress(tree.size, total)
    return tree


def _check_checkpoints(signed: list[_Signed], tree: MerkleTree, report: ExportReport) -> None:
    matches: dict[int, bool] = {}
    for item in signed:
        cp = item.checkpoint
        if cp.size > tree.size:
            report.problems.append(
                f"checkpoint #{item.seq} covers {cp.size} leaves, but the export holds only "
                f"{tree.size}"
            )
            continue
        matches[item.seq] = hmac.compare_digest(tree.root(cp.size), cp.root_hash)
    for item in signed:
        if matches.get(item.seq) is False:
            report.problems.append(_mismatch(item, signed, matches, tree))
    _check_order_and_forks(signed, report)
    # Consecutive checkpoints, checked as a witness would: a consistency proof from the leaves.
    # A pair involving a checkpoint already reported as not matching the leaves is skipped: its
    # failure would say the same thing again.
    for older, newer in itertools.pairwise(signed):
        if not (matches.get(older.seq) and matches.get(newer.seq)):
            continue
        a, b = older.checkpoint, newer.checkpoint
        if a.size > b.size:
            continue  # reported as a rollback
        try:
            check_consistent(a, b, tree.consistency(a.size, b.size) if a.size else [])
        except ForkDetectedError as exc:
            report.problems.append(f"checkpoints #{older.seq} → #{newer.seq}: {exc.detail}")
            report.forks.append(exc.evidence)


def _mismatch(
    item: _Signed, signed: list[_Signed], matches: dict[int, bool], tree: MerkleTree
) -> str:
    cp = item.checkpoint
    message = (
        f"checkpoint #{item.seq} (size {cp.size}) signs root {_b64(cp.root_hash)}, but the "
        f"exported leaves hash to {_b64(tree.root(cp.size))}"
    )
    good = [s for s in signed if matches.get(s.seq) and 0 < s.checkpoint.size < cp.size]
    if good:
        best = max(good, key=lambda s: s.checkpoint.size)
        size = best.checkpoint.size
        message += (
            f"; leaves 0–{size - 1} still match checkpoint #{best.seq}, so the difference is "
            f"in leaves {size}–{cp.size - 1}"
        )
    return message


def _check_order_and_forks(signed: list[_Signed], report: ExportReport) -> None:
    for older, newer in itertools.pairwise(signed):
        if newer.checkpoint.size < older.checkpoint.size:
            report.problems.append(
                f"checkpoint #{newer.seq} (size {newer.checkpoint.size}) was published after "
                f"checkpoint #{older.seq} (size {older.checkpoint.size}): the log went backwards"
            )
    first: dict[int, _Signed] = {}
    for item in signed:
        seen = first.setdefault(item.checkpoint.size, item)
        if seen.checkpoint.root_hash != item.checkpoint.root_hash:
            report.problems.append(
                f"fork: checkpoints #{seen.seq} and #{item.seq} both sign size "
                f"{item.checkpoint.size} with different roots"
            )
            report.forks.append((seen.checkpoint, item.checkpoint))


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
