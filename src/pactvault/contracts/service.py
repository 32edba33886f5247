"""Contract lifecycle: create from a PDF, send, sign in order, decline, void, expire.

Every public method is one unit of work: the database rows, the audit entry and (for signing)
the new encrypted revision either all land or none does. A blob written for a transaction that
then fails is deleted before the error propagates, so a failure leaves no orphan.

Interfaces (API, CLI, pages) call these methods and never touch the tables themselves.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from pactvault.access.decision import LEVELS
from pactvault.audit.journal import Actor, record
from pactvault.config import Settings
from pactvault.contracts.access import involving
from pactvault.contracts.approval_rules import ContractFacts
from pactvault.contracts.approvals import ApprovalService
from pactvault.contracts.fields import (
    FieldSpec,
    PlacedField,
    check_seals,
    check_specs,
    place,
    resolve_box,
    signature_field,
    stored_fields,
    values_to_fill,
)
from pactvault.contracts.reminders import (
    REMIND_ACTION,
    Reminded,
    ReminderTooSoonError,
    last_links,
    wait_left,
)
from pactvault.contracts.signing_policy import effective, minimum_in
from pactvault.contracts.states import (
    OPEN_FOR_SIGNING,
    ContractStateError,
    Status,
    check_transition,
)
from pactvault.crypto.hashing import sha256_hex
from pactvault.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PactvaultError,
    PermissionDeniedError,
)
from pactvault.identity.members import normalise_email
from pactvault.identity.mfa.stepup import StepUpChallenge, StepUpService, StepUpSubject
from pactvault.identity.personal_data import Owner, PersonalDataService
from pactvault.identity.realname.certificates import signer_subject
from pactvault.identity.realname.identifiers import normalise_phone
from pactvault.identity.realname.providers import assurance_rank
from pactvault.identity.realname.service import VerificationService
from pactvault.identity.realname.subjects import Subject
from pactvault.keys.service import KeyService
from pactvault.ledger import EvidenceRecord, Ledger
from pactvault.notify import Mailer, Message
from pactvault.pdf.evidence import last_signature_evidence
from pactvault.pdf.inspect import PdfFacts, enforce_active_content_policy, inspect_pdf
from pactvault.pdf.sign import (
    Appearance,
    RevocationMaterial,
    SignatureField,
    TextField,
    prepare_document,
    sign_pdf,
)
from pactvault.pdf.signer import KeySigner
from pactvault.pki.authority import PLATFORM_ORG, CertificateAuthority, IssuedCertificate
from pactvault.pki.ca import certificate_fingerprint
from pactvault.pki.identity import SubjectIdentity
from pactvault.store.base import utcnow
from pactvault.store.blobs import EncryptedBlobStore, StoredObject
from pactvault.store.db import Database
from pactvault.store.identity_models import User
from pactvault.store.models import AuditEvent, Contract, DocumentRevision, Signature, Signer
from pactvault.store.realname_models import PersonalDataField
from pactvault.tokens import SIGNING_PREFIX, new_token, token_digest

MAX_SIGNERS = 50
MAX_TITLE = 300
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
DEFAULT_CONSENT_TEXT = (
    "我已阅读并同意本合同的全部内容，同意使用电子签名签署，电子签名与手写签名或盖章具有同等法律效力。"
    " / I have read and agree to the entire contract and agree to sign it electronically; my "
    "electronic signature has the same legal effect as a handwritten signature or seal."
)
T = TypeVar("T")
FIELD_WIDTH, FIELD_HEIGHT, FIELD_MARGIN = 170.0, 64.0, 36.0
SEAL_FIELD = "pactvault-seal"


@dataclass(frozen=True)
class SignerSpec:
    """One party as the sender describes them."""

    name: str
    email: str
    organisation: str | None = None
    routing_order: int = 1
    page: int = -1
    box: tuple[float, float, float, float] | None = None
    #: Mainland mobile number for SMS signing codes; kept encrypted as personal data.
    phone: str | None = None
    #: The weakest identity check the signer's certificate may rest on: ``basic`` (control of
    #: the invited address) or a real-name level such as ``verified-document``; the signer must
    #: pass that verification before they can sign.
    required_assurance: str = "basic"
    #: Date, text and seal fields (``contracts.fields``), and optionally the signature field
    #: itself (instead of ``page``/``box``). Empty: one signature field, nothing else.
    fields: tuple[FieldSpec, ...] = ()


@dataclass(frozen=True)
class SignInput:
    """What the signer confirms: the document they saw, and that they consent."""

    document_sha256: str
    consent: bool
    consent_text: str = DEFAULT_CONSENT_TEXT
    reason: str | None = None
    image: bytes | None = None
    locale: str = "zh-CN"
    #: The verified step-up challenge (``begin_stepup`` + ``complete_stepup``) this signature
    #: spends: signing without a fresh second factor bound to this document is refused.
    stepup_challenge_id: str | None = None
    #: The signer's text fields: field name → what they typed (dates are filled by us).
    field_values: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome(Generic[T]):
    """A finished unit of work plus the messages to deliver once it has committed.

    Mail goes out only after the commit: a rolled-back signature must not have invited anyone.
    """

    value: T
    messages: list[Message] = field(default_factory=list)


TimestamperFactory = Callable[[Session], TimeStamper]


class ContractService:
    def __init__(
        self,
        *,
        db: Database,
        keys: KeyService,
        blobs: EncryptedBlobStore,
        ca: CertificateAuthority,
        timestamper: TimestamperFactory,
        mailer: Mailer,
        settings: Settings,
        approvals: ApprovalService,
        stepup: StepUpService,
        personal_data: PersonalDataService,
        verification: VerificationService,
    ) -> None:
        self._db = db
        self._approvals = approvals
        self._stepup = stepup
        self._personal_data = personal_data
        self._verification = verification
        self._keys = keys
        self._blobs = blobs
        self._ca = ca
        self._timestamper = timestamper
        self._mailer = mailer
        self._settings = settings

    # -- sender side ------------------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        org_id: str,
        *,
        title: str,
        pdf: bytes,
        signers: Sequence[SignerSpec],
        message: str | None = None,
        expires_at: datetime | None = None,
        created_by_user_id: str | None = None,
        classification: str = "internal",
        amount_minor: int | None = None,
        currency: str | None = None,
    ) -> Contract:
        title = _checked_terms(title, classification, amount_minor, currency, expires_at)
        facts, warnings = self._accepted_pdf(pdf)
        placed = _place_fields(_validate_signers(signers), facts)

        def work(session: Session, stored: list[StoredObject]) -> Contract:
            self._keys.ensure_org_kek(session, org_id)
            contract = Contract(
                org_id=org_id,
                title=title,
                message=message,
                status=Status.DRAFT.value,
                created_by=actor.id or actor.type,
                created_by_user_id=created_by_user_id,
                classification=classification,
                amount_minor=amount_minor,
                currency=currency,
                expires_at=expires_at,
                content_warnings=warnings,
            )
            session.add(contract)
            session.flush()
            self._write_signers(session, actor, contract, placed, {})
            revision = self._store_revision(session, stored, contract, pdf, kind="original")
            event = record(
                session,
                actor,
                "contract.create",
                object_type="contract",
                object_id=contract.id,
                org_id=org_id,
                details={
                    "title_sha256": sha256_hex(title.encode()),
                    "document_sha256": revision.plaintext_sha256,
                    "pages": facts.page_count,
                    "signers": len(placed),
                    "fields": sum(len(p.extra) for p in placed),
                    "warnings": warnings,
                },
            )
            self._evidence(session, event, document_sha256=revision.plaintext_sha256)
            return contract

        return self._unit_of_work(work)

    def update_draft(
        self,
        actor: Actor,
        org_id: str,
        contract_id: str,
        *,
        title: str,
        signers: Sequence[SignerSpec],
        pdf: bytes | None = None,
        message: str | None = None,
        expires_at: datetime | None = None,
        classification: str = "internal",
        amount_minor: int | None = None,
        currency: str | None = None,
    ) -> Contract:
        """Replace a draft's terms, parties and fields (and its PDF, when ``pdf`` is given).

        The same checks as ``create``; only a draft can change (a sent contract's document is
        fixed). A signer keeps their mobile number on file when ``phone`` is ``None`` and the
        email address stays (matched case-insensitively); ``phone=""`` removes it. An approval
        given for the old terms no longer covers the new ones: approvals name exact facts.
        """
        title = _checked_terms(title, classification, amount_minor, currency, expires_at)
        removed_phones = {
            normalise_email(s.email) for s in signers if s.phone == "" and isinstance(s.email, str)
        }
        signers = [replace(s, phone=None) if s.phone == "" else s for s in signers]
        checked = _validate_signers(signers)
        upload = self._accepted_pdf(pdf) if pdf is not None else None

        def work(session: Session, stored: list[StoredObject]) -> Contract:
            contract = self._contract(session, org_id, contract_id, lock=True)
            if contract.status != Status.DRAFT.value:
                raise ContractStateError(
                    f"the contract is {contract.status}; only a draft can be edited"
                )
            if upload is None:
                current = self._current_revision(session, contract)
                facts = inspect_pdf(self._read(session, contract, current), max_bytes=1 << 62)
                warnings = list(contract.content_warnings or [])
            else:
                facts, warnings = upload
            placed = _place_fields(checked, facts)
            kept: dict[str, str] = {}
            for old in list(contract.signers):
                email = normalise_email(old.email)
                if old.phone_field_id is not None:
                    if email in removed_phones or not any(
                        normalise_email(p.spec.email) == email for p in placed
                    ):
                        session.execute(
                            delete(PersonalDataField).where(
                                PersonalDataField.id == old.phone_field_id
                            )
                        )
                    else:
                        kept[email] = old.phone_field_id
                session.delete(old)
            session.flush()
            session.expire(contract, ["signers"])
            self._write_signers(session, actor, contract, placed, kept)
            if pdf is not None:
                revision = self._store_revision(session, stored, contract, pdf, kind="original")
            else:
                revision = self._current_revision(session, contract)
            contract.title = title
            contract.message = message
            contract.expires_at = expires_at
            contract.classification = classification
            contract.amount_minor = amount_minor
            contract.currency = currency
            contract.content_warnings = warnings
            contract.updated_at = utcnow()
            record(
                session,
                actor,
                "contract.update",
                object_type="contract",
                object_id=contract.id,
                org_id=org_id,
                details={
                    "title_sha256": sha256_hex(title.encode()),
                    "document_sha256": revision.plaintext_sha256,
                    "document_replaced": pdf is not None,
                    "pages": facts.page_count,
                    "signers": len(placed),
                    "fields": sum(len(p.extra) for p in placed),
                    "classification": classification,
                    "warnings": warnings,
                },
            )
            # Audited, not a ledger leaf: the ledger's event types are a fixed public format,
            # and the document that counts is the one ``send`` records (with its hash).
            return contract

        return self._unit_of_work(work)

    def _accepted_pdf(self, pdf: bytes) -> tuple[PdfFacts, list[str]]:
        """The upload's facts and content warnings, or why it cannot be a contract."""
        facts = inspect_pdf(pdf, max_bytes=self._settings.max_upload_bytes)
        warnings = enforce_active_content_policy(facts, self._settings.active_content_policy)
        if facts.has_signatures:
            raise InvalidInputError(
                "the PDF already carries signatures; upload the unsigned original"
            )
        return facts, warnings

    def _write_signers(
        self,
        session: Session,
        actor: Actor,
        contract: Contract,
        placed: Sequence[_Placed],
        phones: Mapping[str, str],
    ) -> None:
        """Insert the signer rows; ``phones`` maps an email to a mobile number kept on file."""
        for position, item in enumerate(placed, start=1):
            spec = item.spec
            signer = Signer(
                contract_id=contract.id,
                org_id=contract.org_id,
                position=position,
                name=spec.name.strip(),
                email=spec.email.strip(),
                organisation=spec.organisation,
                routing_order=spec.routing_order,
                field_name=f"Signature{position}",
                field_page=item.page,
                field_box=list(item.box),
                extra_fields=[f.to_json() for f in item.extra] or None,
                required_assurance=spec.required_assurance,
                phone_field_id=None if spec.phone else phones.get(normalise_email(spec.email)),
            )
            session.add(signer)
            if signer.phone_field_id is not None:  # kept on file: now about the new row
                session.flush()
                session.execute(
                    update(PersonalDataField)
                    .where(PersonalDataField.id == signer.phone_field_id)
                    .values(owner_id=signer.id)
                )
            if spec.phone:
                session.flush()
                signer.phone_field_id = self._personal_data.put(
                    session,
                    actor,
                    org_id=contract.org_id,
                    owner=Owner("signer", signer.id),
                    kind="phone",
                    value=spec.phone,
                ).id
        session.flush()

    def send(self, actor: Actor, org_id: str, contract_id: str) -> Contract:
        """Lock the signature fields into the document and invite the first signing group."""

        def work(session: Session, stored: list[StoredObject]) -> Outcome[Contract]:
            contract = self._contract(session, org_id, contract_id, lock=True)
            self._expire_if_due(session, contract)
            check_transition(contract.status, Status.SENT)
            original = self._current_revision(session, contract)
            # Organisation approval rules (审批) gate sending: refused unless an approval covers
            # exactly these facts (document hash included).
            approval_id = self._approvals.ensure_send_allowed(
                session, approval_facts(contract, original)
            )
            pdf = self._read(session, contract, original)
            fields = [
                SignatureField(name=s.field_name, page=s.field_page, box=tuple(s.field_box))  # type: ignore[arg-type]
                for s in contract.signers
            ]
            extra = [f for s in contract.signers for f in stored_fields(s.extra_fields)]
            # Seal fields are empty signature fields a seal service can sign later; dates and
            # text are form fields filled with their signer's signature (contracts.fields).
            fields += [SignatureField(f.name, f.page, f.box) for f in extra if f.kind == "seal"]
            # The platform's invisible completion seal is the last signature; its field carries
            # the PDF 2.0 lock, which must exist before the first signature (see pdf.fields).
            fields.append(SignatureField(name=SEAL_FIELD, page=-1, box=None, lock_document=True))
            texts = [TextField(f.name, f.page, f.box) for f in extra if f.kind != "seal"]
            prepared = prepare_document(pdf, fields, texts)
            revision = self._store_revision(session, stored, contract, prepared, kind="prepared")
            contract.status = Status.SENT.value
            contract.sent_at = contract.updated_at = utcnow()
            messages = self._invite_next(session, contract)
            event = record(
                session,
                actor,
                "contract.send",
                object_type="contract",
                object_id=contract.id,
                org_id=org_id,
                details={
                    "document_sha256": revision.plaintext_sha256,
                    "approval_request_id": approval_id,
                },
            )
            self._evidence(session, event, document_sha256=revision.plaintext_sha256)
            return Outcome(contract, messages)

        with self._approvals.refusals(actor, contract_id):
            outcome = self._unit_of_work(work)
        return self._deliver(outcome)

    def approval_facts(self, org_id: str, contract_id: str) -> ContractFacts:
        """The facts an approval request for this contract covers (its current draft)."""
        with self._db.read() as session:
            contract = self._contract(session, org_id, contract_id)
            return approval_facts(contract, self._current_revision(session, contract))

    def void(self, actor: Actor, org_id: str, contract_id: str, reason: str) -> Contract:
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInputError("a reason is required to void a contract")

        def work(session: Session, _stored: list[StoredObject]) -> Contract:
            contract = self._contract(session, org_id, contract_id, lock=True)
            check_transition(contract.status, Status.VOIDED)
            contract.status = Status.VOIDED.value
            contract.status_reason = reason[:2000]
            contract.updated_at = utcnow()
            self._close_invitations(contract)
            event = record(
                session,
                actor,
                "contract.void",
                object_type="contract",
                object_id=contract.id,
                org_id=org_id,
                details={"reason": reason[:2000]},
            )
            self._evidence(session, event)
            return contract

        return self._unit_of_work(work)

    def remind(self, actor: Actor, org_id: str, contract_id: str) -> Reminded:
        """Send a new signing link to every signer whose turn it is and who has not signed.

        Each gets a fresh token and the previous link stops working; the token goes only into
        the signer's email, never to the caller. A signer sent a link less than
        ``reminders.REMIND_INTERVAL`` ago is skipped, and when that is every one of them
        ``ReminderTooSoonError`` says how long to wait. Audited as ``contract.remind``.
        """
        # A contract past its deadline expires (and stays expired) rather than being reminded.
        with self._db.write() as session:
            self._expire_if_due(session, self._contract(session, org_id, contract_id, lock=True))

        def work(session: Session, _stored: list[StoredObject]) -> Outcome[Reminded]:
            contract = self._contract(session, org_id, contract_id, lock=True)
            if contract.status not in OPEN_FOR_SIGNING:
                raise ContractStateError(
                    f"the contract is {contract.status}; there is nobody to remind"
                )
            waiting = [s for s in contract.signers if s.status == "invited"]
            if not waiting:
                raise ConflictError("nobody is waiting to sign this contract right now")
            now = utcnow()
            last = last_links(session, org_id, contract.id)
            due = [s for s in waiting if not wait_left(last.get(s.id), now)]
            if not due:
                wait = min(wait_left(last.get(s.id), now) for s in waiting)
                raise ReminderTooSoonError(int(wait.total_seconds()) + 1)
            expiry = now + timedelta(days=self._settings.invitation_days)
            if contract.expires_at is not None:
                expiry = min(expiry, contract.expires_at)
            messages = []
            for signer in due:
                token, digest = new_token(SIGNING_PREFIX)
                signer.invitation_sha256 = digest
                signer.invitation_expires_at = expiry
                invitation = self._invitation(contract, signer, token)
                messages.append(
                    Message(
                        to=invitation.to,
                        subject=f"提醒 / Reminder: {invitation.subject}",
                        body=invitation.body,
                        tags=invitation.tags,
                    )
                )
            skipped = [s.id for s in waiting if s not in due]
            record(
                session,
                actor,
                REMIND_ACTION,
                object_type="contract",
                object_id=contract.id,
                org_id=org_id,
                details={"reminded": [s.id for s in due], "not_yet": skipped},
            )
            session.flush()
            reminded = Reminded(contract.id, tuple(s.id for s in due), tuple(skipped))
            return Outcome(reminded, messages)

        return self._deliver(self._unit_of_work(work))

    def get(self, org_id: str, contract_id: str) -> Contract:
        with self._db.read() as session:
            contract = self._contract(session, org_id, contract_id)
            _ = contract.signers, contract.revisions  # load before the session closes
            return contract

    def list(
        self,
        org_id: str,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        involving_user: str | None = None,
        search: str | None = None,
        party: str | None = None,
        classification: str | None = None,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
        clearance: str | None = None,
        viewer_user_id: str | None = None,
    ) -> tuple[list[Contract], int]:
        """A page of the organisation's contracts, newest first.

        ``involving_user`` narrows it to contracts that user created or signs (``.own`` reach).
        Filters: ``search`` (the title, or a signer's name or email, contains it), ``party`` (a
        signer's name, email or organisation contains it), ``classification`` (exactly that
        level), ``created_from`` ≤ creation < ``created_before``. ``clearance`` leaves out
        contracts classified above it unless ``viewer_user_id`` created or signs them, as
        opening one would be refused (``access.decision``): a list must not show the titles of
        what its reader may not open.
        """
        if not 1 <= limit <= 200 or offset < 0:
            raise InvalidInputError("limit must be 1..200 and offset >= 0")
        if status is not None and status not in {s.value for s in Status}:
            raise InvalidInputError(f"unknown status {status!r}")
        if classification is not None and classification not in LEVELS:
            raise InvalidInputError(f"classification must be one of {', '.join(LEVELS)}")
        if clearance is not None and clearance not in LEVELS:
            raise InvalidInputError(f"clearance must be one of {', '.join(LEVELS)}")
        for bound in (created_from, created_before):
            if bound is not None and bound.tzinfo is None:
                raise InvalidInputError("date bounds must include a timezone")
        search, party = _filter_text(search, "search"), _filter_text(party, "party")
        with self._db.read() as session:
            query = select(Contract).where(Contract.org_id == org_id)
            if involving_user is not None:
                query = query.where(involving(involving_user))
            if status:
                query = query.where(Contract.status == status)
            if classification is not None:
                query = query.where(Contract.classification == classification)
            if created_from is not None:
                query = query.where(Contract.created_at >= created_from)
            if created_before is not None:
                query = query.where(Contract.created_at < created_before)
            if search is not None:
                query = query.where(
                    or_(_contains(Contract.title, search), _signer_matches(search, party=False))
                )
            if party is not None:
                query = query.where(_signer_matches(party, party=True))
            if clearance is not None:
                within = Contract.classification.in_(LEVELS[: LEVELS.index(clearance) + 1])
                query = query.where(
                    or_(within, involving(viewer_user_id)) if viewer_user_id else within
                )
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = (
                session.execute(
                    query.order_by(Contract.created_at.desc(), Contract.id)
                    .options(selectinload(Contract.signers), selectinload(Contract.revisions))
                    .limit(limit)
                    .offset(offset)
                )
                .scalars()
                .all()
            )
            return list(rows), total

    def download(
        self, actor: Actor, org_id: str, contract_id: str, version: int | None = None
    ) -> tuple[DocumentRevision, bytes]:
        """Decrypt one revision (the latest by default); the access is audited."""

        def work(session: Session, _stored: list[StoredObject]) -> tuple[DocumentRevision, bytes]:
            contract = self._contract(session, org_id, contract_id)
            revision = self._revision(session, contract, version)
            data = self._read(session, contract, revision)
            record(
                session,
                actor,
                "document.download",
                object_type="contract",
                object_id=contract.id,
                org_id=org_id,
                details={"version": revision.version, "document_sha256": revision.plaintext_sha256},
            )
            return revision, data

        return self._unit_of_work(work)

    def expire_due(self, now: datetime | None = None) -> int:
        """Move every open contract past its deadline to ``expired``; returns how many."""
        now = now or datetime.now(UTC)
        with self._db.read() as session:
            due = session.execute(
                select(Contract.id, Contract.org_id).where(
                    Contract.status.in_([s.value for s in OPEN_FOR_SIGNING]),
                    Contract.expires_at.is_not(None),
                    Contract.expires_at <= now,
                )
            ).all()
        for contract_id, org_id in due:
            with self._db.write() as session:
                self._expire_if_due(session, self._contract(session, org_id, contract_id), now)
        return len(due)

    # -- signer side ------------------------------------------------------------------------

    def open_invitation(self, token: str, actor: Actor) -> tuple[Contract, Signer]:
        """What a signer sees on opening their link; the first view is recorded."""

        def work(session: Session, _stored: list[StoredObject]) -> tuple[Contract, Signer]:
            signer = self._signer_by_token(session, token)
            contract = signer.contract
            first_view = signer.viewed_at is None
            if first_view:
                signer.viewed_at = utcnow()
            record(
                session,
                _as_signer(actor, signer),
                "signer.view" if first_view else "signer.open",
                object_type="contract",
                object_id=contract.id,
                org_id=contract.org_id,
                details={"signer_id": signer.id},
            )
            _ = contract.signers, contract.revisions
            return contract, signer

        return self._unit_of_work(work)

    def signer_document(self, token: str, actor: Actor) -> tuple[DocumentRevision, bytes]:
        def work(session: Session, _stored: list[StoredObject]) -> tuple[DocumentRevision, bytes]:
            signer = self._signer_by_token(session, token)
            contract = signer.contract
            revision = self._current_revision(session, contract)
            data = self._read(session, contract, revision)
            record(
                session,
                _as_signer(actor, signer),
                "document.view",
                object_type="contract",
                object_id=contract.id,
                org_id=contract.org_id,
                details={"version": revision.version, "document_sha256": revision.plaintext_sha256},
            )
            return revision, data

        return self._unit_of_work(work)

    def sign(self, token: str, actor: Actor, given: SignInput) -> Signature:
        """Add this signer's PAdES signature (timestamped, B-LT) as a new encrypted revision."""
        if not given.consent:
            raise InvalidInputError("signing requires explicit consent")
        if not re.fullmatch(r"[0-9a-f]{64}", given.document_sha256 or ""):
            raise InvalidInputError(
                "document_sha256 must be the hex SHA-256 of the document you read"
            )
        if not given.consent_text.strip() or len(given.consent_text) > 4000:
            raise InvalidInputError("consent_text must be 1 to 4000 characters")
        self._expire_by_token(token)
        refused: list[str] = []

        def work(session: Session, stored: list[StoredObject]) -> Outcome[Signature]:
            signer = self._signer_by_token(session, token, lock=True)
            contract = signer.contract
            self._check_can_sign(signer)
            self._check_assurance(session, signer)
            own_fields = stored_fields(signer.extra_fields)
            check_seals(own_fields)
            # One instant for the stamp, /M, the CMS signing time and the date fields.
            signing_time = datetime.now(UTC).replace(microsecond=0)
            fill = values_to_fill(own_fields, given.field_values, signing_time)
            current = self._current_revision(session, contract)
            if given.document_sha256 != current.plaintext_sha256:
                raise ConflictError(
                    "the document changed since you opened it (another party signed); "
                    "review the current version and sign again"
                )
            try:
                # Spent here, in the signing transaction: a signature that fails later (no
                # timestamp, a crash) rolls the spending back with it.
                proof = self._stepup.consume(
                    session,
                    given.stepup_challenge_id or "",
                    subject=self._proof_subject(session, signer, given.stepup_challenge_id),
                    document_sha256=current.plaintext_sha256,
                    used_for=f"signature {contract.id} {signer.id}",
                    actor=_as_signer(actor, signer),
                )
            except ConflictError as refusal:
                refused.append(str(refusal))
                raise
            pdf = self._read(session, contract, current)
            others_left = [
                s for s in contract.signers if s.id != signer.id and s.status != "signed"
            ]
            already_signed = any(s.status == "signed" for s in contract.signers)
            signed_pdf, issued = self._apply_signature(
                session,
                contract,
                signer,
                pdf,
                given,
                _as_signer(actor, signer),
                certify=not already_signed,
                fill=fill,
                signing_time=signing_time,
            )
            revision = self._store_revision(
                session, stored, contract, signed_pdf, kind="signed", signer_id=signer.id
            )
            evidence = last_signature_evidence(signed_pdf)
            now = utcnow()
            signer.status = "signed"
            signer.signed_at = now  # the link can no longer sign; it still reads the document
            signer.consent_text = given.consent_text
            signer.consent_document_sha256 = given.document_sha256
            signature = Signature(
                contract_id=contract.id,
                org_id=contract.org_id,
                signer_id=signer.id,
                revision_version=revision.version,
                field_name=signer.field_name,
                certificate_serial=issued.serial_hex,
                signing_key_id=issued.key.key_id,
                document_sha256_before=current.plaintext_sha256,
                document_sha256_after=revision.plaintext_sha256,
                timestamp_time=evidence.timestamp_time,
                timestamp_token_sha256=evidence.timestamp_token_sha256,
                certification=not already_signed,
                locks_document=False,
                stepup_proof=proof.to_json(),
                stepup_proof_sha256=proof.sha256(),
            )
            session.add(signature)
            target = Status.PARTIALLY_SIGNED if others_left else Status.COMPLETED
            contract.status = check_transition(contract.status, target).value
            contract.updated_at = now
            if target is Status.COMPLETED:
                contract.completed_at = now
            messages = self._invite_next(session, contract) if others_left else []
            if target is Status.COMPLETED:
                messages += self._completion_notices(contract)
            event = record(
                session,
                _as_signer(actor, signer),
                "contract.sign",
                object_type="contract",
                object_id=contract.id,
                org_id=contract.org_id,
                details={
                    "signer_id": signer.id,
                    "document_sha256_seen": given.document_sha256,
                    "document_sha256_signed": revision.plaintext_sha256,
                    "consent_text_sha256": sha256_hex(given.consent_text.encode()),
                    "certificate_serial": issued.serial_hex,
                    "signature_sha256": evidence.signature_sha256,
                    "timestamp_token_sha256": evidence.timestamp_token_sha256,
                    "timestamp_time": evidence.timestamp_time,
                    "stepup_method": proof.method,
                    "stepup_proof_sha256": proof.sha256(),
                    # Which fields this signature filled, and a hash of what (the text itself
                    # is in the signed revision; it may be personal data, so not in the journal).
                    "fields_filled": sorted(fill),
                    "field_values_sha256": sha256_hex(
                        json.dumps(fill, sort_keys=True, ensure_ascii=False).encode()
                    ),
                },
            )
            self._evidence(
                session,
                event,
                document_sha256=revision.plaintext_sha256,
                signature_sha256=evidence.signature_sha256,
                timestamp_token_sha256=evidence.timestamp_token_sha256,
                certificate_sha256=certificate_fingerprint(issued.certificate),
                stepup_proof_sha256=proof.sha256(),
            )
            if target is Status.COMPLETED:
                self._seal(session, stored, contract, signed_pdf)
            session.flush()
            return Outcome(signature, messages)

        try:
            return self._deliver(self._unit_of_work(work))
        except ConflictError:
            if refused:  # audited after the rollback, which took the transaction's entries
                self._stepup.record_refusal(actor, given.stepup_challenge_id, refused[0])
            raise

    def begin_stepup(
        self, token: str, actor: Actor, method: str, *, account: str | None = None
    ) -> StepUpChallenge:
        """Start the second factor this signer must pass before signing the current revision:
        a code by email (or SMS, when the sender gave a mobile number) naming the document, or
        — for a signer signed in to an account under the invited address (``account`` = its
        user id) — a passkey assertion whose challenge is derived from the document hash."""
        self._expire_by_token(token)

        def work(session: Session, _stored: list[StoredObject]) -> tuple[StepUpSubject, str]:
            signer = self._signer_by_token(session, token)
            self._check_can_sign(signer)
            self._check_assurance(session, signer)
            check_seals(stored_fields(signer.extra_fields))  # before any code is sent
            subject = self._stepup_subject(signer)
            if method == "passkey":
                subject = self._account_subject(session, signer, account)
            elif method == "sms" and signer.phone_field_id is not None:
                phone = self._personal_data.reveal(
                    session,
                    _as_signer(actor, signer),
                    org_id=signer.org_id,
                    field_id=signer.phone_field_id,
                    clearance="secret",
                    purpose="signing code by SMS",
                ).value
                subject = StepUpSubject.signer(
                    signer.id, signer.org_id, signer.email, "+86" + phone
                )
            current = self._current_revision(session, signer.contract)
            return subject, current.plaintext_sha256

        subject, document = self._unit_of_work(work)
        return self._stepup.begin(subject, document, method, client=actor)

    def complete_stepup(
        self, token: str, actor: Actor, challenge_id: str, answer: str | dict[str, object]
    ) -> str:
        """Check the signer's answer to their challenge; returns the proof's SHA-256."""

        def work(session: Session, _stored: list[StoredObject]) -> tuple[StepUpSubject, str]:
            signer = self._signer_by_token(session, token)
            self._check_can_sign(signer)
            current = self._current_revision(session, signer.contract)
            return self._proof_subject(session, signer, challenge_id), current.plaintext_sha256

        subject, document = self._unit_of_work(work)
        proof = self._stepup.complete(
            challenge_id, answer, document, client=actor, expected=subject
        )
        return proof.sha256()

    def decline(self, token: str, actor: Actor, reason: str) -> Contract:
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInputError("please give a reason for declining")
        self._expire_by_token(token)

        def work(session: Session, _stored: list[StoredObject]) -> Outcome[Contract]:
            signer = self._signer_by_token(session, token, lock=True)
            contract = signer.contract
            if signer.status == "signed":
                raise ConflictError("you have already signed this contract and cannot decline it")
            check_transition(contract.status, Status.DECLINED)
            if signer.status != "invited":
                raise ContractStateError(f"this signer is {signer.status} and cannot decline")
            now = utcnow()
            signer.status = "declined"
            signer.declined_at = now
            signer.decline_reason = reason[:2000]
            contract.status = Status.DECLINED.value
            contract.status_reason = reason[:2000]
            contract.updated_at = now
            self._close_invitations(contract)
            event = record(
                session,
                _as_signer(actor, signer),
                "contract.decline",
                object_type="contract",
                object_id=contract.id,
                org_id=contract.org_id,
                details={"signer_id": signer.id, "reason": reason[:2000]},
            )
            self._evidence(session, event)
            return Outcome(contract)

        return self._deliver(self._unit_of_work(work))

    # -- internals --------------------------------------------------------------------------

    def _certificate_subject(
        self, session: Session, signer: Signer, actor: Actor
    ) -> SubjectIdentity:
        """Whom the signer certificate names, and on what identity check it rests.

        A real-name verified signer gets their verified legal name and the verification method
        and level of assurance as certificate policies; otherwise, only where the contract asks
        no more than ``basic``, the name the sender typed with assurance ``basic`` (control of
        the invited address, just proven again by the step-up code).
        """
        subject = Subject.signer(signer.id, signer.email)
        if self._verification.assurance_in(session, signer.org_id, subject) is not None:
            verified = self._verification.identity_in(
                session, signer.org_id, subject, actor=actor, purpose="signer certificate"
            )
            if verified is not None:
                return signer_subject(
                    verified,
                    subject_id=signer.id,
                    email=signer.email,
                    organisation=signer.organisation,
                    minimum_assurance=max(
                        self._required(session, signer), "verified-document", key=assurance_rank
                    ),
                )
        self._check_assurance(session, signer)
        return SubjectIdentity(
            common_name=signer.name,
            subject_id=signer.id,
            kind="person",
            email=signer.email,
            organisation=signer.organisation,
        )

    @staticmethod
    def _required(session: Session, signer: Signer) -> str:
        """What this signer must meet: their own requirement or the organisation's minimum."""
        return effective(signer.required_assurance, minimum_in(session, signer.org_id))

    def _check_assurance(self, session: Session, signer: Signer) -> None:
        """Refuse (before any code is sent) a signer who lacks the verification they need."""
        required = self._required(session, signer)
        if required == "basic":
            return
        held = self._verification.assurance_in(
            session, signer.org_id, Subject.signer(signer.id, signer.email)
        )
        if held is None or assurance_rank(held) < assurance_rank(required):
            raise PermissionDeniedError(
                "this contract asks you to complete real-name verification "
                f"({required}) before signing"
            )

    @staticmethod
    def _stepup_subject(signer: Signer) -> StepUpSubject:
        return StepUpSubject.signer(signer.id, signer.org_id, signer.email)

    @staticmethod
    def _account_subject(session: Session, signer: Signer, user_id: str | None) -> StepUpSubject:
        """The signed-in account as step-up subject, if it is the invited person (same address).

        The signing link proves control of the address; the account's passkey proves the person
        is present — both are needed, so another account's passkey can never sign this link.
        """
        user = session.get(User, user_id) if user_id else None
        if (
            user is None
            or user.status != "active"
            or normalise_email(user.email) != normalise_email(signer.email)
        ):
            raise PermissionDeniedError(
                "signing with a passkey needs you signed in to the account of the invited address"
            )
        return StepUpSubject("user", user.id, signer.org_id, user.email)

    def _proof_subject(
        self, session: Session, signer: Signer, challenge_id: str | None
    ) -> StepUpSubject:
        """Whose step-up may sign for ``signer``: the signer's own, or their account's."""
        found = self._stepup.subject_of(session, challenge_id)
        if found is not None and found.type == "user" and found.org_id == signer.org_id:
            try:
                return self._account_subject(session, signer, found.id)
            except PermissionDeniedError:
                pass
        return self._stepup_subject(signer)

    @staticmethod
    def _check_can_sign(signer: Signer) -> None:
        """Whether this invitation may sign now (checked on step-up and again when signing)."""
        if signer.status == "signed":
            raise ConflictError("you have already signed this contract")
        if signer.contract.status not in OPEN_FOR_SIGNING:
            raise ContractStateError(
                f"the contract is {signer.contract.status}; it cannot be signed"
            )
        if signer.status != "invited":
            raise ContractStateError(f"this signer is {signer.status} and cannot sign")
        if any(
            other.routing_order < signer.routing_order and other.status != "signed"
            for other in signer.contract.signers
        ):
            raise ContractStateError("it is not your turn yet: waiting for earlier signers")

    def _apply_signature(
        self,
        session: Session,
        contract: Contract,
        signer: Signer,
        pdf: bytes,
        given: SignInput,
        actor: Actor,
        *,
        certify: bool,
        fill: Mapping[str, str] | None = None,
        signing_time: datetime | None = None,
    ) -> tuple[bytes, IssuedCertificate]:
        identity = self._certificate_subject(session, signer, actor)
        issued = self._ca.issue(session, identity)
        handle = self._keys.signing_key(session, PLATFORM_ORG, issued.key.key_id)
        key_signer = KeySigner(handle.private_key(), issued.certificate, self._ca.chain(session))
        signed = sign_pdf(
            pdf,
            field_name=signer.field_name,
            signer=key_signer,
            timestamper=self._timestamper(session),
            appearance=Appearance(
                signer_name=signer.name,
                reason=(given.reason or contract.title)[:200],
                location=None,
                image=given.image,
                locale="en" if given.locale == "en" else "zh-CN",
            ),
            certify=certify,
            lock_document=False,
            revocation=self._revocation_material(session),
            signing_time=signing_time,
            fill=fill,
        )
        return signed, issued

    def _revocation_material(self, session: Session) -> RevocationMaterial:
        """Current CRLs of both CA levels, embedded so the signature validates long-term."""
        return RevocationMaterial(
            crls=[
                self._ca.crl(session, "issuing").public_bytes(serialization.Encoding.DER),
                self._ca.crl(session, "root").public_bytes(serialization.Encoding.DER),
            ]
        )

    def _seal(
        self, session: Session, stored: list[StoredObject], contract: Contract, pdf: bytes
    ) -> DocumentRevision:
        """Close a completed contract with the platform seal: the last, locking signature."""
        certificate, key_id = self._ca.completion_seal(session)
        handle = self._keys.signing_key(session, PLATFORM_ORG, key_id)
        sealed = sign_pdf(
            pdf,
            field_name=SEAL_FIELD,
            signer=KeySigner(handle.private_key(), certificate, self._ca.chain(session)),
            timestamper=self._timestamper(session),
            appearance=Appearance(
                signer_name=certificate.subject.rfc4514_string(),
                reason="签署完成封存 / Completed and sealed",
                locale="en",
            ),
            certify=False,
            lock_document=True,
            revocation=self._revocation_material(session),
        )
        revision = self._store_revision(session, stored, contract, sealed, kind="sealed")
        evidence = last_signature_evidence(sealed)
        event = record(
            session,
            Actor.system(),
            "contract.complete",
            object_type="contract",
            object_id=contract.id,
            org_id=contract.org_id,
            details={
                "document_sha256": revision.plaintext_sha256,
                "seal_certificate_sha256": certificate_fingerprint(certificate),
                "signature_sha256": evidence.signature_sha256,
                "timestamp_token_sha256": evidence.timestamp_token_sha256,
                "timestamp_time": evidence.timestamp_time,
            },
        )
        self._evidence(
            session,
            event,
            document_sha256=revision.plaintext_sha256,
            signature_sha256=evidence.signature_sha256,
            timestamp_token_sha256=evidence.timestamp_token_sha256,
            certificate_sha256=certificate_fingerprint(certificate),
        )
        return revision

    def _evidence(self, session: Session, event: AuditEvent, **hashes: str) -> None:
        """Commit the event to the evidence ledger in the same transaction as its audit entry.

        The leaf holds hashes only (document, signature, timestamp, certificate, audit entry),
        never content; taking the ledger's head after the audit head keeps the lock order fixed.
        """
        Ledger(session).append(
            EvidenceRecord(
                type=event.action,
                contract_id=event.object_id,
                audit_entry_sha256=event.entry_hash,
                **hashes,
            )
        )

    def _unit_of_work(self, work: Callable[[Session, list[StoredObject]], T]) -> T:
        """Run ``work(session, stored)`` in one write transaction.

        ``stored`` collects blobs written during the work; if the transaction does not commit
        they are deleted, so a failed operation never leaves an orphan behind.
        """
        stored: list[StoredObject] = []
        try:
            with self._db.write() as session:
                return work(session, stored)
        except StaleDataError:
            self._discard(stored)
            raise ConflictError("the contract was changed concurrently; please retry") from None
        except BaseException:
            self._discard(stored)
            raise

    def _discard(self, stored: list[StoredObject]) -> None:
        for obj in stored:
            try:
                self._blobs.delete(obj)
            except Exception:  # noqa: S112 - best effort; the orphan sweeper catches the rest
                continue

    def _store_revision(
        self,
        session: Session,
        stored: list[StoredObject],
        contract: Contract,
        data: bytes,
        *,
        kind: str,
        signer_id: str | None = None,
    ) -> DocumentRevision:
        version = contract.current_version + 1
        obj = self._blobs.put(
            session,
            org_id=contract.org_id,
            object_id=contract.id,
            version=version,
            source=io.BytesIO(data),
        )
        stored.append(obj)
        revision = DocumentRevision(
            contract_id=contract.id,
            org_id=contract.org_id,
            version=version,
            kind=kind,
            signer_id=signer_id,
            blob_key=obj.blob_key,
            wrapped_key=obj.wrapped_key,
            plaintext_size=obj.plaintext_size,
            plaintext_sha256=obj.plaintext_sha256,
            ciphertext_sha256=obj.ciphertext_sha256,
        )
        session.add(revision)
        contract.current_version = version
        session.flush()
        return revision

    def _read(self, session: Session, contract: Contract, revision: DocumentRevision) -> bytes:
        return self._blobs.read(
            session,
            org_id=contract.org_id,
            object_id=contract.id,
            version=revision.version,
            stored=_stored_of(revision),
        )

    def _contract(
        self, session: Session, org_id: str, contract_id: str, *, lock: bool = False
    ) -> Contract:
        query = select(Contract).where(Contract.id == contract_id, Contract.org_id == org_id)
        if lock:
            query = query.with_for_update()
        contract = session.execute(query).scalar_one_or_none()
        if contract is None:  # another tenant's contract looks exactly like a missing one
            raise NotFoundError("contract not found")
        return contract

    def _current_revision(self, session: Session, contract: Contract) -> DocumentRevision:
        return self._revision(session, contract, contract.current_version)

    def _revision(
        self, session: Session, contract: Contract, version: int | None
    ) -> DocumentRevision:
        version = contract.current_version if version is None else version
        revision = session.execute(
            select(DocumentRevision).where(
                DocumentRevision.contract_id == contract.id, DocumentRevision.version == version
            )
        ).scalar_one_or_none()
        if revision is None:
            raise NotFoundError("document revision not found")
        return revision

    def _signer_by_token(self, session: Session, token: str, *, lock: bool = False) -> Signer:
        if not token or not token.startswith(SIGNING_PREFIX) or len(token) > 100:
            raise NotFoundError("invitation not found or no longer valid")
        signer = session.execute(
            select(Signer).where(Signer.invitation_sha256 == token_digest(token))
        ).scalar_one_or_none()
        if signer is None:
            raise NotFoundError("invitation not found or no longer valid")
        if signer.invitation_expires_at and signer.invitation_expires_at <= datetime.now(UTC):
            raise NotFoundError("invitation not found or no longer valid")
        if lock:
            # Lock the contract row, then re-read the signer: a concurrent request may have
            # signed or declined between our first read and the lock (PostgreSQL).
            self._contract(session, signer.org_id, signer.contract_id, lock=True)
            session.refresh(signer)
        return signer

    def _expire_by_token(self, token: str) -> None:
        """Expire the contract first (own transaction) so the refusal below is persistent."""
        with self._db.read() as session:
            try:
                signer = self._signer_by_token(session, token)
            except NotFoundError:
                return
            expires_at = signer.contract.expires_at
            org_id, contract_id = signer.org_id, signer.contract_id
        if expires_at is not None and expires_at <= datetime.now(UTC):
            with self._db.write() as session:
                self._expire_if_due(
                    session, self._contract(session, org_id, contract_id, lock=True)
                )
            raise ContractStateError("the signing deadline has passed; the contract has expired")

    def _expire_if_due(
        self, session: Session, contract: Contract, now: datetime | None = None
    ) -> None:
        now = now or datetime.now(UTC)
        if (
            contract.expires_at is not None
            and contract.expires_at <= now
            and contract.status in OPEN_FOR_SIGNING
        ):
            contract.status = Status.EXPIRED.value
            contract.updated_at = now
            self._close_invitations(contract)
            event = record(
                session,
                Actor.system(),
                "contract.expire",
                object_type="contract",
                object_id=contract.id,
                org_id=contract.org_id,
                details={"expires_at": contract.expires_at},
            )
            self._evidence(session, event)
            session.flush()

    def _close_invitations(self, contract: Contract) -> None:
        for signer in contract.signers:
            if signer.status in ("pending", "invited"):
                signer.status = "closed"

    def _invite_next(self, session: Session, contract: Contract) -> list[Message]:
        """Invite every signer of the lowest routing group that has not finished."""
        unsigned = [s for s in contract.signers if s.status in ("pending", "invited")]
        if not unsigned:
            return []
        group = min(s.routing_order for s in unsigned)
        messages = []
        expiry = datetime.now(UTC) + timedelta(days=self._settings.invitation_days)
        if contract.expires_at is not None:
            expiry = min(expiry, contract.expires_at)
        for signer in unsigned:
            if signer.routing_order != group or signer.status != "pending":
                continue
            token, digest = new_token(SIGNING_PREFIX)
            signer.invitation_sha256 = digest
            signer.invitation_expires_at = expiry
            signer.status = "invited"
            messages.append(self._invitation(contract, signer, token))
            record(
                session,
                Actor.system(),
                "signer.invite",
                object_type="contract",
                object_id=contract.id,
                org_id=contract.org_id,
                details={"signer_id": signer.id, "email_sha256": sha256_hex(signer.email.encode())},
            )
        session.flush()
        return messages

    def _invitation(self, contract: Contract, signer: Signer, token: str) -> Message:
        # The token travels in the URL fragment, which browsers never send to servers or logs.
        link = f"{self._settings.public_url}/sign#{token}"
        body = (
            f"{signer.name}，您好：\n\n请签署合同《{contract.title}》。\n签署链接（仅限本人使用，请勿转发）：\n"
            f"{link}\n\n"
            f'Hello {signer.name},\n\nYou are invited to sign "{contract.title}".\n'
            f"Your personal signing link (do not forward it):\n{link}\n"
        )
        return Message(
            to=signer.email,
            subject=f"请签署 / Please sign: {contract.title}",
            body=body,
            tags=(("Contract", contract.id), ("Signer", signer.id), ("Signing-Token", token)),
        )

    def _completion_notices(self, contract: Contract) -> list[Message]:
        return [
            Message(
                to=s.email,
                subject=f"合同已签署完成 / Contract completed: {contract.title}",
                body=(
                    f"合同《{contract.title}》已由全部签署方签署完成。\n\n"
                    f'"{contract.title}" has been signed by every party.\n'
                ),
                tags=(("Contract", contract.id), ("Signer", s.id)),
            )
            for s in contract.signers
        ]

    def _deliver(self, outcome: Outcome[T]) -> T:
        self._send_all(outcome.messages)
        return outcome.value

    def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            self._mailer.send(message)


