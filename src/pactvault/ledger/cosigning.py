"""Having our checkpoints witnessed: asking the configured witnesses to cosign them (tlog-witness).

After a checkpoint is published, :meth:`CosigningService.run_due` (on the maintenance schedule, or
``pactvault ledger witness request``) sends it to every configured witness that has not cosigned
it yet, with a consistency proof from the size that witness last cosigned. A witness that answers
409 with a ``text/x.tlog.size`` body knows another size (it restarted, or we lost track): we
retry at once from that size. Every returned cosignature is verified with the witness key from
our configuration before it is stored; anything else is ignored, as the spec requires.

Failures never block the ledger: appending and publishing do not wait for witnesses, a witness
that is down is recorded (a short reason, never its URL or answer) and asked again on the next
round. Two answers are not failures but alarms, raised as critical alerts: a witness holding a
*different* root for a size we published (our log was forked, or the witness was), and a witness
that cosigned a *larger* tree than our latest checkpoint (our database was rolled back, e.g.
restored from an old backup).

``quorum`` is how many of the configured witnesses should cosign each checkpoint (default: all of
them); the log cannot impose a policy on its clients, so it only reports whether it is met.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pactvault import __version__
from pactvault.errors import InvalidInputError, PactvaultError
from pactvault.ledger.cosignatures import StoredCosignature, cosignatures_of, record_cosignature
from pactvault.ledger.errors import NoteError
from pactvault.ledger.note import NoteSignature, parse_note
from pactvault.ledger.publish import CheckpointStore, PublishedCheckpoint
from pactvault.ledger.service import LedgerService
from pactvault.ledger.witness import CosignatureVerifier, cosignature_time, parse_cosigner_key
from pactvault.ledger.witnessing import SIZE_CONTENT_TYPE, AlertSink, add_checkpoint_body
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.witness_models import LedgerCosignature, LedgerWitnessState

__all__ = [
    "CosignOutcome",
    "CosigningReport",
    "CosigningService",
    "WitnessEndpoint",
    "WitnessStatus",
    "parse_witnesses",
]

MAX_RESPONSE_BYTES = 64 * 1024
MAX_CLOCK_SKEW = timedelta(hours=1)  # cosignatures dated later than this are refused
_ATTEMPTS = 3  # one request, plus retries after a 409 told us the witness's size
_SIZE = re.compile(r"(0|[1-9][0-9]{0,19})\n")


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness we ask: its cosigner key (type 0x04) and its submission prefix URL."""

    verifier: CosignatureVerifier
    url: str

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def key(self) -> tuple[str, int]:
        return self.verifier.name, self.verifier.key_id

    @classmethod
    def parse(cls, entry: str) -> WitnessEndpoint:
        """``<witness vkey> <submission prefix URL>``, e.g. ``w.example/witness+1a2b3c4d+BASE64
        https://w.example/api/v1/witness``."""
        parts = entry.split()
        if len(parts) != 2:
            raise InvalidInputError(
                "PACTVAULT_LEDGER_WITNESSES: each witness is '<verifier key> <URL>'"
            )
        vkey, url = parts
        try:
            verifier = parse_cosigner_key(vkey)
        except NoteError as exc:
            raise InvalidInputError(
                f"PACTVAULT_LEDGER_WITNESSES: not a witness (cosigner) key: {exc.detail}"
            ) from None
        return cls(verifier, _check_url(verifier.name, url))


def parse_witnesses(entries: Sequence[str]) -> tuple[WitnessEndpoint, ...]:
    witnesses = tuple(WitnessEndpoint.parse(entry) for entry in entries if entry.strip())
    names = [w.name for w in witnesses]
    if len(set(names)) != len(names):
        raise InvalidInputError("PACTVAULT_LEDGER_WITNESSES names a witness twice")
    return witnesses


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"the URL of witness {name} must be an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInputError(
            f"the URL of witness {name} must be a plain prefix (no credentials, query or fragment)"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class CosignOutcome:
    """How asking one witness went."""

    witness: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CosigningReport:
    """The latest checkpoint, who cosigned it, and what this round did (if anything)."""

    checkpoint: PublishedCheckpoint | None
    cosignatures: tuple[StoredCosignature, ...]
    quorum: int
    outcomes: tuple[CosignOutcome, ...] = ()

    @property
    def cosigned_by(self) -> tuple[str, ...]:
        return tuple(c.signature.name for c in self.cosignatures)

    @property
    def quorum_met(self) -> bool:
        return len(self.cosignatures) >= self.quorum


@dataclass(frozen=True)
class WitnessStatus:
    name: str
    url: str
    verifier_key: str
    cosigned_size: int
    cosigned_latest: bool
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failures: int


