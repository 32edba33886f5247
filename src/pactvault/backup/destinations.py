"""Where backups go: a local or mounted directory, or S3-compatible object storage.

A destination stores opaque objects under slash-separated names (see ``backup.manifest`` for the
layout) and can *confirm* one: prove that what it holds under a name has the expected size and
SHA-256. Confirmation is what makes a backup count:

* a directory re-reads the file it just renamed into place and hashes it (catching a full disk, a
  flaky mount or a lying NFS cache);
* S3 uploads objects up to 64 MiB with ``ChecksumSHA256`` (the server refuses the upload if the
  bytes it received hash differently), then HEADs the object: the size must match, and when the
  server reports the object's full SHA-256 it must match too; when it reports none (multipart
  uploads give a composite checksum; some S3-compatible servers give nothing) the object is
  downloaded again and hashed.

Writes never leave a partial object under its final name (temporary file + rename; S3 PUTs are
atomic). Configuration is one string per destination (``PACTVAULT_BACKUP_DESTINATIONS``, comma
or newline separated)::

    /srv/backups/pactvault                       a directory (absolute path; ``dir:`` optional)
    s3://bucket/prefix?endpoint=https://minio.example:9000&region=us-east-1&addressing=path
    optional:s3://…                              may fail without failing the backup

S3 credentials never go in the string (``user:secret@`` is refused): they come from
``PACTVAULT_BACKUP_S3_ACCESS_KEY_ID`` / ``PACTVAULT_BACKUP_S3_SECRET_ACCESS_KEY`` or boto3's usual
chain (``AWS_*`` variables, ``~/.aws``, instance roles). The same code talks to AWS S3, MinIO,
Ceph RGW or any other S3 endpoint; the tests run it against a local S3 server on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from pactvault.backup.errors import BackupError, BackupIntegrityError
from pactvault.crypto.atomic import atomic_write, fsync_directory
from pactvault.crypto.hashing import equal
from pactvault.errors import InvalidInputError

__all__ = [
    "Destination",
    "DirectoryDestination",
    "ObjectInfo",
    "S3Destination",
    "copy_file",
    "parse_destinations",
]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,127}){0,7}")
_READ = 1 << 20
SINGLE_PUT_LIMIT = 64 << 20
#: Objects copied (or checked) at once per destination: latency-bound work (S3 round trips,
#: small-file writes) overlaps; the GIL is released while waiting.
TRANSFER_WORKERS = 8


def check_name(name: str) -> str:
    """Object names are ours, but listings come from outside: accept only safe relative names."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(f"unsafe object name {name!r}")
    return name


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    modified: datetime | None = None
    #: The full-object SHA-256 the store computed itself, when it reports one.
    sha256: str | None = None


def write_file(target: Path, chunks: Iterable[bytes], *, sync: bool) -> int:
    """All-or-nothing write (temporary file + rename). ``sync=False`` skips the fsyncs: for
    many small files whose durability one ``os.sync()`` settles afterwards (restore staging
    and installation, backup objects before the manifest is written)."""
    if sync:
        return atomic_write(target, chunks)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    written = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return written


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        block = stream.read(_READ)
        if not block:
            return
        yield block


