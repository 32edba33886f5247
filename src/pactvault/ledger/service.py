"""The evidence ledger as an instance runs it: its identity and key, checkpoints on a schedule,
proofs for anyone who asks, and the audit journal anchored in it.

``log.py``, ``publish.py`` and ``anchor.py`` work inside a caller's transaction; this service
owns the transactions, so the API, the CLI and the maintenance loop all drive the ledger the same
way.

**Identity.** A log is named by its *origin* (C2SP: a schema-less URL, here
``<public host>/pactvault/log``) and its Ed25519 key, whose name is that origin. The key is made
on first use. Its private half is sealed with AES-256-GCM under a data key that the key service
wraps with the platform KEK (org ``_platform``, like the CA's keys), and both are bound by their
associated data to the row's role, name and public key, so a sealed key moved to another row does
not open. The public half is published as a C2SP verifier key. An origin never changes: opening
the ledger under another origin is refused rather than starting a second log over the same
leaves.

**Schedule.** :meth:`LedgerService.run_due` is called from every API process's maintenance loop.
Each decision is re-taken under the lock that serialises the work it guards (audit head for
anchoring, ledger head for publishing), so any number of processes may call it at once and one of
them does the work. A checkpoint is signed when the tree grew and the interval has passed, or,
when nothing changed, once the maximum age is reached.

**Lookups.** ``ledger_leaf_index`` (leaf hash, event type and contract of each leaf) is derived
from the leaves and caught up on demand and on schedule; proofs are always computed from the
tiles, never from this index.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pactvault.audit.journal import Actor, record
from pactvault.crypto import aead
from pactvault.crypto.encoding import encode_fields
from pactvault.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    PactvaultError,
)
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.ledger.anchor import Anchor, AnchorReport, anchor_due, anchor_journal, check_anchors
from pactvault.ledger.cosignatures import attach_cosignatures, with_cosignatures
from pactvault.ledger.errors import NoteError
from pactvault.ledger.log import Leaf, Ledger, TreeHead
from pactvault.ledger.note import (
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    check_key_name,
    raw_public_key,
)
from pactvault.ledger.proofs import ConsistencyProof, InclusionProof
from pactvault.ledger.publish import (
    CheckpointStore,
    HistoryReport,
    PublishedCheckpoint,
    published_checkpoint,
)
from pactvault.pki.authority import PLATFORM_ORG
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.ledger_models import LedgerCheckpoint
from pactvault.store.ledger_ops_models import LedgerKey, LedgerLeafIndex

__all__ = [
    "LOG_ROLE",
    "MAX_PAGE",
    "DueReport",
    "LedgerPolicy",
    "LedgerService",
    "origin_for",
]

MAX_PAGE = 1000  # leaves or checkpoints per request: the API is public
LOG_ROLE = "log"
_INDEX_BATCH = 1000


def origin_for(public_url: str) -> str:
    """The log origin for an instance's public URL: ``host[:port][/path]/pactvault/log``."""
    parts = urlsplit(public_url)
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"the public URL {public_url!r} has an invalid port") from None
    if not parts.hostname:
        raise InvalidInputError(f"the public URL {public_url!r} names no host")
    netloc = parts.hostname.lower() + (f":{port}" if port else "")
    origin = f"{netloc}{parts.path.rstrip('/')}/pactvault/log"
    try:
        return check_key_name(origin)
    except NoteError:
        raise InvalidInputError(f"{origin!r} cannot be a log origin") from None


@dataclass(frozen=True)
class LedgerPolicy:
    """How often the maintenance loop publishes and anchors."""

    checkpoint_interval: timedelta = timedelta(seconds=60)
    # Re-publish an unchanged head this often, so monitors can tell an idle log from a dead one.
    checkpoint_max_age: timedelta = timedelta(hours=1)
    anchor_interval: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        zero = timedelta(0)
        if min(self.checkpoint_interval, self.checkpoint_max_age, self.anchor_interval) <= zero:
            raise InvalidInputError("ledger intervals must be positive")
        if self.checkpoint_max_age < self.checkpoint_interval:
            raise InvalidInputError("the checkpoint maximum age must not be below its interval")


@dataclass(frozen=True)
class DueReport:
    """What one :meth:`LedgerService.run_due` round did."""

    anchored: Anchor | None = None
    published: PublishedCheckpoint | None = None
    indexed: int = 0


