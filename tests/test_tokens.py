"""Bearer secrets: random, prefixed, and only their digest is kept."""

from __future__ import annotations

import hashlib

from pactvault.tokens import API_PREFIX, digests_equal, new_token, token_digest


def test_tokens_are_unique_prefixed_and_hashed() -> None:
    seen = set()
    for _ in range(200):
        token, digest = new_token(API_PREFIX)
        assert token.startswith(API_PREFIX)
        assert len(token) >= len(API_PREFIX) + 43  # 256 bits, base64url
        assert digest == hashlib.sha256(token.encode()).hexdigest() == token_digest(token)
        assert token not in digest
        seen.add(token)
    assert len(seen) == 200


def test_digest_comparison() -> None:
    a = token_digest("pva_a")
    assert digests_equal(a, token_digest("pva_a"))
    assert not digests_equal(a, token_digest("pva_b"))
