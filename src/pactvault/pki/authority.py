"""Our certificate authority as a service: keys in the key service, certificates in the database.

The pure certificate profiles live in ``pki.ca`` and ``pki.revocation``; this module decides which
key signs what, remembers what was issued (every certificate, for revocation and evidence) and
serves CRLs, OCSP answers and the timestamp authority built on the same hierarchy.

All CA, TSA and per-signer keys belong to the platform namespace (``PLATFORM_ORG``), not to the
sending organisation: a signer's key is the signer's, and destroying a sender's organisation key
must not make other people's signatures unverifiable.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from pactvault.errors import KeyServiceError, NotFoundError
from pactvault.keys.service import KeyService, SigningKeyRef
from pactvault.pki import ca as profiles
from pactvault.pki.identity import SubjectIdentity
from pactvault.pki.revocation import (
    CertificateStatus,
    RevokedEntry,
    build_crl,
    build_ocsp_response,
)
from pactvault.store.models import Certificate, SystemState
from pactvault.tsa.authority import TimestampAuthority

PLATFORM_ORG = "_platform"
STATE_NAME = "pki"
CRL_LIFETIME = timedelta(days=1)
CRL_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    key: SigningKeyRef

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


@dataclass(frozen=True)
class _Cached:
    crl: x509.CertificateRevocationList
    made: float


def serial_hex(serial: int) -> str:
    return format(serial, "x")


class CertificateAuthority:
    """Root CA → issuing CA → signer, seal, TSA and OCSP responder certificates."""

    def __init__(self, keys: KeyService, *, public_url: str) -> None:
        self._keys = keys
        self._public_url = public_url.rstrip("/")
        self._certs: dict[str, x509.Certificate] = {}
        self._crl_cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    # URLs embedded in certificates: validators fetch revocation status from here.
    @property
    def issuing_crl_url(self) -> str:
        return f"{self._public_url}/pki/issuing.crl"

    @property
    def root_crl_url(self) -> str:
        return f"{self._public_url}/pki/root.crl"

    @property
    def ocsp_url(self) -> str:
        return f"{self._public_url}/pki/ocsp"

    # -- set-up -----------------------------------------------------------------------------

    def is_initialised(self, session: Session) -> bool:
        return session.get(SystemState, STATE_NAME) is not None

    def initialise(self, session: Session, *, organisation: str = "pactvault") -> None:
        """Create the whole hierarchy once. Calling it again is a no-op."""
        if self.is_initialised(session):
            return
        # Every instance's CAs get distinct names: validators find CRLs and issuers by name, and
        # two instances both called "pactvault Issuing CA" would be confused with each other.
        instance = secrets.token_hex(4)
        self._keys.ensure_org_kek(session, PLATFORM_ORG)
        root_key = self._new_key(session, "ca-root")
        root_private = self._private(session, root_key)
        root = profiles.create_root_ca(
            root_private,
            common_name=f"{organisation} Root CA {instance}",
            organisation=organisation,
        )
        self._remember(session, root, "root", root_key, issuer=None)

        issuing_key = self._new_key(session, "ca-issuing")
        issuing = profiles.create_issuing_ca(
            issuing_key.public_key,
            root_certificate=root,
            root_private_key=root_private,
            common_name=f"{organisation} Issuing CA {instance}",
            organisation=organisation,
            crl_url=self.root_crl_url,
        )
        self._remember(session, issuing, "issuing", issuing_key, issuer=root)
        issuing_private = self._private(session, issuing_key)

        tsa_key = self._new_key(session, "tsa")
        tsa = profiles.issue_tsa_certificate(
            tsa_key.public_key,
            common_name=f"{organisation} Timestamp Authority",
            organisation=organisation,
            issuer_certificate=issuing,
            issuer_private_key=issuing_private,
            crl_url=self.issuing_crl_url,
        )
        self._remember(session, tsa, "tsa", tsa_key, issuer=issuing)

        ocsp_key = self._new_key(session, "ocsp")
        responder = profiles.issue_ocsp_responder_certificate(
            ocsp_key.public_key,
            common_name=f"{organisation} OCSP Responder",
            issuer_certificate=issuing,
            issuer_private_key=issuing_private,
        )
        self._remember(session, responder, "ocsp", ocsp_key, issuer=issuing)

        seal_key = self._new_key(session, "seal")
        seal = profiles.issue_signer_certificate(
            seal_key.public_key,
            subject=SubjectIdentity(
                common_name=f"{organisation} Completion Seal",
                subject_id="platform-completion-seal",
                kind="seal",
                organisation=organisation,
            ),
            issuer_certificate=issuing,
            issuer_private_key=issuing_private,
            crl_url=self.issuing_crl_url,
            ocsp_url=self.ocsp_url,
            validity=timedelta(days=3650),
        )
        self._remember(session, seal, "seal", seal_key, issuer=issuing)

        session.add(
            SystemState(
                name=STATE_NAME,
                value={
                    "root": serial_hex(root.serial_number),
                    "issuing": serial_hex(issuing.serial_number),
                    "tsa": serial_hex(tsa.serial_number),
                    "ocsp": serial_hex(responder.serial_number),
                    "seal": serial_hex(seal.serial_number),
                },
            )
        )
        session.flush()

    # -- lookups ----------------------------------------------------------------------------

    def _state(self, session: Session) -> dict[str, str]:
        state = session.get(SystemState, STATE_NAME)
        if state is None:
            raise KeyServiceError(
                "the certificate authority is not initialised (run pactvault init)"
            )
        return dict(state.value)

    def _row(self, session: Session, role: str) -> Certificate:
        serial = self._state(session)[role]
        row = session.get(Certificate, serial)
        if row is None:
            raise KeyServiceError(f"the {role} certificate is missing from the database")
        return row

    def certificate(self, session: Session, role: str) -> x509.Certificate:
        """The active certificate for ``role`` (root, issuing, tsa, ocsp, seal), cached."""
        with self._lock:
            cached = self._certs.get(role)
        if cached is not None:
            return cached
        cert = x509.load_der_x509_certificate(self._row(session, role).der)
        with self._lock:
            self._certs[role] = cert
        return cert

    def root_certificate(self, session: Session) -> x509.Certificate:
        return self.certificate(session, "root")

    def chain(self, session: Session) -> list[x509.Certificate]:
        """Issuing CA then root: what a signature embeds so validators can build the path."""
        return [self.certificate(session, "issuing"), self.certificate(session, "root")]

    def root_pem(self, session: Session) -> bytes:
        return self.root_certificate(session).public_bytes(serialization.Encoding.PEM)

    def completion_seal(self, session: Session) -> tuple[x509.Certificate, str]:
        """The platform seal that closes every completed contract: certificate and key id."""
        row = self._row(session, "seal")
        return self.certificate(session, "seal"), row.signing_key_id

    # -- issuing ----------------------------------------------------------------------------

    def issue(self, session: Session, subject: SubjectIdentity) -> IssuedCertificate:
        """A fresh key pair and certificate for one signer (or seal) — key stays wrapped."""
        kind = "seal" if subject.kind == "seal" else "signer"
        key = self._new_key(session, kind)
        issuing_row = self._row(session, "issuing")
        issuing_private = self._private_by_id(session, issuing_row.signing_key_id)
        cert = profiles.issue_signer_certificate(
            key.public_key,
            subject=subject,
            issuer_certificate=self.certificate(session, "issuing"),
            issuer_private_key=issuing_private,
            crl_url=self.issuing_crl_url,
            ocsp_url=self.ocsp_url,
        )
        self._remember(session, cert, kind, key, issuer=self.certificate(session, "issuing"))
        return IssuedCertificate(certificate=cert, key=key)

    def revoke(self, session: Session, serial: str, reason: x509.ReasonFlags | None = None) -> None:
        row = session.get(Certificate, serial.lower())
        if row is None or row.kind not in ("signer", "seal", "tsa", "ocsp"):
            raise NotFoundError("certificate not found")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            row.revocation_reason = reason.value if reason else None
            session.flush()
        with self._lock:
            self._crl_cache.clear()

    # -- revocation status ------------------------------------------------------------------

    def crl(self, session: Session, issuer: str = "issuing") -> x509.CertificateRevocationList:
        """A current CRL for ``issuer`` ("issuing" or "root"), cached for a few minutes."""
        if issuer not in ("issuing", "root"):
            raise NotFoundError("no such CRL")
        now = time.monotonic()
        with self._lock:
            cached = self._crl_cache.get(issuer)
        if cached is not None and now - cached.made < CRL_CACHE_SECONDS:
            return cached.crl
        issuer_row = self._row(session, issuer)
        revoked = session.execute(
            select(Certificate).where(
                Certificate.issuer_serial == issuer_row.serial, Certificate.revoked_at.is_not(None)
            )
        ).scalars()
        entries = [
            RevokedEntry(
                serial_number=int(row.serial, 16),
                revoked_at=row.revoked_at,  # type: ignore[arg-type]
                reason=x509.ReasonFlags(row.revocation_reason) if row.revocation_reason else None,
            )
            for row in revoked
        ]
        this_update = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        crl = build_crl(
            issuer_certificate=self.certificate(session, issuer),
            issuer_private_key=self._private_by_id(session, issuer_row.signing_key_id),
            revoked=entries,
            # Monotonic without a shared counter: milliseconds since the epoch of thisUpdate.
            crl_number=int(time.time() * 1000),
            this_update=this_update,
            next_update=this_update + CRL_LIFETIME,
        )
        with self._lock:
            self._crl_cache[issuer] = _Cached(crl=crl, made=now)
        return crl

    def status(self, session: Session, serial_number: int) -> CertificateStatus:
        row = session.get(Certificate, serial_hex(serial_number))
        if row is None:
            return CertificateStatus(status="unknown")
        if row.revoked_at is not None:
            reason = x509.ReasonFlags(row.revocation_reason) if row.revocation_reason else None
            return CertificateStatus(status="revoked", revoked_at=row.revoked_at, reason=reason)
        return CertificateStatus(status="good")

    def ocsp(self, session: Session, request_der: bytes) -> bytes:
        responder_row = self._row(session, "ocsp")
        return build_ocsp_response(
            request_der,
            issuer_certificate=self.certificate(session, "issuing"),
            responder_certificate=self.certificate(session, "ocsp"),
            responder_private_key=self._private_by_id(session, responder_row.signing_key_id),
            status_lookup=lambda serial: self.status(session, serial),
        )

    # -- timestamp authority ----------------------------------------------------------------

    def timestamp_authority(self, session: Session) -> TimestampAuthority:
        row = self._row(session, "tsa")
        return TimestampAuthority(
            certificate=self.certificate(session, "tsa"),
            private_key=self._private_by_id(session, row.signing_key_id),
            chain=self.chain(session),
        )

    # -- helpers ----------------------------------------------------------------------------

    def _new_key(self, session: Session, purpose: str) -> SigningKeyRef:
        return self._keys.generate_signing_key(session, PLATFORM_ORG, purpose=purpose)

    def _private(self, session: Session, key: SigningKeyRef):  # type: ignore[no-untyped-def]
        return self._private_by_id(session, key.key_id)

    def _private_by_id(self, session: Session, key_id: str):  # type: ignore[no-untyped-def]
        return self._keys.signing_key(session, PLATFORM_ORG, key_id).private_key()

    def _remember(
        self,
        session: Session,
        cert: x509.Certificate,
        kind: str,
        key: SigningKeyRef,
        *,
        issuer: x509.Certificate | None,
    ) -> None:
        session.add(
            Certificate(
                serial=serial_hex(cert.serial_number),
                kind=kind,
                issuer_serial=serial_hex(issuer.serial_number) if issuer else None,
                subject=cert.subject.rfc4514_string(),
                fingerprint_sha256=profiles.certificate_fingerprint(cert),
                der=cert.public_bytes(serialization.Encoding.DER),
                signing_key_id=key.key_id,
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
            )
        )
        session.flush()
