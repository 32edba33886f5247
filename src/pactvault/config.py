"""Settings, read from the environment in one place.

Everything that varies between a laptop and a production deployment is here, so the rest of the
code takes a ``Settings`` object instead of reading ``os.environ`` itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pactvault.errors import InvalidInputError

DEFAULT_HOME = Path("pactvault-data")
MIB = 1024 * 1024


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise InvalidInputError(f"{name} must be positive")
    return value


def _split_env(env: dict[str, str], name: str, separators: str) -> tuple[str, ...]:
    parts = re.split(separators, env.get(name, ""))
    return tuple(part.strip() for part in parts if part.strip())


def _count_env(env: dict[str, str], name: str) -> int | None:
    """A non-negative integer, or None when unset."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit():
        raise InvalidInputError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def _path_env(env: dict[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


def _on_off(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise InvalidInputError(f"{name} must be 'on' or 'off'")
    return raw == "on"


def _smtp_security(value: str) -> Literal["starttls", "tls", "none"]:
    if value not in ("starttls", "tls", "none"):
        raise InvalidInputError("PACTVAULT_SMTP_SECURITY must be 'starttls', 'tls' or 'none'")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of one pactvault instance.

    ``home`` is the data directory of the embedded default: SQLite database, encrypted blobs and
    the local key store all live below it, so copying or backing up one directory is enough.
    """

    home: Path = DEFAULT_HOME
    database_url: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    tsa_url: str | None = None
    # PEM file with the root(s) an external TSA must chain to; required with ``tsa_url``.
    tsa_trust: Path | None = None
    max_upload_bytes: int = 50 * MIB
    #: Largest body of every other request (JSON, OCSP, timestamp queries): see api/middleware.
    max_request_bytes: int = 1 * MIB
    #: Seconds the server may take to start answering a request (time spent waiting for the
    #: client's body does not count), and the longest pause allowed while a body arrives.
    request_timeout_seconds: float = 60.0
    #: Per-check time limit of ``/readyz`` (database, blob store, key service, TSA).
    readiness_timeout_seconds: float = 5.0
    active_content_policy: Literal["reject", "flag"] = "reject"
    invitation_days: int = 14
    #: Where alerts are POSTed (Standard Webhooks, HMAC-SHA256 with ``alert_webhook_secret``).
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = field(default=None, repr=False)
    #: Operator addresses for platform-wide alerts (an organisation's alerts go to its members
    #: who may read alerts), and the lowest severity that is emailed at all.
    alert_emails: tuple[str, ...] = ()
    alert_email_min_severity: str = "warning"
    integrity_interval_hours: int = 24
    #: Logs this instance witnesses (c2sp.org/tlog-witness): their C2SP verifier keys.
    witness_logs: tuple[str, ...] = ()
    #: Witnesses asked to cosign our ledger's checkpoints: ``"<witness vkey> <URL prefix>"`` each,
    #: and how many of them should cosign each checkpoint (None: all of them).
    ledger_witnesses: tuple[str, ...] = ()
    ledger_witness_quorum: int | None = None
    #: Outgoing mail (invitations, one-time codes). Without ``smtp_host`` mail goes to the
    #: development outbox under the data directory.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_sender: str = "pactvault <no-reply@localhost>"
    #: Backups (``backup/``): destinations (one spec each, see ``backup/destinations.py``), how
    #: often the maintenance loop backs up and runs a restore drill (None: never), retention.
    backup_destinations: tuple[str, ...] = ()
    backup_interval_minutes: int | None = None
    backup_retention: str = "hourly=48,daily=30,monthly=12"
    backup_drill_interval_hours: int | None = None
    backup_scratch_dir: Path | None = None
    backup_drill_database_url: str | None = field(default=None, repr=False)
    backup_pg_bindir: Path | None = None
    backup_s3_access_key_id: str | None = None
    backup_s3_secret_access_key: str | None = field(default=None, repr=False)
    #: Security monitoring (``monitor/``): detection rules, automatic responses, rate limits
    #: (off only to measure their cost), and how often the rules read the audit journal.
    monitor_enabled: bool = True
    monitor_interval_seconds: float = 1.0
    #: Proxies (CIDRs) whose ``X-Forwarded-For`` names the client; none are trusted by default.
    trusted_proxies: tuple[str, ...] = ()
    #: Rate-limit overrides, ``<class>.<ip|subject>=<N>/<seconds>`` (see ``monitor/guard.py``).
    rate_limits: tuple[str, ...] = ()
    #: Bearer token for ``/metrics`` from other hosts (without it: loopback clients only).
    metrics_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        policy = env.get("PACTVAULT_ACTIVE_CONTENT", "reject")
        if policy not in ("reject", "flag"):
            raise InvalidInputError("PACTVAULT_ACTIVE_CONTENT must be 'reject' or 'flag'")
        host = str(overrides.pop("host", None) or env.get("PACTVAULT_HOST") or cls.host)
        port = int(overrides.pop("port", None) or _int_env(env, "PACTVAULT_PORT", cls.port))  # type: ignore[call-overload]
        # The public URL ends up in every certificate (CRL and OCSP addresses): default it to
        # where this process actually listens rather than to a port nobody serves.
        public_url = env.get("PACTVAULT_PUBLIC_URL") or f"http://{host}:{port}"
        settings = cls(
            home=Path(env.get("PACTVAULT_HOME") or DEFAULT_HOME),
            database_url=env.get("PACTVAULT_DATABASE_URL") or None,
            passphrase=env.get("PACTVAULT_PASSPHRASE") or None,
            public_url=public_url.rstrip("/"),
            host=host,
            port=port,
            tsa_url=env.get("PACTVAULT_TSA_URL") or None,
            tsa_trust=Path(env["PACTVAULT_TSA_TRUST"]) if env.get("PACTVAULT_TSA_TRUST") else None,
            max_upload_bytes=_int_env(env, "PACTVAULT_MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            max_request_bytes=_int_env(env, "PACTVAULT_MAX_REQUEST_BYTES", cls.max_request_bytes),
            request_timeout_seconds=_int_env(env, "PACTVAULT_REQUEST_TIMEOUT_SECONDS", 60),
            readiness_timeout_seconds=_int_env(env, "PACTVAULT_READINESS_TIMEOUT_SECONDS", 5),
            active_content_policy=policy,  # type: ignore[arg-type]
            invitation_days=_int_env(env, "PACTVAULT_INVITATION_DAYS", cls.invitation_days),
            alert_webhook_url=env.get("PACTVAULT_ALERT_WEBHOOK_URL") or None,
            alert_webhook_secret=env.get("PACTVAULT_ALERT_WEBHOOK_SECRET") or None,
            alert_emails=_split_env(env, "PACTVAULT_ALERT_EMAILS", r"[\s,]+"),
            alert_email_min_severity=(
                env.get("PACTVAULT_ALERT_EMAIL_MIN_SEVERITY") or cls.alert_email_min_severity
            ),
            integrity_interval_hours=_int_env(
                env, "PACTVAULT_INTEGRITY_INTERVAL_HOURS", cls.integrity_interval_hours
            ),
            # Verifier keys hold no spaces or commas; a witness entry is "<vkey> <URL>".
            witness_logs=_split_env(env, "PACTVAULT_WITNESS_LOGS", r"[\s,]+"),
            ledger_witnesses=_split_env(env, "PACTVAULT_LEDGER_WITNESSES", r"[,\n]"),
            ledger_witness_quorum=_count_env(env, "PACTVAULT_LEDGER_WITNESS_QUORUM"),
            smtp_host=env.get("PACTVAULT_SMTP_HOST") or None,
            smtp_port=_int_env(env, "PACTVAULT_SMTP_PORT", cls.smtp_port),
            smtp_security=_smtp_security(env.get("PACTVAULT_SMTP_SECURITY") or "starttls"),
            smtp_username=env.get("PACTVAULT_SMTP_USERNAME") or None,
            smtp_password=env.get("PACTVAULT_SMTP_PASSWORD") or None,
            smtp_sender=env.get("PACTVAULT_SMTP_SENDER") or cls.smtp_sender,
            backup_destinations=_split_env(env, "PACTVAULT_BACKUP_DESTINATIONS", r"[,\n]"),
            backup_interval_minutes=_count_env(env, "PACTVAULT_BACKUP_INTERVAL_MINUTES") or None,
            backup_retention=env.get("PACTVAULT_BACKUP_RETENTION") or cls.backup_retention,
            backup_drill_interval_hours=(
                _count_env(env, "PACTVAULT_BACKUP_DRILL_INTERVAL_HOURS") or None
            ),
            backup_scratch_dir=_path_env(env, "PACTVAULT_BACKUP_SCRATCH_DIR"),
            backup_drill_database_url=env.get("PACTVAULT_BACKUP_DRILL_DATABASE_URL") or None,
            backup_pg_bindir=_path_env(env, "PACTVAULT_PG_BINDIR"),
            backup_s3_access_key_id=env.get("PACTVAULT_BACKUP_S3_ACCESS_KEY_ID") or None,
            backup_s3_secret_access_key=env.get("PACTVAULT_BACKUP_S3_SECRET_ACCESS_KEY") or None,
            monitor_enabled=_on_off(env, "PACTVAULT_MONITOR", True),
            monitor_interval_seconds=_int_env(env, "PACTVAULT_MONITOR_INTERVAL_SECONDS", 1),
            trusted_proxies=_split_env(env, "PACTVAULT_TRUSTED_PROXIES", r"[\s,]+"),
            rate_limits=_split_env(env, "PACTVAULT_RATE_LIMITS", r"[\s,]+"),
            metrics_token=env.get("PACTVAULT_METRICS_TOKEN") or None,
        )
        if settings.alert_webhook_url and not settings.alert_webhook_secret:
            raise InvalidInputError(
                "PACTVAULT_ALERT_WEBHOOK_URL needs PACTVAULT_ALERT_WEBHOOK_SECRET (whsec_…): "
                "unsigned alerts could be forged"
            )
        if settings.metrics_token is not None and len(settings.metrics_token) < 24:
            raise InvalidInputError("PACTVAULT_METRICS_TOKEN must be at least 24 characters")
        return replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'pactvault.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def key_dir(self) -> Path:
        return self.home / "keys"

    @property
    def outbox_dir(self) -> Path:
        """Development mail outbox: messages we would have sent, one .eml file each."""
        return self.home / "outbox"

    @property
    def sms_outbox_dir(self) -> Path:
        """DEVELOPMENT ONLY SMS outbox: no SMS gateway ships with pactvault; texts land here."""
        return self.home / "sms-outbox"
