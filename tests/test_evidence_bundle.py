"""Offline evidence: proof bundles for one contract and whole-log exports, verified without a
server — and refused, precisely, when anything in them was changed."""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flows import SENDER, sent_contract, sign_as
from pactvault.contracts.service import SignerSpec
from pactvault.errors import InvalidInputError
from pactvault.evidence.bundle import BundleError, make_bundle, verify_bundle
from pactvault.evidence.export import build_bundle, export_log
from pactvault.evidence.offline import MerkleTree, verify_exported_log
from pactvault.ledger import EvidenceRecord, Ledger
from pactvault.ledger.checkpoint import Checkpoint, sign_checkpoint
from pactvault.ledger.merkle import inclusion_spans, span_hash
from pactvault.ledger.note import Ed25519NoteSigner
from pactvault.ledger.service import LedgerService, origin_for
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform

CONTRACT = "0b9f0a1e-7a31-4b7e-9d43-3f6f1c1a1b2c"
OTHER = "6f1c1a1b-7a31-4b7e-9d43-0b9f0a1e3f6f"


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


class FakeLog:
    """A log we control completely (its key too), to build evidence the verifiers must judge."""

    def __init__(self, origin: str = "auditor.example/log") -> None:
        self.origin = origin
        self.signer = Ed25519NoteSigner(origin, Ed25519PrivateKey.generate())
        self.tree = MerkleTree()
        self.data: list[bytes] = []

    @property
    def vkey(self) -> str:
        return self.signer.verifier.key_string()

    def append(self, *records: EvidenceRecord) -> None:
        for record in records:
            self.data.append(record.encode())
            self.tree.append(record.leaf_hash())

    def checkpoint(self, size: int | None = None, root: bytes | None = None) -> str:
        size = self.tree.size if size is None else size
        body = Checkpoint(self.origin, size, root or self.tree.root(size))
        return sign_checkpoint(body, self.signer)

    def proof(self, index: int, size: int) -> list[bytes]:
        return [span_hash(span, self.tree.node) for span in inclusion_spans(index, size)]

    def bundle(self, contract_id: str, indexes: list[int]) -> dict[str, Any]:
        size = self.tree.size
        leaves = [(i, self.data[i], self.proof(i, size)) for i in indexes]
        return make_bundle(contract_id, self.vkey, self.checkpoint(), leaves)

    def export(self, directory: Path, notes: list[str], size: int | None = None) -> Path:
        size = len(self.data) if size is None else size
        directory.mkdir()
        manifest = {"format": "pactvault-ledger-export/1", "origin": self.origin, "tree_size": size}
        (directory / "manifest.json").write_text(json.dumps(manifest))
        (directory / "leaves.jsonl").write_bytes(b"".join(d + b"\n" for d in self.data[:size]))
        entries = [
            {"seq": n + 1, "published_at": "-", "note": note} for n, note in enumerate(notes)
        ]
        (directory / "checkpoints.json").write_text(json.dumps(entries))
        (directory / "log.vkey").write_text(self.vkey + "\n")
        return directory


def contract_log() -> tuple[FakeLog, list[int]]:
    """A log holding one contract's lifecycle among other leaves."""
    log = FakeLog()
    log.append(*(EvidenceRecord("contract.void", contract_id=OTHER) for _ in range(5)))
    mine = [
        EvidenceRecord("contract.create", contract_id=CONTRACT, document_sha256=digest("v1")),
        EvidenceRecord("contract.send", contract_id=CONTRACT, document_sha256=digest("v2")),
        EvidenceRecord(
            "contract.sign",
            contract_id=CONTRACT,
            document_sha256=digest("v3"),
            signature_sha256=digest("sig"),
        ),
        EvidenceRecord("contract.complete", contract_id=CONTRACT, document_sha256=digest("pdf")),
    ]
    indexes = []
    for record in mine:
        indexes.append(log.tree.size)
        log.append(record, EvidenceRecord("contract.void", contract_id=OTHER))
    return log, indexes


