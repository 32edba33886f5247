"""Settings, read from the environment in one place.

Everything that varies between a laptop and a production deployment is here, so the rest of the
code takes a ``Settings`` object instead of reading ``os.environ`` itself.
"""

from __future__ import annotations

import os
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
    active_content_policy: Literal["reject", "flag"] = "reject"
    invitation_days: int = 14
    #: Where alerts are POSTed (Standard Webhooks, HMAC-SHA256 with ``alert_webhook_secret``).
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = field(default=None, repr=False)
    integrity_interval_hours: int = 24

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
            active_content_policy=policy,  # type: ignore[arg-type]
            invitation_days=_int_env(env, "PACTVAULT_INVITATION_DAYS", cls.invitation_days),
            alert_webhook_url=env.get("PACTVAULT_ALERT_WEBHOOK_URL") or None,
            alert_webhook_secret=env.get("PACTVAULT_ALERT_WEBHOOK_SECRET") or None,
            integrity_interval_hours=_int_env(
                env, "PACTVAULT_INTEGRITY_INTERVAL_HOURS", cls.integrity_interval_hours
            ),
        )
        if settings.alert_webhook_url and not settings.alert_webhook_secret:
            raise InvalidInputError(
                "PACTVAULT_ALERT_WEBHOOK_URL needs PACTVAULT_ALERT_WEBHOOK_SECRET (whsec_…): "
                "unsigned alerts could be forged"
            )
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