class _Refused(Exception):
    """Asking a witness failed; ``detail`` says why (short, no URL, no response body)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CosigningService:
    """Collects witness cosignatures for the ledger's checkpoints."""

    def __init__(
        self,
        db: Database,
        ledger: LedgerService,
        witnesses: Sequence[WitnessEndpoint] = (),
        *,
        quorum: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        alerts: AlertSink | None = None,
    ) -> None:
        self.witnesses = tuple(witnesses)
        self.quorum = len(self.witnesses) if quorum is None else quorum
        if not 0 <= self.quorum <= len(self.witnesses):
            raise InvalidInputError(
                f"the witness quorum must be between 0 and the {len(self.witnesses)} configured "
                "witnesses"
            )
        self._db = db
        self._ledger = ledger
        self._store = CheckpointStore(ledger.origin)
        self._clock = clock
        self._alerts = alerts
        self._own_client = client is None
        if client is None and self.witnesses:  # made here: rounds use it from several threads
            client = httpx.Client(
                timeout=timeout,
                follow_redirects=False,
                headers={"user-agent": f"pactvault/{__version__} (ledger cosigning)"},
            )
        self._client = client

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    # -- the round ----------------------------------------------------------------------------

    def run_due(self) -> CosigningReport | None:
        """Ask every witness that has not cosigned the latest checkpoint; None if there are no
        witnesses or no checkpoint. Never raises for a witness's failure: it is recorded."""
        if not self.witnesses:
            return None
        with self._db.read() as session:
            latest = self._store.latest(session)
            if latest is None:
                return None
            done = _cosigned_seq(session, latest.seq)
        wanted = [w for w in self.witnesses if w.key not in done]
        if len(wanted) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
                outcomes = list(pool.map(lambda w: self._ask(w, latest), wanted))
        else:
            outcomes = [self._ask(w, latest) for w in wanted]
        return self._report(latest, tuple(outcomes))

    def report(self) -> CosigningReport | None:
        """The latest checkpoint and its cosignatures from configured witnesses (no network)."""
        with self._db.read() as session:
            latest = self._store.latest(session)
        return None if latest is None else self._report(latest, ())

    def _report(
        self, latest: PublishedCheckpoint, outcomes: tuple[CosignOutcome, ...]
    ) -> CosigningReport:
        trusted = {w.key for w in self.witnesses}
        with self._db.read() as session:
            held = cosignatures_of(session, latest.checkpoint)
        mine = tuple(c for c in held if (c.signature.name, c.signature.key_id) in trusted)
        return CosigningReport(latest, mine, self.quorum, outcomes)

    def status(self) -> list[WitnessStatus]:
        """Each configured witness: what it last cosigned for us and how the last request went."""
        with self._db.read() as session:
            latest = self._store.latest(session)
            done = _cosigned_seq(session, latest.seq) if latest is not None else set()
            rows = {
                (row.witness_name, int(row.witness_key_id)): row
                for row in session.execute(select(LedgerWitnessState)).scalars()
            }
        out = []
        for witness in self.witnesses:
            row = rows.get(witness.key)
            out.append(
                WitnessStatus(
                    name=witness.name,
                    url=witness.url,
                    verifier_key=witness.verifier.key_string(),
                    cosigned_size=int(row.cosigned_size) if row else 0,
                    cosigned_latest=witness.key in done,
                    last_attempt_at=row.last_attempt_at if row else None,
                    last_success_at=row.last_success_at if row else None,
                    last_error=row.last_error if row else None,
                    failures=int(row.failures) if row else 0,
                )
            )
        return out

    # -- one witness --------------------------------------------------------------------------

    def _ask(self, witness: WitnessEndpoint, published: PublishedCheckpoint) -> CosignOutcome:
        try:
            signature = self._request(witness, published)
        except _Refused as exc:
            self._save(witness, error=exc.detail)
            return CosignOutcome(witness.name, False, exc.detail)
        except PactvaultError as exc:  # e.g. no consistency proof for a size we never had
            self._save(witness, error=exc.detail)
            return CosignOutcome(witness.name, False, exc.detail)
        with self._db.write() as session:
            record_cosignature(session, published, signature, self._clock())
            self._save_in(session, witness, size=published.checkpoint.size, error=None)
        return CosignOutcome(witness.name, True, f"cosigned size {published.checkpoint.size}")

    def _request(self, witness: WitnessEndpoint, published: PublishedCheckpoint) -> NoteSignature:
        checkpoint = published.checkpoint
        known = self._known_size(witness)
        for _ in range(_ATTEMPTS):
            if known > checkpoint.size:
                self._alarm_ahead(witness, known, checkpoint.size)
                raise _Refused(
                    f"the witness has cosigned size {known} of this log, more than our latest "
                    f"checkpoint ({checkpoint.size}): was the ledger restored from a backup?"
                )
            proof: tuple[bytes, ...] = ()
            if 0 < known < checkpoint.size:
                proof = self._ledger.consistency_proof(known, checkpoint.size).hashes
            status, content_type, content = self._post(
                witness, add_checkpoint_body(known, proof, published.note)
            )
            if status == 200:
                return self._verified(witness, published, content)
            if status == 409 and content_type == SIZE_CONTENT_TYPE:
                told = _SIZE.fullmatch(content.decode("ascii", "replace"))
                if told is None:
                    raise _Refused("the witness answered 409 with a malformed size")
                if int(told.group(1)) == known:
                    raise _Refused(f"the witness refused old size {known} but reports it back")
                known = int(told.group(1))
                self._save(witness, size=known, error=None, attempt=False)
                continue
            if status == 409:
                self._alarm_conflict(witness, checkpoint.size)
                raise _Refused(
                    f"the witness holds a different tree of size {checkpoint.size}: possible fork"
                )
            raise _Refused(f"the witness answered HTTP {status}")
        raise _Refused("the witness kept reporting other sizes")

    def _post(self, witness: WitnessEndpoint, body: bytes) -> tuple[int, str, bytes]:
        client = self._client
        if client is None:
            raise _Refused("the cosigning service is closed")
        try:
            with client.stream("POST", witness.url + "/add-checkpoint", content=body) as response:
                content = bytearray()
                for chunk in response.iter_bytes():
                    content += chunk
                    if len(content) > MAX_RESPONSE_BYTES:
                        raise _Refused("the witness's answer is too large")
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                return response.status_code, media_type.lower(), bytes(content)
        except httpx.HTTPError as exc:
            # The class name says what failed (timeout, refused, TLS) without echoing the URL.
            raise _Refused(f"the witness could not be reached ({type(exc).__name__})") from None

    def _verified(
        self, witness: WitnessEndpoint, published: PublishedCheckpoint, content: bytes
    ) -> NoteSignature:
        """The witness's cosignature from a 200 answer, checked with its configured key."""
        try:
            lines = content.decode("utf-8")
            note = parse_note(published.note + lines)
        except (UnicodeDecodeError, NoteError):
            raise _Refused("the witness's answer is not a list of signature lines") from None
        body = published.checkpoint.body().encode("utf-8")
        for signature in note.signatures:
            if (signature.name, signature.key_id) != witness.key:
                continue  # other keys of the witness, or anything else: ignored
            if not witness.verifier.verify(body, signature.signature):
                raise _Refused("the witness's cosignature does not verify with its key")
            stamped = datetime.fromtimestamp(cosignature_time(signature), UTC)
            if stamped > self._clock() + MAX_CLOCK_SKEW:
                raise _Refused("the witness's cosignature is dated in the future")
            return signature
        raise _Refused("the witness's answer holds no cosignature by its configured key")

    # -- state --------------------------------------------------------------------------------

    def _known_size(self, witness: WitnessEndpoint) -> int:
        with self._db.read() as session:
            row = session.get(LedgerWitnessState, witness.key)
            return int(row.cosigned_size) if row is not None else 0

    def _save(
        self,
        witness: WitnessEndpoint,
        *,
        size: int | None = None,
        error: str | None,
        attempt: bool = True,
    ) -> None:
        with self._db.write() as session:
            self._save_in(session, witness, size=size, error=error, attempt=attempt)

    def _save_in(
        self,
        session: Session,
        witness: WitnessEndpoint,
        *,
        size: int | None,
        error: str | None,
        attempt: bool = True,
    ) -> None:
        now = self._clock()
        row = session.get(LedgerWitnessState, witness.key, with_for_update=True)
        values: dict[str, Any] = {}
        if size is not None:
            values["cosigned_size"] = size
        if attempt:
            values["last_attempt_at"] = now
            values["last_error"] = error[:300] if error else None
            if error is None:
                values["last_success_at"] = now
                values["failures"] = 0
            else:
                values["failures"] = (int(row.failures) if row else 0) + 1
        if row is None:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            session.execute(
                dialect.insert(LedgerWitnessState)
                .values(
                    witness_name=witness.name,
                    witness_key_id=witness.verifier.key_id,
                    cosigned_size=values.pop("cosigned_size", 0),
                    failures=values.pop("failures", 0),
                    **values,
                )
                .on_conflict_do_nothing()
            )
        else:
            for name, value in values.items():
                setattr(row, name, value)
            session.flush()

    # -- alarms -------------------------------------------------------------------------------

    def _alarm_conflict(self, witness: WitnessEndpoint, size: int) -> None:
        if self._alerts is not None:
            self._alerts.raise_alert(
                "ledger.witness-conflict",
                severity="critical",
                title=f"Witness {witness.name} holds a different ledger tree of size {size}",
                details={"witness": witness.name, "origin": self._ledger.origin, "tree_size": size},
                subject={"witness": witness.name, "tree_size": size},
            )

    def _alarm_ahead(self, witness: WitnessEndpoint, known: int, size: int) -> None:
        if self._alerts is not None:
            self._alerts.raise_alert(
                "ledger.witness-ahead",
                severity="critical",
                title=f"Witness {witness.name} has cosigned a larger ledger than ours "
                f"({known} > {size} leaves)",
                details={
                    "witness": witness.name,
                    "origin": self._ledger.origin,
                    "witness_size": known,
                    "latest_checkpoint_size": size,
                },
                subject={"witness": witness.name, "witness_size": known},
            )


def _cosigned_seq(session: Session, seq: int) -> set[tuple[str, int]]:
    """Witness keys holding a stored cosignature of publication ``seq``."""
    rows = session.execute(
        select(LedgerCosignature.witness_name, LedgerCosignature.witness_key_id).where(
            LedgerCosignature.checkpoint_seq == seq
        )
    ).all()
    return {(name, int(key_id)) for name, key_id in rows}