class Destination(ABC):
    """One backup destination. ``required`` ones must confirm a backup for it to count."""

    label: str
    required: bool = True

    @abstractmethod
    def put_stream(self, name: str, stream: BinaryIO, *, sha256: str, size: int) -> None:
        """Store ``size`` bytes read from ``stream`` whose SHA-256 should be ``sha256``.

        Stores that can check the hash on receipt do (S3); ``confirm`` checks it everywhere.
        """

    def put_file(self, name: str, path: Path, *, sha256: str, size: int) -> None:
        with path.open("rb") as stream:
            self.put_stream(name, stream, sha256=sha256, size=size)

    @abstractmethod
    def put_bytes(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def open(self, name: str) -> BinaryIO | None:
        """A readable stream of the object, or None if it does not exist. Caller closes it."""

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo | None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with ``prefix`` (unsafe names are skipped)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the object; a missing one is not an error."""

    # -- shared behaviour ---------------------------------------------------------------------

    def get_bytes(self, name: str, *, limit: int = 64 << 20) -> bytes | None:
        stream = self.open(name)
        if stream is None:
            return None
        with stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise BackupIntegrityError(f"{name} at {self.label} is larger than expected")
        return data

    def flush(self) -> None:
        """Make everything written so far durable (a directory's objects are written without
        one fsync each; the backup calls this before writing its manifest)."""
        return None

    def download(self, name: str, target: Path) -> tuple[str, int]:
        """Copy the object to ``target`` (atomically, not fsynced: a staging copy); returns the
        SHA-256 and size it had. Missing → BackupIntegrityError naming object and destination.
        """
        stream = self.open(name)
        if stream is None:
            raise BackupIntegrityError(f"{name} is missing at {self.label}")
        digest = hashlib.sha256()
        size = 0

        def pieces() -> Iterator[bytes]:
            nonlocal size
            for block in _chunks(stream):
                digest.update(block)
                size += len(block)
                yield block

        with stream:
            write_file(target, pieces(), sync=False)
        return digest.hexdigest(), size

    def hash_object(self, name: str) -> tuple[str, int] | None:
        stream = self.open(name)
        if stream is None:
            return None
        digest = hashlib.sha256()
        size = 0
        with stream:
            for block in _chunks(stream):
                digest.update(block)
                size += len(block)
        return digest.hexdigest(), size

    def confirm(self, name: str, *, sha256: str, size: int) -> None:
        """Prove the destination holds exactly these bytes under ``name``."""
        info = self.stat(name)
        if info is None:
            raise BackupIntegrityError(f"{name} is missing at {self.label} after upload")
        if info.size != size:
            raise BackupIntegrityError(
                f"{name} at {self.label} has {info.size} bytes, expected {size}"
            )
        if info.sha256 is not None and self.trusts_reported_hash:
            found = info.sha256
        else:
            hashed = self.hash_object(name)
            if hashed is None:
                raise BackupIntegrityError(f"{name} is missing at {self.label} after upload")
            found = hashed[0]
        if not equal(found, sha256):
            raise BackupIntegrityError(f"{name} at {self.label} does not have the expected hash")

    #: Whether a SHA-256 in ``stat`` was computed by the store from the bytes it holds.
    trusts_reported_hash: bool = False


class DirectoryDestination(Destination):
    def __init__(self, root: Path, *, required: bool = True) -> None:
        if not root.is_absolute():
            raise InvalidInputError(f"backup directory {root} must be an absolute path")
        self.root = root
        self.required = required
        self.label = f"dir:{root}"

    def _path(self, name: str) -> Path:
        path = self.root.joinpath(*check_name(name).split("/"))
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise InvalidInputError(f"unsafe object name {name!r}")
        return path

    def _ready(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"{self.label} is not usable: {exc.strerror}") from None

    def _parents(self, path: Path) -> None:
        missing = []
        current = path.parent
        while not current.exists():
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
            fsync_directory(directory.parent)

    def put_stream(self, name: str, stream: BinaryIO, *, sha256: str, size: int) -> None:
        self._ready()
        target = self._path(name)
        try:
            self._parents(target)
            write_file(target, _chunks(stream), sync=False)  # see flush()
        except OSError as exc:
            raise BackupError(f"writing {name} to {self.label} failed: {exc.strerror}") from None

    def put_bytes(self, name: str, data: bytes) -> None:
        self._ready()
        target = self._path(name)
        try:
            self._parents(target)
            atomic_write(target, [data])
        except OSError as exc:
            raise BackupError(f"writing {name} to {self.label} failed: {exc.strerror}") from None

    def flush(self) -> None:
        os.sync()

    def open(self, name: str) -> BinaryIO | None:
        try:
            return self._path(name).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise BackupError(f"reading {name} from {self.label} failed: {exc.strerror}") from None

    def stat(self, name: str) -> ObjectInfo | None:
        try:
            st = self._path(name).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return ObjectInfo(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only below the prefix's directory part ("objects/sha256/" → that directory).
        start = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if not start.is_dir() or not start.resolve().is_relative_to(self.root.resolve()):
            return
        found = []
        for directory, subdirs, files in os.walk(start):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            relative = Path(directory).relative_to(self.root)
            for filename in files:
                name = (relative / filename).as_posix()
                if filename.startswith(".") or not name.startswith(prefix):
                    continue
                if not _NAME.fullmatch(name):
                    continue
                try:
                    st = (Path(directory) / filename).stat()
                except FileNotFoundError:
                    continue
                found.append(ObjectInfo(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        yield from sorted(found, key=lambda info: info.name)

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_directory(path.parent)
        # Drop directories the deletion left empty (backups/<id>/, objects/sha256/ab/).
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class S3Destination(Destination):
    """A bucket and key prefix on any S3-compatible endpoint (boto3)."""

    trusts_reported_hash = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        required: bool = True,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise InvalidInputError(f"{bucket!r} is not a valid S3 bucket name")
        prefix = prefix.strip("/")
        if prefix:
            check_name(prefix)
        if addressing not in (None, "path", "virtual", "auto"):
            raise InvalidInputError("S3 addressing must be 'path', 'virtual' or 'auto'")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self.addressing = addressing
        self._credentials = (access_key_id, secret_access_key)
        self.required = required
        where = f" at {urlsplit(endpoint_url).netloc}" if endpoint_url else ""
        self.label = f"s3://{bucket}/{prefix}{where}"
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._client_lock:
            return self._make_client()

    def _make_client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            key_id, secret = self._credentials
            session = boto3.session.Session(
                aws_access_key_id=key_id or None,
                aws_secret_access_key=secret or None,
                region_name=self.region,
            )
            config = Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                max_pool_connections=2 * TRANSFER_WORKERS,
                s3={"addressing_style": self.addressing or "auto"},
            )
            self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _fail(self, action: str, name: str, exc: Exception) -> BackupError:
        # Error codes only: botocore messages can carry request details, never credentials, but
        # we keep what reaches logs and alerts minimal.
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return BackupError(f"{action} {name} at {self.label} failed: {code}")

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def put_stream(self, name: str, stream: BinaryIO, *, sha256: str, size: int) -> None:
        try:
            if size <= SINGLE_PUT_LIMIT:
                # One PUT; the server refuses it if the body does not hash to ChecksumSHA256.
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._key(name),
                    Body=stream.read(size + 1),
                    ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                )
            else:
                from boto3.s3.transfer import TransferConfig

                self.client.upload_fileobj(
                    stream,
                    self.bucket,
                    self._key(name),
                    ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                    Config=TransferConfig(multipart_threshold=SINGLE_PUT_LIMIT),
                )
        except self._errors() as exc:
            raise self._fail("uploading", name, exc) from None

    def put_bytes(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(name),
                Body=data,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"),
            )
        except self._errors() as exc:
            raise self._fail("uploading", name, exc) from None

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def open(self, name: str) -> BinaryIO | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except self._errors() as exc:
            if self._missing(exc):
                return None
            raise self._fail("reading", name, exc) from None
        return response["Body"]  # type: ignore[no-any-return]

    def stat(self, name: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self._key(name), ChecksumMode="ENABLED"
            )
        except self._errors() as exc:
            if self._missing(exc):
                return None
            raise self._fail("checking", name, exc) from None
        reported = head.get("ChecksumSHA256")
        sha = None
        # A full-object checksum only: multipart uploads report "<hash>-<parts>".
        if (
            reported
            and "-" not in reported
            and head.get("ChecksumType", "FULL_OBJECT")
            in (
                "FULL_OBJECT",
                None,
            )
        ):
            with contextlib.suppress(ValueError):
                sha = base64.b64decode(reported, validate=True).hex()
        return ObjectInfo(name, int(head["ContentLength"]), head.get("LastModified"), sha)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if _NAME.fullmatch(name):
                        yield ObjectInfo(name, int(item["Size"]), item.get("LastModified"))
        except self._errors() as exc:
            raise self._fail("listing", prefix or "/", exc) from None

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except self._errors() as exc:
            if not self._missing(exc):
                raise self._fail("deleting", name, exc) from None


def parse_destination(
    spec: str, *, s3_access_key_id: str | None = None, s3_secret_access_key: str | None = None
) -> Destination:
    text = spec.strip()
    required = True
    if text.startswith("optional:"):
        required = False
        text = text.removeprefix("optional:").strip()
    if text.startswith("s3://"):
        parts = urlsplit(text)
        if parts.username or parts.password or "@" in parts.netloc:
            raise InvalidInputError(
                "S3 credentials do not belong in a destination URL; set "
                "PACTVAULT_BACKUP_S3_ACCESS_KEY_ID / PACTVAULT_BACKUP_S3_SECRET_ACCESS_KEY"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=False).items()}
        unknown = set(query) - {"endpoint", "region", "addressing"}
        if unknown:
            raise InvalidInputError(
                f"unknown S3 destination option(s): {', '.join(sorted(unknown))}"
            )
        endpoint = query.get("endpoint")
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise InvalidInputError("an S3 endpoint is an http:// or https:// URL")
        return S3Destination(
            parts.netloc,
            parts.path,
            endpoint_url=endpoint,
            region=query.get("region"),
            addressing=query.get("addressing"),
            access_key_id=s3_access_key_id,
            secret_access_key=s3_secret_access_key,
            required=required,
        )
    if text.startswith("file://"):
        text = urlsplit(text).path
    text = text.removeprefix("dir:")
    if not text:
        raise InvalidInputError("an empty backup destination")
    return DirectoryDestination(Path(text), required=required)


def parse_destinations(
    specs: Sequence[str],
    *,
    s3_access_key_id: str | None = None,
    s3_secret_access_key: str | None = None,
) -> list[Destination]:
    destinations = [
        parse_destination(
            spec, s3_access_key_id=s3_access_key_id, s3_secret_access_key=s3_secret_access_key
        )
        for spec in specs
        if spec.strip()
    ]
    labels = [d.label for d in destinations]
    if len(set(labels)) != len(labels):
        raise InvalidInputError("the same backup destination is configured twice")
    return destinations


def copy_file(source: Path, target: Path) -> None:
    """Copy within the local filesystem atomically (restore installs blobs with this)."""
    with source.open("rb") as handle:
        atomic_write(target, _chunks(handle))
