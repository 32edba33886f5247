"""Facts about a signature we just made, for the evidence rows and the audit entry.

We read them back from the produced PDF rather than trusting our own inputs: what is recorded is
what is actually in the file (the CMS signature bytes, the timestamp token and its genTime).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, tsp
from pyhanko.pdf_utils.reader import PdfFileReader

from pactvault.errors import SigningError


@dataclass(frozen=True)
class SignatureEvidence:
    field_name: str
    signature_sha256: str  # SHA-256 of the DER CMS SignedData in /Contents
    timestamp_token_sha256: str  # SHA-256 of the DER RFC 3161 token (ContentInfo)
    timestamp_time: datetime  # TSTInfo genTime


def last_signature_evidence(pdf: bytes) -> SignatureEvidence:
    """Evidence of the signature added by the newest revision of ``pdf``."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signatures = reader.embedded_signatures
    if not signatures:
        raise SigningError("the signed document carries no signature")
    newest = max(signatures, key=lambda s: s.signed_revision)
    # /Contents is the DER ContentInfo zero-padded to the reserved size; hash the DER alone.
    signature_der = cms.ContentInfo.load(bytes(newest.sig_object["/Contents"])).dump()
    token = None
    for attribute in newest.signer_info["unsigned_attrs"] or []:
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
        field_name=newest.field_name,
        signature_sha256=hashlib.sha256(signature_der).hexdigest(),
        timestamp_token_sha256=hashlib.sha256(token.dump()).hexdigest(),
        timestamp_time=tst_info["gen_time"].native,
    )
