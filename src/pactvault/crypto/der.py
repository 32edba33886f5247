"""DER assembly helpers that keep asn1crypto from re-encoding what is already encoded.

asn1crypto re-serialises a structure it built from Python values on *every* access to its
contents, recursively (cost grows with nesting depth), and it treats any element whose DER
length header happens to end in the byte 0x80 (a content length of 128, 384, 640, ... bytes) as
indefinite-length BER and re-encodes that whole subtree — certificates included — with
``force=True``. Which tokens hit that depends on serial numbers and signature lengths, so it
shows up as a random 100+ ms spike on some timestamps and signatures.

For the hot paths (timestamp tokens, CMS pieces) we therefore encode small parts once and put
the outer layers together here, byte for byte as DER prescribes (X.690 §8.1, §10.1: definite
lengths in the minimum number of octets). Pure, no I/O.
"""

from __future__ import annotations

from asn1crypto import cms, core, parser

SEQUENCE = 0x30
SET = 0x31
OCTET_STRING = 0x04
INTEGER = 0x02


def length(size: int) -> bytes:
    """The DER length octets for ``size`` content bytes."""
    if size < 0:
        raise ValueError("length must be non-negative")
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def tlv(tag: int, contents: bytes) -> bytes:
    """One element with a single-octet ``tag`` (e.g. 0x30 SEQUENCE, 0xA0 [0] constructed)."""
    if not 0 <= tag <= 0xFF or tag & 0x1F == 0x1F:
        raise ValueError("only single-octet tags are supported")
    return bytes([tag]) + length(len(contents)) + contents


def sequence(*elements: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(elements))


def set_of(*elements: bytes) -> bytes:
    """A DER SET OF: members sorted by their encodings (X.690 §11.6)."""
    return tlv(SET, b"".join(sorted(elements)))


def encoded(value: core.Asn1Value) -> bytes:
    """The DER of ``value`` without asn1crypto's "0x80 means indefinite" re-encoding trap.

    For a value parsed from bytes and not modified since, this is exactly those bytes (cheap);
    for a value built or modified in Python, asn1crypto encodes it as usual. Values with
    explicit tagging take the ordinary ``dump()`` path.
    """
    if value.explicit:
        return value.dump()
    if isinstance(value, core.Choice):  # untagged CHOICE: the encoding is the alternative's
        return encoded(value.chosen)
    return parser.emit(value.class_, value.method, value.tag, value.contents)


def has_der_lengths(data: bytes) -> bool:
    """True if every element of ``data``, recursively, has a minimal definite length.

    That is the part of DER (X.690 §10.1) BER encoders most often break (indefinite or padded
    lengths); use it to decide whether bytes from elsewhere need re-encoding.
    """
    try:
        _check_lengths(data)
    except (ValueError, TypeError):
        return False
    return True


def _check_lengths(data: bytes, depth: int = 0) -> None:
    if depth > 64:
        raise ValueError("nested too deeply")
    offset = 0
    while offset < len(data):
        class_, method, tag, header, body, trailer = parser.parse(data[offset:])
        minimal = parser.emit(class_, method, tag, b"")[:-1] + length(len(body))
        if trailer or header != minimal:
            raise ValueError("not a minimal definite length")
        if method == 1 and not (class_ == 0 and tag == OCTET_STRING):
            _check_lengths(body, depth + 1)
        offset += len(header) + len(body)


class EncodedContentInfo(cms.ContentInfo):
    """A CMS ContentInfo whose ``dump()`` returns its bytes as they are (no 0x80 trap).

    Load tokens and signatures into this class before handing them to code that dumps them
    repeatedly (pyHanko does, while it builds attributes around a timestamp token).
    """

    def dump(self, force: bool = False) -> bytes:
        return super().dump(force=True) if force else encoded(self)


class EncodedAttributes(cms.CMSAttributes):
    """CMS attributes (a SET OF Attribute) whose ``dump()`` returns its bytes as they are."""

    def dump(self, force: bool = False) -> bytes:
        return super().dump(force=True) if force else encoded(self)


__all__ = [
    "EncodedAttributes",
    "EncodedContentInfo",
    "encoded",
    "has_der_lengths",
    "length",
    "sequence",
    "set_of",
    "tlv",
]