# -- bundles ---------------------------------------------------------------------------------------


def completed_contract(platform: Platform, mailer: MemoryMailer) -> tuple[str, bytes]:
    org, contract_id, tokens = sent_contract(platform, mailer, [SignerSpec("张三", "z@example.cn")])
    sign_as(platform, next(iter(tokens.values())))
    _, pdf = platform.contracts.download(SENDER, org, contract_id)
    return contract_id, pdf


def test_a_contracts_bundle_verifies_offline_with_its_final_pdf(
    platform: Platform, mailer: MemoryMailer
) -> None:
    contract_id, pdf = completed_contract(platform, mailer)
    ledger = LedgerService(platform.db, platform.keys, origin_for(platform.settings.public_url))
    bundle = json.loads(json.dumps(build_bundle(ledger, platform.db, contract_id)))  # as a file

    result = verify_bundle(bundle, ledger.verifier_key(), pdf)
    kinds = [record.type for _, record in result.records]
    assert kinds == ["contract.create", "contract.send", "contract.sign", "contract.complete"]
    # The signer's step-up (email code bound to the document) travels with the bundle.
    [(sign_index, method, _)] = result.stepups
    assert method == "email" and kinds[[i for i, _ in result.records].index(sign_index)] == (
        "contract.sign"
    )
    without = {k: v for k, v in bundle.items() if k != "stepup_proofs"}
    with pytest.raises(BundleError, match="step-up proof is not in the bundle"):
        verify_bundle(without, ledger.verifier_key())
    forged = copy.deepcopy(bundle)
    forged["stepup_proofs"][0] = forged["stepup_proofs"][0].replace('"email"', '"sms"')
    with pytest.raises(BundleError, match="step-up proof"):
        verify_bundle(forged, ledger.verifier_key())
    assert result.final_document_sha256 == hashlib.sha256(pdf).hexdigest() and result.pdf_checked
    assert result.checkpoint == ledger.latest_checkpoint().checkpoint  # type: ignore[union-attr]

    with pytest.raises(BundleError, match=r"the PDF's SHA-256 is .* but the last document"):
        verify_bundle(bundle, ledger.verifier_key(), pdf + b"\n%%EOF\n")
    altered = copy.deepcopy(bundle)
    altered["leaves"][1]["record"] = altered["leaves"][1]["record"].replace('"v":1', '"v":1 ')
    with pytest.raises(BundleError, match=rf"leaf {bundle['leaves'][1]['index']}: .*canonical"):
        verify_bundle(altered, ledger.verifier_key())


def _flip_signature(note: str) -> str:
    text, _, line = note.rstrip("\n").rpartition("\n")
    dash_name, encoded = line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[-1] ^= 1  # the key ID (first 4 bytes) still names the log key
    return f"{text}\n{dash_name} {base64.b64encode(bytes(blob)).decode()}\n"


