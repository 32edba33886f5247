"""Shamir's secret sharing over GF(2⁸), byte by byte — pure functions, no I/O.

Why our own (≈80 lines) rather than a PyPI package: the maintained option, ``shamir-mnemonic``
(SLIP-39), only shares 16-32 byte seeds as word lists and cannot carry the root key escrow record
(several root key versions plus the backup verification key); the other packages found are
unmaintained (``secretsharing`` 2014, ``sslib`` 2018) or single-author ports without review. The
arithmetic is small enough to check completely, and the tests do (field axioms, every threshold
up to 8 of 10, every subset of a 3-of-5 split).

The field is GF(2⁸) with the AES polynomial x⁸+x⁴+x³+x+1 (0x11B). For every byte of the secret
a fresh random polynomial of degree ``threshold-1`` is drawn (coefficients from :mod:`secrets`)
with the secret byte as its constant term; share *i* holds the polynomial's values at x = *i*
(1 … n; x = 0 would be the secret itself). Any ``threshold`` shares determine the polynomials by
Lagrange interpolation at 0; fewer reveal nothing about the secret (information-theoretically:
every secret is equally consistent with them).

Multiplication and inversion are written without secret-dependent branches or table look-ups
(shift-and-mask, inversion as a²⁵⁴), so the timing does not depend on the secret. Python gives no
hard constant-time guarantee; the ceremony runs on the operator's own console, once.

Shamir alone does not detect a wrong share — interpolation then just yields a different secret.
Detection is the caller's job (``backup.shares`` embeds a digest of the payload in the secret).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

__all__ = ["MAX_SHARES", "combine", "evaluate", "gf_inverse", "gf_multiply", "split"]

MAX_SHARES = 255
_REDUCE = 0x1B  # x⁸ ≡ x⁴ + x³ + x + 1


def gf_multiply(a: int, b: int) -> int:
    """a·b in GF(2⁸), branch-free (eight shift-and-conditional-xor rounds)."""
    result = 0
    for _ in range(8):
        result ^= -(b & 1) & a
        carry = -((a >> 7) & 1) & _REDUCE
        a = ((a << 1) & 0xFF) ^ carry
        b >>= 1
    return result & 0xFF


def gf_inverse(a: int) -> int:
    """a⁻¹ = a²⁵⁴ in GF(2⁸) (a ≠ 0), by a fixed square-and-multiply chain."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    result = 1
    power = a
    for _ in range(7):  # 254 = 0b11111110: multiply in a², a⁴, …, a¹²⁸
        power = gf_multiply(power, power)
        result = gf_multiply(result, power)
    return result


def split(secret: bytes, *, shares: int, threshold: int) -> list[tuple[int, bytes]]:
    """``shares`` pieces ``(x, y-bytes)`` of which any ``threshold`` rebuild ``secret``."""
    if not isinstance(secret, bytes | bytearray) or not secret:
        raise ValueError("the secret must be non-empty bytes")
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise ValueError(f"need 2 ≤ threshold ≤ shares ≤ {MAX_SHARES}")
    # coefficients[k][j]: coefficient of x^(j+1) for secret byte k.
    randomness = secrets.token_bytes(len(secret) * (threshold - 1))
    width = threshold - 1
    out: list[tuple[int, bytes]] = []
    for x in range(1, shares + 1):
        ys = bytearray(len(secret))
        for k, constant in enumerate(secret):
            coefficients = randomness[k * width : (k + 1) * width]
            # Horner: ((c_{t-1}·x + c_{t-2})·x + …)·x + secret byte
            y = 0
            for coefficient in reversed(coefficients):
                y = gf_multiply(y, x) ^ coefficient
            ys[k] = gf_multiply(y, x) ^ constant
        out.append((x, bytes(ys)))
    return out


def _lagrange_weights(xs: Sequence[int], at: int) -> list[int]:
    """w_i with f(at) = Σ w_i·y_i for the polynomial through the points at ``xs``."""
    if len(set(xs)) != len(xs) or any(not 1 <= x <= MAX_SHARES for x in xs):
        raise ValueError("share x-coordinates must be distinct and in 1..255")
    weights = []
    for i, xi in enumerate(xs):
        numerator, denominator = 1, 1
        for j, xj in enumerate(xs):
            if i == j:
                continue
            numerator = gf_multiply(numerator, at ^ xj)
            denominator = gf_multiply(denominator, xi ^ xj)
        weights.append(gf_multiply(numerator, gf_inverse(denominator)))
    return weights


def evaluate(points: Sequence[tuple[int, bytes]], at: int) -> bytes:
    """The bytes of the polynomials through ``points`` at x = ``at`` (0 gives the secret)."""
    if not points:
        raise ValueError("no shares")
    length = len(points[0][1])
    if any(len(ys) != length for _, ys in points):
        raise ValueError("shares of different lengths")
    weights = _lagrange_weights([x for x, _ in points], at)
    out = bytearray(length)
    for weight, (_, ys) in zip(weights, points, strict=True):
        for k, y in enumerate(ys):
            out[k] ^= gf_multiply(weight, y)
    return bytes(out)


def combine(points: Sequence[tuple[int, bytes]]) -> bytes:
    """The secret from exactly the given shares (pass ``threshold`` of them).

    With fewer than the threshold the result is a meaningless value, not an error: Shamir cannot
    tell; the caller checks the result (see the module docstring).
    """
    return evaluate(points, 0)
