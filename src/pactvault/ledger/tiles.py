"""Where each Merkle node lives in storage: tiles of height 4, in the manner of C2SP tlog-tiles.

Tile ``(L, t)`` covers 16 consecutive nodes of tree level 4·L, starting at node 16·t, and stores
them *with the interior nodes above them* (tree levels 4·L+1 … 4·L+3) in post-order — each node
right after the nodes it is built from, i.e. in the order they become complete (the layout Go's
``sumdb/tlog`` uses for its stored hashes). So a tile only ever grows at its end while leaves
arrive (the database enforces exactly that), a full tile is 30 hashes, and *any* perfect node of
the tree is one slice of one tile: a proof over 10⁷ leaves reads one row per tile level (6) and
hashes only the ragged right edge. The root of a full tile is the first node of a tile one level
up, so it is stored there, not twice.

Storage is ≈ 2 hashes per leaf (≈ 67 bytes with row overhead, measured), against ≈ 39 bytes for
storing bottom rows only — which made every proof recompute ~70 hashes in Python, a third of its
cost.

This module is pure: :class:`TileSet` is an in-memory view of some tiles; ``log.py`` fills it from
the database and writes back the tiles an append changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pactvault.errors import IntegrityError
from pactvault.ledger.merkle import HASH_SIZE, Node, node_hash

__all__ = [
    "TILE_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileKey",
    "TileSet",
    "frontier_tiles",
    "grow",
    "key_of_id",
    "stored_count",
    "tile_id",
    "tile_of",
]

TILE_HEIGHT = 4
TILE_WIDTH = 1 << TILE_HEIGHT

TileKey = tuple[int, int]
"""``(tile level, tile index)``."""


def stored_count(width: int) -> int:
    """Hashes a tile holds once ``width`` of its bottom nodes exist: all complete nodes of its
    four levels (``width`` + ``width``//2 + ``width``//4 + ``width``//8)."""
    return sum(width >> r for r in range(TILE_HEIGHT))


def _position(r: int, j: int) -> int:
    """Post-order slot of the tile's node ``j`` at height ``r``: it completes with bottom node
    ``k - 1`` (k = (j+1)·2^r), right after that node and the ``r - 1`` nodes below it."""
    return stored_count(((j + 1) << r) - 1) + r


_POSITIONS = [[_position(r, j) for j in range(TILE_WIDTH >> r)] for r in range(TILE_HEIGHT)]
TILE_BYTES = stored_count(TILE_WIDTH) * HASH_SIZE  # 30 hashes

_ID_SHIFT = 56  # tile_id = level·2⁵⁶ + index: enough for 2⁶⁰ leaves in a signed 64-bit key


def tile_id(key: TileKey) -> int:
    """The database key of a tile."""
    level, index = key
    if not 0 <= index < 1 << _ID_SHIFT:
        raise ValueError("tile index beyond what the ledger can store")
    return (level << _ID_SHIFT) | index


def key_of_id(value: int) -> TileKey:
    return value >> _ID_SHIFT, value & ((1 << _ID_SHIFT) - 1)


def tile_of(node: Node) -> tuple[TileKey, int]:
    """The tile storing node ``(level, index)``, and the node's byte offset in it."""
    level, index = node
    tile_level, r = divmod(level, TILE_HEIGHT)
    per_tile = TILE_WIDTH >> r
    return (tile_level, index // per_tile), _POSITIONS[r][index % per_tile] * HASH_SIZE


def frontier_tiles(size: int) -> list[TileKey]:
    """The rightmost, not yet full tile of every tile level of a tree of ``size`` leaves.

    These are the only tiles an append changes, and together they hold every node of the root's
    decomposition (the perfect subtrees of ``[0, size)``): the bits of ``size`` at levels
    4·L … 4·L+3 are exactly the partial tile's width at level L.
    """
    keys = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        if count % TILE_WIDTH:
            keys.append((level, count // TILE_WIDTH))
        level += 1
    return keys


class TileSet:
    """Some tiles in memory, answering node lookups for proof and root computations."""

    def __init__(self, tiles: Mapping[TileKey, bytes] | None = None) -> None:
        self.tiles: dict[TileKey, bytes] = dict(tiles or {})

    def node(self, level: int, index: int) -> bytes:
        key, offset = tile_of((level, index))
        value = self.tiles.get(key, b"")[offset : offset + HASH_SIZE]
        if len(value) != HASH_SIZE:
            # Callers ask only for nodes complete at a size the log has reached.
            raise IntegrityError(f"ledger storage lacks tree node {level}/{index}")
        return value


def _extend(tile: bytes, width: int, bottom: bytes) -> tuple[bytes, bytes | None]:
    """Add bottom node number ``width`` to a tile holding ``width`` of them.

    Returns the grown tile and, when this completed it, the tile's root (the next level's node).
    """
    tile += bottom
    done = width + 1
    r, j = 0, width
    while done % (2 << r) == 0:  # the node one level up is now complete
        left = _POSITIONS[r][j - 1] * HASH_SIZE
        right = _POSITIONS[r][j] * HASH_SIZE
        parent = node_hash(tile[left : left + HASH_SIZE], tile[right : right + HASH_SIZE])
        r, j = r + 1, j // 2
        if r == TILE_HEIGHT:
            return tile, parent
        tile += parent
    return tile, None


def grow(
    size: int, leaf_hashes: Iterable[bytes], frontier: Mapping[TileKey, bytes]
) -> dict[TileKey, bytes]:
    """Every tile that changes when ``leaf_hashes`` are appended to a tree of ``size`` leaves.

    ``frontier`` holds the current partial tiles (:func:`frontier_tiles`). Each full tile's root
    becomes the next bottom node one tile level up, so a batch climbs the levels once.
    """
    changed: dict[TileKey, bytes] = {}
    new = list(leaf_hashes)
    level = 0
    while new:
        count = size >> (TILE_HEIGHT * level)  # complete nodes at this level before the batch
        index, width = divmod(count, TILE_WIDTH)
        tile = frontier.get((level, index), b"") if width else b""
        if len(tile) != stored_count(width) * HASH_SIZE:
            raise IntegrityError(f"ledger tile {level}/{index} does not match the tree size")
        parents: list[bytes] = []
        for bottom in new:
            tile, root = _extend(tile, width, bottom)
            changed[(level, index)] = tile
            width += 1
            if root is not None:
                parents.append(root)
                index, width, tile = index + 1, 0, b""
        new = parents
        level += 1
    return changed
