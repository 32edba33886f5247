"""Facts about a signature we just made, for the evidence rows and the audit entry.

We read them back from the produced PDF rather than trusting our own inputs: what is recorded is
what is actually in the file (the CMS signature bytes, the timestamp token and its genTime).

Finding the newest signature means parsing the PDF, and pyHanko tokenises each signature's
/Contents (kilobytes of hex) in Python, ~10 ms apiece. When the PDF was just produced by
``sign_pdf`` in this process, it left a note of where it put the signature (the /Contents
region and the field); the CMS is then read from exactly those bytes of the file, without
parsing the rest. Any PDF without such a note, or whose note does not fit, is parsed in full.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, tsp
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import extract_signer_info
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from pactvault.crypto.der import encoded
from pactvault.errors import SigningError


@dataclass(frozen=True)
class SignatureEvidence:
    field_name: str
    signature_sha256: str  # SHA-256 of the DER CMS SignedData in /Contents
    timestamp_token_sha256: str  # SHA-256 of the DER RFC 3161 token (ContentInfo)
    timestamp_time: datetime  # TSTInfo genTime


@dataclass(frozen=True)
class _Placed:
    field_name: str
    start: int  # the /Contents hex string, "<" to ">" inclusive: pdf[start:end]
    end: int


_RECENT_SIZE = 64
_recent: OrderedDict[bytes, _Placed] = OrderedDict()
_recent_lock = threading.Lock()


def remember_signature(pdf: bytes, field_name: str, start: int, end: int) -> None:
    """Note where ``sign_pdf`` put the newest signature of ``pdf`` (see module docstring)."""
    key = hashlib.sha256(pdf).digest()
    with _recent_lock:
        _recent[key] = _Placed(field_name, start, end)
        _recent.move_to_end(key)
        while len(_recent) > _RECENT_SIZE:
            _recent.popitem(last=False)


def last_signature_evidence(pdf: bytes) -> SignatureEvidence:
    """Evidence of the signature added by the newest revision of ``pdf``."""
    with _recent_lock:
        placed = _recent.get(hashlib.sha256(pdf).digest())
    contents = _contents_at(pdf, placed) if placed is not None else None
    if placed is not None and contents is not None:
        field_name = placed.field_name
        signer_info = extract_signer_info(cms.ContentInfo.load(contents)["content"])
    else:
        newest = _newest_signature(PdfFileReader(io.BytesIO(pdf), strict=False))
        field_name, contents, signer_info = (
            newest.field_name,
            newest.pkcs7_content,
            newest.signer_info,
        )
    # /Contents is the DER ContentInfo zero-padded to the reserved size; hash the DER alone.
    signature_der = encoded(cms.ContentInfo.load(contents))
    token = None
    for attribute in signer_info["unsigned_attrs"] or []:
        if attribute["type"].native == "signature_time_stamp_token":
            token = attribute["values"][0]
            break
    if token is None:
        raise SigningError("the new signature has no timestamp token (PAdES-B-T required)")
    encap = token["content"]["encap_content_info"]["content"]
    tst_info = (
        encap.parsed if isinstance(encap.parsed, tsp.TSTInfo) else tsp.TSTInfo.load(encap.native)
    )
    return SignatureEvidence(
        field_name=field_name,
        signature_sha256=hashlib.sha256(signature_der).hexdigest(),
        timestamp_token_sha256=hashlib.sha256(encoded(token)).hexdigest(),
        timestamp_time=tst_info["gen_time"].native,
    )


def _contents_at(pdf: bytes, placed: _Placed) -> bytes | None:
    """The signature bytes in the noted /Contents region, if the region is one."""
    region = pdf[placed.start : placed.end]
    if len(region) < 4 or region[:1] != b"<" or region[-1:] != b">":
        return None
    try:
        return bytes.fromhex(region[1:-1].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def _newest_signature(reader: PdfFileReader) -> EmbeddedPdfSignature:
    """The signature whose value was written last — reading only that one signature.

    pyHanko's ``embedded_signatures`` parses every signature's /Contents (tens of KB of hex,
    tokenised in Python) just to sort them; the xref tables tell which value object changed
    last without reading any of them.
    """
    candidates: list[tuple[int, generic.IndirectObject, str]] = []
    try:
        stack = [(ref, "") for ref in reader.root["/AcroForm"]["/Fields"]]
    except KeyError:
        stack = []
    while stack and len(candidates) < 10_000:
        field_ref, parent = stack.pop()
        if not isinstance(field_ref, generic.IndirectObject):
            continue
        field = field_ref.get_object()
        if not isinstance(field, generic.DictionaryObject) or "/T" not in field:
            continue
        name = f"{parent}.{field['/T']}" if parent else str(field["/T"])
        stack.extend((kid, name) for kid in field.get("/Kids", ()))
        if field.get("/FT") != "/Sig" or "/V" not in field:
            continue
        value = field.raw_get("/V")
        if not isinstance(value, generic.IndirectObject):
            return _by_pyhanko(reader)  # unusual structure: let pyHanko sort it out
        candidates.append((reader.xrefs.get_last_change(value.reference), field_ref, name))
    if not candidates:
        return _by_pyhanko(reader)  # e.g. /FT inherited from a parent field
    _, field_ref, name = max(candidates, key=lambda c: c[0])
    return EmbeddedPdfSignature(reader, field_ref, name)


def _by_pyhanko(reader: PdfFileReader) -> EmbeddedPdfSignature:
    signatures = reader.embedded_signatures
    if not signatures:
        raise SigningError("the signed document carries no signature")
    return max(signatures, key=lambda s: s.signed_revision)
