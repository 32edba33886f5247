"""Test fixtures for the PDF layer, as plain functions so a later conftest can reuse them.

Everything is built with pactvault's own PKI and TSA modules: a root CA, an issuing CA, a TSA
certificate and signer certificates, all ECDSA P-256 (RSA on request), plus tiny PDFs made
with pyHanko's writer.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.timestamps import TimeStamper

from pactvault.pdf.signer import KeySigner
from pactvault.pki.ca import (
    create_issuing_ca,
    create_root_ca,
    issue_signer_certificate,
    issue_tsa_certificate,
)
from pactvault.pki.identity import SubjectIdentity
from pactvault.pki.revocation import RevokedEntry, build_crl
from pactvault.tsa.authority import TimestampAuthority
from pactvault.tsa.client import local_timestamper

CRL_URL = "http://pki.pactvault.invalid/issuing.crl"  # never fetched: validation is offline
A4 = (595.0, 842.0)


@dataclass
class TestPki:
    """A complete offline hierarchy: root → issuing CA → signers and a TSA."""

    __test__ = False  # not a pytest test class

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate
    tsa: TimestampAuthority
    revoked: list[RevokedEntry] = field(default_factory=list)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuer chain of every signer, nearest first (issuing CA, root)."""
        return (self.issuing, self.root)

    def timestamper(self) -> TimeStamper:
        return local_timestamper(self.tsa)

    def issue_signer(
        self,
        common_name: str,
        *,
        subject_id: str = "ID-0001",
        email: str | None = None,
        organisation: str | None = None,
        rsa_key: bool = False,
    ) -> tuple[KeySigner, x509.Certificate]:
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if rsa_key
            else ec.generate_private_key(ec.SECP256R1())
        )
        cert = issue_signer_certificate(
            key.public_key(),
            subject=SubjectIdentity(
                common_name=common_name,
                subject_id=subject_id,
                email=email,
                organisation=organisation,
                country="CN",
            ),
            issuer_certificate=self.issuing,
            issuer_private_key=self.issuing_key,
            crl_url=CRL_URL,
        )
        return KeySigner(key, cert, self.chain), cert

    def revoke(self, cert: x509.Certificate, when: datetime | None = None) -> None:
        self.revoked.append(
            RevokedEntry(
                serial_number=cert.serial_number,
                revoked_at=when or datetime.now(UTC) - timedelta(minutes=1),
                reason=x509.ReasonFlags.key_compromise,
            )
        )

    def crl_der(self, crl_number: int = 1) -> bytes:
        """A current CRL from the issuing CA listing everything revoked so far."""
        now = datetime.now(UTC).replace(microsecond=0)
        crl = build_crl(
            issuer_certificate=self.issuing,
            issuer_private_key=self.issuing_key,
            revoked=list(self.revoked),
            crl_number=crl_number,
            this_update=now - timedelta(minutes=5),
            next_update=now + timedelta(days=1),
        )
        return crl.public_bytes(serialization.Encoding.DER)


def build_pki() -> TestPki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = create_root_ca(root_key, common_name="pactvault Test Root CA")
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = create_issuing_ca(
        issuing_key.public_key(),
        root_certificate=root,
        root_private_key=root_key,
        common_name="pactvault Test Issuing CA",
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa_cert = issue_tsa_certificate(
        tsa_key.public_key(),
        common_name="pactvault Test TSA",
        issuer_certificate=issuing,
        issuer_private_key=issuing_key,
    )
    authority = TimestampAuthority(certificate=tsa_cert, private_key=tsa_key, chain=(issuing, root))
    return TestPki(root_key, root, issuing_key, issuing, authority)


def make_pdf(
    page_sizes: Sequence[tuple[float, float]] = (A4,),
    *,
    text: str = "Contract",
    extra_root: dict[str, generic.PdfObject] | None = None,
    annots: Iterable[generic.DictionaryObject] = (),
) -> bytes:
    """A small, valid PDF with one line of Helvetica text per page.

    ``extra_root`` adds catalog entries (e.g. /OpenAction) and ``annots`` adds annotations to
    the first page, to build documents with active content.
    """
    writer = PdfFileWriter()
    font = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    for index, (width, height) in enumerate(page_sizes):
        stream = generic.StreamObject(
            stream_data=b"BT /F1 18 Tf 72 %d Td (%s page %d) Tj ET"
            % (int(height) - 100, text.encode("latin-1"), index + 1)
        )
        resources = generic.DictionaryObject(
            {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}
        )
        page = PageObject(writer.add_object(stream), (0, 0, width, height), resources)
        if index == 0:
            annot_refs = [writer.add_object(a) for a in annots]
            if annot_refs:
                page[pdf_name("/Annots")] = generic.ArrayObject(annot_refs)
        writer.insert_page(page)
    for key, value in (extra_root or {}).items():
        writer.root[pdf_name(key)] = value
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def run_pdfsig(pdf_path: Path, root_pem: bytes, workdir: Path, *, online_ocsp: bool = False) -> str:
    """poppler's pdfsig with a private NSS database that trusts only ``root_pem``.

    NSS decides trust from its database; ``C,C,C`` marks the root trusted to issue certificates
    for TLS, e-mail and object signing (pdfsig checks the e-mail signing usage). Without
    ``online_ocsp`` pdfsig validates offline, as a third party with only the file would.
    """
    assert shutil.which("pdfsig") and shutil.which("certutil"), (
        "pdfsig and certutil are required: `make test` installs poppler-utils and libnss3-tools"
    )
    nssdir = workdir / "nss"
    nssdir.mkdir(parents=True, exist_ok=True)
    root_path = workdir / "trusted-root.pem"
    root_path.write_bytes(root_pem)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nssdir}"], check=True)
    subprocess.run(
        [
            "certutil",
            "-A",
            "-n",
            "trusted-root",
            "-t",
            "C,C,C",
            "-i",
            str(root_path),
            "-d",
            f"sql:{nssdir}",
        ],
        check=True,
    )
    command = ["pdfsig", "-nssdir", f"sql:{nssdir}", str(pdf_path)]
    if not online_ocsp:
        command.insert(1, "-no-ocsp")
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},  # never the user's ~/.pki/nssdb
    )
    return result.stdout