def _tamper_cases(log: FakeLog, indexes: list[int]) -> list[tuple[str, Any, str]]:
    """(what, how to change the bundle, the refusal it must get)."""
    first = indexes[0]

    def one_byte_of_a_leaf(b: dict[str, Any]) -> None:
        record = b["leaves"][2]["record"]
        at = record.index("document_sha256") + 20
        b["leaves"][2]["record"] = (
            record[:at] + ("0" if record[at] != "0" else "1") + record[at + 1 :]
        )

    def swapped_proofs(b: dict[str, Any]) -> None:
        b["leaves"][0]["inclusion_proof"] = b["leaves"][1]["inclusion_proof"]

    def moved_index(b: dict[str, Any]) -> None:
        b["leaves"][0]["index"] = first + 1

    def beyond(b: dict[str, Any]) -> None:
        b["leaves"][0]["index"] = log.tree.size

    def forged_checkpoint(b: dict[str, Any]) -> None:
        b["checkpoint"] = _flip_signature(b["checkpoint"])

    def other_log_key(b: dict[str, Any]) -> None:
        impostor = FakeLog(log.origin)
        impostor.tree, impostor.data = log.tree, log.data
        b["verifier_key"], b["checkpoint"] = impostor.vkey, impostor.checkpoint()

    def checkpoint_signed_by_another_key(b: dict[str, Any]) -> None:
        impostor = FakeLog(log.origin)
        impostor.tree = log.tree
        b["checkpoint"] = impostor.checkpoint()

    def other_contract(b: dict[str, Any]) -> None:
        b["contract_id"] = OTHER

    def bad_proof_element(b: dict[str, Any]) -> None:
        b["leaves"][3]["inclusion_proof"][0] = "AAAA"

    def extra_field(b: dict[str, Any]) -> None:
        b["note"] = "trust me"

    def no_leaves(b: dict[str, Any]) -> None:
        b["leaves"] = []

    def duplicate(b: dict[str, Any]) -> None:
        b["leaves"].append(b["leaves"][0])

    i2, i3 = indexes[2], indexes[3]
    proof_failed = "inclusion proof does not lead to the expected root — the record or its index"
    return [
        ("one byte of a leaf", one_byte_of_a_leaf, f"leaf {i2}: {proof_failed}"),
        ("proof of another leaf", swapped_proofs, f"leaf {first}: {proof_failed}"),
        ("index of another leaf", moved_index, f"leaf {first + 1}: {proof_failed}"),
        ("index beyond the tree", beyond, f"leaf {log.tree.size} is beyond the checkpoint"),
        ("wrong checkpoint signature", forged_checkpoint, "checkpoint rejected: signature by"),
        ("another log's key", other_log_key, "names a different log key"),
        (
            "checkpoint by another key",
            checkpoint_signed_by_another_key,
            "not signed by any trusted",
        ),
        ("another contract", other_contract, f"leaf {first} is evidence for contract {CONTRACT}"),
        ("malformed proof", bad_proof_element, f"leaf {i3}: inclusion proof element 0 is not"),
        ("unknown field", extra_field, "must have the fields"),
        ("no evidence", no_leaves, "holds no evidence leaves"),
        ("a leaf twice", duplicate, "the same leaf twice"),
    ]


def test_tampered_bundles_are_refused_with_a_precise_message() -> None:
    log, indexes = contract_log()
    bundle = log.bundle(CONTRACT, indexes)
    assert verify_bundle(bundle, log.vkey).final_document_sha256 == digest("pdf")
    for what, tamper, expected in _tamper_cases(log, indexes):
        changed = copy.deepcopy(bundle)
        tamper(changed)
        with pytest.raises(BundleError) as refused:
            verify_bundle(json.dumps(changed), log.vkey)
        assert expected in refused.value.detail, what
    with pytest.raises(BundleError, match="not JSON"):
        verify_bundle(b"\xff{", log.vkey)
    with pytest.raises(BundleError, match="trusted log key is not usable"):
        verify_bundle(bundle, "not-a-key")
    with pytest.raises(BundleError, match="no document revision"):
        only_void = log.bundle(OTHER, [0])
        verify_bundle(only_void, log.vkey, b"%PDF-")


# -- whole-log exports -----------------------------------------------------------------------------


