"""Taking the root key out of the local key store for the key ceremony, and putting it back.

``LocalKeyStore`` deliberately never hands its root key out; the ceremony is the one place that
must. :class:`CeremonyKeyStore` is a ``LocalKeyStore`` that can also report its material (every
root key version and the active one) — used only by ``export-root-key``, by
``import-root-key --check`` and by the restore drill. :func:`install_root_key` writes material
back as a normal ``keys/root-key.json`` in the exact file format ``LocalKeyStore`` reads (sealed
under an argon2id key from the passphrase when one is given), refusing to overwrite a root key,
then proves the file by opening it and round-tripping a wrap under every version.

(The natural home of both is ``keys/local.py``; they live here so the key store's everyday
interface keeps no export method.)
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pactvault.backup.shares import RootKeyMaterial
from pactvault.crypto import aead
from pactvault.crypto.atomic import atomic_write
from pactvault.errors import KeyServiceError
from pactvault.keys import passphrase as kdf
from pactvault.keys.local import (
    FILE_FORMAT,
    FILE_FORMAT_VERSION,
    UNPROTECTED_WARNING,
    LocalKeyStore,
    _file_seal_context,
)

__all__ = ["CeremonyKeyStore", "install_root_key"]

PINNED_KEY_FILE = "backup-signing-key.pem"


class CeremonyKeyStore(LocalKeyStore):
    """A local key store that can hand its root key material to the key ceremony."""

    def material(self) -> RootKeyMaterial:
        self._require_open()
        return RootKeyMaterial(active_version=self._active_version, keys=dict(self._keys))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def install_root_key(
    directory: Path, passphrase: str | None, material: RootKeyMaterial
) -> LocalKeyStore:
    """Write ``material`` as ``directory/root-key.json`` (never over an existing one) and return
    the store opened from the file just written."""
    store = LocalKeyStore(directory, passphrase)
    if store.exists():
        raise KeyServiceError(
            f"{store.path} already exists; refusing to overwrite a root key (restore into a new "
            "data directory)"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    document: dict[str, Any] = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "active_version": material.active_version,
        "restored_from": "key ceremony shares",
    }
    versions = sorted(material.keys)
    if passphrase:
        params = kdf.new_params()
        file_key = kdf.derive_key(passphrase, params)
        document["protection"] = "passphrase"
        document["kdf"] = params
        document["keys"] = [
            {
                "version": v,
                "sealed": _b64(aead.seal(file_key, material.keys[v], aad=_file_seal_context(v))),
            }
            for v in versions
        ]
    else:
        document["protection"] = "none"
        document["warning"] = UNPROTECTED_WARNING
        document["keys"] = [{"version": v, "key": _b64(material.keys[v])} for v in versions]
    payload = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    try:
        atomic_write(store.path, [payload], no_clobber=True)
    except FileExistsError:
        raise KeyServiceError("a root key already exists; refusing to overwrite it") from None
    opened = CeremonyKeyStore(directory, passphrase).open()
    if not opened.material().same_as(material):
        raise KeyServiceError("the written root key file does not read back as written")
    return opened


def pinned_key_path(key_dir: Path) -> Path:
    """Where ``import-root-key`` pins the backup verification key that came with the shares."""
    return key_dir / PINNED_KEY_FILE