class LedgerService:
    """Checkpoints, proofs and anchoring for one log, over the platform database."""

    def __init__(
        self,
        db: Database,
        keys: KeyService,
        origin: str,
        clock: Callable[[], datetime] = utcnow,
        policy: LedgerPolicy | None = None,
    ) -> None:
        try:
            self.origin = check_key_name(origin)
        except NoteError:
            raise InvalidInputError(f"{origin!r} cannot be a log origin") from None
        self._db = db
        self._keys = keys
        self._store = CheckpointStore(origin)
        self._clock = clock
        self.policy = policy or LedgerPolicy()
        self._signer: Ed25519NoteSigner | None = None
        self._lock = threading.Lock()

    # -- the log key --------------------------------------------------------------------------

    def verifier_key(self) -> str:
        """The C2SP verifier key string (``origin+keyid+base64``) that checks our checkpoints."""
        return self._log_signer().verifier.key_string()

    def verifier(self) -> Ed25519NoteVerifier:
        return self._log_signer().verifier

    def _log_signer(self) -> Ed25519NoteSigner:
        """The log key, unsealed once per process; created (and audited) on first use."""
        with self._lock:
            if self._signer is None:
                signer = self._stored_signer()
                if signer is None:
                    with self._db.write() as session:
                        signer = self._create_key(session)
                self._signer = signer
            return self._signer

    def _stored_signer(self) -> Ed25519NoteSigner | None:
        if self._signer is not None:
            return self._signer
        with self._db.read() as session:
            row = session.get(LedgerKey, LOG_ROLE)
            return self._open_key(session, row) if row is not None else None

    def _create_key(self, session: Session) -> Ed25519NoteSigner:
        private = Ed25519PrivateKey.generate()
        public = raw_public_key(private.public_key())
        context = _key_context(LOG_ROLE, self.origin, public)
        data_key, wrapped = self._keys.new_data_key(session, PLATFORM_ORG, aad=context)
        secret = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        row = {
            "role": LOG_ROLE,
            "name": self.origin,
            "public_key": public,
            "wrapped_key": wrapped.to_bytes(),
            "sealed_private_key": aead.seal(data_key, secret, aad=context),
            "created_at": self._clock(),
        }
        # Two processes starting at once: the first insert wins, the other opens its key.
        if _insert_ignore(session, LedgerKey, [row]):
            signer = Ed25519NoteSigner(self.origin, private)
            record(
                session,
                Actor.system(),
                "ledger.key.create",
                object_type="ledger",
                details={"role": LOG_ROLE, "verifier_key": signer.verifier.key_string()},
            )
            return signer
        stored = session.get(LedgerKey, LOG_ROLE, populate_existing=True)
        if stored is None:
            raise IntegrityError("the ledger's log key could not be stored")
        return self._open_key(session, stored)

    def _open_key(self, session: Session, row: LedgerKey) -> Ed25519NoteSigner:
        if row.name != self.origin:
            raise ConflictError(
                f"this ledger's log is {row.name!r}, but the instance is configured as "
                f"{self.origin!r}; a log's origin cannot change (restore the public URL)"
            )
        context = _key_context(row.role, row.name, bytes(row.public_key))
        data_key = self._keys.unwrap_data_key(
            session, PLATFORM_ORG, WrappedKey.from_bytes(bytes(row.wrapped_key)), aad=context
        )
        secret = aead.open_sealed(data_key, bytes(row.sealed_private_key), aad=context)
        try:
            private = Ed25519PrivateKey.from_private_bytes(secret)
        except ValueError:
            raise IntegrityError("the ledger's log key is damaged") from None
        if raw_public_key(private.public_key()) != bytes(row.public_key):
            raise IntegrityError("the ledger's log key does not match its public key")
        return Ed25519NoteSigner(row.name, private)

    # -- checkpoints --------------------------------------------------------------------------

    def publish_checkpoint(self, now: datetime | None = None) -> PublishedCheckpoint:
        """Sign the current head now (on demand), or return the latest if nothing changed and it
        is younger than the maximum age."""
        signer = self._log_signer()
        with self._db.write() as session:
            published = self._publish(session, signer, now or self._clock(), on_demand=True)
            published = with_cosignatures(session, published)
        if published is None:  # cannot happen: on demand, the latest stands in for "not due"
            raise IntegrityError("no checkpoint could be published")
        return published

    def _publish(
        self, session: Session, signer: Ed25519NoteSigner, now: datetime, *, on_demand: bool
    ) -> PublishedCheckpoint | None:
        head = Ledger(session).head(lock=True)  # publishers line up here, then decide
        latest = self._store.latest(session)
        due = self._checkpoint_due(latest, head, now, on_demand=on_demand)
        if due is None:
            return latest if on_demand else None
        # A head that contradicts the last checkpoint makes publish() raise ForkDetectedError.
        return self._store.publish(session, signer, now=now, refresh=due == "refresh")

    def _checkpoint_due(
        self, latest: PublishedCheckpoint | None, head: TreeHead, now: datetime, *, on_demand: bool
    ) -> str | None:
        """What is due: "new" (sign the grown head), "refresh" (re-publish an unchanged head
        past its maximum age) or None (nothing yet)."""
        if latest is None:
            return "new"
        age = now - latest.published_at
        current = latest.checkpoint
        if (current.size, current.root_hash) == (head.size, head.root_hash):
            return "refresh" if age >= self.policy.checkpoint_max_age else None
        if on_demand or age >= self.policy.checkpoint_interval:
            return "new"
        return None

    def latest_checkpoint(self) -> PublishedCheckpoint | None:
        """The latest checkpoint as served: the log-signed note with the witness cosignatures
        held for it appended (``CheckpointStore.latest`` has the note exactly as signed)."""
        with self._db.read() as session:
            return with_cosignatures(session, self._store.latest(session))

    def checkpoints(self, from_size: int = 0, limit: int = 100) -> list[PublishedCheckpoint]:
        """Published checkpoints of at least ``from_size`` leaves, oldest first (one page)."""
        if from_size < 0:
            raise InvalidInputError("from_size is not negative")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}")
        with self._db.read() as session:
            rows = session.execute(
                select(LedgerCheckpoint)
                .where(LedgerCheckpoint.tree_size >= from_size)
                .order_by(LedgerCheckpoint.seq)
                .limit(limit)
            ).scalars()
            return attach_cosignatures(session, [published_checkpoint(row) for row in rows])

    def verify_history(self) -> HistoryReport:
        """Every published checkpoint re-checked against the key and the current tree."""
        verifier = self.verifier()
        with self._db.read() as session:
            return self._store.verify_history(session, [verifier])

    # -- proofs -------------------------------------------------------------------------------

    def inclusion_proof(self, leaf_index: int, tree_size: int | None = None) -> InclusionProof:
        """Audit path of a leaf to the tree of ``tree_size`` leaves (default: the latest
        checkpoint's, so the proof verifies against the published root)."""
        if leaf_index < 0:
            raise InvalidInputError("a leaf index is not negative")
        with self._db.read() as session:
            size = self._tree_size(session, tree_size)
            if leaf_index >= size:
                raise NotFoundError(f"leaf {leaf_index} is not in the tree of {size} leaves")
            return Ledger(session).inclusion_proof(leaf_index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``old_size`` leaves is a prefix of the one of ``new_size``
        (default: the latest checkpoint's size)."""
        with self._db.read() as session:
            size = self._tree_size(session, new_size)
            if not 0 < old_size <= size:
                raise InvalidInputError(
                    f"no consistency proof from size {old_size} to size {size} "
                    "(sizes must satisfy 0 < first ≤ second)"
                )
            return Ledger(session).consistency_proof(old_size, size)

    def proof_for_leaf_hash(self, leaf_hash: bytes, tree_size: int | None = None) -> InclusionProof:
        """Inclusion proof of the first leaf whose hash is ``leaf_hash``."""
        if len(leaf_hash) != 32:
            raise InvalidInputError("a leaf hash is 32 bytes")
        with self._db.read() as session:
            size = self._tree_size(session, tree_size)
            index = _index_of(session, leaf_hash, size)
            behind = _indexed(session) < size
        if index is None and behind:
            self.refresh_index()
            with self._db.read() as session:
                index = _index_of(session, leaf_hash, size)
        if index is None:
            raise NotFoundError(f"no leaf with this hash in the tree of {size} leaves")
        with self._db.read() as session:
            return Ledger(session).inclusion_proof(index, size)

    def _tree_size(self, session: Session, tree_size: int | None) -> int:
        if tree_size is None:
            latest = self._store.latest(session)
            if latest is None:
                raise NotFoundError("no checkpoint has been published yet")
            return latest.checkpoint.size
        if tree_size < 1:
            raise InvalidInputError("a tree size for a proof is at least 1")
        head = Ledger(session).head()
        if tree_size > head.size:
            raise InvalidInputError(f"the ledger has {head.size} leaves, not {tree_size}")
        return tree_size

    # -- leaves -------------------------------------------------------------------------------

    def leaves(self, start: int, end: int | None = None) -> list[Leaf]:
        """Leaves ``[start, end)`` — at most :data:`MAX_PAGE`, clipped to the current tree."""
        if start < 0:
            raise InvalidInputError("start is not negative")
        end = start + MAX_PAGE if end is None else end
        if end <= start:
            raise InvalidInputError("end must be greater than start")
        if end - start > MAX_PAGE:
            raise InvalidInputError(f"at most {MAX_PAGE} leaves per request")
        with self._db.read() as session:
            size = Ledger(session).head().size
            if start >= size:
                raise NotFoundError(f"the ledger has {size} leaves")
            return list(Ledger(session).leaves(start, min(end, size)))

    def contract_leaves(self, contract_id: str) -> list[Leaf]:
        """Every leaf that is evidence for ``contract_id``, in log order."""
        _check_uuid(contract_id)
        self.refresh_index()
        with self._db.read() as session:
            indexes = session.execute(
                select(LedgerLeafIndex.leaf_index)
                .where(LedgerLeafIndex.contract_id == contract_id)
                .order_by(LedgerLeafIndex.leaf_index)
            ).scalars()
            return [Ledger(session).leaf(int(i)) for i in indexes]

    def refresh_index(self) -> int:
        """Bring the lookup index up to the current tree; returns how many leaves were added."""
        with self._db.read() as session:
            if _indexed(session) >= Ledger(session).head().size:
                return 0
        with self._db.write() as session:
            return _catch_up(session)

    # -- audit anchoring and the schedule -----------------------------------------------------

    def anchor_audit(self, now: datetime | None = None) -> Anchor | None:
        """Anchor the audit journal now (None if nothing was journalled since the last one)."""
        with self._db.write() as session:
            return anchor_journal(session, now or self._clock())

    def check_anchors(self) -> AnchorReport:
        """Re-derive every anchor from the journal, trusting only leaves the log key signed.

        Uses the log key only if it exists (no key, no checkpoints): checking must not write.
        """
        signer = self._stored_signer()
        verifier = signer.verifier if signer is not None else None
        with self._db.read() as session:
            return check_anchors(session, log_verifier=verifier)

    def run_due(self, now: datetime | None = None) -> DueReport:
        """One maintenance round: anchor the journal and publish a checkpoint if either is due,
        then catch up the lookup index. Safe to call from many processes at once: each decision
        is taken again under its lock; the unlocked look first keeps idle rounds read-only."""
        now = now or self._clock()
        signer = self._log_signer()  # before any lock: creating it writes an audit entry
        interval = self.policy.anchor_interval
        with self._db.read() as session:
            anchor_wanted = anchor_due(session, now, interval, lock=False)
            head = Ledger(session).head()
            latest = self._store.latest(session)
            publish_wanted = self._checkpoint_due(latest, head, now, on_demand=False) is not None
        anchored = published = None
        if anchor_wanted or publish_wanted:
            with self._db.write() as session:
                if anchor_wanted and anchor_due(session, now, interval, lock=True):
                    anchored = anchor_journal(session, now)  # audit head, then ledger head
                # The anchor's leaf grew the tree: worth a checkpoint if the interval allows.
                published = self._publish(session, signer, now, on_demand=False)
        return DueReport(anchored, published, self.refresh_index())


# -- helpers ------------------------------------------------------------------------------------


def _key_context(role: str, name: str, public_key: bytes) -> bytes:
    """AAD binding a sealed ledger key (and its wrapped data key) to its row."""
    return encode_fields("pactvault/ledger-key/v1", role, name, public_key)


def _check_uuid(value: str) -> None:
    try:
        ok = str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise InvalidInputError("a contract id is a lowercase UUID")


def _insert_ignore(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> int:
    """INSERT … ON CONFLICT DO NOTHING (both databases); returns how many rows went in."""
    if not rows:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model.__table__).on_conflict_do_nothing()
    if len(rows) == 1:
        # Counted with RETURNING: psycopg reports rowcount -1 for ON CONFLICT inserts, which
        # made a process that lost the race to create the log key believe it had won.
        returning = statement.returning(*model.__table__.primary_key.columns)
        return len(session.execute(returning, rows[0]).all())
    session.execute(statement, list(rows))
    return len(rows)


def _indexed(session: Session) -> int:
    """How many leaves the lookup index covers (it is dense from 0)."""
    last = session.scalar(select(func.max(LedgerLeafIndex.leaf_index)))
    return 0 if last is None else int(last) + 1


def _index_of(session: Session, leaf_hash: bytes, size: int) -> int | None:
    return session.scalar(
        select(func.min(LedgerLeafIndex.leaf_index)).where(
            LedgerLeafIndex.leaf_hash == leaf_hash, LedgerLeafIndex.leaf_index < size
        )
    )


def _catch_up(session: Session) -> int:
    """Index the leaves appended since the last catch-up. Concurrent callers insert the same
    rows; ON CONFLICT makes the loser's inserts no-ops."""
    ledger = Ledger(session)
    start, size = _indexed(session), ledger.head().size
    rows: list[dict[str, Any]] = []
    added = 0
    for leaf in ledger.leaves(start, size, batch=_INDEX_BATCH):
        try:
            evidence = leaf.record()
        except PactvaultError:
            raise IntegrityError(
                f"ledger leaf {leaf.index} is not a valid evidence record"
            ) from None
        rows.append(
            {
                "leaf_index": leaf.index,
                "leaf_hash": leaf.leaf_hash,
                "event_type": evidence.type,
                "contract_id": evidence.contract_id,
            }
        )
        if len(rows) == _INDEX_BATCH:
            added += _insert_ignore(session, LedgerLeafIndex, rows)
            rows = []
    added += _insert_ignore(session, LedgerLeafIndex, rows)
    return added
