"""The personal data vault: field-level encryption, masking by clearance, keyed-hash search.

Each personal-data value (a name, an ID number, a mobile number, a bank card, an email address)
is one row of ``personal_data``:

- the **normalised** value (``realname.identifiers``), sealed with AES-256-GCM under a fresh data
  key that the organisation's KEK wraps; the associated data binds it to organisation, row id and
  kind (``crypto.fields.field_context``), so a ciphertext moved elsewhere does not open;
- a **keyed hash** for exact-match search: HMAC-SHA256 under an index key derived (HKDF) from the
  organisation's *index root key* for that kind. The root key is a random 256-bit data key stored
  only wrapped by the organisation's KEK (``personal_data_index_keys``) and created on first use.
  Per organisation rather than one platform secret, so that destroying a tenant's KEK also
  destroys its search index: a plain or platform-keyed hash of an ID number would stay
  brute-forceable long after the data it pointed to was erased;
- a **level** (``access.classification``); each kind has a floor (``MINIMUM_LEVELS``) that a
  caller may raise but never lower.

Reading: a caller whose clearance covers the level — or the person the data is about — gets the
plaintext, and that read is written to the audit journal (kind, level, purpose; never the value);
everyone else gets the masked form. Searching needs clearance for the kind (a search is itself an
oracle: "is this ID number one of ours?") and is audited with the number of matches.

Methods come in two shapes: ``put``/``reveal``/``matching``/``matches`` work inside the caller's
transaction (other services compose them into their own units of work); ``store``/``read``/
``find_by`` are complete, authorised units of work for interfaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.access.classification import Level, can_see, level_of, mask, require_clearance
from pactvault.access.decision import AccessControl, require
from pactvault.audit.journal import Actor, record
from pactvault.crypto.fields import (
    derive_index_key,
    field_context,
    index_root_context,
    keyed_hash,
    open_field,
    seal_field,
)
from pactvault.crypto.hashing import equal
from pactvault.errors import InvalidInputError, KeyServiceError, NotFoundError
from pactvault.identity.principal import Principal
from pactvault.identity.realname.identifiers import PERSONAL_DATA_KINDS, normalise
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.store.base import utcnow
from pactvault.store.db import Database
from pactvault.store.realname_models import PersonalDataField, PersonalDataIndexKey, new_id

__all__ = [
    "MINIMUM_LEVELS",
    "OWNER_TYPES",
    "FieldRef",
    "FieldView",
    "IndexKeyring",
    "Owner",
    "PersonalDataService",
]

OWNER_TYPES: tuple[str, ...] = ("user", "signer")

#: The lowest level each kind may be stored at (and its default). Financial account numbers are
#: the most sensitive (JR/T 0171-2020 puts them in its highest class); ID and mobile numbers
#: identify a person outright; names and email addresses are shared at work every day.
MINIMUM_LEVELS: Mapping[str, Level] = MappingProxyType(
    {
        "name": Level.INTERNAL,
        "email": Level.INTERNAL,
        "phone": Level.CONFIDENTIAL,
        "id_number": Level.CONFIDENTIAL,
        "bank_card": Level.SECRET,
    }
)
NOT_FOUND = "personal data not found"


@dataclass(frozen=True)
class Owner:
    """Whom a value is about: an account (``user``) or an external signer (``signer``)."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if self.type not in OWNER_TYPES:
            raise InvalidInputError(f"owner type must be one of: {', '.join(OWNER_TYPES)}")
        if not isinstance(self.id, str) or not 0 < len(self.id) <= 36:
            raise InvalidInputError("owner id must be 1 to 36 characters")


@dataclass(frozen=True)
class FieldRef:
    """What may be known about a stored value without reading it."""

    id: str
    org_id: str
    owner: Owner
    kind: str
    level: str
    created_at: datetime


@dataclass(frozen=True)
class FieldView:
    """A value as one reader may see it: plaintext, or masked when ``masked`` is true."""

    id: str
    kind: str
    level: str
    value: str = field(repr=False)
    masked: bool


def _ref(row: PersonalDataField) -> FieldRef:
    return FieldRef(
        row.id, row.org_id, Owner(row.owner_type, row.owner_id), row.kind, row.level, row.created_at
    )


def _kind(kind: str) -> str:
    if kind not in PERSONAL_DATA_KINDS:
        raise InvalidInputError(
            f"personal data kind must be one of: {', '.join(PERSONAL_DATA_KINDS)}"
        )
    return kind


