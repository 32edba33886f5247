"""Destinations (directory, S3 on a local S3 server) and the manifest format, piece by piece."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_kit import ACCESS_KEY, SECRET_KEY, S3Server, running_s3
from pactvault.backup.destinations import (
    Destination,
    DirectoryDestination,
    S3Destination,
    parse_destination,
    parse_destinations,
)
from pactvault.backup.errors import BackupError, BackupIntegrityError
from pactvault.backup.manifest import (
    BlobObject,
    Manifest,
    StoredFile,
    catalog_name,
    database_name,
    object_name,
)
from pactvault.errors import InvalidInputError


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    yield from running_s3()


def test_destination_specs_are_parsed_strictly(tmp_path: Path) -> None:
    directory = parse_destination(str(tmp_path / "b"))
    assert isinstance(directory, DirectoryDestination) and directory.required
    optional = parse_destination(f"optional:dir:{tmp_path / 'c'}")
    assert isinstance(optional, DirectoryDestination) and not optional.required
    s3 = parse_destination("s3://pv-bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu")
    assert isinstance(s3, S3Destination)
    assert (s3.bucket, s3.prefix, s3.region) == ("pv-bucket", "some/prefix/", "eu")
    assert s3.label == "s3://pv-bucket/some/prefix at 127.0.0.1:9000"
    refused = {
        "s3://key:secret@pv-bucket/x": "credentials do not belong",
        "s3://pv-bucket/x?token=abc": "unknown S3 destination option",
        "s3://pv-bucket/x?endpoint=ftp://h": "http:// or https://",
        "s3://B/x": "not a valid S3 bucket name",
        "relative/dir": "absolute path",
    }
    for spec, message in refused.items():
        with pytest.raises(InvalidInputError, match=message):
            parse_destination(spec)
    with pytest.raises(InvalidInputError, match="twice"):
        parse_destinations([str(tmp_path), f"dir:{tmp_path}"])


def _roundtrip(destination: Destination, tmp_path: Path) -> None:
    data = b"encrypted bytes " * 1000
    sha = hashlib.sha256(data).hexdigest()
    name = object_name(sha)
    source = tmp_path / "source"
    source.write_bytes(data)
    assert destination.stat(name) is None and destination.get_bytes(name) is None
    destination.put_file(name, source, sha256=sha, size=len(data))
    destination.confirm(name, sha256=sha, size=len(data))
    assert [i.name for i in destination.list("objects/")] == [name]
    assert destination.download(name, tmp_path / "back") == (sha, len(data))
    # What the destination holds changes behind our back: confirmation catches it.
    destination.put_bytes(name, data[:-1] + b"!")
    with pytest.raises(BackupIntegrityError, match="does not have the expected hash"):
        destination.confirm(name, sha256=sha, size=len(data))
    with pytest.raises(BackupIntegrityError, match="bytes, expected"):
        destination.confirm(name, sha256=sha, size=len(data) + 1)
    destination.delete(name)
    destination.delete(name)  # idempotent
    assert list(destination.list("objects/")) == []
    with pytest.raises(BackupIntegrityError, match="missing at"):
        destination.download(name, tmp_path / "gone")


def test_a_directory_destination_writes_atomically_and_confirms(tmp_path: Path) -> None:
    destination = DirectoryDestination(tmp_path / "vault")
    _roundtrip(destination, tmp_path)
    for unsafe in ("../escape", "/etc/passwd", "a/../../b", ".hidden/x"):
        with pytest.raises(InvalidInputError):
            destination.put_bytes(unsafe, b"x")
    assert not (tmp_path / "escape").exists()


def test_an_s3_destination_confirms_by_reading_back(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    destination = parse_destination(
        s3_server.spec(bucket), s3_access_key_id=ACCESS_KEY, s3_secret_access_key=SECRET_KEY
    )
    _roundtrip(destination, tmp_path)
    missing = parse_destination(
        s3_server.spec("pv-missing-bucket"),
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
    )
    with pytest.raises(BackupError, match="NoSuchBucket") as failed:
        missing.put_bytes("x", b"y")
    assert SECRET_KEY not in failed.value.detail


def _manifest() -> Manifest:
    backup_id = "20260501T120000Z-0123abcd"
    sha = "ab" * 32
    return Manifest(
        backup_id=backup_id,
        instance_id="instance",
        created_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
        pactvault_version="0.1.0",
        database_kind="sqlite",
        schema_heads=("0011",),
        ledger_size=3,
        ledger_root=sha,
        audit_seq=9,
        audit_head=sha,
        counts={"contracts": 1},
        root_key_version=1,
        wrapped_data_key=b"\x01" * 61,
        signing_key=b"\x02" * 32,
        files=(
            StoredFile("database", database_name(backup_id), sha, 10, sha, 8),
            StoredFile("catalog", catalog_name(backup_id), sha, 10, sha, 8),
        ),
        blobs=(BlobObject("cd" * 32, 5),),
    )


def test_the_manifest_round_trips_and_refuses_anything_unexpected() -> None:
    manifest = _manifest()
    body = manifest.to_bytes()
    assert Manifest.from_bytes(body, expected_id=manifest.backup_id) == manifest
    with pytest.raises(BackupIntegrityError, match="names another backup"):
        Manifest.from_bytes(body, expected_id="20260501T120000Z-ffffffff")
    tampered = {
        "not canonical": body.replace(b'{"backup_id"', b'{ "backup_id"'),
        "unknown field": body.replace(b'{"backup_id"', b'{"a":1,"backup_id"'),
        "path escape": body.replace(b"backups/20260501T120000Z-0123abcd/database", b"../x"),
        "bad hash": body.replace(b"cd" * 32, b"zz" * 32),
        "negative size": body.replace(b'"cdcd' + b"cd" * 30 + b'",5', b'"' + b"cd" * 32 + b'",-5'),
    }
    for what, data in tampered.items():
        assert data != body, what
        with pytest.raises(BackupIntegrityError, match=r"malformed|canonical"):
            Manifest.from_bytes(data)
