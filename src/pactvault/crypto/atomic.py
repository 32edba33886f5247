"""Durable, all-or-nothing file writes shared by the blob store, the key store and decryption.

A crash or an exception half-way through must never leave a partial document or key file under its
final name: data goes to a 0600 temporary file in the destination directory (same filesystem, so
the rename is atomic), is fsynced, renamed into place, and the directory is fsynced so the rename
itself survives a power cut. Temporary names start with "." so listings can skip them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename/unlink durable by fsyncing the directory (skipped where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str], chunks: Iterable[bytes], *, no_clobber: bool = False
) -> int:
    """Write ``chunks`` to ``path`` atomically; returns the number of bytes written.

    With ``no_clobber`` an existing file is never replaced (FileExistsError) — used for the root
    key, where overwriting would make every stored document unreadable. The check is atomic
    (``os.link``) where the filesystem supports hard links.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    written = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if no_clobber:
            _link_no_clobber(tmp_name, target)
        else:
            os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(target.parent)
    return written


def _link_no_clobber(tmp_name: str, target: Path) -> None:
    try:
        os.link(tmp_name, target)
    except FileExistsError:
        raise
    except OSError as exc:  # no hard links (some network/FUSE filesystems): best effort
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(target)) from None
        os.replace(tmp_name, target)
        return
    os.unlink(tmp_name)