class IndexKeyring:
    """Per-organisation, per-kind search keys, derived from a wrapped index root key."""

    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    def key(self, session: Session, org_id: str, kind: str, *, create: bool) -> bytes | None:
        """The HMAC key for ``kind`` in ``org_id``; ``None`` if the organisation has none yet and
        ``create`` is false (then nothing of that organisation can match a search either)."""
        root = self._root(session, org_id, create=create)
        if root is None:
            return None
        return derive_index_key(root, org_id=org_id, kind=_kind(kind))

    def _root(self, session: Session, org_id: str, *, create: bool) -> bytes | None:
        context = index_root_context(org_id=org_id)
        row = session.get(PersonalDataIndexKey, org_id)
        if row is None:
            if not create:
                return None
            root, wrapped = self._keys.new_data_key(session, org_id, aad=context)
            try:
                # A savepoint, so that losing a creation race to another process (PostgreSQL:
                # unique violation on the primary key) leaves our transaction usable.
                with session.begin_nested():
                    session.add(
                        PersonalDataIndexKey(
                            org_id=org_id, wrapped_key=wrapped.to_bytes(), created_at=utcnow()
                        )
                    )
                return root
            except sqlalchemy.exc.IntegrityError:
                row = session.get(PersonalDataIndexKey, org_id)
                if row is None:
                    raise
        return self._keys.unwrap_data_key(
            session, org_id, WrappedKey.from_bytes(row.wrapped_key), aad=context
        )


