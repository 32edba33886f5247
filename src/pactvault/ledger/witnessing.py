"""Being a witness: the c2sp.org/tlog-witness ``add-checkpoint`` protocol, for configured logs.

A witness promises, per log, never to cosign two checkpoints that cannot both be true and never
to go backwards. It keeps exactly one thing per log — the latest checkpoint it cosigned — and a
new checkpoint is cosigned only if it is signed by a key the operator configured for that log
(``PACTVAULT_WITNESS_LOGS``) and a consistency proof leads from that checkpoint to it.

**Protocol** (c2sp.org/tlog-witness, checked in the order the spec states): the body is
``old <size>\\n``, up to 63 base64 proof lines, an empty line, and the signed checkpoint. Malformed
bodies answer 400; an unknown origin 404; a checkpoint no trusted key signed 403; ``old`` larger
than the checkpoint 400; ``old`` different from the size we last cosigned 409 with that size as a
``text/x.tlog.size`` body (so the log can retry with the right proof); a proof that does not
verify 422; the same size with another root 409 (a fork). Success answers the cosignature line.

**Atomicity.** The check against the stored size and the update are one compare-and-swap inside
one transaction: the row is read ``FOR UPDATE`` and updated only ``WHERE`` size and root are still
the ones checked (an insert for a first checkpoint is ``ON CONFLICT DO NOTHING``). Whichever of
two concurrent requests comes second finds the row moved and gets a 409, so the stored size can
never be rolled back (the spec's A/B race). The cosignature is returned only after the commit.

**Misbehaviour.** A checkpoint signed by the log for a size we already cosigned, with another
root, proves the log showed two histories. That one case — it needs the log's key, so nobody
else can trigger it — raises a critical alert carrying both signed notes as evidence. A failing
proof proves nothing (anyone can send garbage next to a genuine checkpoint) and is only refused.

**Key.** The witness key (Ed25519, ``cosignature/v1``) is made once, sealed like the log key
under a data key the platform KEK wraps, and named ``<public host>/pactvault/witness``.
"""

from __future__ import annotations

import base64
import hmac
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select, update
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
    PermissionDeniedError,
)
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.ledger.checkpoint import Checkpoint, open_checkpoint
from pactvault.ledger.errors import NoteError, ProofError
from pactvault.ledger.merkle import EMPTY_ROOT, HASH_SIZE
from pactvault.ledger.note import (
    Ed25519NoteVerifier,
    b64decode_strict,
    check_key_name,
    parse_note,
    parse_verifier_key,
    raw_public_key,
)
from pactvault.ledger.proofs import verify_consistency
from pactvault.ledger.witness import CosignatureSigner, CosignatureVerifier
from pactvault.pki.authority import PLATFORM_ORG
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.witness_models import WITNESS_KEY_ID, WitnessedLog, WitnessKey

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpointRequest",
    "AlertSink",
    "CheckpointForkError",
    "MalformedWitnessRequestError",
    "StaleOldSizeError",
    "UnknownLogError",
    "UntrustedCheckpointError",
    "WitnessService",
    "WitnessedLogState",
    "add_checkpoint_body",
    "parse_add_checkpoint",
    "parse_log_keys",
    "witness_name_for",
]

MAX_PROOF_LINES = 63  # the spec's limit: a proof over 2⁶⁴ leaves is shorter
#: A checkpoint with the note format's 100 signatures and a full proof stays far below this.
MAX_REQUEST_BYTES = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})")
_MAX_SIZE = (1 << 64) - 1


# -- errors: each maps to the status the spec requires ------------------------------------------


class MalformedWitnessRequestError(PactvaultError):
    """The add-checkpoint body does not follow the format (400, as the spec requires)."""

    slug = "malformed-witness-request"
    status = 400
    title = "Malformed add-checkpoint request"


class UnknownLogError(NotFoundError):
    """This witness is not configured for the checkpoint's origin (404)."""

    slug = "unknown-log"
    title = "Unknown log"


class UntrustedCheckpointError(PermissionDeniedError):
    """No signature on the checkpoint verifies with a key trusted for its log (403)."""

    slug = "untrusted-checkpoint"
    title = "Checkpoint not signed by a trusted log key"


