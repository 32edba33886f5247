"""Offline verification of every signature in a PDF, as facts a person or a program can act on.

pyHanko's validator does the work (integrity, CMS signature, path building, revocation from the
DSS and the CMS, signature timestamp, incremental-update diff analysis); this module only runs
it with a strictly offline configuration — our trust roots, no fetching — and translates its
status objects into a flat report with a human-readable reason for every failed check.

Validation time is *now*: a signer certificate revoked at any time before now is reported as
revoked, even if the signature timestamp predates the revocation (the conservative reading).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from io import BytesIO
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError, ValidationInfoReadingError
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
)
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InsufficientRevinfoError,
    PathValidationError,
    RevokedError,
)
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from pactvault.errors import VerificationError
from pactvault.pdf._aio import run_sync
from pactvault.pdf.signer import to_asn1

Revocation = Literal["good", "revoked", "unknown", "not-checked"]

_COVERAGE_NAMES = {
    SignatureCoverageLevel.ENTIRE_FILE: "entire-file",
    SignatureCoverageLevel.ENTIRE_REVISION: "entire-revision",
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "contiguous-block",
    SignatureCoverageLevel.UNCLEAR: "unclear",
}
_REVOKED_INDICATIONS = {AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE}
_REVINFO_INDICATIONS = {
    AdESIndeterminate.TRY_LATER,
    AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE,
}
# The leaf must have CRL or OCSP evidence to be reported "good"; intermediates as declared.
_LEAF_REVINFO_REQUIRED = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
    )
)
_SOFT_FAIL = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
        intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
    )
)


@dataclass
class SignatureReport:
    """One signature, judged offline against the caller's trust roots."""

    field_name: str
    signer_name: str | None
    signer_email: str | None
    organisation: str | None
    certificate_sha256: str
    chain: list[str]  # subjects, leaf first
    intact: bool
    signature_valid: bool
    trusted: bool
    revocation: Revocation
    signing_time: datetime | None
    timestamp_time: datetime | None
    timestamp_tsa: str | None
    timestamp_valid: bool
    coverage: str
    modified_after: bool
    modification_level: str | None
    docmdp_ok: bool | None
    is_certification: bool
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return (
            self.intact
            and self.signature_valid
            and self.trusted
            and self.timestamp_valid
            and self.revocation != "revoked"
            and not self.modified_after
        )