class PersonalDataService:
    """Encrypted storage of personal data with masking and audited plaintext reads."""

    def __init__(
        self,
        db: Database,
        keys: KeyService,
        access: AccessControl,
        *,
        index_keys: IndexKeyring | None = None,
    ) -> None:
        self._db = db
        self._keys = keys
        self._access = access
        self._index = index_keys or IndexKeyring(keys)

    # -- inside the caller's transaction ---------------------------------------------------

    def put(
        self,
        session: Session,
        actor: Actor,
        *,
        org_id: str,
        owner: Owner,
        kind: str,
        value: str,
        level: str | Level | None = None,
    ) -> FieldRef:
        """Validate, normalise, encrypt and index one value; audited (without the value)."""
        normalised = normalise(_kind(kind), value)
        floor = MINIMUM_LEVELS[kind]
        chosen = floor if level is None else level_of(level)
        if chosen < floor:
            raise InvalidInputError(f"{kind} must be classified {floor.label} or higher")
        row_id = new_id()
        context = field_context(org_id=org_id, record_id=row_id, kind=kind)
        data_key, wrapped = self._keys.new_data_key(session, org_id, aad=context)
        ciphertext = seal_field(data_key, normalised, context=context)
        del data_key
        index_key = self._index.key(session, org_id, kind, create=True)
        if index_key is None:  # create=True always yields a key; never index without one
            raise KeyServiceError("no search index key could be created")
        row = PersonalDataField(
            id=row_id,
            org_id=org_id,
            owner_type=owner.type,
            owner_id=owner.id,
            kind=kind,
            level=chosen.label,
            ciphertext=ciphertext,
            wrapped_key=wrapped.to_bytes(),
            search_hash=keyed_hash(index_key, normalised),
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor,
            "personal_data.store",
            object_type="personal_data",
            object_id=row_id,
            org_id=org_id,
            details={
                "kind": kind,
                "level": chosen.label,
                "owner_type": owner.type,
                "owner_id": owner.id,
            },
        )
        return _ref(row)

    def reveal(
        self,
        session: Session,
        actor: Actor,
        *,
        org_id: str,
        field_id: str,
        clearance: str | Level,
        purpose: str,
        reader_user_id: str | None = None,
    ) -> FieldView:
        """The value as this reader may see it. Plaintext (audited) if ``clearance`` covers the
        level or ``reader_user_id`` is the person the value is about; masked otherwise."""
        row = self._row(session, org_id, field_id)
        value = self._decrypt(session, row)
        is_self = reader_user_id is not None and (row.owner_type, row.owner_id) == (
            "user",
            reader_user_id,
        )
        if not (is_self or can_see(clearance, row.level)):
            return FieldView(row.id, row.kind, row.level, mask(row.kind, value), masked=True)
        record(
            session,
            actor,
            "personal_data.read",
            object_type="personal_data",
            object_id=row.id,
            org_id=org_id,
            details={
                "kind": row.kind,
                "level": row.level,
                "purpose": purpose[:100],
                "own_data": is_self,
            },
        )
        return FieldView(row.id, row.kind, row.level, value, masked=False)

    def matching(self, session: Session, *, org_id: str, kind: str, value: str) -> list[FieldRef]:
        """Every stored ``kind`` value of ``org_id`` equal (after normalisation) to ``value``."""
        normalised = normalise(_kind(kind), value)
        index_key = self._index.key(session, org_id, kind, create=False)
        if index_key is None:
            return []
        rows = session.execute(
            select(PersonalDataField)
            .where(
                PersonalDataField.org_id == org_id,
                PersonalDataField.kind == kind,
                PersonalDataField.search_hash == keyed_hash(index_key, normalised),
            )
            .order_by(PersonalDataField.created_at, PersonalDataField.id)
        ).scalars()
        return [_ref(row) for row in rows]

    def matches(self, session: Session, *, org_id: str, field_id: str, value: str) -> bool:
        """Whether the stored value equals ``value``, compared by keyed hash in constant time.

        A value that is not even valid for the field's kind simply does not match.
        """
        row = self._row(session, org_id, field_id)
        try:
            normalised = normalise(row.kind, value)
        except InvalidInputError:
            return False
        index_key = self._index.key(session, org_id, row.kind, create=False)
        return index_key is not None and equal(keyed_hash(index_key, normalised), row.search_hash)

    def ref(self, session: Session, *, org_id: str, field_id: str) -> FieldRef:
        return _ref(self._row(session, org_id, field_id))

    # -- complete units of work -----------------------------------------------------------

    def store(
        self,
        principal: Principal,
        *,
        owner: Owner,
        kind: str,
        value: str,
        level: str | Level | None = None,
        actor: Actor | None = None,
    ) -> FieldRef:
        """Store a value about oneself, or (with ``member.manage``) about anyone of the org."""
        actor = actor or principal.actor()
        with (
            self._access.guard(actor, "personal_data.store", object_type="personal_data"),
            self._db.write() as session,
        ):
            if principal.user_id is None or owner != Owner("user", principal.user_id):
                require(principal, "member.manage")
            return self.put(
                session,
                actor,
                org_id=principal.org_id,
                owner=owner,
                kind=kind,
                value=value,
                level=level,
            )

    def read(
        self,
        principal: Principal,
        field_id: str,
        *,
        clearance: str | Level,
        purpose: str = "view",
        actor: Actor | None = None,
    ) -> FieldView:
        """One value, plaintext or masked by ``clearance``; others' data needs ``member.read``."""
        actor = actor or principal.actor()
        level_of(clearance)
        with (
            self._access.guard(
                actor, "personal_data.read", object_type="personal_data", object_id=field_id
            ),
            self._db.write() as session,
        ):
            row = self._row(session, principal.org_id, field_id)
            if (row.owner_type, row.owner_id) != ("user", principal.user_id):
                require(principal, "member.read")
            return self.reveal(
                session,
                actor,
                org_id=principal.org_id,
                field_id=field_id,
                clearance=clearance,
                purpose=purpose,
                reader_user_id=principal.user_id,
            )

    def find_by(
        self,
        principal: Principal,
        kind: str,
        value: str,
        *,
        clearance: str | Level,
        actor: Actor | None = None,
    ) -> list[FieldRef]:
        """Exact-match search (keyed hash). Needs ``member.read`` and clearance for the kind."""
        actor = actor or principal.actor()
        floor = MINIMUM_LEVELS[_kind(kind)]
        with (
            self._access.guard(actor, "personal_data.search", object_type="personal_data"),
            self._db.write() as session,
        ):
            require(principal, "member.read")
            require_clearance(clearance, floor, f"searching by {kind}")
            found = self.matching(session, org_id=principal.org_id, kind=kind, value=value)
            record(
                session,
                actor,
                "personal_data.search",
                object_type="personal_data",
                details={"kind": kind, "matches": len(found)},
            )
            return found

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, org_id: str, field_id: str) -> PersonalDataField:
        row = session.get(PersonalDataField, field_id) if isinstance(field_id, str) else None
        if row is None or row.org_id != org_id:
            raise NotFoundError(NOT_FOUND)
        return row

    def _decrypt(self, session: Session, row: PersonalDataField) -> str:
        context = field_context(org_id=row.org_id, record_id=row.id, kind=row.kind)
        data_key = self._keys.unwrap_data_key(
            session, row.org_id, WrappedKey.from_bytes(row.wrapped_key), aad=context
        )
        return open_field(data_key, row.ciphertext, context=context)
