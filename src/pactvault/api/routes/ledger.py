"""Public, read-only evidence ledger endpoints: checkpoints, the log key, proofs and leaves.

Everything here is hashes (the ledger holds no content or personal data), so nothing needs
authentication — monitors, witnesses and auditors fetch it like CRLs. ``/ledger/checkpoint`` is
the log's stable checkpoint URL (a C2SP signed note, text/plain, carrying the cosignature lines
of the witnesses that cosigned it — c2sp.org/tlog-cosignature); the rest is JSON with base64
hashes. Proofs default to the latest published checkpoint's tree size, so what a client gets
verifies against the root it can see signed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from pactvault.api.deps import PUBLIC, PlatformDep
from pactvault.errors import InvalidInputError, NotFoundError
from pactvault.ledger.log import Leaf
from pactvault.ledger.publish import PublishedCheckpoint
from pactvault.ledger.service import MAX_PAGE, LedgerService

router = APIRouter(prefix="/ledger", tags=["ledger"], dependencies=[PUBLIC])
NO_CACHE = {"Cache-Control": "no-cache"}


def get_ledger(platform: PlatformDep) -> LedgerService:
    return platform.ledger


LedgerDep = Annotated[LedgerService, Depends(get_ledger)]


@router.get("/checkpoint", response_class=PlainTextResponse)
def checkpoint(ledger: LedgerDep) -> PlainTextResponse:
    """The latest signed checkpoint (C2SP tlog-checkpoint), with its witness cosignatures."""
    latest = ledger.latest_checkpoint()
    if latest is None:
        raise NotFoundError("no checkpoint has been published yet")
    return PlainTextResponse(latest.note, headers=NO_CACHE)


@router.get("/checkpoints")
def checkpoints(
    ledger: LedgerDep,
    from_size: Annotated[int, Query(description="Only checkpoints of at least this size")] = 0,
    limit: Annotated[int, Query(description=f"At most {MAX_PAGE}")] = 100,
) -> dict[str, Any]:
    """Every checkpoint ever published (oldest first, one page), for monitors and auditors."""
    page = ledger.checkpoints(from_size, limit)
    return {"origin": ledger.origin, "checkpoints": [_checkpoint(p) for p in page]}


@router.get("/key", response_class=PlainTextResponse)
def key(ledger: LedgerDep) -> PlainTextResponse:
    """The log's C2SP verifier key: configure it wherever checkpoints are verified."""
    return PlainTextResponse(ledger.verifier_key() + "\n")


@router.get("/proof/inclusion")
def inclusion(
    ledger: LedgerDep,
    index: Annotated[int | None, Query(description="Leaf index")] = None,
    leaf_hash: Annotated[
        str | None, Query(description="Or the RFC 9162 leaf hash, base64 or hex")
    ] = None,
    tree_size: Annotated[int | None, Query(description="Default: latest checkpoint")] = None,
) -> dict[str, Any]:
    """Inclusion proof of one leaf, by index or by leaf hash."""
    if (index is None) == (leaf_hash is None):
        raise InvalidInputError("give exactly one of index and leaf_hash")
    if leaf_hash is not None:
        proof = ledger.proof_for_leaf_hash(_hash_param(leaf_hash), tree_size)
    else:
        proof = ledger.inclusion_proof(index, tree_size)  # type: ignore[arg-type]
    return {
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "hashes": [_b64(h) for h in proof.hashes],
    }


@router.get("/proof/consistency")
def consistency(
    ledger: LedgerDep,
    first: Annotated[int, Query(description="The older tree size (≥ 1)")],
    second: Annotated[int | None, Query(description="Default: latest checkpoint")] = None,
) -> dict[str, Any]:
    """Proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    proof = ledger.consistency_proof(first, second)
    return {"first": proof.size1, "second": proof.size2, "hashes": [_b64(h) for h in proof.hashes]}


@router.get("/leaves")
def leaves(
    ledger: LedgerDep,
    start: Annotated[int, Query(description="First leaf index")] = 0,
    end: Annotated[int | None, Query(description=f"Exclusive; at most {MAX_PAGE} leaves")] = None,
) -> dict[str, Any]:
    """Leaf entries: the exact leaf data (base64) and, for reading, the record it encodes."""
    return {"leaves": [_leaf(leaf) for leaf in ledger.leaves(start, end)]}


def _checkpoint(published: PublishedCheckpoint) -> dict[str, Any]:
    return {
        "seq": published.seq,
        "tree_size": published.checkpoint.size,
        "root_hash": _b64(published.checkpoint.root_hash),
        "published_at": published.published_at.isoformat(),
        "note": published.note,
    }


def _leaf(leaf: Leaf) -> dict[str, Any]:
    return {
        "index": leaf.index,
        "leaf_hash": _b64(leaf.leaf_hash),
        "data": _b64(leaf.data),
        "record": leaf.record().to_dict(),
    }


def _hash_param(value: str) -> bytes:
    """A 32-byte hash given as 64 hex digits or as (standard or URL-safe) base64; a "+" that
    arrived unescaped in the query string reads as a space and is taken back."""
    value = value.strip().replace(" ", "+")
    try:
        if len(value) == 64:
            return bytes.fromhex(value)
        decoded = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error):
        raise InvalidInputError("leaf_hash must be 32 bytes in hex or base64") from None
    if len(decoded) != 32:
        raise InvalidInputError("leaf_hash must be 32 bytes in hex or base64")
    return decoded


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
