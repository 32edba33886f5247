"""The blocklist of common and breached passwords (NIST SP 800-63B, ASVS 5 V6.2.4).

The shipped list (``assets/passwords``, see its README for source and licence) is stored as a
sorted array of 64-bit SHA-256 prefixes of each normalised entry: compact (8 bytes an entry),
loaded with one read on first use, searched by bisection, and it does not put a readable password
list into every installation. A 64-bit prefix makes a false match (an unlisted password refused)
about one in 2^64/n — never in practice — and a false match only costs the user a retry.

Entries and candidates are compared after NFKC normalisation, case folding and trimming, so
``Password123`` is refused when ``password123`` is listed. Only entries of at least
``MIN_STORED_LENGTH`` characters are kept: shorter ones can never pass the length rule anyway.

Rebuild the asset with ``python -m pactvault.identity.blocklist SOURCE.txt[.gz] OUTPUT.bin``.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import unicodedata
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path

RECORD_BYTES = 8
MIN_STORED_LENGTH = 8
ASSET_NAME = "blocklist-sha256-64.bin"


def normalise_entry(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def entry_key(text: str) -> bytes:
    """The stored form of one entry: the first 8 bytes of SHA-256 of its normalised UTF-8."""
    return hashlib.sha256(normalise_entry(text).encode("utf-8")).digest()[:RECORD_BYTES]


class Blocklist:
    """A read-only set of passwords, backed by sorted fixed-size records."""

    def __init__(self, data: bytes) -> None:
        if len(data) % RECORD_BYTES:
            raise ValueError("blocklist data is not a whole number of records")
        self._data = data

    def __len__(self) -> int:
        return len(self._data) // RECORD_BYTES

    def _record(self, index: int) -> bytes:
        start = index * RECORD_BYTES
        return self._data[start : start + RECORD_BYTES]

    def __contains__(self, password: object) -> bool:
        if not isinstance(password, str):
            return False
        key = entry_key(password)
        low, high = 0, len(self)
        while low < high:
            middle = (low + high) // 2
            if self._record(middle) < key:
                low = middle + 1
            else:
                high = middle
        return low < len(self) and self._record(low) == key

    def is_sorted_and_unique(self) -> bool:
        return all(self._record(i) < self._record(i + 1) for i in range(len(self) - 1))


def build(entries: Iterable[str], min_length: int = MIN_STORED_LENGTH) -> bytes:
    keys = {entry_key(e) for e in entries if len(normalise_entry(e)) >= min_length}
    return b"".join(sorted(keys))


@cache
def shipped_blocklist() -> Blocklist:
    """The list shipped with the package, read once per process on first use."""
    return Blocklist(files("pactvault").joinpath("assets", "passwords", ASSET_NAME).read_bytes())


def _read_source(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8").splitlines()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pactvault.identity.blocklist SOURCE.txt[.gz] OUTPUT.bin")
        return 2
    lines = _read_source(Path(args[0]))
    data = build(lines)
    Path(args[1]).write_bytes(data)
    print(f"{len(lines)} source lines -> {len(data) // RECORD_BYTES} entries in {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
