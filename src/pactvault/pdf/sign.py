"""PAdES signing: one signer, one new incremental revision, timestamped, optionally B-LT.

Choices that matter for verifiers we did not write:

* ``/ETSI.CAdES.detached`` (PAdES) with SHA-256, and a signature timestamp in the unsigned
  attributes → PAdES-B-T. With :class:`RevocationMaterial`, the signer's chain and the CRLs /
  OCSP responses we supply go into the DSS *in the same revision, before signing*, so the
  signature covers them and each signer still adds exactly one revision (B-LT). Nothing is
  fetched over the network.
* The space for the CMS is reserved explicitly, so pyHanko never does a dry-run signature
  (which would cost a second timestamp request and a second HSM operation).
* The first signer certifies with DocMDP FILL_FORMS so later signers may still fill their
  fields; the last signer locks the document through a PDF 2.0 field lock with /P 1, which
  ``prepare_fields`` must have put on that field (``SignatureField(lock_document=True)``).
* A signer's date and text fields are filled (``fill``) in the very revision their signature
  covers (see ``pdf.forms``); ``prepare_document`` places them, with the signature fields,
  before anyone signs.
* Fail closed: no timestamp → :class:`TimestampUnavailableError` and no output at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation import DocumentSecurityStore

from pactvault.crypto.der import EncodedContentInfo, encoded, has_der_lengths
from pactvault.errors import (
    InvalidInputError,
    PactvaultError,
    SigningError,
    TimestampUnavailableError,
)
from pactvault.pdf._aio import run_sync
from pactvault.pdf.appearance import Appearance, build_stamp
from pactvault.pdf.evidence import remember_signature
from pactvault.pdf.fields import SignatureField, open_incremental, prepare_fields
from pactvault.pdf.forms import TextField, add_text_fields, fill_text_fields
from pactvault.pdf.signer import KeySigner, to_asn1

DIGEST_ALGORITHM = "sha256"
# DER bytes reserved for everything in the CMS except the signer's certificates: signed
# attributes, the signature value and the RFC 3161 token (which carries the TSA's own chain).
# A P-256 B-T CMS with a 3-certificate TSA chain is ~4.4 KB; 16 KiB leaves room for unknown
# (e.g. RSA-4096) TSAs. Unused space is zero padding inside /Contents — and not only file size:
# every later reader of the PDF (pyHanko included) tokenises /Contents as hex, in Python, so
# when the timestamper can bound its token size (our own TSA can) we reserve that instead.
CMS_ALLOWANCE = 16 * 1024
# Our part of the CMS when the token size is known: signed attributes, an RSA-4096 or ECDSA
# signature and the framing (~1 KB measured).
SIGNER_INFO_ALLOWANCE = 4 * 1024

__all__ = [
    "Appearance",
    "RevocationMaterial",
    "SignatureField",
    "TextField",
    "prepare_document",
    "prepare_fields",
    "sign_pdf",
]


@dataclass(frozen=True)
class RevocationMaterial:
    """DER-encoded CRLs and OCSP responses to embed in the DSS (PAdES-B-LT)."""

    crls: Sequence[bytes] = ()
    ocsp_responses: Sequence[bytes] = ()


def prepare_document(
    pdf: bytes,
    signature_fields: Sequence[SignatureField],
    text_fields: Sequence[TextField] = (),
) -> bytes:
    """Place every field of a signing workflow before the first signature.

    The signature fields (``fields.prepare_fields``) and then the signers' empty text fields
    (``forms.add_text_fields``), each as one incremental update; without text fields this is
    exactly ``prepare_fields``.
    """
    prepared = prepare_fields(pdf, signature_fields)
    if not text_fields:
        return prepared
    writer = open_incremental(prepared)
    try:
        add_text_fields(writer, text_fields)
        out = BytesIO()
        writer.write(out)
    except PactvaultError:
        raise
    except Exception:
        raise SigningError("the text fields could not be added to the PDF") from None
    return out.getvalue()


def sign_pdf(
    pdf: bytes,
    *,
    field_name: str,
    signer: KeySigner,
    timestamper: TimeStamper,
    appearance: Appearance,
    certify: bool = False,
    lock_document: bool = False,
    revocation: RevocationMaterial | None = None,
    signing_time: datetime | None = None,
    fill: Mapping[str, str] | None = None,
) -> bytes:
    """Sign the empty field ``field_name`` and return the document with one more revision.

    ``pdf`` must already contain the field (see :func:`prepare_fields`). The returned bytes
    start with ``pdf`` unchanged. ``fill`` names empty text fields (``prepare_document``) and
    their values: they are filled in the same revision, so this signature covers them.
    """
    if signing_time is None:
        signing_time = datetime.now(UTC)
    elif signing_time.tzinfo is None:
        raise InvalidInputError("signing_time must be timezone-aware")
    signing_time = signing_time.astimezone(UTC).replace(microsecond=0)
    guarded = _FailClosedTimeStamper(timestamper)
    try:
        return run_sync(
            _sign(
                pdf,
                field_name=field_name,
                signer=signer,
                timestamper=guarded,
                appearance=appearance,
                certify=certify,
                lock_document=lock_document,
                revocation=revocation,
                signing_time=signing_time,
                fill=fill or {},
            )
        )
    except TimestampUnavailableError:
        raise
    except Exception as exc:
        if guarded.failure is not None:
            # pyHanko may wrap the timestamper's exception; the cause is still the timestamp.
            raise TimestampUnavailableError(guarded.failure) from exc
        if isinstance(exc, PactvaultError):
            raise
        raise SigningError(f"the PDF could not be signed: {_describe(exc)}") from exc


async def _sign(
    pdf: bytes,
    *,
    field_name: str,
    signer: KeySigner,
    timestamper: TimeStamper,
    appearance: Appearance,
    certify: bool,
    lock_document: bool,
    revocation: RevocationMaterial | None,
    signing_time: datetime,
    fill: Mapping[str, str],
) -> bytes:
    style, text_params = build_stamp(appearance)
    writer = open_incremental(pdf)
    field = _empty_signature_field(writer, field_name)
    _check_lock(field, lock_document=lock_document, certify=certify)
    fill_text_fields(writer, fill)
    if revocation is not None:
        _embed_revocation(writer, signer, revocation)

    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=DIGEST_ALGORITHM,
        subfilter=SigSeedSubFilter.PADES,
        certify=certify,
        docmdp_permissions=MDPPerm.NO_CHANGES if lock_document else MDPPerm.FILL_FORMS,
        reason=appearance.reason,
        location=appearance.location,
    )
    pdf_signer = PdfSigner(meta, signer, timestamper=timestamper, stamp_style=style)
    session = pdf_signer.init_signing_session(writer, existing_fields_only=True)
    # The claimed signing time (/M and the stamp) is ours to choose, so callers and tests can
    # pin it; pyHanko only exposes it on the session object.
    session.system_time = signing_time
    tbs = session.prepare_tbs_document(
        validation_info=None,
        bytes_reserved=_bytes_reserved(signer, timestamper),
        appearance_text_params=text_params,
    )
    prepared, output = tbs.digest_tbs_document(output=BytesIO())
    post = await tbs.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=signing_time),
    )
    await post.post_signature_processing(output)
    result = output.getvalue()
    if not result.startswith(pdf):  # never rewrite earlier revisions; a broken invariant is fatal
        raise SigningError("internal error: signing would have rewritten earlier revisions")
    remember_signature(
        result, field_name, prepared.reserved_region_start, prepared.reserved_region_end
    )
    return result


def _empty_signature_field(
    writer: IncrementalPdfFileWriter, field_name: str
) -> generic.DictionaryObject:
    """The existing, unsigned field called ``field_name`` (fields are placed up front)."""
    try:
        fields = writer.root["/AcroForm"]["/Fields"]
    except KeyError:
        raise SigningError(f"the PDF has no signature field named {field_name!r}") from None
    for ref in fields:
        field = ref.get_object()
        if str(field.get("/T", "")) == field_name:
            if str(field.get("/FT", "")) != "/Sig":
                raise SigningError(f"field {field_name!r} is not a signature field")
            if field.get("/V") is not None:
                raise SigningError(f"field {field_name!r} has already been signed")
            return field
    raise SigningError(f"the PDF has no signature field named {field_name!r}")


def _check_lock(field: generic.DictionaryObject, *, lock_document: bool, certify: bool) -> None:
    """The field's /Lock decides whether signing it locks; make the caller's intent match.

    pyHanko applies DocMDP to an approval signature only through the field's /Lock dictionary,
    and that dictionary cannot be added at signing time without invalidating a certification
    signature (validators flag the field change) — so ``prepare_fields`` places it, and a
    mismatch here is a workflow error, reported instead of silently signing differently.
    """
    try:
        locks = int(field["/Lock"]["/P"]) == MDPPerm.NO_CHANGES.value
    except (KeyError, TypeError, ValueError):
        locks = False
    if lock_document and not certify and not locks:
        raise SigningError(
            f"field {str(field.get('/T'))!r} was not prepared to lock the document; "
            "create it with SignatureField(..., lock_document=True)"
        )
    if locks and not lock_document:
        raise SigningError(
            f"field {str(field.get('/T'))!r} locks the document when signed; "
            "sign it with lock_document=True (it must be the last signature)"
        )


def _embed_revocation(
    writer: IncrementalPdfFileWriter, signer: KeySigner, revocation: RevocationMaterial
) -> None:
    try:
        crls = [asn1_crl.CertificateList.load(der) for der in revocation.crls]
        ocsps = [asn1_ocsp.OCSPResponse.load(der) for der in revocation.ocsp_responses]
        for item in (*crls, *ocsps):
            _ = item.native  # force a full parse now, not deep inside pyHanko
    except Exception:
        raise InvalidInputError(
            "revocation data must be DER-encoded CRLs / OCSP responses"
        ) from None
    certs = [to_asn1(signer.certificate), *(to_asn1(c) for c in signer.chain)]
    DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=certs, crls=crls, ocsps=ocsps)


def _bytes_reserved(signer: KeySigner, timestamper: TimeStamper) -> int:
    """Hex digits to reserve in /Contents (two per DER byte)."""
    cert_bytes = sum(
        len(c.public_bytes(serialization.Encoding.DER)) for c in (signer.certificate, *signer.chain)
    )
    if isinstance(timestamper, _FailClosedTimeStamper):
        timestamper = timestamper.inner
    hint = getattr(timestamper, "token_size_hint", None)
    token_bytes = hint() if callable(hint) else None
    if isinstance(token_bytes, int) and 0 < token_bytes <= CMS_ALLOWANCE:
        return 2 * (cert_bytes + SIGNER_INFO_ALLOWANCE + token_bytes)
    return 2 * (CMS_ALLOWANCE + cert_bytes)


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _FailClosedTimeStamper(TimeStamper):
    """Wraps any pyHanko ``TimeStamper`` so that a failure is recorded and always fatal."""

    def __init__(self, inner: TimeStamper) -> None:
        super().__init__()
        self._inner = inner
        self.failure: str | None = None

    @property
    def inner(self) -> TimeStamper:
        return self._inner

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str):  # type: ignore[no-untyped-def]
        try:
            token = await self._inner.async_timestamp(message_digest, md_algorithm)
            # Re-load from DER: a token whose asn1crypto tree was touched (e.g. by verification)
            # counts as "mutated" and gets re-serialised, recursively, on every dump of the
            # enclosing CMS — measured at ~0.7 s per signature. A pristine parse dumps in O(n).
            # ``encoded`` (not ``dump``) because dump() re-encodes everything whenever a length
            # happens to end in 0x80 (see pactvault.crypto.der).
            der = encoded(token)
            if not has_der_lengths(der):  # from a timestamper other than ours: normalise
                der = token.dump(force=True)
            return EncodedContentInfo.load(der)
        except TimestampUnavailableError as exc:
            self.failure = exc.detail
            raise
        except Exception as exc:
            self.failure = f"could not obtain a timestamp: {_describe(exc)}"
            raise TimestampUnavailableError(self.failure) from exc
