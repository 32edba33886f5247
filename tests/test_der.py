"""DER assembly helpers (pactvault.crypto.der): exact encodings, no asn1crypto re-encoding."""

from __future__ import annotations

import pytest
from asn1crypto import core, parser

from pactvault.crypto import der


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x81\x80"),
        (255, b"\x81\xff"),
        (256, b"\x82\x01\x00"),
        (384, b"\x82\x01\x80"),
        (65535, b"\x82\xff\xff"),
        (65536, b"\x83\x01\x00\x00"),
    ],
)
def test_length_octets_are_minimal(size: int, expected: bytes) -> None:
    assert der.length(size) == expected
    # asn1crypto agrees on every boundary, including lengths that end in 0x80
    assert core.OctetString(b"x" * size).dump()[1:] == expected + b"x" * size


def test_tlv_and_set_of_match_asn1crypto() -> None:
    a, b = core.Integer(300).dump(), core.Integer(5).dump()
    assert der.sequence(a, b) == core.Sequence(contents=a + b).dump()
    assert der.set_of(a, b) == der.tlv(der.SET, b + a)  # members sorted by encoding
    parsed = parser.parse(der.tlv(0xA0, b"\x05\x00"))
    assert parsed[:3] == (2, 1, 0)  # context-specific, constructed, [0]
    with pytest.raises(ValueError):
        der.tlv(0x1F, b"")
    with pytest.raises(ValueError):
        der.length(-1)


@pytest.mark.parametrize("size", [1, 128, 384, 1000])
def test_encoded_returns_the_parsed_bytes_exactly(size: int) -> None:
    original = der.sequence(core.OctetString(b"\x00" * size).dump(), core.Integer(7).dump())
    value = core.Sequence.load(original)
    assert der.encoded(value) == original
    _ = value[0]  # walking the tree does not change what is returned
    assert der.encoded(value) == original


def test_has_der_lengths_spots_ber() -> None:
    good = der.sequence(core.OctetString(b"\x00" * 200).dump(), der.sequence(b"\x05\x00"))
    assert der.has_der_lengths(good)
    assert not der.has_der_lengths(b"\x30\x80\x05\x00\x00\x00")  # indefinite length
    assert not der.has_der_lengths(b"\x30\x81\x02\x05\x00")  # length in too many octets
    assert not der.has_der_lengths(der.sequence(b"\x30\x81\x02\x05\x00"))  # ... nested
    assert not der.has_der_lengths(b"\x30\x05\x05\x00")  # truncated
