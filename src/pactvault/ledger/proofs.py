"""Verifying RFC 9162 inclusion and consistency proofs — pure functions, no storage.

These are what a third party runs offline, so they are strict: sizes, indexes and every hash
length are checked before any hashing, and failures raise :class:`ProofError` rather than return
``False`` (a forgotten ``if`` must not turn into an accepted proof).

Edge cases, decided once (and matched by the conformance vectors in ``shared/testdata/merkle``):

* Equal sizes (``size1 == size2 ≥ 1``): the proof must be empty and the two roots equal.
* ``size1 == 0``: refused, even when ``size2`` is 0 too. Every tree extends the empty tree, so
  such a "proof" proves nothing; a caller asking for one has lost track of what it verified.
* Inclusion in a tree of size 0, or at an index ≥ size: refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from pactvault.ledger.errors import ProofError
from pactvault.ledger.merkle import HASH_SIZE, node_hash

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]


@dataclass(frozen=True)
class InclusionProof:
    """Audit path of leaf ``leaf_index`` in the tree of ``tree_size`` leaves, deepest first."""

    leaf_index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def verify(self, leaf_hash: bytes, root: bytes) -> None:
        verify_inclusion(leaf_hash, self.leaf_index, self.tree_size, self.hashes, root)


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2`` leaves."""

    size1: int
    size2: int
    hashes: tuple[bytes, ...]

    def verify(self, root1: bytes, root2: bytes) -> None:
        verify_consistency(self.size1, self.size2, root1, root2, self.hashes)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(bytes(a), bytes(b))


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2), or ProofError if malformed."""
    if size < 1 or not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    for element in proof:
        _check_hash(element, "proof element")
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for element in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(element, r)
            # A right-edge node with no sibling at this level: climb until it has one.
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with root ``root``."""
    _check_hash(root, "root hash")
    if not _same(root_from_inclusion(leaf_hash, index, size, proof), root):
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (size1, root1) is a prefix of the tree (size2, root2).

    RFC 9162 §2.1.4.2, with the edge cases described in the module docstring.
    """
    if size1 < 1:
        raise ProofError("a consistency proof must start from a non-empty tree")
    if size2 < size1:
        raise ProofError(f"tree size went backwards ({size1} → {size2})")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if not _same(root1, root2):
            raise ProofError("trees of equal size have different roots")
        return
    _check_hash(root1, "first root")
    _check_hash(root2, "second root")
    if not proof:
        raise ProofError("consistency proof is empty")
    for element in proof:
        _check_hash(element, "proof element")

    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root is the first node.
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if not _same(fr, root1):
        raise ProofError("consistency proof does not lead to the first root")
    if not _same(sr, root2):
        raise ProofError("consistency proof does not lead to the second root")
