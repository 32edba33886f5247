"""Real-name verification: start a check, keep its evidence, decide it, and answer "who is this?".

A verification moves ``pending`` → ``verified`` | ``rejected`` | ``expired`` (a pending check not
decided before its deadline, or replaced before its documents came — see below), and
``verified`` → ``expired`` when its validity ends. Nothing else:
a decided verification is never reopened; a new check is a new verification.

Flow of :meth:`VerificationService.start_for_user` / :meth:`~VerificationService.start_for_signer`:

1. validate and normalise the claim (fails before anything is stored or sent);
2. one transaction: the claimed name, ID number, phone, bank card and (for signers) email go
   into the personal-data vault, encrypted; uploaded document images and the face capture into
   the encrypted blob store as evidence; the ``pending`` row; the audit entry;
3. the provider is called **outside** any transaction (remote checks can take seconds, and an
   open SQLite write transaction would stall every other writer meanwhile);
4. one transaction: the provider's answer, its evidence, the new status, the audit entry.

A provider that fails is recorded as a rejection ("provider error") and the caller gets a
:class:`VerificationError`; a provider that claims more assurance than its check can justify is
recorded as rejected too. Answers that come later (``pending``) arrive through
:meth:`~VerificationService.record_result` (providers' callbacks) or, for the built-in
administrator review, :meth:`~VerificationService.review`, which enforces four-eyes.

Evidence files are kept by ``realname.evidence`` (encrypted, salted, cleaned up on failure).

A document check may also start *without* its documents (``documents_later=True``): a person
fills in the form first and photographs their ID card next. Such a check is ``pending`` and
*awaiting documents* (no ``id-document-*`` evidence yet); the provider is asked only when
:meth:`~VerificationService.submit_documents` brings them, once, and nobody can review it
before. Starting again while a check still awaits its documents replaces it (it is closed as
``expired``, audited), so a typo in the form never locks a person out for the review window.

Reviewing and reading other people's verifications needs ``identity.review`` (owners and
administrators hold it; a custom role can grant it alone).

The audit journal records who did what to which verification, never personal data: no names,
numbers or reviewer comments (the journal is permanent; comments may name people).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.access.classification import Level, level_of, mask, require_clearance
from pactvault.access.decision import AccessControl, require
from pactvault.audit.journal import Actor, record
from pactvault.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    VerificationError,
)
from pactvault.identity.members import normalise_email
from pactvault.identity.personal_data import FieldView, Owner, PersonalDataService
from pactvault.identity.principal import Principal
from pactvault.identity.realname.admin_review import ADMIN_REVIEW, AdminReviewProvider
from pactvault.identity.realname.evidence import EvidenceFiles
from pactvault.identity.realname.identifiers import normalise
from pactvault.identity.realname.providers import (
    CHECK_CEILING,
    DOCUMENT_SIDES,
    MAX_DOCUMENTS,
    IdDocument,
    IdentityProvider,
    ProviderConfigurationError,
    ProviderResult,
    VerificationRequest,
    assurance_rank,
    provider_table,
)
from pactvault.identity.realname.subjects import Subject, VerifiedIdentity
from pactvault.store.base import utcnow
from pactvault.store.blobs import EncryptedBlobStore, StoredObject
from pactvault.store.db import Database
from pactvault.store.identity_models import User
from pactvault.store.models import Signer
from pactvault.store.realname_models import IdentityVerification, VerificationEvidence, new_id

__all__ = [
    "REVIEW",
    "EvidenceInfo",
    "IdentityClaim",
    "ProviderInfo",
    "ReviewPacket",
    "SubjectStatus",
    "VerificationInfo",
    "VerificationService",
]

NOT_FOUND = "verification not found"
OBJECT_TYPE = "identity_verification"
#: The permission to review, and to read, other people's verifications.
REVIEW = "identity.review"
STATUSES: tuple[str, ...] = ("pending", "verified", "rejected", "expired")
DOCUMENT_EVIDENCE = "id-document-"
MAX_LISTED = 200
REVIEW_WINDOW = timedelta(days=7)
VALIDITY = timedelta(days=365)
MAX_FACE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class IdentityClaim:
    """What the subject declares and supplies; which parts are needed depends on the check."""

    name: str = field(repr=False)
    id_number: str = field(repr=False)
    phone: str | None = field(default=None, repr=False)
    bank_card: str | None = field(default=None, repr=False)
    face_image: bytes | None = field(default=None, repr=False)
    documents: tuple[IdDocument, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class VerificationInfo:
    id: str
    org_id: str
    subject_type: str
    subject_id: str
    provider: str
    method: str
    status: str
    assurance_level: str | None
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime
    #: A document check started without its documents, still waiting for them.
    awaiting_documents: bool = False


@dataclass(frozen=True)
class EvidenceInfo:
    id: str
    kind: str
    media_type: str
    size: int
    created_at: datetime


@dataclass(frozen=True)
class ReviewPacket:
    """What a reviewer looks at: the claim (plaintext or masked by clearance) and the evidence."""

    verification: VerificationInfo
    name: FieldView
    id_number: FieldView
    evidence: list[EvidenceInfo]


@dataclass(frozen=True)
class SubjectStatus:
    """A verification as its subject sees it: the claim masked, whatever their clearance.

    The person knows what they typed; showing it masked keeps it off screens and out of logs
    of whatever displays this (the same rule as the certificate's masked ID number).
    """

    verification: VerificationInfo
    name: str
    id_number: str
    phone: str | None
    documents: tuple[str, ...]  # the uploaded sides, e.g. ("front", "back")


@dataclass(frozen=True)
class ProviderInfo:
    """A configured identity provider and the checks it offers."""

    name: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class _Checked:
    """A normalised claim, ready to be stored and sent."""

    name: str
    id_number: str
    phone: str | None
    bank_card: str | None
    face_image: bytes | None
    documents: tuple[IdDocument, ...]


def _info(row: IdentityVerification, *, awaiting: bool = False) -> VerificationInfo:
    return VerificationInfo(
        id=row.id,
        org_id=row.org_id,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        provider=row.provider,
        method=row.method,
        status=row.status,
        assurance_level=row.assurance_level,
        reason=row.reason,
        created_at=row.created_at,
        decided_at=row.decided_at,
        expires_at=row.expires_at,
        awaiting_documents=awaiting,
    )


def _check_documents(documents: object) -> tuple[IdDocument, ...]:
    """Uploaded ID document images: at least the front, one front and one back at most."""
    if isinstance(documents, str | bytes) or not isinstance(documents, Iterable):
        raise InvalidInputError("ID document images must be uploaded as IdDocument")
    checked = tuple(documents)
    if not all(isinstance(document, IdDocument) for document in checked):
        raise InvalidInputError("ID document images must be uploaded as IdDocument")
    sides = [document.side for document in checked]
    if "front" not in sides:
        raise InvalidInputError("upload at least the front of the ID document")
    if sides.count("front") > 1 or sides.count("back") > 1:
        raise InvalidInputError("upload one image of each side of the ID document")
    if len(checked) > MAX_DOCUMENTS:
        raise InvalidInputError(f"upload at most {MAX_DOCUMENTS} document images")
    return checked


def _check_claim(check: str, claim: IdentityClaim, *, documents_later: bool = False) -> _Checked:
    """Everything the check needs, validated; nothing it does not need is kept."""
    if not isinstance(claim, IdentityClaim):
        raise InvalidInputError("an identity claim is required")
    if documents_later and check != "document":
        raise InvalidInputError("only a document check takes its documents later")
    if documents_later and claim.documents:
        raise InvalidInputError("documents sent later must not also come with the claim")
    needs_phone = check in ("id_number", "bank_card")
    if needs_phone and not claim.phone:
        raise InvalidInputError("this check needs the mobile number")
    if check == "bank_card" and not claim.bank_card:
        raise InvalidInputError("this check needs the bank card number")
    if check == "face_liveness" and not claim.face_image:
        raise InvalidInputError("this check needs a live face capture")
    if claim.face_image is not None and len(claim.face_image) > MAX_FACE_BYTES:
        raise InvalidInputError(f"the face capture may be at most {MAX_FACE_BYTES} bytes")
    documents = tuple(claim.documents) if check == "document" else ()
    if not all(isinstance(document, IdDocument) for document in documents):
        raise InvalidInputError("ID document images must be uploaded as IdDocument")
    if check == "document" and not documents_later:
        if not any(document.side == "front" for document in documents):
            raise InvalidInputError("upload at least the front of the ID document")
        if len(documents) > MAX_DOCUMENTS:
            raise InvalidInputError(f"upload at most {MAX_DOCUMENTS} document images")
    return _Checked(
        name=normalise("name", claim.name),
        id_number=normalise("id_number", claim.id_number),
        phone=normalise("phone", claim.phone) if needs_phone and claim.phone else None,
        bank_card=normalise("bank_card", claim.bank_card) if check == "bank_card" else None,
        face_image=claim.face_image if check == "face_liveness" else None,
        documents=documents,
    )


class VerificationService:
    """Real-name verification of members and external signers, with evidence and four-eyes."""

    def __init__(
        self,
        db: Database,
        access: AccessControl,
        personal_data: PersonalDataService,
        blobs: EncryptedBlobStore,
        providers: Iterable[IdentityProvider],
        *,
        clock: Callable[[], datetime] = utcnow,
        review_window: timedelta = REVIEW_WINDOW,
        validity: timedelta = VALIDITY,
    ) -> None:
        self._db = db
        self._access = access
        self._pii = personal_data
        self._evidence = EvidenceFiles(blobs)
        self._providers: Mapping[str, IdentityProvider] = provider_table(providers)
        self._clock = clock
        self._review_window = review_window
        self._validity = validity

    # -- starting a verification ----------------------------------------------------------

    def start_for_user(
        self,
        principal: Principal,
        claim: IdentityClaim,
        *,
        provider: str,
        check: str,
        actor: Actor | None = None,
        documents_later: bool = False,
    ) -> VerificationInfo:
        """A signed-in person verifies themselves (an API token is not a person)."""
        actor = actor or principal.actor()
        subject = self._person(principal, actor, "realname.start")
        return self._start(
            actor, principal.org_id, subject, claim, provider, check, documents_later
        )

    def start_for_signer(
        self,
        actor: Actor,
        *,
        org_id: str,
        signer_id: str,
        email: str,
        claim: IdentityClaim,
        provider: str,
        check: str,
        documents_later: bool = False,
    ) -> VerificationInfo:
        """An external signer verifies themselves; the caller has authenticated the signer.

        The signer must exist in ``org_id`` under exactly this email address.
        """
        subject = self._signer(org_id, signer_id, email)
        return self._start(actor, org_id, subject, claim, provider, check, documents_later)

    def _person(self, principal: Principal, actor: Actor, action: str) -> Subject:
        with self._access.guard(actor, action, object_type=OBJECT_TYPE):
            if principal.user_id is None:
                raise PermissionDeniedError("only a signed-in person can verify their identity")
        return Subject.user(principal.user_id)

    def _signer(self, org_id: str, signer_id: str, email: str) -> Subject:
        subject = Subject.signer(signer_id, email)
        with self._db.read() as session:
            signer = session.get(Signer, signer_id)
            if (
                signer is None
                or signer.org_id != org_id
                or normalise_email(signer.email) != normalise_email(email)
            ):
                raise NotFoundError("signer not found")
        return subject

    def _start(
        self,
        actor: Actor,
        org_id: str,
        subject: Subject,
        claim: IdentityClaim,
        provider_name: str,
        check: str,
        documents_later: bool = False,
    ) -> VerificationInfo:
        provider = self._provider(provider_name)
        if check not in provider.checks:
            raise InvalidInputError(f"the identity provider {provider.name} does not offer {check}")
        checked = _check_claim(check, claim, documents_later=documents_later)
        now = self._clock()
        with self._evidence.tracking() as written, self._db.write() as session:
            self._refuse_second_pending(session, actor, org_id, subject, now)
            row = self._new_row(session, actor, org_id, subject, provider.name, check, checked)
            row.created_at = now
            row.expires_at = now + self._review_window
            session.add(row)
            session.flush()
            attachments = [
                (f"id-document-{d.side}", d.media_type, d.content) for d in checked.documents
            ]
            if checked.face_image is not None:
                attachments.append(("face-capture", "application/octet-stream", checked.face_image))
            for kind, media_type, content in attachments:
                self._evidence.add(
                    session,
                    written,
                    org_id=org_id,
                    verification_id=row.id,
                    kind=kind,
                    media_type=media_type,
                    content=content,
                    created_at=now,
                )
            record(
                session,
                actor,
                "realname.start",
                object_type=OBJECT_TYPE,
                object_id=row.id,
                org_id=org_id,
                details={
                    "provider": provider.name,
                    "method": check,
                    "subject_type": subject.type,
                    "subject_id": subject.id,
                    "documents_later": documents_later,
                },
            )
            verification_id = row.id
            if documents_later:  # the provider is asked once the documents are here
                return _info(row, awaiting=True)
        request = VerificationRequest(
            reference=verification_id,
            check=check,
            name=checked.name,
            id_number=checked.id_number,
            phone=checked.phone,
            bank_card=checked.bank_card,
            face_image=checked.face_image,
            documents=checked.documents,
        )
        return self._ask(actor, org_id, verification_id, provider, request)

    def _ask(
        self,
        actor: Actor,
        org_id: str,
        verification_id: str,
        provider: IdentityProvider,
        request: VerificationRequest,
    ) -> VerificationInfo:
        """Call the provider (outside any transaction) and record its answer or its failure."""
        try:
            result = provider.verify(request)
            if not isinstance(result, ProviderResult):
                raise VerificationError("the identity provider returned no result")
        except Exception as exc:
            self._record_provider_failure(actor, org_id, verification_id, exc)
            if isinstance(exc, InvalidInputError | ProviderConfigurationError):
                raise
            raise VerificationError("the identity provider could not complete the check") from exc
        return self._apply(actor, org_id, verification_id, provider.name, result)

    def _new_row(
        self,
        session: Session,
        actor: Actor,
        org_id: str,
        subject: Subject,
        provider: str,
        check: str,
        checked: _Checked,
    ) -> IdentityVerification:
        owner = Owner(subject.type, subject.id)

        def put(kind: str, value: str | None) -> str | None:
            if value is None:
                return None
            ref = self._pii.put(session, actor, org_id=org_id, owner=owner, kind=kind, value=value)
            return ref.id

        return IdentityVerification(
            id=new_id(),
            org_id=org_id,
            subject_type=subject.type,
            subject_id=subject.id,
            provider=provider,
            method=check,
            status="pending",
            name_field_id=put("name", checked.name),
            id_number_field_id=put("id_number", checked.id_number),
            phone_field_id=put("phone", checked.phone),
            bank_card_field_id=put("bank_card", checked.bank_card),
            email_field_id=put("email", subject.email),
            requested_by=f"{actor.type}:{actor.id or ''}"[:140],
        )

    def _refuse_second_pending(
        self, session: Session, actor: Actor, org_id: str, subject: Subject, now: datetime
    ) -> None:
        """One open check per person; one still awaiting its documents is replaced instead."""
        open_checks = session.execute(
            select(IdentityVerification)
            .where(
                IdentityVerification.org_id == org_id,
                IdentityVerification.subject_type == subject.type,
                IdentityVerification.subject_id == subject.id,
                IdentityVerification.status == "pending",
                IdentityVerification.expires_at > now,
            )
            .with_for_update()
        ).scalars()
        for row in open_checks:
            if not self._awaiting_documents(session, row):
                raise ConflictError(
                    "a verification of this person is already waiting for its result"
                )
            row.status = "expired"
            row.reason = "replaced by a new verification before its documents were uploaded"
            row.decided_at = now
            session.flush()
            record(
                session,
                actor,
                "realname.replaced",
                object_type=OBJECT_TYPE,
                object_id=row.id,
                org_id=org_id,
                details={"subject_type": subject.type, "subject_id": subject.id},
            )

    @staticmethod
    def _document_sides(session: Session, verification_id: str) -> list[str]:
        """The sides of the ID document uploaded so far, front first."""
        kinds = session.execute(
            select(VerificationEvidence.kind).where(
                VerificationEvidence.verification_id == verification_id,
                VerificationEvidence.kind.startswith(DOCUMENT_EVIDENCE),
            )
        ).scalars()
        sides = [kind.removeprefix(DOCUMENT_EVIDENCE) for kind in kinds]
        return sorted(sides, key=lambda side: (*DOCUMENT_SIDES, side).index(side))

    def _awaiting_documents(self, session: Session, row: IdentityVerification) -> bool:
        return (
            row.status == "pending"
            and row.method == "document"
            and not self._document_sides(session, row.id)
        )

    # -- documents sent after the start ---------------------------------------------------

    def submit_documents_for_user(
        self,
        principal: Principal,
        verification_id: str,
        documents: Iterable[IdDocument],
        actor: Actor | None = None,
    ) -> VerificationInfo:
        """The signed-in person's ID document images for their own check (see ``submit``)."""
        actor = actor or principal.actor()
        subject = self._person(principal, actor, "realname.documents")
        return self.submit_documents(
            actor,
            org_id=principal.org_id,
            subject=subject,
            verification_id=verification_id,
            documents=documents,
        )

    def submit_documents_for_signer(
        self,
        actor: Actor,
        *,
        org_id: str,
        signer_id: str,
        email: str,
        verification_id: str,
        documents: Iterable[IdDocument],
    ) -> VerificationInfo:
        """An external signer's documents; the caller has authenticated the signer."""
        return self.submit_documents(
            actor,
            org_id=org_id,
            subject=self._signer(org_id, signer_id, email),
            verification_id=verification_id,
            documents=documents,
        )

    def submit_documents(
        self,
        actor: Actor,
        *,
        org_id: str,
        subject: Subject,
        verification_id: str,
        documents: Iterable[IdDocument],
    ) -> VerificationInfo:
        """Bring the documents of a check started with ``documents_later``, then ask its provider.

        Only the subject's own check, once, while it is pending. Someone else's verification —
        of this organisation or another — answers exactly like a missing one, and is audited.
        """
        checked = _check_documents(documents)
        now = self._clock()
        with (
            self._evidence.tracking() as written,
            self._access.guard(
                actor,
                "realname.documents",
                object_type=OBJECT_TYPE,
                object_id=_audit_id(verification_id),
            ),
            self._db.write() as session,
        ):
            row = self._locked_row(session, org_id, verification_id)
            if (row.subject_type, row.subject_id) != (subject.type, subject.id) or not (
                self._same_email(session, row, subject)
            ):
                raise NotFoundError(NOT_FOUND)
            expired = self._expire_if_due(session, actor, row)
            if not expired:
                provider = self._provider(row.provider)
                if row.method != "document":
                    raise ConflictError("this verification does not take ID documents")
                if row.status != "pending":
                    raise ConflictError(f"this verification is already {row.status}")
                if self._document_sides(session, row.id):
                    raise ConflictError(
                        "the ID documents of this verification were already uploaded"
                    )
                for document in checked:
                    self._evidence.add(
                        session,
                        written,
                        org_id=org_id,
                        verification_id=row.id,
                        kind=f"{DOCUMENT_EVIDENCE}{document.side}",
                        media_type=document.media_type,
                        content=document.content,
                        created_at=now,
                    )
                record(
                    session,
                    actor,
                    "realname.documents",
                    object_type=OBJECT_TYPE,
                    object_id=row.id,
                    org_id=org_id,
                    details={
                        "provider": row.provider,
                        "sides": [document.side for document in checked],
                    },
                )
                # The claim was stored encrypted at the start; the provider needs it in clear.
                name, id_number = (
                    self._pii.reveal(
                        session,
                        actor,
                        org_id=org_id,
                        field_id=field_id,
                        clearance=Level.SECRET,
                        purpose=f"realname check {row.id}",
                    ).value
                    for field_id in (row.name_field_id, row.id_number_field_id)
                )
                request = VerificationRequest(
                    reference=row.id,
                    check=row.method,
                    name=name,
                    id_number=id_number,
                    documents=checked,
                )
        if expired:
            raise ConflictError("this verification has expired; start a new one")
        return self._ask(actor, org_id, verification_id, provider, request)

    # -- results ------------------------------------------------------------------------------

    def record_result(
        self,
        actor: Actor,
        *,
        org_id: str,
        verification_id: str,
        provider: str,
        result: ProviderResult,
    ) -> VerificationInfo:
        """A provider's later answer to a pending check (the caller authenticated the provider).

        The administrator review is decided only through :meth:`review`.
        """
        self._provider(provider)
        if provider == ADMIN_REVIEW:
            raise ConflictError("administrator reviews are decided with review()")
        return self._apply(actor, org_id, verification_id, provider, result)

    def _apply(
        self,
        actor: Actor,
        org_id: str,
        verification_id: str,
        provider: str,
        result: ProviderResult,
    ) -> VerificationInfo:
        overclaimed = False
        with self._evidence.tracking() as written, self._db.write() as session:
            row = self._locked_row(session, org_id, verification_id)
            if row.provider != provider:
                raise NotFoundError(NOT_FOUND)
            # An expiry is committed (and audited) before the caller hears about it.
            expired = self._expire_if_due(session, actor, row)
            if not expired:
                overclaimed = self._apply_in(session, actor, row, result, written)
            info = _info(row)
        if expired:
            raise ConflictError("this verification has expired; start a new one")
        if overclaimed:
            raise VerificationError("the identity provider's answer could not be accepted")
        return info

    def _apply_in(
        self,
        session: Session,
        actor: Actor,
        row: IdentityVerification,
        result: ProviderResult,
        written: list[StoredObject],
    ) -> bool:
        """Apply ``result`` to a pending row; returns True if it was refused as an overclaim."""
        if row.status != "pending":
            raise ConflictError(f"this verification is already {row.status}")
        now = self._clock()
        for evidence in result.evidence:
            self._evidence.add(
                session,
                written,
                org_id=row.org_id,
                verification_id=row.id,
                kind=evidence.kind,
                media_type=evidence.media_type,
                content=evidence.content,
                created_at=now,
            )
        row.checked_at = result.checked_at
        row.provider_reference = result.provider_reference
        overclaimed = result.status == "verified" and assurance_rank(
            result.assurance_level or "basic"
        ) > assurance_rank(CHECK_CEILING[row.method])
        if overclaimed:
            row.status = "rejected"
            row.reason = "the provider claimed more assurance than its check can give"
            row.decided_at = now
        elif result.status == "verified":
            row.status = "verified"
            row.assurance_level = result.assurance_level
            row.reason = result.reason
            row.decided_at = now
            row.expires_at = now + self._validity
        elif result.status == "rejected":
            row.status = "rejected"
            row.reason = result.reason or "rejected by the identity provider"
            row.decided_at = now
        session.flush()
        record(
            session,
            actor,
            "realname.provider-invalid" if overclaimed else f"realname.{result.status}",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            org_id=row.org_id,
            details={
                "provider": row.provider,
                "method": row.method,
                "status": row.status,
                "assurance_level": row.assurance_level,
                "evidence": len(result.evidence),
            },
        )
        return overclaimed

    def _record_provider_failure(
        self, actor: Actor, org_id: str, verification_id: str, error: Exception
    ) -> None:
        invalid = isinstance(error, InvalidInputError)
        reason = error.detail if invalid else "identity provider error"  # type: ignore[attr-defined]
        with self._db.write() as session:
            row = self._locked_row(session, org_id, verification_id)
            if row.status == "pending":
                row.status = "rejected"
                row.reason = reason
                row.decided_at = self._clock()
            record(
                session,
                actor,
                "realname.provider-error",
                object_type=OBJECT_TYPE,
                object_id=row.id,
                org_id=org_id,
                details={"provider": row.provider, "error": type(error).__name__},
            )

    # -- administrator review ---------------------------------------------------------------

    def review_packet(
        self,
        principal: Principal,
        verification_id: str,
        *,
        clearance: str | Level,
        actor: Actor | None = None,
    ) -> ReviewPacket:
        """The claim and evidence list for a reviewer (``identity.review``); reads are audited.

        The name and ID number come in clear only as far as ``clearance`` reaches (each read in
        clear is audited); otherwise masked.
        """
        actor = actor or principal.actor()
        level_of(clearance)
        with (
            self._access.guard(
                actor, "realname.review", object_type=OBJECT_TYPE, object_id=verification_id
            ),
            self._db.write() as session,
        ):
            require(principal, REVIEW)
            row = self._row(session, principal.org_id, verification_id)

            def view(field_id: str) -> FieldView:
                return self._pii.reveal(
                    session,
                    actor,
                    org_id=row.org_id,
                    field_id=field_id,
                    clearance=clearance,
                    purpose=f"realname review {row.id}",
                )

            evidence = session.execute(
                select(VerificationEvidence)
                .where(VerificationEvidence.verification_id == row.id)
                .order_by(VerificationEvidence.created_at, VerificationEvidence.id)
            ).scalars()
            return ReviewPacket(
                verification=_info(row, awaiting=self._awaiting_documents(session, row)),
                name=view(row.name_field_id),
                id_number=view(row.id_number_field_id),
                evidence=[
                    EvidenceInfo(e.id, e.kind, e.media_type, self._evidence.size(e), e.created_at)
                    for e in evidence
                ],
            )

    def evidence_content(
        self,
        principal: Principal,
        verification_id: str,
        evidence_id: str,
        *,
        clearance: str | Level,
        actor: Actor | None = None,
    ) -> bytes:
        """One evidence file in clear. It shows the ID number, so it needs that clearance."""
        _, content = self.evidence_file(
            principal, verification_id, evidence_id, clearance=clearance, actor=actor
        )
        return content

    def evidence_file(
        self,
        principal: Principal,
        verification_id: str,
        evidence_id: str,
        *,
        clearance: str | Level,
        actor: Actor | None = None,
    ) -> tuple[EvidenceInfo, bytes]:
        """:meth:`evidence_content` with what the file is (kind, media type), for a download."""
        actor = actor or principal.actor()
        with (
            self._access.guard(
                actor, "realname.evidence", object_type=OBJECT_TYPE, object_id=verification_id
            ),
            self._db.write() as session,
        ):
            require(principal, REVIEW)
            row = self._row(session, principal.org_id, verification_id)
            level = self._pii.ref(session, org_id=row.org_id, field_id=row.id_number_field_id).level
            require_clearance(clearance, level, "verification evidence")
            evidence = session.get(VerificationEvidence, evidence_id)
            if evidence is None or evidence.verification_id != row.id:
                raise NotFoundError("evidence not found")
            content = self._evidence.read(session, evidence)
            record(
                session,
                actor,
                "realname.evidence-read",
                object_type=OBJECT_TYPE,
                object_id=row.id,
                org_id=row.org_id,
                details={"evidence_id": evidence.id, "kind": evidence.kind},
            )
            info = EvidenceInfo(
                evidence.id,
                evidence.kind,
                evidence.media_type,
                self._evidence.size(evidence),
                evidence.created_at,
            )
            return info, content

    def review(
        self,
        principal: Principal,
        verification_id: str,
        *,
        approve: bool,
        comment: str,
        clearance: str | Level,
        actor: Actor | None = None,
    ) -> VerificationInfo:
        """Approve or reject an administrator-review verification.

        Needs ``identity.review``, clearance to read the ID number (a reviewer who cannot see
        what they approve is a rubber stamp), and a different person from the subject and the
        requester (four-eyes; an external signer is matched by email address).
        """
        actor = actor or principal.actor()
        level_of(clearance)
        with (
            self._evidence.tracking() as written,
            self._access.guard(
                actor, "realname.review", object_type=OBJECT_TYPE, object_id=verification_id
            ),
            self._db.write() as session,
        ):
            require(principal, REVIEW)
            row = self._locked_row(session, principal.org_id, verification_id)
            if row.provider != ADMIN_REVIEW:
                raise ConflictError("this verification is decided by its identity provider")
            self._four_eyes(session, principal, row)
            level = self._pii.ref(session, org_id=row.org_id, field_id=row.id_number_field_id).level
            require_clearance(clearance, level, "the ID number under review")
            expired = self._expire_if_due(session, actor, row)
            if not expired:
                if row.status != "pending":
                    raise ConflictError(f"this verification is already {row.status}")
                if self._awaiting_documents(session, row):
                    raise ConflictError("the ID documents have not been uploaded yet")
                row.reviewer_user_id = principal.user_id
                decision = AdminReviewProvider.decision(
                    reference=row.id,
                    approve=bool(approve),
                    comment=comment,
                    reviewer_user_id=principal.user_id or "",
                    at=self._clock(),
                )
                self._apply_in(session, actor, row, decision, written)
            info = _info(row)
        if expired:
            raise ConflictError("this verification has expired; start a new one")
        return info

    def _four_eyes(self, session: Session, principal: Principal, row: IdentityVerification) -> None:
        reviewer = principal.user_id
        if reviewer is None:
            raise PermissionDeniedError("a review must be made by a signed-in person")
        if row.subject_type == "user" and row.subject_id == reviewer:
            raise PermissionDeniedError("you cannot review your own identity verification")
        if row.requested_by == f"user:{reviewer}":
            raise PermissionDeniedError("you cannot review a verification you requested")
        if row.subject_type == "signer" and row.email_field_id is not None:
            user = session.get(User, reviewer)
            if user is None or self._pii.matches(
                session, org_id=row.org_id, field_id=row.email_field_id, value=user.email
            ):
                raise PermissionDeniedError("you cannot review your own identity verification")

    # -- reading ------------------------------------------------------------------------------

    def get(self, principal: Principal, verification_id: str) -> VerificationInfo:
        """One's own verification, or any of the organisation's with ``identity.review``."""
        with (
            self._access.guard(
                principal.actor(),
                "realname.read",
                object_type=OBJECT_TYPE,
                object_id=verification_id,
            ),
            self._db.read() as session,
        ):
            row = self._row(session, principal.org_id, verification_id)
            if (row.subject_type, row.subject_id) != ("user", principal.user_id):
                require(principal, REVIEW)
            return _info(row, awaiting=self._awaiting_documents(session, row))

    def list_for_review(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[VerificationInfo]:
        """The organisation's verifications, newest first (``identity.review``).

        No personal data: a reviewer opens one with :meth:`review_packet`, which is audited.
        """
        self._access.authorize(principal, REVIEW)
        if status is not None and status not in STATUSES:
            raise InvalidInputError(f"status must be one of: {', '.join(STATUSES)}")
        if not 0 < limit <= MAX_LISTED or offset < 0:
            raise InvalidInputError(f"limit must be 1 to {MAX_LISTED}, offset not negative")
        query = select(IdentityVerification).where(
            IdentityVerification.org_id == principal.org_id
        )
        if status is not None:
            query = query.where(IdentityVerification.status == status)
        with self._db.read() as session:
            rows = session.execute(
                query.order_by(
                    IdentityVerification.created_at.desc(), IdentityVerification.id
                )
                .limit(limit)
                .offset(offset)
            ).scalars()
            return [_info(row, awaiting=self._awaiting_documents(session, row)) for row in rows]

    def mine(self, principal: Principal, *, limit: int = 20) -> list[SubjectStatus]:
        """The signed-in person's own verifications, newest first, with the claim masked."""
        actor = principal.actor()
        subject = self._person(principal, actor, "realname.read")
        return self.subject_status(principal.org_id, subject, actor=actor, limit=limit)

    def subject_status(
        self, org_id: str, subject: Subject, *, actor: Actor, limit: int = 20
    ) -> list[SubjectStatus]:
        """A subject's verifications, newest first; the caller has authenticated the subject.

        The claim is shown masked (it is never revealed in clear here, so nothing is audited).
        """
        if not 0 < limit <= MAX_LISTED:
            raise InvalidInputError(f"limit must be 1 to {MAX_LISTED}")
        with self._db.read() as session:
            rows = session.execute(
                select(IdentityVerification)
                .where(
                    IdentityVerification.org_id == org_id,
                    IdentityVerification.subject_type == subject.type,
                    IdentityVerification.subject_id == subject.id,
                )
                .order_by(IdentityVerification.created_at.desc(), IdentityVerification.id)
                .limit(limit)
            ).scalars()

            def masked(field_id: str) -> str:
                # Every kind is stored at ``internal`` or above, so a public reader sees it
                # masked; ``reader_user_id`` is left out on purpose (that would reveal it).
                view = self._pii.reveal(
                    session,
                    actor,
                    org_id=org_id,
                    field_id=field_id,
                    clearance=Level.PUBLIC,
                    purpose="status",
                )
                return view.value if view.masked else mask(view.kind, view.value)

            out = []
            for row in rows:
                if not self._same_email(session, row, subject):
                    continue  # the signer's address changed: not this person's check
                sides = self._document_sides(session, row.id)
                awaiting = row.status == "pending" and row.method == "document" and not sides
                out.append(
                    SubjectStatus(
                        verification=_info(row, awaiting=awaiting),
                        name=masked(row.name_field_id),
                        id_number=masked(row.id_number_field_id),
                        phone=masked(row.phone_field_id) if row.phone_field_id else None,
                        documents=tuple(sides),
                    )
                )
            return out

    def assurance_of(self, statuses: Iterable[SubjectStatus]) -> str | None:
        """The strongest assurance among unexpired verified checks of a status list, if any."""
        now = self._clock()
        levels = [
            s.verification.assurance_level or "basic"
            for s in statuses
            if s.verification.status == "verified" and s.verification.expires_at > now
        ]
        return max(levels, key=assurance_rank) if levels else None

    def providers(self) -> list[ProviderInfo]:
        """The configured identity providers (what a person may choose from)."""
        return [
            ProviderInfo(name, tuple(sorted(provider.checks)))
            for name, provider in sorted(self._providers.items())
        ]

    def current_identity(
        self, org_id: str, subject: Subject, *, actor: Actor, purpose: str = "certificate"
    ) -> VerifiedIdentity | None:
        """The subject's strongest unexpired verification, or ``None``. Reading the verified name
        in clear is audited, so this is a write unit of work; see :meth:`identity_in`."""
        with self._db.write() as session:
            return self.identity_in(session, org_id, subject, actor=actor, purpose=purpose)

    def identity_in(
        self,
        session: Session,
        org_id: str,
        subject: Subject,
        *,
        actor: Actor,
        purpose: str = "certificate",
    ) -> VerifiedIdentity | None:
        """:meth:`current_identity` inside the caller's (write) transaction — for certificate
        issuance, which runs inside the signing unit of work."""
        best = self._strongest(session, org_id, subject)
        if best is None:
            return None
        name = self._pii.reveal(
            session,
            actor,
            org_id=org_id,
            field_id=best.name_field_id,
            clearance=Level.SECRET,
            purpose=purpose,
        )
        id_number = self._pii.reveal(
            session,
            actor,
            org_id=org_id,
            field_id=best.id_number_field_id,
            clearance=Level.PUBLIC,
            purpose=purpose,
        )
        return VerifiedIdentity(
            verification_id=best.id,
            org_id=org_id,
            subject=subject,
            name=name.value,
            masked_id_number=id_number.value,
            assurance_level=best.assurance_level or "basic",
            provider=best.provider,
            method=best.method,
            verified_at=best.decided_at or best.created_at,
            expires_at=best.expires_at,
        )

    def assurance_in(self, session: Session, org_id: str, subject: Subject) -> str | None:
        """The assurance level of the subject's strongest unexpired verification, or ``None``.

        Reveals no personal data (nothing to audit): for checks such as "may this signer sign
        yet?" that must not read the verified name.
        """
        best = self._strongest(session, org_id, subject)
        return None if best is None else (best.assurance_level or "basic")

    def _strongest(
        self, session: Session, org_id: str, subject: Subject
    ) -> IdentityVerification | None:
        now = self._clock()
        rows = session.execute(
            select(IdentityVerification).where(
                IdentityVerification.org_id == org_id,
                IdentityVerification.subject_type == subject.type,
                IdentityVerification.subject_id == subject.id,
                IdentityVerification.status == "verified",
                IdentityVerification.expires_at > now,
            )
        ).scalars()
        candidates = [row for row in rows if self._same_email(session, row, subject)]
        if not candidates:
            return None
        return max(
            candidates,
            key=lambda r: (assurance_rank(r.assurance_level or "basic"), r.decided_at or now),
        )

    def _same_email(self, session: Session, row: IdentityVerification, subject: Subject) -> bool:
        if subject.type != "signer":
            return True
        if row.email_field_id is None or subject.email is None:
            return False
        return self._pii.matches(
            session, org_id=row.org_id, field_id=row.email_field_id, value=subject.email
        )

    # -- expiry -------------------------------------------------------------------------------

    def expire_due(self, actor: Actor) -> int:
        """Mark every overdue pending check and every lapsed verification ``expired``."""
        now = self._clock()
        with self._db.write() as session:
            rows = session.execute(
                select(IdentityVerification)
                .where(
                    IdentityVerification.status.in_(("pending", "verified")),
                    IdentityVerification.expires_at <= now,
                )
                .with_for_update()
            ).scalars()
            return sum(1 for row in rows if self._expire_if_due(session, actor, row))

    def _expire_if_due(self, session: Session, actor: Actor, row: IdentityVerification) -> bool:
        if row.status not in ("pending", "verified") or row.expires_at > self._clock():
            return False
        before = row.status
        row.status = "expired"
        session.flush()
        record(
            session,
            actor,
            "realname.expired",
            object_type=OBJECT_TYPE,
            object_id=row.id,
            org_id=row.org_id,
            details={"was": before},
        )
        return True

    # -- helpers ------------------------------------------------------------------------------

    def _provider(self, name: str) -> IdentityProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise ProviderConfigurationError(f"no identity provider named {name!r} is configured")
        return provider

    @staticmethod
    def _row(session: Session, org_id: str, verification_id: str) -> IdentityVerification:
        row = session.get(IdentityVerification, verification_id)
        if row is None or row.org_id != org_id:
            raise NotFoundError(NOT_FOUND)
        return row

    @staticmethod
    def _locked_row(session: Session, org_id: str, verification_id: str) -> IdentityVerification:
        row = session.execute(
            select(IdentityVerification)
            .where(IdentityVerification.id == verification_id)
            .with_for_update()
        ).scalar_one_or_none()
        if row is None or row.org_id != org_id:
            raise NotFoundError(NOT_FOUND)
        return row


def _audit_id(value: object) -> str | None:
    """An id as the audit journal may hold it (at most 36 characters), or nothing."""
    return value[:36] if isinstance(value, str) and value else None