def _as_signer(actor: Actor, signer: Signer) -> Actor:
    return actor.acting_as("signer", signer.id, signer.org_id)


def _stored_of(revision: DocumentRevision) -> StoredObject:
    return StoredObject(
        blob_key=revision.blob_key,
        wrapped_key=revision.wrapped_key,
        plaintext_size=revision.plaintext_size,
        plaintext_sha256=revision.plaintext_sha256,
        ciphertext_sha256=revision.ciphertext_sha256,
    )


MAX_FILTER_TEXT = 200


def _filter_text(value: str | None, name: str) -> str | None:
    cleaned = " ".join((value or "").split())
    if len(cleaned) > MAX_FILTER_TEXT:
        raise InvalidInputError(f"{name} must be at most {MAX_FILTER_TEXT} characters")
    return cleaned.lower() or None


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive "contains", with ``%`` and ``_`` in ``text`` taken literally."""
    return func.lower(column).contains(text, autoescape=True)


def _signer_matches(text: str, *, party: bool) -> ColumnElement[bool]:
    """SQL condition: one of the contract's signers has ``text`` in their name or email (or,
    for the party filter, organisation)."""
    fields = [_contains(Signer.name, text), _contains(Signer.email, text)]
    if party:
        fields.append(_contains(func.coalesce(Signer.organisation, ""), text))
    return exists(select(Signer.id).where(Signer.contract_id == Contract.id, or_(*fields)))


def _validate_signers(signers: Sequence[SignerSpec]) -> list[SignerSpec]:
    if not signers:
        raise InvalidInputError("a contract needs at least one signer")
    if len(signers) > MAX_SIGNERS:
        raise InvalidInputError(f"at most {MAX_SIGNERS} signers per contract")
    seen: set[str] = set()
    for index, spec in enumerate(signers, start=1):
        # Names and organisations go into X.509 subjects, where 64 characters is the limit.
        if not isinstance(spec.name, str) or not spec.name.strip() or len(spec.name.strip()) > 64:
            raise InvalidInputError(f"signer {index}: name must be 1 to 64 characters")
        if spec.organisation is not None and len(spec.organisation) > 64:
            raise InvalidInputError(f"signer {index}: organisation must be at most 64 characters")
        if (
            not isinstance(spec.email, str)
            or not spec.email.strip().isascii()
            or not EMAIL_RE.match(spec.email.strip())
        ):
            raise InvalidInputError(f"signer {index}: {spec.email!r} is not an email address")
        if spec.email.strip().lower() in seen:
            raise InvalidInputError(f"signer {index}: {spec.email} appears twice")
        seen.add(spec.email.strip().lower())
        if not isinstance(spec.routing_order, int) or not 1 <= spec.routing_order <= MAX_SIGNERS:
            raise InvalidInputError(f"signer {index}: routing_order must be 1..{MAX_SIGNERS}")
        try:
            assurance_rank(spec.required_assurance)
        except InvalidInputError as error:
            raise InvalidInputError(f"signer {index}: {error}") from None
        if spec.phone is not None:
            try:
                normalise_phone(spec.phone)
            except InvalidInputError as error:
                raise InvalidInputError(f"signer {index}: {error}") from None
        fields = tuple(spec.fields or ())
        check_specs(index, fields)
        if signature_field(index, fields) is not None and (spec.box is not None or spec.page != -1):
            raise InvalidInputError(
                f"signer {index}: give the signature field either in fields or as page/box"
            )
    return list(signers)


def _checked_terms(
    title: str,
    classification: str,
    amount_minor: int | None,
    currency: str | None,
    expires_at: datetime | None,
) -> str:
    """The title, stripped, once every term of a draft is valid (create and update alike)."""
    title = (title or "").strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidInputError(f"title must be 1 to {MAX_TITLE} characters")
    if classification not in LEVELS:
        raise InvalidInputError(f"classification must be one of {', '.join(LEVELS)}")
    if amount_minor is not None and (
        isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0
    ):
        raise InvalidInputError("amount_minor must be a whole number of minor units, >= 0")
    if (amount_minor is None) != (currency is None):
        raise InvalidInputError("amount_minor and currency go together")
    if currency is not None and not CURRENCY_RE.match(currency):
        raise InvalidInputError("currency must be an ISO 4217 code such as CNY")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInputError("expires_at must include a timezone")
        if expires_at <= datetime.now(UTC):
            raise InvalidInputError("expires_at must be in the future")
    return title


@dataclass(frozen=True)
class _Placed:
    """One signer resolved against the document: the signature field and the other fields."""

    spec: SignerSpec
    page: int
    box: tuple[float, float, float, float]
    extra: list[PlacedField]


def _place_fields(signers: Sequence[SignerSpec], facts: PdfFacts) -> list[_Placed]:
    """Resolve each signer's page and box; place missing boxes in a row on the chosen page."""
    placed = []
    for index, spec in enumerate(signers):
        fields = tuple(spec.fields or ())
        chosen = signature_field(index + 1, fields)
        page_asked, box_asked = (chosen.page, chosen.box) if chosen else (spec.page, spec.box)
        if box_asked is None:
            page = page_asked if page_asked >= 0 else facts.page_count + page_asked
            if not 0 <= page < facts.page_count:
                raise InvalidInputError(
                    f"signer {index + 1}: page {page_asked} does not exist (the PDF has "
                    f"{facts.page_count} pages)"
                )
            width, _height = facts.page_sizes[page]
            per_row = max(1, int((width - FIELD_MARGIN) // (FIELD_WIDTH + 10)))
            col, row = index % per_row, index // per_row
            x1 = FIELD_MARGIN + col * (FIELD_WIDTH + 10)
            y1 = FIELD_MARGIN + row * (FIELD_HEIGHT + 10)
            box = (x1, y1, x1 + FIELD_WIDTH, y1 + FIELD_HEIGHT)
        else:
            page, box = resolve_box(index + 1, "signature", page_asked, box_asked, facts)
        placed.append(_Placed(spec, page, box, place(index + 1, fields, facts)))
    return placed


__all__ = [
    "DEFAULT_CONSENT_TEXT",
    "ContractService",
    "ContractStateError",
    "PactvaultError",
    "SignInput",
    "SignerSpec",
]


def approval_facts(contract: Contract, revision: DocumentRevision) -> ContractFacts:
    return ContractFacts(
        contract_id=contract.id,
        org_id=contract.org_id,
        title=contract.title,
        classification=contract.classification,
        amount_minor=contract.amount_minor,
        currency=contract.currency,
        created_by_user_id=contract.created_by_user_id,
        document_sha256=revision.plaintext_sha256,
    )