class StaleOldSizeError(ConflictError):
    """``old`` is not the size we last cosigned; ``size`` is (409, text/x.tlog.size body)."""

    slug = "witness-old-size"
    title = "Old size does not match the latest cosigned checkpoint"

    def __init__(self, size: int) -> None:
        super().__init__(f"the latest checkpoint cosigned for this log has size {size}")
        self.size = size


class CheckpointForkError(ConflictError):
    """A checkpoint for the size we cosigned, with another root: the log forked (409)."""

    slug = "checkpoint-fork"
    title = "Checkpoint conflicts with the one already cosigned"


class AlertSink(Protocol):
    """Where proven misbehaviour is reported (the platform's alert service)."""

    def raise_alert(
        self,
        kind: str,
        *,
        severity: str,
        title: str,
        details: dict[str, Any] | None = None,
        subject: dict[str, Any] | None = None,
    ) -> object: ...


# -- the request format -----------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    old_size: int
    proof: tuple[bytes, ...]
    note: str


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body a log sends (the inverse of :func:`parse_add_checkpoint`)."""
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode("ascii") + "\n" for h in proof)]
    return ("".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Split a request body strictly: canonical ``old`` decimal, ≤ 63 canonical base64 hashes,
    an empty line, then the note (parsed by the caller)."""
    if len(body) > MAX_REQUEST_BYTES:
        raise MalformedWitnessRequestError("the request body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedWitnessRequestError("the request body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise MalformedWitnessRequestError("the request has no empty line before the checkpoint")
    lines = head.split("\n")
    match = _OLD_LINE.fullmatch(lines[0])
    if match is None or int(match.group(1)) > _MAX_SIZE:
        raise MalformedWitnessRequestError("the first line must be 'old <size>' (canonical)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise MalformedWitnessRequestError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for n, line in enumerate(lines[1:], start=1):
        try:
            value = b64decode_strict(line)
        except NoteError:
            value = b""
        if len(value) != HASH_SIZE:
            raise MalformedWitnessRequestError(f"proof line {n} is not a base64 32-byte hash")
        proof.append(value)
    return AddCheckpointRequest(int(match.group(1)), tuple(proof), note)


# -- configuration ----------------------------------------------------------------------------


def witness_name_for(public_url: str) -> str:
    """The witness key name for an instance's public URL: ``host[:port][/path]/pactvault/witness``
    (a schema-less URL, as c2sp.org/tlog-cosignature recommends)."""
    parts = urlsplit(public_url)
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"the public URL {public_url!r} has an invalid port") from None
    if not parts.hostname:
        raise InvalidInputError(f"the public URL {public_url!r} names no host")
    netloc = parts.hostname.lower() + (f":{port}" if port else "")
    name = f"{netloc}{parts.path.rstrip('/')}/pactvault/witness"
    try:
        return check_key_name(name)
    except NoteError:
        raise InvalidInputError(f"{name!r} cannot be a witness name") from None


def parse_log_keys(vkeys: Sequence[str]) -> dict[str, tuple[Ed25519NoteVerifier, ...]]:
    """The logs to witness, from their verifier keys; a key's name is its log's origin, and one
    origin may have several keys (rotation). Anything unusable is refused at startup."""
    logs: dict[str, list[Ed25519NoteVerifier]] = {}
    for vkey in vkeys:
        try:
            verifier = parse_verifier_key(vkey.strip())
        except NoteError as exc:
            raise InvalidInputError(
                f"PACTVAULT_WITNESS_LOGS: {vkey[:40]!r}… is not a log verifier key: {exc.detail}"
            ) from None
        keys = logs.setdefault(verifier.name, [])
        if verifier not in keys:
            keys.append(verifier)
    return {origin: tuple(keys) for origin, keys in logs.items()}


@dataclass(frozen=True)
class WitnessedLogState:
    """What this witness holds for one log: the latest checkpoint it cosigned."""

    origin: str
    tree_size: int
    root_hash: bytes
    cosigned_at: datetime
    note: str


# -- the service ------------------------------------------------------------------------------


class WitnessService:
    """Cosigns checkpoints of the configured logs over the platform database."""

    def __init__(
        self,
        db: Database,
        keys: KeyService,
        name: str,
        logs: dict[str, tuple[Ed25519NoteVerifier, ...]],
        *,
        clock: Callable[[], datetime] = utcnow,
        alerts: AlertSink | None = None,
    ) -> None:
        try:
            self._name = check_key_name(name)
        except NoteError:
            raise InvalidInputError(f"{name!r} cannot be a witness name") from None
        self._db = db
        self._keys = keys
        self._logs = dict(logs)
        self._clock = clock
        self._alerts = alerts
        self._signer: CosignatureSigner | None = None
        self._lock = threading.Lock()

    @property
    def origins(self) -> tuple[str, ...]:
        """The logs this instance witnesses."""
        return tuple(sorted(self._logs))

    # -- the witness key ----------------------------------------------------------------------

    def verifier_key(self) -> str:
        """The witness's C2SP verifier key (type 0x04): logs and clients configure it."""
        return self.verifier().key_string()

    def verifier(self) -> CosignatureVerifier:
        return self._witness_signer().verifier

    def _witness_signer(self) -> CosignatureSigner:
        """The witness key, unsealed once per process; created (and audited) on first use."""
        with self._lock:
            if self._signer is None:
                with self._db.read() as session:
                    row = session.get(WitnessKey, WITNESS_KEY_ID)
                    signer = self._open_key(session, row) if row is not None else None
                if signer is None:
                    with self._db.write() as session:
                        signer = self._create_key(session)
                self._signer = signer
            return self._signer

    def _create_key(self, session: Session) -> CosignatureSigner:
        private = Ed25519PrivateKey.generate()
        public = raw_public_key(private.public_key())
        context = _key_context(self._name, public)
        data_key, wrapped = self._keys.new_data_key(session, PLATFORM_ORG, aad=context)
        secret = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        row = {
            "id": WITNESS_KEY_ID,
            "name": self._name,
            "public_key": public,
            "wrapped_key": wrapped.to_bytes(),
            "sealed_private_key": aead.seal(data_key, secret, aad=context),
            "created_at": self._clock(),
        }
        # Two processes starting at once: the first insert wins, the other opens its key.
        if _insert_ignore(session, WitnessKey, row):
            signer = CosignatureSigner(self._name, private)
            record(
                session,
                Actor.system(),
                "witness.key.create",
                object_type="ledger",
                details={"verifier_key": signer.verifier.key_string()},
            )
            return signer
        stored = session.get(WitnessKey, WITNESS_KEY_ID, populate_existing=True)
        if stored is None:
            raise IntegrityError("the witness key could not be stored")
        return self._open_key(session, stored)

    def _open_key(self, session: Session, row: WitnessKey) -> CosignatureSigner:
        # The stored name is the key's identity (it is part of its key ID): it is kept even if
        # the public URL changes later, so logs that trust this witness keep verifying it.
        context = _key_context(row.name, bytes(row.public_key))
        data_key = self._keys.unwrap_data_key(
            session, PLATFORM_ORG, WrappedKey.from_bytes(bytes(row.wrapped_key)), aad=context
        )
        secret = aead.open_sealed(data_key, bytes(row.sealed_private_key), aad=context)
        try:
            private = Ed25519PrivateKey.from_private_bytes(secret)
        except ValueError:
            raise IntegrityError("the witness key is damaged") from None
        if raw_public_key(private.public_key()) != bytes(row.public_key):
            raise IntegrityError("the witness key does not match its public key")
        return CosignatureSigner(row.name, private)

    # -- add-checkpoint -----------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> str:
        """Handle one add-checkpoint request body; returns the cosignature line(s) to answer.

        Raises the error for the status the spec requires (see the module docstring).
        """
        request = parse_add_checkpoint(body)
        try:
            checkpoint = Checkpoint.from_body(parse_note(request.note).text)
        except NoteError as exc:
            raise MalformedWitnessRequestError(
                f"the checkpoint is malformed: {exc.detail}"
            ) from None
        verifiers = self._logs.get(checkpoint.origin)
        if verifiers is None:
            raise UnknownLogError("this witness does not witness that log")
        try:
            open_checkpoint(request.note, origin=checkpoint.origin, verifiers=verifiers)
        except NoteError as exc:
            raise UntrustedCheckpointError(exc.detail) from None
        if request.old_size > checkpoint.size:
            raise MalformedWitnessRequestError(
                f"old size {request.old_size} is larger than the checkpoint's {checkpoint.size}"
            )
        signer = self._witness_signer()
        try:
            with self._db.write() as session:
                self._advance(session, request, checkpoint)
                now = self._clock()
                cosignature = signer.cosign(checkpoint, int(now.timestamp()))
        except CheckpointForkError as exc:
            self._report_fork(checkpoint, request.note, exc)
            raise
        return cosignature.line()

    def _advance(
        self, session: Session, request: AddCheckpointRequest, checkpoint: Checkpoint
    ) -> None:
        """Check ``request`` against the stored state and move it to ``checkpoint`` — one
        compare-and-swap, in the caller's transaction."""
        state = session.execute(
            select(WitnessedLog)
            .where(WitnessedLog.origin == checkpoint.origin)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        known = int(state.tree_size) if state is not None else 0
        if request.old_size != known:
            raise StaleOldSizeError(known)
        stored_root = bytes(state.root_hash) if state is not None else None
        _check_step(request, checkpoint, stored_root)
        values = {
            "tree_size": checkpoint.size,
            "root_hash": checkpoint.root_hash,
            "note": request.note,
            "cosigned_at": self._clock(),
        }
        if state is None:
            moved = _insert_ignore(session, WitnessedLog, {"origin": checkpoint.origin, **values})
        else:
            moved = session.execute(
                update(WitnessedLog)
                .where(
                    WitnessedLog.origin == checkpoint.origin,
                    WitnessedLog.tree_size == known,
                    WitnessedLog.root_hash == stored_root,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
        if moved != 1:  # another request advanced the log since we read it
            current = session.execute(
                select(WitnessedLog.tree_size).where(WitnessedLog.origin == checkpoint.origin)
            ).scalar_one_or_none()
            raise StaleOldSizeError(int(current or 0))

    def _report_fork(self, checkpoint: Checkpoint, note: str, exc: CheckpointForkError) -> None:
        """Keep the proof of a fork: both log-signed notes, in a critical alert."""
        if self._alerts is None:
            return
        with self._db.read() as session:
            state = session.get(WitnessedLog, checkpoint.origin)
            cosigned_note = state.note if state is not None else None
        self._alerts.raise_alert(
            "witness.log-fork",
            severity="critical",
            title=f"The log {checkpoint.origin} signed two different trees of size "
            f"{checkpoint.size}",
            details={
                "origin": checkpoint.origin,
                "tree_size": checkpoint.size,
                "root_hash": _b64(checkpoint.root_hash),
                "reason": exc.detail,
                "cosigned_checkpoint": cosigned_note,
                "conflicting_checkpoint": note,
            },
            subject={"origin": checkpoint.origin, "tree_size": checkpoint.size},
        )

    # -- what we witnessed --------------------------------------------------------------------

    def logs(self) -> list[WitnessedLogState]:
        """The latest cosigned checkpoint of every log this witness has cosigned."""
        with self._db.read() as session:
            rows = session.execute(select(WitnessedLog).order_by(WitnessedLog.origin)).scalars()
            return [
                WitnessedLogState(
                    row.origin, int(row.tree_size), bytes(row.root_hash), row.cosigned_at, row.note
                )
                for row in rows
            ]


def _check_step(
    request: AddCheckpointRequest, checkpoint: Checkpoint, stored_root: bytes | None
) -> None:
    """The spec's proof rules for moving from the stored checkpoint to ``checkpoint``."""
    old, size = request.old_size, checkpoint.size
    if old == 0:
        if request.proof:
            raise ProofError("the consistency proof must be empty when the old size is 0")
        if size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise ProofError("a checkpoint of the empty tree must have the empty root")
        return
    assert stored_root is not None  # old == known > 0, so a row exists
    if old == size:
        if request.proof:
            raise ProofError("the consistency proof must be empty when the sizes are equal")
        if not hmac.compare_digest(stored_root, checkpoint.root_hash):
            raise CheckpointForkError(
                f"a checkpoint of size {size} with a different root was already cosigned"
            )
        return
    verify_consistency(old, size, stored_root, checkpoint.root_hash, request.proof)


def _key_context(name: str, public_key: bytes) -> bytes:
    """AAD binding the sealed witness key (and its wrapped data key) to its row."""
    return encode_fields("pactvault/witness-key/v1", name, public_key)


def _insert_ignore(session: Session, model: Any, row: dict[str, Any]) -> int:
    """INSERT … ON CONFLICT DO NOTHING (both databases); 1 if the row went in, else 0.

    Counted with RETURNING: psycopg reports ``rowcount`` -1 for this statement."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = model.__table__
    statement = (
        dialect.insert(table)
        .values(**row)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return len(session.execute(statement).all())


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
