"""The public verify page: drop a signed PDF, see whether its signatures hold. No account needed.

The same verification as ``POST /api/v1/verify`` (``pdf.validate.verify_pdf`` against this
instance's trust roots, strictly offline); the page shows, per signature, who signed, when (the
timestamp), whether the document changed since, whether the certificate chains to us and its
revocation status, and the certificate's assurance level (the certificate policy our CA put in
it: how the signer's identity was verified). Nothing uploaded here is stored.

With htmx the result replaces the result area only; without JavaScript the form posts and the
whole page comes back with the result.
"""

from __future__ import annotations

import hashlib
from io import BytesIO
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter, File, Request, UploadFile
from pyhanko.pdf_utils.reader import PdfFileReader
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pactvault.api.deps import PlatformDep, read_upload
from pactvault.errors import PactvaultError
from pactvault.identity.realname.certificates import certificate_verification
from pactvault.pdf.validate import DocumentReport, verify_pdf
from pactvault.pki.identity import SEAL_POLICY_OID
from pactvault.platform import Platform
from pactvault.web.messages import error_message
from pactvault.web.pages import PageRoute, is_htmx, render, translator
from pactvault.web.security import PAGE_PUBLIC

router = APIRouter(route_class=PageRoute, include_in_schema=False, dependencies=[PAGE_PUBLIC])


@router.get("/verify")
def verify_page(request: Request) -> Response:
    return render(request, "verify.html", {"report": None, "error": None, "filename": ""})


@router.post("/verify")
async def verify_document(
    request: Request,
    platform: PlatformDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    template = "_verify_result.html" if is_htmx(request) else "verify.html"
    filename = (file.filename or "")[:200]
    try:
        data = await read_upload(file, platform.settings.max_upload_bytes)
        report = await run_in_threadpool(_verify, platform, data)
    except PactvaultError as exc:
        context = {
            "report": None,
            "error": error_message(exc, translator(request)),
            "filename": filename,
        }
        return render(request, template, context, status=exc.status)
    result = report.to_dict()
    assurance = await run_in_threadpool(certificate_assurance, data)
    for signature in result["signatures"]:
        signature["assurance"] = assurance.get(signature["certificate_sha256"], {})
    return render(request, template, {"report": result, "error": None, "filename": filename})


def _verify(platform: Platform, data: bytes) -> DocumentReport:
    """CPU-bound (pyHanko): run on a worker thread, not on the event loop."""
    with platform.db.read() as session:
        roots = platform.trust_roots(session)
    return verify_pdf(data, trust_roots=roots)


def certificate_assurance(data: bytes) -> dict[str, dict[str, Any]]:
    """Certificate SHA-256 → ``{"level", "method", "seal"}`` for each signer certificate in the
    PDF, read from its certificate policies (``realname.certificates.certificate_verification``).

    Presentation only: the verdict (valid or not) is ``verify_pdf``'s. A PDF that cannot be read
    here simply shows no assurance.
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        for embedded in reader.embedded_signatures:
            der = embedded.signer_cert.dump()
            cert = x509.load_der_x509_certificate(der)
            level, method = certificate_verification(cert)
            out[hashlib.sha256(der).hexdigest()] = {
                "level": level,
                "method": method,
                "seal": SEAL_POLICY_OID in _policy_oids(cert),
            }
    except Exception:
        return out
    return out


def _policy_oids(cert: x509.Certificate) -> set[str]:
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return set()
    return {policy.policy_identifier.dotted_string for policy in policies}
