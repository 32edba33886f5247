"""The evidence ledger: an append-only RFC 9162 Merkle log stored in the platform database.

Appends join the caller's transaction — like ``keys/`` and ``audit/``, every method takes the
caller's :class:`~sqlalchemy.orm.Session` and only adds and flushes, never commits — so a
signature row, its audit entry and its ledger leaf commit or roll back together, and a leaf is
durable exactly when the caller's commit returns.

Appenders are serialised by locking the single ``ledger_head`` row (PostgreSQL ``SELECT … FOR
UPDATE``; SQLite writers already queue on ``BEGIN IMMEDIATE``), which is what keeps indexes dense
and never reused when several processes append. Lock order, for callers that also write the audit
journal in the same transaction: audit journal first, ledger second, everywhere.

Readers take no lock: tiles only ever grow, so the nodes a proof needs for a size the log has
reached are already final, whatever appends commit meanwhile. A proof for a given size costs one
indexed read: the tiles also hold the tree's last leaf at that size, whose presence shows the
size is real, so the head row is consulted only to explain a miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from pactvault.errors import IntegrityError, InvalidInputError, NotFoundError
from pactvault.ledger.merkle import (
    EMPTY_ROOT,
    Node,
    Span,
    consistency_spans,
    fold_perfect,
    inclusion_spans,
    leaf_hash,
)
from pactvault.ledger.proofs import ConsistencyProof, InclusionProof
from pactvault.ledger.records import EvidenceRecord
from pactvault.ledger.tiles import (
    TileKey,
    TileSet,
    frontier_tiles,
    grow,
    key_of_id,
    tile_id,
    tile_of,
)
from pactvault.store.ledger_models import LedgerHead, LedgerLeaf, LedgerTile

__all__ = ["HEAD_ID", "Leaf", "LeafRef", "Ledger", "TreeHead"]

HEAD_ID = 1

_head = LedgerHead.__table__
_leaves = LedgerLeaf.__table__
_tiles = LedgerTile.__table__

# Statements of fixed shape, built once: SQLAlchemy caches their compiled SQL (and psycopg
# prepares it on the server), rather than rendering a variable-length IN list for every proof.
_READ_HEAD = select(_head.c.tree_size, _head.c.root_hash).where(_head.c.id == HEAD_ID)
_LOCK_HEAD = _READ_HEAD.with_for_update()
_TILES_PER_QUERY = 16
_READ_TILES = select(_tiles.c.tile_id, _tiles.c.hashes).where(
    _tiles.c.tile_id.in_([bindparam(f"k{i}") for i in range(_TILES_PER_QUERY)])
)
_UPDATE_TILE = (
    update(_tiles)
    .where(_tiles.c.tile_id == bindparam("k_id"))
    .values(hashes=bindparam("new_hashes"))
)
_UPDATE_HEAD = (
    update(_head)
    .where(_head.c.id == HEAD_ID)
    .values(tree_size=bindparam("new_size"), root_hash=bindparam("new_root"))
)


@dataclass(frozen=True)
class LeafRef:
    """Where a record landed: keep it next to the row it is evidence for."""

    index: int
    leaf_hash: bytes


@dataclass(frozen=True)
class TreeHead:
    size: int
    root_hash: bytes


@dataclass(frozen=True)
class Leaf:
    index: int
    data: bytes

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.data)

    def record(self) -> EvidenceRecord:
        return EvidenceRecord.decode(self.data)


class Ledger:
    """The log, seen through one unit of work. Cheap to create; holds no state of its own."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- appending ---------------------------------------------------------------------------

    def append(self, record: EvidenceRecord) -> LeafRef:
        return self.append_batch([record])[0]

    def append_batch(self, records: Sequence[EvidenceRecord]) -> list[LeafRef]:
        """Append records in order as consecutive leaves, in the caller's transaction.

        One head lock, one read of the partial tiles, one multi-row insert per table: batching
        is what makes thousands of durable appends per second possible.
        """
        if not all(isinstance(r, EvidenceRecord) for r in records):
            raise InvalidInputError("the ledger accepts EvidenceRecord values only")
        if not records:
            return []
        data = [r.encode() for r in records]
        hashes = [leaf_hash(d) for d in data]

        head = self._head(lock=True)
        start = head.size
        frontier = self._read_tiles(frontier_tiles(start))
        changed = grow(start, hashes, frontier)
        size = start + len(records)
        root = _root(size, TileSet({**frontier, **changed}))

        self.session.execute(
            insert(_leaves),
            [{"leaf_index": start + i, "data": d} for i, d in enumerate(data)],
        )
        new_tiles = [k for k in changed if k not in frontier]
        if new_tiles:
            self.session.execute(
                insert(_tiles),
                [{"tile_id": tile_id(k), "hashes": changed[k]} for k in new_tiles],
            )
        for key, value in changed.items():
            if key in frontier:
                self.session.execute(_UPDATE_TILE, {"k_id": tile_id(key), "new_hashes": value})
        self.session.execute(_UPDATE_HEAD, {"new_size": size, "new_root": root})
        self.session.flush()
        return [LeafRef(start + i, h) for i, h in enumerate(hashes)]

    # -- reading -----------------------------------------------------------------------------

    def head(self, *, lock: bool = False) -> TreeHead:
        """Current size and root. ``lock=True`` holds the append lock until the transaction ends
        (for work that must see the tree stand still, like signing a checkpoint)."""
        return self._head(lock=lock)

    def root(self, size: int) -> bytes:
        """The root hash of the tree as it was at ``size`` leaves (any size up to the head)."""
        if size == 0:
            return EMPTY_ROOT
        if size < 0:
            raise InvalidInputError("a tree size is not negative")
        (value,) = self._span_hashes([Span(0, size)], size)
        return value

    def leaf(self, index: int) -> Leaf:
        data = self.session.execute(
            select(_leaves.c.data).where(_leaves.c.leaf_index == index)
        ).scalar_one_or_none()
        if data is None:
            raise NotFoundError(f"ledger has no leaf {index}")
        return Leaf(index, bytes(data))

    def leaves(self, start: int = 0, end: int | None = None, batch: int = 1000) -> Iterator[Leaf]:
        """Leaves ``[start, end)`` in order, read in batches (for auditors and exports)."""
        position = start
        while end is None or position < end:
            query = select(_leaves.c.leaf_index, _leaves.c.data).where(
                _leaves.c.leaf_index >= position
            )
            if end is not None:
                query = query.where(_leaves.c.leaf_index < end)
            rows = self.session.execute(query.order_by(_leaves.c.leaf_index).limit(batch)).all()
            if not rows:
                return
            for index, data in rows:
                if index != position:
                    raise IntegrityError(f"ledger leaf {position} is missing")
                yield Leaf(index, bytes(data))
                position += 1

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves (default: current)."""
        if size is None:
            size = self.head().size
        if not 0 <= index < size:
            raise InvalidInputError(f"leaf {index} is not in a tree of {size} leaves")
        hashes = self._span_hashes(inclusion_spans(index, size), size)
        return InclusionProof(index, size, tuple(hashes))

    def consistency_proof(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        """Proof that the tree at ``size1`` is a prefix of the tree at ``size2`` (default: now).

        Sizes as :func:`~pactvault.ledger.proofs.verify_consistency` accepts them: ``size1 ≥ 1``;
        equal sizes give an empty proof.
        """
        if size2 is None:
            size2 = self.head().size
        if not 0 < size1 <= size2:
            raise InvalidInputError(f"no consistency proof from size {size1} to size {size2}")
        hashes = self._span_hashes(consistency_spans(size1, size2), size2)
        return ConsistencyProof(size1, size2, tuple(hashes))

    # -- storage -----------------------------------------------------------------------------

    def _head(self, *, lock: bool) -> TreeHead:
        row = self.session.execute(_LOCK_HEAD if lock else _READ_HEAD).one_or_none()
        if row is None:
            raise IntegrityError("the ledger head row is missing (database not migrated?)")
        return TreeHead(int(row.tree_size), bytes(row.root_hash))

    def _span_hashes(self, spans: Sequence[Span], size: int) -> list[bytes]:
        """Hashes of ``spans`` of the tree at ``size`` leaves, from one read of the tiles."""
        span_nodes = [span.nodes() for span in spans]
        needed: set[Node] = {node for nodes in span_nodes for node in nodes}
        needed.add((0, size - 1))  # the last leaf: present only if the tree reached ``size``
        tiles = TileSet(self._read_tiles({tile_of(node)[0] for node in needed}))
        try:
            cache = {node: tiles.node(*node) for node in needed}
        except IntegrityError:
            current = self.head().size
            if size > current:
                raise InvalidInputError(f"the ledger has {current} leaves, not {size}") from None
            raise
        return [fold_perfect([cache[node] for node in nodes]) for nodes in span_nodes]

    def _read_tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, bytes]:
        keys = sorted(set(keys))
        found: dict[TileKey, bytes] = {}
        for i in range(0, len(keys), _TILES_PER_QUERY):
            chunk = keys[i : i + _TILES_PER_QUERY]
            chunk += [chunk[-1]] * (_TILES_PER_QUERY - len(chunk))  # pad: the shape is fixed
            params = {f"k{j}": tile_id(key) for j, key in enumerate(chunk)}
            for key, hashes in self.session.execute(_READ_TILES, params):
                found[key_of_id(int(key))] = bytes(hashes)
        return found


def _root(size: int, tiles: TileSet) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    return fold_perfect([tiles.node(*node) for node in Span(0, size).nodes()])
