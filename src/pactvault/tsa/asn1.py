"""ASN.1 types for RFC 3161 that asn1crypto gets wrong.

asn1crypto 1.5.1 declares ``TimeStampResp.timeStampToken`` as mandatory, but RFC 3161 §2.4.2
makes it OPTIONAL and absent from every rejection. With asn1crypto's class a rejection can be
neither encoded nor parsed (``ValueError: Field "time_stamp_token" is missing``) — pyHanko's
HTTP client trips over exactly that. Use this class for both directions.
"""

from __future__ import annotations

from asn1crypto import cms, core, tsp


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with the token OPTIONAL, as the RFC defines it."""

    _fields = [  # noqa: RUF012 - asn1crypto's declarative spec is a class attribute by design
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]
