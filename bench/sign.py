"""Signatures per second: pactvault's complete sign operation next to a bare pyHanko B-T signature.

``make bench`` (or ``.venv/bin/python bench/sign.py --count 30``) prints, in one run:

* **pactvault sign** — ``Platform.contracts.sign`` for the *first* of two signers of a contract:
  signer certificate issued by our CA, PAdES-B-LT signature (CRLs in the DSS) with an RFC 3161
  timestamp from the built-in TSA, the token checked, evidence read back from the new PDF, the
  revision encrypted and stored, the audit entry and the database rows committed (SQLite with
  ``synchronous=FULL`` by default, or ``--database-url``).
* **bare pyHanko B-T** — pyHanko alone signing the same prepared PDF bytes with the same key and
  certificate, a timestamp from the same in-process TSA (``local_timestamper``) and an
  equivalent visible stamp (same text, same font data, pyHanko's own font engine), used the
  way pyHanko should be used: ``PdfSigner`` and ``SimpleSigner`` made once, signature space
  reserved explicitly (``bytes_reserved``, so no dry-run signature and no second timestamp).
  The ratio pactvault / pyHanko is what pactvault's extras cost per signature.
* **bare pyHanko B-T with KeySigner** — the same with pactvault's ``KeySigner``, which encodes
  the very same CMS without asn1crypto's repeated re-encoding: the part of the difference that
  is CMS encoding rather than pactvault's extras.
* **pactvault completing sign** — the *last* signer: the same, plus the platform's completion
  seal (a second signature and timestamp, a second encrypted revision) in the same transaction.

Contracts are created and sent before timing starts; one contract is signed completely first
(fonts, caches, imports), and with CJK stamps the reduced base font is built up front, as a
long-running server has it after its first few stamps — none of this is timed. By default every
first signer has the same name (stamp fonts come from the cache); ``--distinct-names`` gives
each one a new name, so every timed signature cuts a new stamp font. Everything runs
in-process; no network is used (PostgreSQL, with ``--database-url``, normally on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import platform as host_platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from asn1crypto import keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, SimpleSigner
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import select

from pactvault.audit.journal import Actor
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec, SignInput
from pactvault.demo import sample_pdf
from pactvault.notify import MemoryMailer
from pactvault.pdf import fonts
from pactvault.pdf.signer import KeySigner, to_asn1
from pactvault.pdf.validate import verify_pdf
from pactvault.pki.authority import PLATFORM_ORG
from pactvault.platform import Platform
from pactvault.store.models import Certificate, Organisation, Signature
from pactvault.tsa.client import local_timestamper

SENDER = Actor(type="api-token", id="bench", ip="127.0.0.1", user_agent="bench/sign.py")
SIGNER_CLIENT = Actor(type="anonymous", ip="127.0.0.1", user_agent="bench/sign.py")
NAMES = {"cjk": ("张三", "李四"), "latin": ("Alice Zhang", "Bob Li")}
TITLES = {"cjk": "服务协议 Service Agreement", "latin": "Service Agreement"}
# The stamp pactvault draws (pdf/appearance.py), rebuilt here with pyHanko's own classes.
LABELS = {
    "zh-CN": ("签署人 / Signed by", "签署时间 / Time", "签署事由 / Reason", "签署地点 / Location"),
    "en": ("Signed by", "Time", "Reason", "Location"),
}
STAMP_FONT_SIZE = 10
TIME_CHARACTERS = "0123456789-: UTC"  # what "%Y-%m-%d %H:%M:%S UTC" can produce
CMS_ALLOWANCE = 16 * 1024


@dataclass
class Prepared:
    contract_id: str
    first_token: str
    document_sha256: str
    signer_ids: tuple[str, str]
    first_name: str


@dataclass
class Stats:
    label: str
    samples: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def line(self) -> str:
        return (
            f"{self.label:<34} n={len(self.samples):<4} mean {self.mean * 1000:8.1f} ms   "
            f"median {self.median * 1000:8.1f} ms   {1 / self.mean:7.2f} ops/s"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=30, help="timed signatures per side")
    names = parser.add_mutually_exclusive_group()
    names.add_argument(
        "--cjk",
        dest="names",
        action="store_const",
        const="cjk",
        default="cjk",
        help="Chinese signer names, e.g. 张三 (default)",
    )
    names.add_argument(
        "--latin",
        dest="names",
        action="store_const",
        const="latin",
        help="Latin signer names, e.g. Alice Zhang",
    )
    parser.add_argument(
        "--locale",
        choices=("zh-CN", "en"),
        default="zh-CN",
        help="stamp labels (zh-CN labels need the CJK font even for Latin names)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="e.g. postgresql+psycopg://user@127.0.0.1/db (default: SQLite)",
    )
    parser.add_argument(
        "--distinct-names",
        action="store_true",
        help="a different first-signer name per contract (so no stamp-font cache hits)",
    )
    parser.add_argument(
        "--no-complete", action="store_true", help="skip timing the completing (last) signatures"
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip validating one output of each side after timing",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 1000:
        parser.error("--count must be 1..1000")
    return args


def make_org(platform: Platform) -> str:
    with platform.db.write() as session:
        org = Organisation(name="Bench Ltd")
        session.add(org)
        session.flush()
        return org.id


def signing_tokens(mailer: MemoryMailer, contract_id: str) -> dict[str, str]:
    found = {}
    for message in mailer.messages:
        tags = dict(message.tags)
        if tags.get("Contract") == contract_id and "Signing-Token" in tags:
            found[tags["Signer"]] = tags["Signing-Token"]
    return found


def prepare_contracts(
    platform: Platform,
    mailer: MemoryMailer,
    org: str,
    first_names: list[str],
    kind: str,
    pdf: bytes,
) -> list[Prepared]:
    prepared = []
    for first_name in first_names:
        specs = [
            SignerSpec(name=first_name, email="first@example.com", routing_order=1),
            SignerSpec(name=NAMES[kind][1], email="second@example.com", routing_order=2),
        ]
        contract = platform.contracts.create(
            SENDER, org, title=TITLES[kind], pdf=pdf, signers=specs
        )
        platform.contracts.send(SENDER, org, contract.id)
        contract = platform.contracts.get(org, contract.id)
        a, b = contract.signers
        token = signing_tokens(mailer, contract.id)[a.id]
        prepared.append(
            Prepared(
                contract.id,
                token,
                contract.revisions[-1].plaintext_sha256,
                (a.id, b.id),
                first_name,
            )
        )
    return prepared


def sign_input(
    platform: Platform, mailer: MemoryMailer, token: str, digest: str, locale: str
) -> SignInput:
    """The signer's confirmation, after the step-up (email code) every signature needs.

    The step-up happens here, before any timing starts: the figures are for signing itself.
    """
    challenge = platform.contracts.begin_stepup(token, SIGNER_CLIENT, "email")
    code = re.search(r" is (\d{6,8})\.", mailer.messages[-1].body)
    assert code is not None, "no signing code was sent"
    platform.contracts.complete_stepup(token, SIGNER_CLIENT, challenge.challenge_id, code[1])
    return SignInput(
        document_sha256=digest,
        consent=True,
        locale=locale,
        stepup_challenge_id=challenge.challenge_id,
    )


def time_calls(label: str, calls: list[Callable[[], object]]) -> Stats:
    samples = []
    for call in calls:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return Stats(label, samples)


class BarePyHanko:
    """pyHanko used well: everything that does not depend on the document is made once."""

    def __init__(
        self,
        *,
        private_key: object,
        certificate: x509.Certificate,
        chain: list[x509.Certificate],
        timestamper: object,
        field_name: str,
        signer_name: str,
        reason: str,
        locale: str,
        font_file: Path | None,
        key_signer: bool = False,
    ) -> None:
        # pyHanko's own in-memory signer, made once (for EC keys its per-call key load is
        # ~0.1 ms). It embeds the whole chain, roots included, as pactvault does. With
        # ``key_signer``, pactvault's KeySigner instead (same CMS, encoded without asn1crypto's
        # repeated re-encoding), to show how much of the difference is CMS encoding.
        self.signer = (
            KeySigner(private_key, certificate, chain)
            if key_signer
            else SimpleSigner(
                signing_cert=to_asn1(certificate),
                signing_key=keys.PrivateKeyInfo.load(
                    private_key.private_bytes(  # type: ignore[attr-defined]
                        serialization.Encoding.DER,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                ),
                cert_registry=SimpleCertificateStore.from_certs(
                    [to_asn1(c) for c in (certificate, *chain)]
                ),
                embed_roots=True,
            )
        )
        labels = LABELS[locale]
        if font_file is not None:
            text_box = TextBoxStyle(
                font=GlyphAccumulatorFactory(str(font_file), font_size=STAMP_FONT_SIZE),
                font_size=STAMP_FONT_SIZE,
            )
        else:
            text_box = TextBoxStyle(font_size=STAMP_FONT_SIZE)
        style = TextStampStyle(
            stamp_text="\n".join(
                [f"{labels[0]}: %(signer)s", f"{labels[1]}: %(ts)s", f"{labels[2]}: %(reason)s"]
            ),
            text_box_style=text_box,
            timestamp_format="%Y-%m-%d %H:%M:%S UTC",
            border_width=1,
        )
        meta = PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            certify=True,
            docmdp_permissions=MDPPerm.FILL_FORMS,
            reason=reason,
        )
        self.pdf_signer = PdfSigner(meta, self.signer, timestamper=timestamper, stamp_style=style)
        self.text_params = {"signer": signer_name, "reason": reason}
        cert_bytes = sum(
            len(c.public_bytes(serialization.Encoding.DER)) for c in (certificate, *chain)
        )
        self.bytes_reserved = 2 * (CMS_ALLOWANCE + cert_bytes)

    def sign(self, pdf: bytes) -> bytes:
        async def run() -> bytes:
            writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
            out = await self.pdf_signer.async_sign_pdf(
                writer,
                existing_fields_only=True,
                bytes_reserved=self.bytes_reserved,
                appearance_text_params=self.text_params,
            )
            return out.getvalue()

        return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    first_names = first_signer_names(args.names, args.count + 1, distinct=args.distinct_names)
    reason = TITLES[args.names]
    print(
        f"interpreter: {sys.executable} (Python {host_platform.python_version()}, "
        f"{host_platform.python_implementation()})"
    )
    print(
        f"count: {args.count}   names: {args.names} ({first_names[1]}"
        f"{', all different' if args.distinct_names else ''})   stamp locale: {args.locale}   "
        f"database: {'PostgreSQL' if args.database_url else 'SQLite (embedded default)'}"
    )

    with tempfile.TemporaryDirectory(prefix="pactvault-bench-") as tmp:
        work = Path(tmp)
        mailer = MemoryMailer()
        settings = Settings(
            home=work / "data", database_url=args.database_url, max_upload_bytes=5 * 1024 * 1024
        )
        platform, _ = Platform.initialise(settings, mailer=mailer)
        try:
            org = make_org(platform)
            pdf = sample_pdf()
            start = time.perf_counter()
            contracts = prepare_contracts(platform, mailer, org, first_names, args.names, pdf)
            print(
                f"set-up: {len(contracts)} contracts created and sent in "
                f"{time.perf_counter() - start:.1f} s (not timed)"
            )
            warm, timed = contracts[0], contracts[1:]
            texts = {name: stamp_text(args.locale, name, reason) for name in first_names}
            if any(fonts.needs_cjk_font(text) for text in texts.values()):
                prepare = getattr(fonts, "prepare_base_font", None)
                if prepare is not None:
                    # What a long-running server has after its first few CJK stamps.
                    start = time.perf_counter()
                    prepare(wait=True)
                    print(
                        f"set-up: reduced CJK base font built in "
                        f"{time.perf_counter() - start:.1f} s (not timed)"
                    )

            # Warm-up (not timed): fonts, CRL cache, TSA, imports, SQLAlchemy statement caches;
            # both signers of one contract, so the completing path (seal) is warm as well.
            start = time.perf_counter()
            given = sign_input(
                platform, mailer, warm.first_token, warm.document_sha256, args.locale
            )
            start = time.perf_counter()
            platform.contracts.sign(warm.first_token, SIGNER_CLIENT, given)
            cold = time.perf_counter() - start
            second_token, second_digest = second_signer(platform, mailer, org, warm)
            platform.contracts.sign(
                second_token,
                SIGNER_CLIENT,
                sign_input(platform, mailer, second_token, second_digest, args.locale),
            )

            # The baseline signs with the warm-up signer's own key and certificate.
            _, prepared_pdf = platform.contracts.download(SENDER, org, warm.contract_id, 2)
            with platform.db.read() as session:
                signature = session.execute(
                    select(Signature).where(
                        Signature.contract_id == warm.contract_id,
                        Signature.signer_id == warm.signer_ids[0],
                    )
                ).scalar_one()
                row = session.get(Certificate, signature.certificate_serial)
                assert row is not None
                certificate = x509.load_der_x509_certificate(row.der)
                private_key = platform.keys.signing_key(
                    session, PLATFORM_ORG, signature.signing_key_id
                ).private_key()
                chain = platform.ca.chain(session)
                timestamper = local_timestamper(platform.timestamp_authority(session))
                root = platform.ca.root_certificate(session)
            bare_by_name: dict[str, BarePyHanko] = {}
            keyed_by_name: dict[str, BarePyHanko] = {}
            for index, name in enumerate(dict.fromkeys(first_names)):
                font_file = None
                if fonts.needs_cjk_font(texts[name]):
                    # pyHanko only reads standalone font files: give it the very font data
                    # pactvault's stamp uses for this text, so both sides embed the same glyphs.
                    data = stamp_font_bytes(texts[name])
                    if data is None:
                        print("no CJK font installed: cannot run this benchmark", file=sys.stderr)
                        return 2
                    font_file = work / f"stamp-font-{index}.otf"
                    font_file.write_bytes(data)
                common = {
                    "private_key": private_key,
                    "certificate": certificate,
                    "chain": chain,
                    "timestamper": timestamper,
                    "field_name": "Signature1",
                    "signer_name": name,
                    "reason": reason,
                    "locale": args.locale,
                    "font_file": font_file,
                }
                bare_by_name[name] = BarePyHanko(**common)  # type: ignore[arg-type]
                keyed_by_name[name] = BarePyHanko(**common, key_signer=True)  # type: ignore[arg-type]
            bare_output = bare_by_name[first_names[0]].sign(prepared_pdf)  # warm-up
            keyed_output = keyed_by_name[first_names[0]].sign(prepared_pdf)
            if args.distinct_names:
                # Making the baseline's font files filled pactvault's stamp-font cache; empty it
                # so that every timed pactvault signature really cuts a new stamp font.
                stamp_cache = getattr(getattr(fonts, "_stamp_font", None), "cache_clear", None)
                if stamp_cache is not None:
                    stamp_cache()

            # Interleave the two sides so drift (GC, page cache, thermal) hits both equally.
            pv_samples: list[float] = []
            ph_samples: list[float] = []
            keyed_samples: list[float] = []
            for item in timed:
                given = sign_input(
                    platform, mailer, item.first_token, item.document_sha256, args.locale
                )
                start = time.perf_counter()
                platform.contracts.sign(item.first_token, SIGNER_CLIENT, given)
                pv_samples.append(time.perf_counter() - start)
                start = time.perf_counter()
                bare_by_name[item.first_name].sign(prepared_pdf)
                ph_samples.append(time.perf_counter() - start)
                start = time.perf_counter()
                keyed_by_name[item.first_name].sign(prepared_pdf)
                keyed_samples.append(time.perf_counter() - start)
            pv = Stats("pactvault sign (first signer)", pv_samples)
            ph = Stats("bare pyHanko B-T", ph_samples)
            keyed = Stats("bare pyHanko B-T with KeySigner", keyed_samples)

            complete = None
            if not args.no_complete:
                calls = []
                for item in timed:
                    token, digest = second_signer(platform, mailer, org, item)
                    confirmed = sign_input(platform, mailer, token, digest, args.locale)
                    calls.append(
                        lambda t=token, g=confirmed: platform.contracts.sign(t, SIGNER_CLIENT, g)
                    )
                complete = time_calls("pactvault completing sign (+seal)", calls)

            print(f"first (cold) pactvault sign in this process: {cold * 1000:.0f} ms")
            print(pv.line())
            print(ph.line())
            print(
                f"ratio pactvault / bare pyHanko (mean): {pv.mean / ph.mean:.2f}x   "
                f"(median: {pv.median / ph.median:.2f}x)"
            )
            print(keyed.line())
            print(
                f"ratio pactvault / bare pyHanko with KeySigner (mean): "
                f"{pv.mean / keyed.mean:.2f}x   (median: {pv.median / keyed.median:.2f}x)"
            )
            if complete is not None:
                print(complete.line())
                print(f"ratio completing / bare pyHanko (mean): {complete.mean / ph.mean:.2f}x")

            if not args.no_verify:
                verify(platform, org, timed[0].contract_id, bare_output, root, args.no_complete)
                verify_one("bare pyHanko with KeySigner", keyed_output, root)
        finally:
            platform.close()
    return 0


def first_signer_names(kind: str, count: int, *, distinct: bool) -> list[str]:
    """The first signer's name per contract: one name, or all different (new stamp fonts)."""
    if not distinct:
        return [NAMES[kind][0]] * count
    if kind == "latin":
        return [f"Alice Zhang {index}" for index in range(count)]
    # Surname + two given-name characters from GB 2312 level 1, so every stamp differs.
    given = [bytes((0xB0 + i // 94, 0xA1 + i % 94)).decode("gb2312") for i in range(2 * count)]
    return [f"张{given[2 * i]}{given[2 * i + 1]}" for i in range(count)]


def stamp_text(locale: str, name: str, reason: str) -> str:
    """Every character pactvault's stamp can show (its stamp font is cut to exactly these)."""
    return "".join(LABELS[locale]) + ": " + name + reason + TIME_CHARACTERS


def second_signer(
    platform: Platform, mailer: MemoryMailer, org: str, item: Prepared
) -> tuple[str, str]:
    token = signing_tokens(mailer, item.contract_id)[item.signer_ids[1]]
    contract = platform.contracts.get(org, item.contract_id)
    return token, contract.revisions[-1].plaintext_sha256


def stamp_font_bytes(text: str) -> bytes | None:
    """The font data pactvault hands pyHanko for a stamp containing ``text``."""
    for_text = getattr(fonts, "stamp_font_bytes", None)
    if for_text is not None:
        return for_text(text)  # type: ignore[no-any-return]
    return fonts.cjk_font_bytes()


def verify(
    platform: Platform,
    org: str,
    contract_id: str,
    bare_output: bytes,
    root: x509.Certificate,
    partial: bool,
) -> None:
    """Both sides must have produced signatures that validate (checked after timing)."""
    _, ours = platform.contracts.download(SENDER, org, contract_id)
    ours_report = verify_pdf(ours, trust_roots=[root])
    bare_report = verify_pdf(bare_output, trust_roots=[root])
    expected = 2 if partial else 3
    ok = (
        ours_report.valid
        and len(ours_report.signatures) == expected
        and bare_report.valid
        and len(bare_report.signatures) == 1
    )
    ours_state = "valid" if ours_report.valid else "INVALID"
    bare_state = "valid" if bare_report.valid else "INVALID"
    print(
        f"validation (pyHanko, offline): pactvault output {ours_state} "
        f"({len(ours_report.signatures)} signatures), bare pyHanko output {bare_state}"
    )
    if not ok:
        raise SystemExit("a benchmark output did not validate")


def verify_one(label: str, output: bytes, root: x509.Certificate) -> None:
    report = verify_pdf(output, trust_roots=[root])
    print(f"validation (pyHanko, offline): {label} output {'valid' if report.valid else 'INVALID'}")
    if not report.valid:
        raise SystemExit("a benchmark output did not validate")


if __name__ == "__main__":
    raise SystemExit(main())
