"""RFC 9162 proofs: the shared conformance vectors, the edge cases we decided, and properties.

The vectors (``../shared/testdata/merkle`` next to the repository, or ``$PACTVAULT_MERKLE_VECTORS``)
are read in place: inclusion/** and consistency/** JSON files with base64 hashes and ``wantErr``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import random
from pathlib import Path

import pytest

from pactvault.ledger.errors import ProofError
from pactvault.ledger.merkle import (
    EMPTY_ROOT,
    Span,
    consistency_spans,
    inclusion_spans,
    leaf_hash,
    node_hash,
    perfect_root,
    root_of,
    span_hash,
)
from pactvault.ledger.proofs import root_from_inclusion, verify_consistency, verify_inclusion

VECTORS = Path(
    os.environ.get(
        "PACTVAULT_MERKLE_VECTORS", Path(__file__).resolve().parents[2] / "shared/testdata/merkle"
    )
)


def _vectors(kind: str) -> list[Path]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    if not files:
        pytest.fail(
            f"no Merkle conformance vectors under {VECTORS / kind}; "
            "set PACTVAULT_MERKLE_VECTORS to the testdata/merkle directory",
            pytrace=False,
        )
    return files


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=_id)
def test_inclusion_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"), ids=_id)
def test_consistency_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (
        v["size1"],
        v["size2"],
        _b64(v["root1"]),
        _b64(v["root2"]),
        [_b64(p) for p in v["proof"] or []],
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_vector_set_is_complete() -> None:
    # Guards against a half-copied testdata directory silently shrinking the suite.
    assert len(_vectors("inclusion")) >= 98 and len(_vectors("consistency")) >= 98


# -- edge cases we decided ---------------------------------------------------------------------

ROOT = leaf_hash(b"a")
OTHER = leaf_hash(b"b")


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    verify_consistency(5, 5, ROOT, ROOT, [])
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(5, 5, ROOT, OTHER, [])
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(5, 5, ROOT, ROOT, [OTHER])
    assert consistency_spans(5, 5) == []


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 1), (0, 7)])
def test_consistency_from_the_empty_tree_is_refused(size1: int, size2: int) -> None:
    # Every tree extends the empty one, so such a proof proves nothing: refuse, even at 0 → 0.
    with pytest.raises(ProofError, match="non-empty tree"):
        verify_consistency(size1, size2, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ValueError):
        consistency_spans(size1, size2)


def test_sizes_going_backwards_are_refused() -> None:
    with pytest.raises(ProofError, match="backwards"):
        verify_consistency(4, 3, ROOT, ROOT, [])


def test_inclusion_rejects_wrong_hash_lengths_and_ranges() -> None:
    verify_inclusion(ROOT, 0, 1, [], ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(ROOT[:31], 0, 1, [], ROOT[:31])
    with pytest.raises(ProofError):
        verify_inclusion(ROOT, 1, 1, [], ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(ROOT, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(ROOT, 0, 2, [OTHER + b"\x00"], node_hash(ROOT, OTHER))


# -- properties over random trees --------------------------------------------------------------

RNG = random.Random(9162)
LEAVES = [leaf_hash(RNG.randbytes(RNG.randrange(0, 40))) for _ in range(1100)]
SIZES = sorted({*range(1, 70), *RNG.sample(range(70, 1100), 230)})


@functools.cache
def _node(level: int, index: int) -> bytes:
    return perfect_root(LEAVES[index << level : (index + 1) << level])


def _inclusion(index: int, size: int) -> list[bytes]:
    return [span_hash(span, _node) for span in inclusion_spans(index, size)]


def _consistency(size1: int, size2: int) -> list[bytes]:
    return [span_hash(span, _node) for span in consistency_spans(size1, size2)]


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_spans_decompose_like_the_rfc_recursion() -> None:
    def mth(start: int, end: int) -> bytes:  # RFC 9162 §2.1.1, literally
        if end - start == 1:
            return LEAVES[start]
        k = 1 << ((end - start - 1).bit_length() - 1)
        return node_hash(mth(start, start + k), mth(start + k, end))

    for size in [1, 2, 3, 5, 8, 13, 100, 257]:
        assert root_of(LEAVES[:size]) == mth(0, size) == span_hash(Span(0, size), _node)
    assert root_of([]) == EMPTY_ROOT


def test_every_generated_proof_verifies() -> None:
    for size in SIZES:
        root = root_of(LEAVES[:size])
        indexes = range(size) if size < 40 else RNG.sample(range(size), 8)
        for index in indexes:
            verify_inclusion(LEAVES[index], index, size, _inclusion(index, size), root)
        olds = range(1, size + 1) if size < 40 else RNG.sample(range(1, size + 1), 8)
        for old in olds:
            verify_consistency(old, size, root_of(LEAVES[:old]), root, _consistency(old, size))


def test_single_bit_corruptions_fail() -> None:
    """Every bit of every proof element and of the leaf/roots, for a sample of proofs; one random
    bit per element for all the others."""
    exhaustive = set(RNG.sample(SIZES, 12))
    for size in SIZES:
        root = root_of(LEAVES[:size])
        index = RNG.randrange(size)
        proof = _inclusion(index, size)
        old = RNG.randrange(1, size + 1)
        old_root = root_of(LEAVES[:old])
        cproof = _consistency(old, size)
        bits = range(256) if size in exhaustive else [RNG.randrange(256)]
        for bit in bits:
            with pytest.raises(ProofError):
                verify_inclusion(_flip(LEAVES[index], bit), index, size, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(LEAVES[index], index, size, proof, _flip(root, bit))
            for i in range(len(proof)):
                bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
                with pytest.raises(ProofError):
                    verify_inclusion(LEAVES[index], index, size, bad, root)
            if old == size:
                continue
            with pytest.raises(ProofError):
                verify_consistency(old, size, _flip(old_root, bit), root, cproof)
            with pytest.raises(ProofError):
                verify_consistency(old, size, old_root, _flip(root, bit), cproof)
            for i in range(len(cproof)):
                bad = [*cproof[:i], _flip(cproof[i], bit), *cproof[i + 1 :]]
                with pytest.raises(ProofError):
                    verify_consistency(old, size, old_root, root, bad)


def test_wrong_positions_fail() -> None:
    for size in SIZES[::7]:
        root = root_of(LEAVES[:size])
        index = RNG.randrange(size)
        proof = _inclusion(index, size)
        for other_index, other_size in [(index ^ 1, size), (index, size + 1), (index, size * 2)]:
            if (other_index, other_size) == (index, size) or other_index >= other_size:
                continue
            try:
                implied = root_from_inclusion(LEAVES[index], other_index, other_size, proof)
            except ProofError:
                continue
            assert implied != root or LEAVES[index] == LEAVES[other_index]
