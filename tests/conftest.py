"""Shared fixtures: a real PostgreSQL server started by the suite, and ready-made platforms.

PostgreSQL refuses to run as root, so when the suite runs as root the server is started as the
``postgres`` user in a private temporary directory, listening only on loopback. A missing
PostgreSQL installation fails the suite loudly (``make test`` installs it): a database we claim to
support is never silently left untested.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pactvault.config import Settings
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.db import Database


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); "
            "run `make test`, which installs the Debian postgresql package",
            pytrace=False,
        )
    return Path(candidates[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="pactvault-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
            "-c fsync=off -c full_page_writes=off -c max_connections=50"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = "pv_" + uuid.uuid4().hex[:16]
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each supported kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pactvault.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


def database_bytes(database: Database) -> bytes:
    """Everything the database holds at rest: SQLite's files, or a full ``pg_dump``."""
    url = database.engine.url
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
        assert files, "no SQLite files found"
        return b"".join(p.read_bytes() for p in files)
    dump = subprocess.run(
        ["pg_dump", "-h", url.host or "", "-p", str(url.port), "-U", url.username or "",
         url.database or ""],
        check=True, capture_output=True,
    ).stdout
    assert b"CREATE TABLE" in dump
    return dump


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "data",
        database_url=database_url,
        public_url="http://127.0.0.1:8000",
        max_upload_bytes=5 * 1024 * 1024,
    )


@pytest.fixture
def mailer() -> MemoryMailer:
    return MemoryMailer()


@pytest.fixture
def platform(settings: Settings, mailer: MemoryMailer) -> Iterator[Platform]:
    instance, _ = Platform.initialise(settings, mailer=mailer)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def sqlite_platform(tmp_path: Path, mailer: MemoryMailer) -> Iterator[Platform]:
    """For tests that exercise interfaces rather than storage: the embedded default only."""
    settings = Settings(home=tmp_path / "data", max_upload_bytes=5 * 1024 * 1024)
    instance, _ = Platform.initialise(settings, mailer=mailer)
    try:
        yield instance
    finally:
        instance.close()
