"""Evidence ledger: an RFC 9162 Merkle log of hash-only evidence records, with C2SP checkpoints.

``Ledger(session).append(record)`` adds a leaf in the caller's transaction; proofs come from
``Ledger.inclusion_proof`` / ``Ledger.consistency_proof`` and are checked offline with
``verify_inclusion`` / ``verify_consistency``; ``CheckpointStore.publish`` signs tree heads as
C2SP checkpoints and keeps them all; ``Witness`` lets another instance cosign them.
"""

from __future__ import annotations

from pactvault.ledger.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    check_consistent,
    find_forks,
    open_checkpoint,
    sign_checkpoint,
)
from pactvault.ledger.errors import EvidenceRecordError, ForkDetectedError, NoteError, ProofError
from pactvault.ledger.log import Leaf, LeafRef, Ledger, TreeHead
from pactvault.ledger.merkle import EMPTY_ROOT, leaf_hash, node_hash
from pactvault.ledger.note import Ed25519NoteSigner, Ed25519NoteVerifier, parse_verifier_key
from pactvault.ledger.proofs import (
    ConsistencyProof,
    InclusionProof,
    verify_consistency,
    verify_inclusion,
)
from pactvault.ledger.publish import CheckpointStore, HistoryReport, PublishedCheckpoint
from pactvault.ledger.records import EVENT_TYPES, EvidenceRecord
from pactvault.ledger.witness import (
    CosignatureSigner,
    CosignatureVerifier,
    Witness,
    parse_cosigner_key,
)

__all__ = [
    "EMPTY_ROOT",
    "EVENT_TYPES",
    "Checkpoint",
    "CheckpointStore",
    "ConsistencyProof",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519NoteSigner",
    "Ed25519NoteVerifier",
    "EvidenceRecord",
    "EvidenceRecordError",
    "ForkDetectedError",
    "HistoryReport",
    "InclusionProof",
    "Leaf",
    "LeafRef",
    "Ledger",
    "NoteError",
    "ProofError",
    "PublishedCheckpoint",
    "SignedCheckpoint",
    "TreeHead",
    "Witness",
    "check_consistent",
    "find_forks",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "parse_cosigner_key",
    "parse_verifier_key",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
