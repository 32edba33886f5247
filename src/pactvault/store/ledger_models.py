"""Tables of the evidence ledger (``pactvault.ledger``): leaves, tree tiles, head, checkpoints.

* ``ledger_leaves``: the leaf data (canonical JSON evidence records, hashes only) by index.
* ``ledger_tiles``: the Merkle tree, as tiles of height 4 in the manner of C2SP tlog-tiles: tile
  ``(level L, index t)`` holds the complete nodes of tree levels 4·L … 4·L+3 above nodes
  16·t … 16·t+15 of level 4·L, in post-order (up to 30 hashes; see ``ledger/tiles.py``), under
  the single key ``tile_id = L·2⁵⁶ + t`` (one plain ``IN`` list per proof; on SQLite the key is
  the rowid itself, no second index). The rightmost tile of a level grows at its end as leaves
  arrive; the database refuses any other change. A proof over 10⁷ leaves reads 6 rows.
* ``ledger_head``: the single row appenders lock (``SELECT … FOR UPDATE``), with the current size
  and root, so appends are serialised and never reuse an index.
* ``ledger_checkpoints``: every signed checkpoint ever published, so the log can later prove it
  never contradicted one.

Hashes are raw 32-byte values (``LargeBinary``): tiles are concatenations of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = ["LedgerCheckpoint", "LedgerHead", "LedgerLeaf", "LedgerTile"]


class LedgerLeaf(Base):
    __tablename__ = "ledger_leaves"

    # On SQLite an INTEGER primary key is the rowid itself: no second index for 10⁷ rows.
    leaf_index: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LedgerTile(Base):
    __tablename__ = "ledger_tiles"

    tile_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LedgerHead(Base):
    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)


class LedgerCheckpoint(Base):
    __tablename__ = "ledger_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    origin: Mapped[str] = mapped_column(String(255))
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
