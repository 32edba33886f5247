"""Shamir over GF(256) and the root key shares: round trips, and every way to be refused."""

from __future__ import annotations

import itertools
import os
import random

import pytest

from pactvault.backup import shamir
from pactvault.backup.errors import ShareError
from pactvault.backup.shares import (
    EscrowRecord,
    RootKeyMaterial,
    combine_shares,
    format_share,
    parse_share,
    split_record,
)


def _record(versions: int = 1) -> EscrowRecord:
    keys = {v: os.urandom(32) for v in range(1, versions + 1)}
    material = RootKeyMaterial(active_version=versions, keys=keys)
    return EscrowRecord("3f1c0e2a-instance", "2026-05-01T08:00:00Z", os.urandom(32), material)


# -- the field -------------------------------------------------------------------------------


def _reference_multiply(a: int, b: int) -> int:
    """Schoolbook carry-less multiplication, then reduction by x⁸+x⁴+x³+x+1."""
    product = 0
    for bit in range(8):
        if b >> bit & 1:
            product ^= a << bit
    for bit in range(14, 7, -1):
        if product >> bit & 1:
            product ^= 0x11B << (bit - 8)
    return product


def test_field_multiplication_and_inverse_are_right_for_every_element() -> None:
    for a in range(256):
        for b in range(256):
            assert shamir.gf_multiply(a, b) == _reference_multiply(a, b)
    assert shamir.gf_multiply(0x57, 0x83) == 0xC1  # FIPS-197 §4.2 worked example
    for a in range(1, 256):
        assert shamir.gf_multiply(a, shamir.gf_inverse(a)) == 1
    with pytest.raises(ZeroDivisionError):
        shamir.gf_inverse(0)


@pytest.mark.parametrize(("shares", "threshold"), [(2, 2), (3, 2), (5, 3), (7, 7), (10, 8)])
def test_any_threshold_subset_rebuilds_the_secret(shares: int, threshold: int) -> None:
    secret = os.urandom(45)
    pieces = shamir.split(secret, shares=shares, threshold=threshold)
    assert [x for x, _ in pieces] == list(range(1, shares + 1))
    subsets = list(itertools.combinations(pieces, threshold))
    for subset in random.Random(7).sample(subsets, min(len(subsets), 40)):
        assert shamir.combine(subset) == secret
    # One share short, the result is not the secret (and says nothing about it).
    assert shamir.combine(pieces[: threshold - 1]) != secret


def test_one_share_below_the_threshold_looks_the_same_whatever_the_secret() -> None:
    """Below the threshold a share is a fresh random value: over many splits, share 1 of the
    secret 0x00 and of the secret 0xFF both take (nearly) every byte value, about equally."""
    for secret in (b"\x00", b"\xff"):
        seen = [shamir.split(secret, shares=3, threshold=2)[0][1][0] for _ in range(4000)]
        counts = [seen.count(value) for value in range(256)]
        assert sum(1 for c in counts if c) >= 250
        assert max(counts) < 45  # expected 15.6 each


def test_split_refuses_nonsense_parameters() -> None:
    for shares, threshold in ((3, 1), (2, 3), (256, 3), (0, 0)):
        with pytest.raises(ValueError):
            shamir.split(b"k", shares=shares, threshold=threshold)
    with pytest.raises(ValueError):
        shamir.split(b"", shares=3, threshold=2)


# -- the shares ------------------------------------------------------------------------------


def test_every_three_of_five_shares_rebuild_the_record_and_more_shares_are_cross_checked() -> None:
    record = _record(versions=2)
    shares = split_record(record, shares=5, threshold=3)
    assert all(s.startswith("PVK1-") for s in shares)
    for subset in itertools.combinations(shares, 3):
        assert combine_shares(list(subset)) == record
    assert combine_shares(shares) == record
    assert combine_shares([*shares[:3], shares[0]]) == record  # the same share twice is harmless


def test_typed_back_from_paper_in_any_case_and_layout() -> None:
    record = _record()
    shares = split_record(record, shares=3, threshold=2)
    body = shares[1].removeprefix("PVK1-").replace("-", "")
    retyped = "pvk1 " + " ".join(body[i : i + 4] for i in range(0, len(body), 4)).lower()
    assert combine_shares([shares[0], retyped + "\n"]) == record


def test_too_few_shares_are_refused_with_how_many_are_needed() -> None:
    shares = split_record(_record(), shares=5, threshold=3)
    with pytest.raises(ShareError, match=r"3 different shares .* are needed, 2 given"):
        combine_shares(shares[:2])
    with pytest.raises(ShareError, match="2 given"):
        combine_shares([shares[0], shares[1], shares[1]])
    with pytest.raises(ShareError, match="no shares"):
        combine_shares([])


def test_a_mistyped_share_is_named_by_its_checksum() -> None:
    shares = split_record(_record(), shares=3, threshold=2)
    broken = list(shares[1])
    index = 20
    broken[index] = "A" if broken[index] != "A" else "B"
    with pytest.raises(ShareError, match="share #2 fails its checksum"):
        combine_shares([shares[0], "".join(broken)])
    with pytest.raises(ShareError, match="share #1 is not a pactvault root key share"):
        combine_shares(["hello", shares[0]])
    with pytest.raises(ShareError, match="not base32"):
        combine_shares(["PVK1-0000-1111", shares[0]])


def _tamper(share: str, delta: int = 0x5A) -> str:
    """Alter a share's values *and* recompute its checksum, as a malicious custodian would."""
    parsed = parse_share(share)
    values = bytearray(parsed.values)
    values[3] ^= delta
    return format_share(
        type(parsed)(parsed.set_id, parsed.threshold, parsed.count, parsed.number, bytes(values))
    )


def test_a_tampered_share_is_refused_and_named_when_more_shares_are_given() -> None:
    record = _record()
    shares = split_record(record, shares=5, threshold=3)
    forged = _tamper(shares[2])
    parse_share(forged)  # its checksum is fine: only the rebuilt record can tell
    with pytest.raises(ShareError, match="do not rebuild a valid root key"):
        combine_shares([shares[0], shares[1], forged])
    with pytest.raises(ShareError, match=r"share\(s\) 3 do not match the others"):
        combine_shares([shares[0], forged, shares[1], shares[3]])


def test_shares_of_different_ceremonies_do_not_mix() -> None:
    record = _record()
    first = split_record(record, shares=3, threshold=2)
    second = split_record(record, shares=3, threshold=2)
    with pytest.raises(ShareError, match="different key ceremonies"):
        combine_shares([first[0], second[1]])
    # Two different shares claiming the same number.
    clash = _tamper(first[1])
    with pytest.raises(ShareError, match="both claim to be share 2"):
        combine_shares([first[1], clash])


def test_the_ceremony_refuses_a_threshold_of_one() -> None:
    with pytest.raises(ShareError, match="threshold"):
        split_record(_record(), shares=3, threshold=1)