def test_export_and_offline_verification_round_trip(platform: Platform, tmp_path: Path) -> None:
    ledger = LedgerService(platform.db, platform.keys, origin_for(platform.settings.public_url))
    records = [
        EvidenceRecord("contract.void", contract_id=str(uuid.UUID(int=i))) for i in range(300)
    ]
    with platform.db.write() as session:
        Ledger(session).append_batch(records[:100])
    first = ledger.publish_checkpoint()
    with platform.db.write() as session:
        Ledger(session).append_batch(records[100:])
    ledger.anchor_audit()
    last = ledger.publish_checkpoint()

    seen: list[tuple[int, int]] = []
    summary = export_log(
        platform.db, tmp_path / "export", progress=lambda d, t: seen.append((d, t))
    )
    assert (summary.tree_size, summary.checkpoints) == (last.checkpoint.size, 2)
    assert summary.verifier_key == ledger.verifier_key() and seen[-1] == (301, 301)
    report = verify_exported_log(tmp_path / "export", ledger.verifier_key())
    assert report.ok, report.problems
    assert (report.leaves, report.verified_checkpoints) == (301, 2)

    leaves = (tmp_path / "export" / "leaves.jsonl").read_bytes().split(b"\n")
    leaves[150] = leaves[150].replace(b'"v":1', b'"v":2')
    (tmp_path / "export" / "leaves.jsonl").write_bytes(b"\n".join(leaves))
    report = verify_exported_log(tmp_path / "export", ledger.verifier_key())
    assert not report.ok
    assert report.problems[0] == "leaf 150: evidence record has an unknown format version"
    assert (
        f"checkpoint #{last.seq} (size 301) signs root" in report.problems[1]
        and f"leaves 0–99 still match checkpoint #{first.seq}, so the difference is in leaves "
        "100–300"
        in report.problems[1]
    )

    with pytest.raises(InvalidInputError, match="new or empty directory"):
        export_log(platform.db, tmp_path / "export")


def test_offline_verification_reports_forks_rollbacks_and_foreign_checkpoints(
    tmp_path: Path,
) -> None:
    log = FakeLog()
    log.append(*(EvidenceRecord("contract.void", contract_id=OTHER) for _ in range(40)))
    honest = [log.checkpoint(10), log.checkpoint(25), log.checkpoint(40)]
    assert verify_exported_log(log.export(tmp_path / "ok", honest), log.vkey).ok

    # The log signs a second history at size 25: a fork, whatever the leaves say.
    forked = [*honest, log.checkpoint(25, root=hashlib.sha256(b"other history").digest())]
    report = verify_exported_log(log.export(tmp_path / "fork", forked), log.vkey)
    assert "fork: checkpoints #2 and #4 both sign size 25 with different roots" in report.problems
    assert report.forks and {cp.size for cp in report.forks[0]} == {25}
    assert any("went backwards" in p for p in report.problems)  # #4 (25) after #3 (40)

    stranger = FakeLog(log.origin)
    stranger.tree = log.tree
    foreign = [*honest, stranger.checkpoint()]
    report = verify_exported_log(log.export(tmp_path / "foreign", foreign), log.vkey)
    assert report.problems == ["checkpoint #4: note is not signed by any trusted key"]
    assert report.verified_checkpoints == 3

    short = verify_exported_log(log.export(tmp_path / "short", honest, size=30), log.vkey)
    assert short.problems == ["checkpoint #3 covers 40 leaves, but the export holds only 30"]

    other = FakeLog("other.example/log")
    assert verify_exported_log(tmp_path / "ok", other.vkey).problems == [
        "the export is of log 'auditor.example/log', but the trusted key is for 'other.example/log'"
    ]
    assert not verify_exported_log(tmp_path / "missing", log.vkey).ok


# -- what an auditor has to vendor -----------------------------------------------------------------

PURE = {
    "pactvault.evidence.bundle",
    "pactvault.evidence.offline",
    "pactvault.ledger.checkpoint",
    "pactvault.ledger.errors",
    "pactvault.ledger.merkle",
    "pactvault.ledger.note",
    "pactvault.ledger.proofs",
    "pactvault.ledger.records",
    "pactvault.ledger.witness",  # witness cosignature keys, for a required witness quorum
    "pactvault.errors",
    "pactvault.canonical",
}


def _imports(module: str) -> set[str]:
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text("utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_offline_verifiers_need_only_the_pure_ledger_stdlib_and_cryptography() -> None:
    seen: set[str] = set()
    todo = ["pactvault.evidence.bundle", "pactvault.evidence.offline"]
    while todo:
        module = todo.pop()
        seen.add(module)
        for name in _imports(module):
            top = name.split(".")[0]
            if top == "pactvault":
                assert name in PURE, f"{module} imports {name}"
                if name not in seen:
                    todo.append(name)
            else:
                assert top in sys.stdlib_module_names or top == "cryptography", (module, name)
    assert seen == PURE
