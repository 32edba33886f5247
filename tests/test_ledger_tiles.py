"""Tile layout, without a database: appends in any batching give the same tiles and roots."""

from __future__ import annotations

import random

import pytest

from pactvault.ledger.merkle import Span, fold_perfect, leaf_hash, perfect_root, root_of
from pactvault.ledger.tiles import (
    TILE_BYTES,
    TILE_WIDTH,
    TileSet,
    frontier_tiles,
    grow,
    key_of_id,
    stored_count,
    tile_id,
    tile_of,
)


def build(leaves: list[bytes], batches: list[int]) -> dict[tuple[int, int], bytes]:
    """Replay appends the way ``Ledger.append_batch`` does, against a dict as storage."""
    store: dict[tuple[int, int], bytes] = {}
    size = 0
    for n in batches:
        frontier = {k: store[k] for k in frontier_tiles(size)}
        store.update(grow(size, leaves[size : size + n], frontier))
        size += n
    return store


def test_batching_does_not_change_the_tree() -> None:
    rng = random.Random(16)
    leaves = [leaf_hash(b"%d" % i) for i in range(5000)]
    one_by_one = build(leaves, [1] * len(leaves))
    for _ in range(5):
        batches = []
        while sum(batches) < len(leaves):
            batches.append(min(rng.choice([1, 2, 15, 16, 17, 255, 256, 700]), 5000 - sum(batches)))
        assert build(leaves, batches) == one_by_one


def test_tiles_hold_complete_nodes_and_answer_any_node() -> None:
    leaves = [leaf_hash(b"%d" % i) for i in range(4200)]
    store = build(leaves, [4200])
    tiles = TileSet(store)
    # 4200 = 262·16 + 8 leaves: full tiles have 30 hashes, the partial one 8 + 4 + 2 + 1.
    assert len(store[(0, 0)]) == TILE_BYTES and len(store[(0, 262)]) == 15 * 32
    for level in range(13):
        width = 1 << level
        for index in (0, 1, len(leaves) // width - 1):
            if index >= 0 and (index + 1) * width <= len(leaves):
                expected = perfect_root(leaves[index * width : (index + 1) * width])
                assert tiles.node(level, index) == expected
    for size in (1, 15, 16, 17, 256, 257, 4095, 4096, 4200):
        parts = [tiles.node(*n) for n in Span(0, size).nodes()]
        assert fold_perfect(parts) == root_of(leaves[:size])


def test_frontier_is_the_partial_tile_of_each_level() -> None:
    assert frontier_tiles(0) == []
    assert frontier_tiles(16) == [(1, 0)]  # level 0 is exactly full: nothing partial there
    assert frontier_tiles(17) == [(0, 1), (1, 0)]
    assert frontier_tiles(256) == [(2, 0)]
    # 10⁷ = 16·625000: level 0 is all full tiles; 625000 mod 16 = 8 hashes wait at level 1, …
    assert frontier_tiles(10_000_000) == [(1, 39062), (2, 2441), (3, 152), (4, 9), (5, 0)]
    assert 39062 * TILE_WIDTH + 8 == 10_000_000 >> 4


def test_tile_ids_round_trip_and_are_bounded() -> None:
    for key in [(0, 0), (0, 1), (1, 0), (5, 12345), (15, (1 << 56) - 1)]:
        assert key_of_id(tile_id(key)) == key
        assert tile_id(key) < 1 << 63  # fits a signed BIGINT
    with pytest.raises(ValueError):
        tile_id((0, 1 << 56))
    # Post-order inside a tile: leaf 0, leaf 1, their parent, leaf 2, leaf 3, parent, grandparent…
    assert [tile_of((0, i))[1] // 32 for i in range(5)] == [0, 1, 3, 4, 7]
    assert tile_of((1, 0)) == ((0, 0), 2 * 32) and tile_of((2, 0)) == ((0, 0), 6 * 32)
    assert tile_of((3, 1)) == ((0, 0), 29 * 32)  # the last of 30 hashes
    assert tile_of((5, 3)) == ((1, 0), 12 * 32)  # leaves 96…127 = level-4 nodes 6, 7's parent
    assert stored_count(16) * 32 == TILE_BYTES == 960
