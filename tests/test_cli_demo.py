"""Acceptance: `pactvault demo` output checked by tools we did not write, and `pactvault verify`.

The demo runs once per module (it is the slow part); each test then checks its output with a
different independent tool: pyHanko's validator, poppler's pdfsig, OpenSSL's `ts -verify`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pdf_helpers import run_pdfsig

CLI = [sys.executable, "-m", "pactvault.cli"]


def run_cli(*args: str, home: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACTVAULT_HOME": str(home)}
    env.pop("PACTVAULT_DATABASE_URL", None)
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=check
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("demo")
    home, out = base / "home", base / "out"
    result = run_cli("demo", "--out", str(out), home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout
    return {"home": home, "pdf": out / "signed.pdf", "root": out / "ca-root.pem", "base": base}


def embedded_signatures(pdf: bytes):  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.reader import PdfFileReader

    return PdfFileReader(io.BytesIO(pdf)).embedded_signatures


def test_first_start_prints_a_setup_token_and_no_password(tmp_path: Path) -> None:
    result = run_cli("init", home=tmp_path / "home", check=True)
    assert "pvsetup_" in result.stdout
    assert "password" not in result.stdout.lower()
    again = run_cli("init", home=tmp_path / "home", check=True)
    assert "pvsetup_" in again.stdout  # setup not completed yet: a fresh token replaces the old
    mode = (tmp_path / "home").stat().st_mode & 0o777
    assert mode == 0o700


def test_demo_output_validates_with_pyhanko(demo: dict[str, Path]) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    root = load_cert_from_pemder(str(demo["root"]))
    signatures = embedded_signatures(demo["pdf"].read_bytes())
    assert len(signatures) == 3  # two parties and the platform's completion seal
    for signature in signatures:
        context = ValidationContext(trust_roots=[root], allow_fetching=False)
        status = validate_pdf_signature(signature, context)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.timestamp_validity is not None and status.timestamp_validity.valid


def test_demo_output_validates_with_pdfsig(demo: dict[str, Path], tmp_path: Path) -> None:
    output = run_pdfsig(demo["pdf"], demo["root"].read_bytes(), tmp_path)
    assert output.count("Signature Validation: Signature is Valid.") == 3, output
    assert output.count("Certificate Validation: Certificate is Trusted.") == 3, output
    assert "Signature Type: ETSI.CAdES.detached" in output
    assert "Total document signed" in output


def test_timestamps_verify_with_openssl(demo: dict[str, Path], tmp_path: Path) -> None:
    for index, signature in enumerate(embedded_signatures(demo["pdf"].read_bytes())):
        signer_info = signature.signer_info
        token = next(
            attr["values"][0]
            for attr in signer_info["unsigned_attrs"]
            if attr["type"].native == "signature_time_stamp_token"
        )
        token_path = tmp_path / f"token{index}.der"
        token_path.write_bytes(token.dump())
        untrusted = tmp_path / f"chain{index}.pem"
        certs = token["content"]["certificates"] or []
        untrusted.write_bytes(
            b"".join(
                x509.load_der_x509_certificate(c.chosen.dump()).public_bytes(
                    serialization.Encoding.PEM
                )
                for c in certs
                if isinstance(c.chosen, asn1_x509.Certificate)
            )
        )
        digest = hashlib.sha256(signer_info["signature"].native).hexdigest()
        result = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                "-digest",
                digest,
                "-in",
                str(token_path),
                "-token_in",
                "-CAfile",
                str(demo["root"]),
                "-untrusted",
                str(untrusted),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_pactvault_verify_accepts_the_original_and_rejects_one_changed_byte(
    demo: dict[str, Path], tmp_path: Path
) -> None:
    ok = run_cli(
        "verify", str(demo["pdf"]), "--trust", str(demo["root"]), "--json", home=tmp_path / "nohome"
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    assert report["valid"] is True
    names = [s["signer_name"] for s in report["signatures"]]
    assert names == ["张三 Zhang San", "Bob Li 李博", "pactvault Completion Seal"]

    original = demo["pdf"].read_bytes()
    position = original.index(b"Annex A")  # inside the content every signature covers
    tampered = bytearray(original)
    tampered[position] ^= 0x20
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(tampered))
    result = run_cli("verify", str(bad), "--trust", str(demo["root"]), home=tmp_path / "nohome")
    assert result.returncode == 1, result.stdout
    assert "NOT VALID" in result.stdout


def test_verify_with_the_wrong_root_is_not_trusted(demo: dict[str, Path], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from pactvault.pki.ca import create_root_ca

    other = create_root_ca(ec.generate_private_key(ec.SECP256R1()), common_name="Someone Else")
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    result = run_cli(
        "verify", str(demo["pdf"]), "--trust", str(other_pem), "--json", home=tmp_path / "nohome"
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert not any(s["trusted"] for s in report["signatures"])


def test_verify_usage_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"definitely not a pdf")
    root = tmp_path / "root.pem"
    root.write_bytes(b"not a certificate")
    result = run_cli("verify", str(junk), "--trust", str(root), home=tmp_path / "nohome")
    assert result.returncode == 2
    assert "not an X.509 certificate" in result.stderr
    no_root = run_cli("verify", str(junk), home=tmp_path / "nohome")
    assert no_root.returncode == 2
    assert "--trust" in no_root.stderr


def test_audit_verify_command(demo: dict[str, Path]) -> None:
    result = run_cli("audit", "verify", home=demo["home"], check=True)
    assert "intact" in result.stdout