@dataclass
class DocumentReport:
    document_sha256: str
    signatures: list[SignatureReport]
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.signatures) and all(s.valid for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601, plus the computed ``valid`` flags."""
        signatures = []
        for sig in self.signatures:
            item = asdict(sig)
            for key in ("signing_time", "timestamp_time"):
                value = item[key]
                item[key] = value.isoformat() if value is not None else None
            item["valid"] = sig.valid
            signatures.append(item)
        return {
            "document_sha256": self.document_sha256,
            "valid": self.valid,
            "signatures": signatures,
            "problems": list(self.problems),
        }


def verify_pdf(
    data: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    revocation_mode: Literal["soft-fail", "hard-fail"] = "soft-fail",
) -> DocumentReport:
    """Verify every signature in ``data``. Never fetches anything over the network.

    ``soft-fail`` accepts a certificate whose revocation status cannot be determined (reported
    as ``"unknown"``); ``hard-fail`` makes that untrusted. Raises :class:`VerificationError`
    only when the file itself cannot be read.
    """
    if revocation_mode not in ("soft-fail", "hard-fail"):
        raise ValueError("revocation_mode must be 'soft-fail' or 'hard-fail'")
    if not trust_roots:
        raise ValueError("at least one trust root is required")
    if not data or b"%PDF-" not in data[:1024]:
        raise VerificationError("the file is not a PDF")
    roots = [to_asn1(root) for root in trust_roots]
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        if reader.encrypted:
            raise VerificationError("the PDF is encrypted; signatures cannot be verified")
        embedded = list(reader.embedded_signatures)
    except VerificationError:
        raise
    except Exception:
        raise VerificationError("the PDF is damaged or could not be parsed") from None

    report = DocumentReport(hashlib.sha256(data).hexdigest(), [])
    if not embedded:
        report.problems.append("no signatures")
        return report
    for sig in embedded:
        report.signatures.append(_verify_one(reader, sig, roots, revocation_mode))
    return report


def _verify_one(
    reader: PdfFileReader,
    sig: EmbeddedPdfSignature,
    roots: list[asn1_x509.Certificate],
    mode: str,
) -> SignatureReport:
    try:
        field_name = str(sig.field_name)
        cert = sig.signer_cert
    except Exception:
        return _broken("?", None, "the signature object or its CMS container is malformed")
    try:
        status = run_sync(
            async_validate_pdf_signature(
                sig, signer_validation_context=_context(reader, roots, mode)
            )
        )
    except Exception as exc:
        # Malformed signature objects/CMS: report this signature as broken, keep the others.
        return _broken(field_name, cert, f"the signature could not be validated: {_why(exc)}")

    revocation = _revocation(status, reader, roots, sig)
    problems: list[str] = []
    if not status.intact:
        problems.append("integrity check failed: the signed bytes were altered after signing")
    if not status.valid:
        problems.append("the cryptographic signature is invalid")
    trusted = status.trusted
    if not trusted:
        problems.append(_trust_problem(status, revocation))
    if revocation == "revoked":
        details = status.revocation_details
        when = f" on {details.revocation_date.isoformat()}" if details else ""
        problems.append(f"the signer's certificate was revoked{when}")
    ts = status.timestamp_validity
    timestamp_valid = ts is not None and ts.intact and ts.valid and ts.trusted
    if ts is None:
        problems.append("the signature has no RFC 3161 signature timestamp")
    elif not timestamp_valid:
        problems.append("the signature timestamp is invalid or its TSA is not trusted")
    coverage = _COVERAGE_NAMES.get(status.coverage, "unclear")  # type: ignore[arg-type]
    modified_after = not (
        status.coverage == SignatureCoverageLevel.ENTIRE_FILE or status.docmdp_ok is True
    )
    level = status.modification_level
    if modified_after:
        problems.append(
            "the document was modified after this signature in a way that is not permitted"
            + (f" (modification level: {_level_name(level)})" if level is not None else "")
        )
    names = _names(cert)
    path = status.validation_path
    chain = (
        [c.subject.human_friendly for c in reversed(list(path))]
        if path is not None
        else [cert.subject.human_friendly]
    )
    return SignatureReport(
        field_name=field_name,
        signer_name=names["common_name"],
        signer_email=names["email"],
        organisation=names["organisation"],
        certificate_sha256=hashlib.sha256(cert.dump()).hexdigest(),
        chain=chain,
        intact=status.intact,
        signature_valid=status.valid,
        trusted=trusted,
        revocation=revocation,
        signing_time=status.signer_reported_dt,
        timestamp_time=ts.timestamp if ts is not None else None,
        timestamp_tsa=ts.signing_cert.subject.human_friendly if ts is not None else None,
        timestamp_valid=timestamp_valid,
        coverage=coverage,
        modified_after=modified_after,
        modification_level=_level_name(level) if level is not None else None,
        docmdp_ok=status.docmdp_ok,
        is_certification=_is_certification(reader, sig),
        problems=problems,
    )


def _context(
    reader: PdfFileReader,
    roots: list[asn1_x509.Certificate],
    mode: str,
    revinfo_policy: CertRevTrustPolicy | None = None,
) -> ValidationContext:
    """A fresh, offline context preloaded with the document's DSS (certs, CRLs, OCSP)."""
    # Explicit empty lists: certvalidator refuses a no-fetching, revinfo-requiring context
    # whose crls/ocsps are None, even when that is simply the truth (no DSS).
    kwargs: dict[str, Any] = {
        "trust_roots": roots,
        "allow_fetching": False,
        "crls": [],
        "ocsps": [],
    }
    if revinfo_policy is not None:
        kwargs["revinfo_policy"] = revinfo_policy
    else:
        kwargs["revocation_mode"] = mode
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except ValidationInfoReadingError:
        return ValidationContext(**kwargs)
    return dss.as_validation_context(kwargs)


def _revocation(
    status: PdfSignatureStatus,
    reader: PdfFileReader,
    roots: list[asn1_x509.Certificate],
    sig: EmbeddedPdfSignature,
) -> Revocation:
    """Translate pyHanko's outcome; "good" only with actual CRL/OCSP evidence for the leaf.

    pyHanko's soft-fail mode does not say whether revocation data was found, so a trusted
    signer is re-checked with a policy that *requires* leaf revocation info.
    """
    if status.revoked or status.trust_problem_indic in _REVOKED_INDICATIONS:
        return "revoked"
    if status.trust_problem_indic in _REVINFO_INDICATIONS:
        return "unknown"
    if status.trusted:
        # Trusted, but in soft-fail that may be without any evidence: demand it for the leaf.
        policy = _LEAF_REVINFO_REQUIRED
        outcome_if_ok: Revocation = "good"
    else:
        # Untrusted: if the path is fine when missing revocation data is tolerated, the only
        # problem was revocation (hard-fail) → "unknown"; otherwise it was never reached.
        policy = _SOFT_FAIL
        outcome_if_ok = "unknown"
    context = _context(reader, roots, "soft-fail", policy)
    validator = CertificateValidator(
        sig.signer_cert, intermediate_certs=sig.other_embedded_certs, validation_context=context
    )
    try:
        run_sync(validator.async_validate_path())
    except RevokedError:
        return "revoked"
    except InsufficientRevinfoError:
        return "unknown"
    except PathValidationError:
        return "unknown" if status.trusted else "not-checked"
    except Exception:
        return "not-checked"  # e.g. no path at all (PathBuildingError)
    return outcome_if_ok


def _trust_problem(status: PdfSignatureStatus, revocation: Revocation) -> str:
    indic = status.trust_problem_indic
    if revocation == "unknown":
        return "the signer's revocation status could not be determined (hard-fail)"
    if status.validation_path is None and indic in (
        None,
        AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND,
    ):
        return "the signer's certificate does not chain to a trusted root"
    if indic is not None:
        return f"the signer's certificate is not trusted ({indic.name.lower()})"
    return "the signer's certificate is not trusted"


def _names(cert: asn1_x509.Certificate) -> dict[str, str | None]:
    subject = cert.subject.native
    email = subject.get("email_address")
    if email is None:
        try:
            san = cert.subject_alt_name_value
            emails = [n.native for n in san or () if n.name == "rfc822_name"]
            email = emails[0] if emails else None
        except ValueError:
            email = None
    return {
        "common_name": subject.get("common_name"),
        "email": email,
        "organisation": subject.get("organization_name"),
    }


def _is_certification(reader: PdfFileReader, sig: EmbeddedPdfSignature) -> bool:
    try:
        perms = reader.root["/Perms"]["/DocMDP"]
    except (KeyError, TypeError):
        return False
    return perms.get_object() is sig.sig_object or perms.get_object() == sig.sig_object


def _level_name(level: ModificationLevel) -> str:
    return level.name.lower().replace("_", "-")


def _broken(field_name: str, cert: asn1_x509.Certificate | None, problem: str) -> SignatureReport:
    names = _names(cert) if cert is not None else {}
    return SignatureReport(
        field_name=field_name,
        signer_name=names.get("common_name"),
        signer_email=names.get("email"),
        organisation=names.get("organisation"),
        certificate_sha256=hashlib.sha256(cert.dump()).hexdigest() if cert is not None else "",
        chain=[],
        intact=False,
        signature_valid=False,
        trusted=False,
        revocation="not-checked",
        signing_time=None,
        timestamp_time=None,
        timestamp_tsa=None,
        timestamp_valid=False,
        coverage="unclear",
        modified_after=True,
        modification_level=None,
        docmdp_ok=None,
        is_certification=False,
        problems=[problem],
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, SignatureValidationError):
        return str(exc) or type(exc).__name__
    return type(exc).__name__
