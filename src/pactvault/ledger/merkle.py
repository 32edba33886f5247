"""RFC 9162 Merkle tree arithmetic: hashing and the shape of proofs, with no storage.

Hashing follows RFC 9162 §2.1.1 (the same as RFC 6962): a leaf hash is SHA-256(0x00 ‖ data) and an
interior node is SHA-256(0x01 ‖ left ‖ right); the two prefixes keep a leaf from ever being passed
off as an interior node (second-preimage attacks). The tree over n leaves splits at the largest
power of two below n, so every left subtree is *perfect* (2^k leaves, aligned) and only the right
edge of the tree is ragged.

A proof is described here as a list of :class:`Span` — ranges of leaves whose subtree hashes the
proof needs — in the order RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (PROOF/SUBPROOF) emit them. Any
span is either perfect, i.e. one stored node ``(level, index)``, or ragged, whose hash is the right
fold of the perfect subtrees it decomposes into. Storage (``log.py``) only has to supply perfect
nodes; the arithmetic of which ones lives here so it can be tested against plain lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Node",
    "RootAccumulator",
    "Span",
    "consistency_spans",
    "fold_perfect",
    "inclusion_spans",
    "leaf_hash",
    "node_hash",
    "perfect_root",
    "root_of",
    "span_hash",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) — RFC 9162 §2.1.1

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Node = tuple[int, int]
"""A perfect subtree ``(level, index)``: the 2^level leaves starting at index × 2^level."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Root of a perfect subtree given its 2^k bottom hashes, by pairwise hashing."""
    level = list(hashes)
    if not level or len(level) & (len(level) - 1):
        raise ValueError("a perfect subtree has a power-of-two number of nodes")
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def fold_perfect(hashes: Sequence[bytes]) -> bytes:
    """Hash of a ragged subtree from its perfect parts, largest (leftmost) first.

    RFC 9162's MTH splits at the largest power of two, so a range of 2^a + 2^b + … leaves (a > b
    > …) hashes as H(P_a, H(P_b, …)): a fold from the right.
    """
    if not hashes:
        raise ValueError("nothing to fold")
    result = hashes[-1]
    for part in reversed(hashes[:-1]):
        result = node_hash(part, result)
    return result


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a whole list of leaf hashes — the O(n) reference the storage is checked against."""
    if not leaf_hashes:
        return EMPTY_ROOT
    parts = [perfect_root(leaf_hashes[n.start : n.end]) for n in Span(0, len(leaf_hashes)).parts()]
    return fold_perfect(parts)


class RootAccumulator:
    """The root of a growing tree fed one leaf hash at a time, in O(log n) memory.

    It keeps only the perfect subtrees covering ``[0, size)`` (largest first), which is what a
    scan over millions of stored leaves needs to compare them with a signed root at any size.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[int, bytes]] = []
        self.size = 0

    def append(self, leaf_hash: bytes) -> None:
        level, value = 0, leaf_hash
        while self._parts and self._parts[-1][0] == level:
            value = node_hash(self._parts.pop()[1], value)
            level += 1
        self._parts.append((level, value))
        self.size += 1

    def root(self) -> bytes:
        if not self._parts:
            return EMPTY_ROOT
        return fold_perfect([value for _, value in self._parts])


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class Span:
    """Leaves ``[start, end)`` of one subtree that RFC 9162's recursion visits."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def nodes(self) -> list[Node]:
        """The perfect subtrees covering this span, largest first.

        Spans produced by the RFC recursion start at a multiple of a power of two at least as
        large as themselves, so the binary decomposition of their size is aligned; anything else
        is a programming error, not a ragged tree.
        """
        out: list[Node] = []
        start, remaining = self.start, self.size
        while remaining:
            level = remaining.bit_length() - 1
            if start & ((1 << level) - 1):
                raise ValueError(f"span {self} is not aligned for a Merkle subtree")
            out.append((level, start >> level))
            start += 1 << level
            remaining -= 1 << level
        return out

    def parts(self) -> list[Span]:
        return [Span(i << lv, (i + 1) << lv) for lv, i in self.nodes()]


def span_hash(span: Span, node: Callable[[int, int], bytes]) -> bytes:
    """The subtree hash of ``span`` given a lookup for perfect nodes ``node(level, index)``."""
    return fold_perfect([node(level, index) for level, index in span.nodes()])


def inclusion_spans(index: int, size: int) -> list[Span]:
    """The subtrees whose hashes form the inclusion proof of leaf ``index`` in a tree of ``size``.

    RFC 9162 §2.1.3.1: PATH(m, D[n]) recurses into the half holding m and appends the other
    half's hash, so siblings come deepest first.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    spans: list[Span] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            spans.append(Span(start + k, end))
            end = start + k
        else:
            spans.append(Span(start, start + k))
            start += k
    spans.reverse()
    return spans


def consistency_spans(size1: int, size2: int) -> list[Span]:
    """The subtrees whose hashes prove a tree of ``size1`` is a prefix of one of ``size2``.

    RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b): while the old tree ends inside the right half, the
    left half is shared and emitted; when it ends inside (or exactly at) the left half, the right
    half is emitted. ``b`` records whether the subtree reached is the old tree itself, whose hash
    the verifier already knows and so is left out. Requires 0 < size1 ≤ size2; equal sizes need
    no proof at all.
    """
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    spans: list[Span] = []
    start, end, whole_old_tree = 0, size2, True
    m = size1
    while True:
        if m - start == end - start:
            if not whole_old_tree:
                spans.append(Span(start, end))
            break
        k = _split(end - start)
        if m - start <= k:
            spans.append(Span(start + k, end))
            end = start + k
        else:
            spans.append(Span(start, start + k))
            start += k
            whole_old_tree = False
    spans.reverse()
    return spans
