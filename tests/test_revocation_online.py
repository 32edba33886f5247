"""Revocation as an outside validator sees it: poppler's pdfsig asks our OCSP responder.

The certificates carry the OCSP URL of the running server; pdfsig (through NSS) fetches the
status over HTTP on loopback. Revoking the signer's certificate must flip pdfsig's verdict.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from flows import SENDER, sent_contract, sign_as
from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec
from pactvault.demo import serve_in_background
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pdf_helpers import run_pdfsig

ACTOR = Actor(type="test", ip="127.0.0.1")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Platform, MemoryMailer]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailer = MemoryMailer()
    settings = Settings(home=tmp_path / "data", public_url=f"http://127.0.0.1:{port}")
    platform, _ = Platform.initialise(settings, mailer=mailer)
    with serve_in_background(platform, port=port):
        yield platform, mailer
    platform.close()


def test_pdfsig_sees_good_then_revoked_over_ocsp(
    served: tuple[Platform, MemoryMailer], tmp_path: Path
) -> None:
    platform, mailer = served
    org_id, contract_id, tokens = sent_contract(
        platform, mailer, [SignerSpec(name="Carol", email="carol@example.com")]
    )
    signature = sign_as(platform, next(iter(tokens.values())))
    _, pdf = platform.contracts.download(SENDER, org_id, contract_id)
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    with platform.db.read() as session:
        root = platform.ca.root_pem(session)

    good = run_pdfsig(path, root, tmp_path / "good", online_ocsp=True)
    assert good.count("Certificate Validation: Certificate is Trusted.") == 2, good

    with platform.db.write() as session:
        platform.ca.revoke(session, signature.certificate_serial, x509.ReasonFlags.key_compromise)
    revoked = run_pdfsig(path, root, tmp_path / "revoked", online_ocsp=True)
    assert "Certificate has been Revoked." in revoked, revoked
    assert revoked.count("Certificate Validation: Certificate is Trusted.") == 1  # the seal


def test_external_tsa_over_http_with_pinned_trust(
    served: tuple[Platform, MemoryMailer], tmp_path: Path
) -> None:
    """A second instance timestamps through the first one's RFC 3161 endpoint over HTTP."""
    from pactvault.errors import InvalidInputError
    from pactvault.pdf.validate import verify_pdf

    tsa_platform, _ = served
    with tsa_platform.db.read() as session:
        tsa_root = tsa_platform.ca.root_pem(session)
    trust = tmp_path / "tsa-root.pem"
    trust.write_bytes(tsa_root)
    tsa_url = f"{tsa_platform.settings.public_url}/tsa"

    with pytest.raises(InvalidInputError, match="PACTVAULT_TSA_TRUST"):
        Platform.initialise(Settings(home=tmp_path / "untrusted", tsa_url=tsa_url))

    mailer = MemoryMailer()
    client, _ = Platform.initialise(
        Settings(home=tmp_path / "client", tsa_url=tsa_url, tsa_trust=trust), mailer=mailer
    )
    try:
        org_id, contract_id, tokens = sent_contract(
            client, mailer, [SignerSpec(name="Dan", email="dan@example.com")]
        )
        sign_as(client, next(iter(tokens.values())))
        _, pdf = client.contracts.download(SENDER, org_id, contract_id)
        with client.db.read() as session:
            roots = client.trust_roots(session)
            own_root = client.ca.root_certificate(session)
        report = verify_pdf(pdf, trust_roots=roots)
        assert report.valid, report.to_dict()
        assert all(
            "pactvault Timestamp Authority" in (s.timestamp_tsa or "") for s in report.signatures
        )
        # Without the external TSA's root, the timestamps cannot be trusted.
        assert not verify_pdf(pdf, trust_roots=[own_root]).valid
    finally:
        client.close()
