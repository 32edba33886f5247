"""Timestampers for pyHanko that fail closed.

pyHanko's signers call ``TimeStamper.async_timestamp`` (and, for size estimation,
``async_dummy_response``, which goes through the same method). We override that one method so
that every token pyHanko embeds has been checked by :mod:`pactvault.tsa.verify`, and so that
*any* failure — network, HTTP, rejection, mismatch, bad signature — surfaces as
:class:`TimestampUnavailableError` instead of pyHanko's ``TimestampRequestError`` (an
``IOError``) or, in 0.38, an ``AttributeError`` from its own nonce-mismatch message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko_certvalidator import ValidationContext

from pactvault.crypto.der import EncodedContentInfo, encoded
from pactvault.errors import InvalidInputError, TimestampUnavailableError
from pactvault.tsa.authority import TimestampAuthority
from pactvault.tsa.verify import check_timestamp_response, check_timestamp_trust

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64, "sha3_256": 32}
# Bytes of a token beyond its certificates (measured: ~600 for ECDSA, ~900 for RSA-4096).
TOKEN_OVERHEAD = 3 * 1024


class _FailClosedMixin:
    """Replaces pyHanko's ``async_timestamp`` with request → verified token, or an error."""

    _expected_certificate: asn1_x509.Certificate | None = None
    _validation_context: ValidationContext | None = None

    def token_size_hint(self) -> int | None:
        """An upper bound for the DER size of the tokens this timestamper returns, if known.

        Signers use it to reserve just enough room for the CMS in the PDF (every later reader
        of the file tokenises that room as hex); ``None`` means "unknown, reserve generously".
        """
        return None

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        try:
            _nonce, request = self.request_cms(message_digest, md_algorithm)  # type: ignore[attr-defined]
            response = await self.async_request_tsa_response(request)  # type: ignore[attr-defined]
            if not isinstance(response, bytes | core.Sequence):
                raise TypeError("the timestamper returned no TimeStampResp")
        except TimestampUnavailableError:
            raise
        except Exception as exc:
            # Deliberately broad: whatever went wrong, there is no token and signing must stop.
            raise TimestampUnavailableError(
                f"could not obtain a timestamp: {type(exc).__name__}"
            ) from exc
        token = check_timestamp_response(
            response, request, expected_certificate=self._expected_certificate
        )
        if self._validation_context is None:
            return token
        # Hand pyHanko an untouched parse: a ContentInfo whose tree was walked (as the path
        # validation does) makes asn1crypto re-encode it over and over while pyHanko embeds it.
        der = encoded(token)
        await check_timestamp_trust(token, self._validation_context)
        return EncodedContentInfo.load(der)


class LocalTimeStamper(_FailClosedMixin, TimeStamper):
    """Asks an in-process :class:`TimestampAuthority` — no HTTP, same bytes on the wire."""

    def __init__(self, authority: TimestampAuthority) -> None:
        super().__init__()
        self._authority = authority
        self._expected_certificate = asn1_x509.Certificate.load(
            authority.certificate.public_bytes(serialization.Encoding.DER)
        )

    def token_size_hint(self) -> int:
        # The token embeds the authority's certificate and chain; everything else (TSTInfo,
        # four signed attributes, an RSA-4096 or ECDSA signature, the CMS framing) stays well
        # below TOKEN_OVERHEAD.
        certificates = (self._authority.certificate, *self._authority.chain)
        return TOKEN_OVERHEAD + sum(
            len(c.public_bytes(serialization.Encoding.DER)) for c in certificates
        )

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> bytes:  # type: ignore[override]
        # Round-trip through DER exactly as a remote TSA would; ``async_timestamp`` parses the
        # bytes with the RFC-conformant spec (see tsa.asn1) and checks them.
        return self._authority.respond(req.dump())


class FailClosedHTTPTimeStamper(_FailClosedMixin, HTTPTimeStamper):
    """pyHanko's aiohttp-based RFC 3161 client, with verified responses."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        auth: tuple[str, str] | None,
        validation_context: ValidationContext | None,
    ) -> None:
        super().__init__(url, timeout=timeout, auth=auth)
        self._validation_context = validation_context


def local_timestamper(authority: TimestampAuthority) -> TimeStamper:
    """A pyHanko ``TimeStamper`` answered by ``authority`` in-process.

    The token must be signed by exactly ``authority.certificate`` (pinned), so a misconfigured
    authority cannot slip a token from another key into a signature.
    """
    return LocalTimeStamper(authority)


def http_timestamper(
    url: str,
    *,
    timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    trust_roots: Sequence[x509.Certificate] | None = None,
) -> TimeStamper:
    """A pyHanko ``TimeStamper`` for a remote RFC 3161 TSA at ``url``.

    Without ``trust_roots`` the token is checked for integrity and for answering our request,
    but any certificate with a timeStamping EKU is accepted; pass the TSA's root(s) to also
    require a valid path to them (recommended, especially over plain HTTP).
    """
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError("the timestamp authority URL must be http:// or https://")
    if timeout <= 0:
        raise InvalidInputError("timeout must be positive")
    context = None
    if trust_roots:
        context = ValidationContext(
            trust_roots=[
                asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))
                for root in trust_roots
            ]
        )
    return FailClosedHTTPTimeStamper(url, timeout=timeout, auth=auth, validation_context=context)


async def async_timestamp_digest(
    timestamper: TimeStamper, digest: bytes, md_algorithm: str = "sha256"
) -> bytes:
    """DER TimeStampToken (a CMS ContentInfo) over ``digest``; see :func:`timestamp_digest`."""
    expected = _DIGEST_SIZES.get(md_algorithm)
    if expected is None:
        raise InvalidInputError(f"md_algorithm must be one of: {', '.join(_DIGEST_SIZES)}")
    if not isinstance(digest, bytes) or len(digest) != expected:
        raise InvalidInputError(f"digest must be {expected} bytes for {md_algorithm}")
    try:
        token = await timestamper.async_timestamp(digest, md_algorithm)
    except TimestampUnavailableError:
        raise
    except Exception as exc:  # a plain pyHanko timestamper: still fail closed
        raise TimestampUnavailableError(
            f"could not obtain a timestamp: {type(exc).__name__}"
        ) from exc
    return token.dump()


def timestamp_digest(
    timestamper: TimeStamper, digest: bytes, md_algorithm: str = "sha256"
) -> bytes:
    """Synchronous :func:`async_timestamp_digest`, e.g. for anchoring the audit journal.

    Safe to call from inside a running event loop (it then runs on a helper thread), because
    ``asyncio.run`` refuses to nest.
    """
    coroutine = async_timestamp_digest(timestamper, digest, md_algorithm)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
