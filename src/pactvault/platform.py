"""Wiring: one object that builds every service of an instance from its ``Settings``.

The API, the CLI, background jobs and tests all obtain their services here, so they run the same
code with the same collaborators (the Warehouse pattern: services behind interfaces, assembled in
one place).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy.orm import Session

from pactvault.access.decision import AccessControl
from pactvault.access.roles import RoleService
from pactvault.backup.service import BackupService
from pactvault.config import Settings
from pactvault.contracts.approvals import ApprovalService
from pactvault.contracts.service import ContractService
from pactvault.contracts.signing_policy import SigningPolicyService
from pactvault.delivery.sms import FileOutboxSmsSender, SmsSender
from pactvault.delivery.smtp import SmtpMailer, SmtpSettings
from pactvault.errors import InvalidInputError, KeyServiceError
from pactvault.identity.login import LoginService
from pactvault.identity.mfa.keyring import KEY_NAME as MFA_KEY_NAME
from pactvault.identity.mfa.otp import EmailCodeSender, SmsCodeSender
from pactvault.identity.mfa.passkeys import RelyingParty
from pactvault.identity.mfa.service import MfaService
from pactvault.identity.mfa.stepup import StepUpService
from pactvault.identity.notices import SecurityNotices
from pactvault.identity.passwords import PasswordHasher, PasswordPolicy
from pactvault.identity.people import PeopleService
from pactvault.identity.personal_data import PersonalDataService
from pactvault.identity.realname.admin_review import AdminReviewProvider
from pactvault.identity.realname.service import VerificationService
from pactvault.identity.sessions import SessionService
from pactvault.identity.tokens import TokenService
from pactvault.keys.local import LocalKeyService, LocalKeyStore
from pactvault.keys.secrets import platform_secret
from pactvault.ledger.cosigning import CosigningService, parse_witnesses
from pactvault.ledger.publish import CheckpointStore
from pactvault.ledger.service import LedgerService, origin_for
from pactvault.ledger.witnessing import WitnessService, parse_log_keys, witness_name_for
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.integrity import IntegrityAuditor
from pactvault.monitor.service import SecurityMonitor
from pactvault.monitor.webhooks import WebhookEndpoint
from pactvault.notify import Mailer, OutboxMailer
from pactvault.pki.authority import CertificateAuthority
from pactvault.store import migrate
from pactvault.store.blobs import EncryptedBlobStore, FilesystemBlobStore
from pactvault.store.db import Database
from pactvault.store.sweep import sweep_orphan_blobs
from pactvault.tsa.authority import TimestampAuthority
from pactvault.tsa.client import http_timestamper, local_timestamper


@dataclass
class InitResult:
    created: bool
    setup_token: str | None
    warnings: list[str] = field(default_factory=list)


class Platform:
    def __init__(
        self,
        settings: Settings,
        key_store: LocalKeyStore,
        *,
        mailer: Mailer | None = None,
        password_hasher: PasswordHasher | None = None,
        sms: SmsSender | None = None,
    ) -> None:
        self.settings = settings
        self.db = Database.from_url(settings.resolved_database_url)
        self.keys = LocalKeyService(key_store)
        self.blob_store = FilesystemBlobStore(settings.blob_dir)
        self.blobs = EncryptedBlobStore(self.blob_store, self.keys)
        self.ca = CertificateAuthority(self.keys, public_url=settings.public_url)
        self.mailer: Mailer = mailer or _default_mailer(settings)
        # No SMS gateway ships with pactvault: the default is a development outbox (files).
        self.sms: SmsSender = sms or FileOutboxSmsSender(settings.sms_outbox_dir)
        self.access = AccessControl(self.db)
        self.ledger = LedgerService(self.db, self.keys, origin_for(settings.public_url))
        hooks = (
            [WebhookEndpoint("default", settings.alert_webhook_url, settings.alert_webhook_secret)]
            if settings.alert_webhook_url and settings.alert_webhook_secret
            else []
        )
        self.alerts = AlertService(
            self.db,
            self.access,
            hooks,
            mailer=self.mailer,
            operator_emails=settings.alert_emails,
            email_min_severity=settings.alert_email_min_severity,
            public_url=settings.public_url,
        )
        # Detection rules on the audit journal, automatic responses, shared rate limits, metrics
        # (monitor/); sessions and MFA are built in _open_identity, hence the late binding.
        self.monitor = SecurityMonitor(
            db=self.db,
            database_url=settings.resolved_database_url,
            access=self.access,
            alerts=self.alerts,
            revoke_sessions=lambda s, user_id: self.sessions.revoke_all_for_user(s, user_id),
            mfa=lambda: self.mfa,
            enabled=settings.monitor_enabled,
            trusted_proxies=settings.trusted_proxies,
            rate_limits=settings.rate_limits,
        )
        # Witnessing (c2sp.org/tlog-witness): we cosign configured logs, and ask witnesses to
        # cosign ours; proven misbehaviour on either side becomes a critical alert.
        self.witness = WitnessService(
            self.db,
            self.keys,
            witness_name_for(settings.public_url),
            parse_log_keys(settings.witness_logs),
            alerts=self.alerts,
        )
        self.cosigning = CosigningService(
            self.db,
            self.ledger,
            parse_witnesses(settings.ledger_witnesses),
            quorum=settings.ledger_witness_quorum,
            alerts=self.alerts,
        )
        self.integrity = IntegrityAuditor(
            self.db,
            self.blob_store,
            self.keys,
            self.alerts,
            checkpoints=CheckpointStore(self.ledger.origin),
            log_verifiers=lambda _session: [self.ledger.verifier()],
            interval=timedelta(hours=settings.integrity_interval_hours),
        )
        # Backups, restores and drills (backup/); the root key store seals each backup's key.
        self.backups = BackupService(
            settings, self.db, self.blob_store, self.keys, key_store, self.alerts
        )
        # Emails to a person whose account protection changed, read from the audit journal.
        self.notices = SecurityNotices(self.db, self.mailer, settings.public_url)
        self.approvals = ApprovalService(self.db, self.access)
        self.signing_policy = SigningPolicyService(self.db, self.access)
        self.personal_data = PersonalDataService(self.db, self.keys, self.access)
        # Built-in real-name verification: an administrator reviews uploaded ID documents.
        # Commercial providers (三要素, bank card, face liveness) plug in as IdentityProviders.
        self.verification = VerificationService(
            self.db, self.access, self.personal_data, self.blobs, [AdminReviewProvider()]
        )
        self.tokens = TokenService(self.db, self.access)
        self.roles = RoleService(self.db, self.access)
        self.password_hasher = password_hasher or PasswordHasher()
        self.password_policy = PasswordPolicy()
        self.people = PeopleService(
            self.db,
            self.access,
            self.password_hasher,
            self.password_policy,
            self.mailer,
            public_url=settings.public_url,
        )
        # Sessions, logins, second factors and signing (which needs step-up) use keys that live
        # in the database (CSRF and MFA digest secrets): they are built in _open_identity.
        self.sessions: SessionService
        self.login: LoginService
        self.mfa: MfaService
        self.stepup: StepUpService
        self.contracts: ContractService
        self.external_tsa_roots = _external_tsa_roots(settings)
        self._tsa: TimestampAuthority | None = None
        self._tsa_lock = threading.Lock()

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def initialise(
        cls,
        settings: Settings,
        *,
        mailer: Mailer | None = None,
        password_hasher: PasswordHasher | None = None,
    ) -> tuple[Platform, InitResult]:
        """First start (idempotent): data directory, root key, schema, CA + TSA, setup token."""
        _private_dir(settings.home)
        key_store = LocalKeyStore(settings.key_dir, settings.passphrase)
        created = not key_store.exists()
        if created:
            key_store.initialise()
        key_store.open()
        warnings = [key_store.warning] if getattr(key_store, "warning", None) else []
        platform = cls(settings, key_store, mailer=mailer, password_hasher=password_hasher)
        migrate.upgrade(platform.db.engine)
        with platform.db.write() as session:
            platform.ca.initialise(session)
        platform.ledger.verifier_key()  # create the log key now, so no GET ever writes it
        platform.witness.verifier_key()  # and the witness key
        platform._open_identity()
        token = platform.tokens.create_setup_token()
        swept = sweep_orphan_blobs(platform.db, platform.blob_store)
        if swept.removed or swept.temporaries_removed:
            warnings.append(
                f"removed {len(swept.removed)} blob(s) and {swept.temporaries_removed} partial "
                "write(s) left by an interrupted operation"
            )
        return platform, InitResult(created=created, setup_token=token, warnings=warnings)

    @classmethod
    def open(cls, settings: Settings, *, mailer: Mailer | None = None) -> Platform:
        """Open an initialised instance; refuses (clearly) if ``pactvault init`` never ran."""
        key_store = LocalKeyStore(settings.key_dir, settings.passphrase)
        if not key_store.exists():
            raise KeyServiceError(
                f"no pactvault instance in {settings.home} (run `pactvault init` first)"
            )
        key_store.open()
        platform = cls(settings, key_store, mailer=mailer)
        migrate.upgrade(platform.db.engine)
        with platform.db.read() as session:
            if not platform.ca.is_initialised(session):
                raise KeyServiceError("the certificate authority is missing (run `pactvault init`)")
        platform._open_identity()
        return platform

    def _open_identity(self) -> None:
        with self.db.write() as session:
            csrf_key = platform_secret(session, self.keys, "csrf")
            mfa_secret = platform_secret(session, self.keys, MFA_KEY_NAME)
        self.sessions = SessionService(self.db, self.access, csrf_key=csrf_key)
        self.mfa = MfaService(
            self.db,
            self.access,
            self.keys,
            secret=mfa_secret,
            relying_party=_relying_party(self.settings.public_url),
            senders=[EmailCodeSender(self.mailer), SmsCodeSender(self.sms)],
        )
        self.login = LoginService(
            self.db,
            self.access,
            self.sessions,
            self.password_hasher,
            self.password_policy,
            mfa=self.mfa,
        )
        self.stepup = StepUpService(self.db, self.mfa)
        self.contracts = ContractService(
            db=self.db,
            keys=self.keys,
            blobs=self.blobs,
            ca=self.ca,
            timestamper=self.timestamper,
            mailer=self.mailer,
            settings=self.settings,
            approvals=self.approvals,
            stepup=self.stepup,
            personal_data=self.personal_data,
            verification=self.verification,
        )

    def close(self) -> None:
        self.alerts.close()
        self.monitor.close()
        self.cosigning.close()
        self.db.dispose()

    # -- timestamps -------------------------------------------------------------------------

    def timestamper(self, session: Session) -> TimeStamper:
        """The TSA signatures use: an external one if configured, else our built-in authority."""
        if self.settings.tsa_url:
            return http_timestamper(self.settings.tsa_url, trust_roots=self.external_tsa_roots)
        return local_timestamper(self.timestamp_authority(session))

    def trust_roots(self, session: Session) -> list[x509.Certificate]:
        """What this instance's signatures chain to: our root, plus an external TSA's roots."""
        return [self.ca.root_certificate(session), *self.external_tsa_roots]

    def timestamp_authority(self, session: Session) -> TimestampAuthority:
        with self._tsa_lock:
            if self._tsa is None:
                self._tsa = self.ca.timestamp_authority(session)
            return self._tsa


def _default_mailer(settings: Settings) -> Mailer:
    """SMTP when configured; otherwise the development outbox under the data directory."""
    if not settings.smtp_host:
        return OutboxMailer(settings.outbox_dir)
    return SmtpMailer(
        SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_sender,
        )
    )


def _relying_party(public_url: str) -> RelyingParty | None:
    """The WebAuthn relying party of our public URL; ``None`` (no passkeys) for a bare IP."""
    try:
        return RelyingParty.from_public_url(public_url)
    except InvalidInputError:
        return None


def _external_tsa_roots(settings: Settings) -> list[x509.Certificate]:
    """Trust anchors for an external TSA. Without them any timeStamping certificate would do,
    so a configured TSA URL without a trust file is refused rather than trusted blindly."""
    if not settings.tsa_url:
        return []
    if settings.tsa_trust is None:
        raise InvalidInputError(
            "PACTVAULT_TSA_URL is set but PACTVAULT_TSA_TRUST (the TSA's root certificate, PEM) "
            "is not: timestamps from an unverified authority are not accepted"
        )
    try:
        return x509.load_pem_x509_certificates(settings.tsa_trust.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"cannot read TSA trust roots from {settings.tsa_trust}: {exc}"
        ) from None


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
