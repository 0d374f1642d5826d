from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    LEEWAY_S,
    TokenError,
    TokenSigner,
    TokenVerifier,
    generate_keypair,
)


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def test_cached_token_still_expires_and_tampering_is_caught():
    private, public = generate_keypair()
    clock = Clock()
    signer, verifier = TokenSigner(private), TokenVerifier(public, clock=clock)
    token = signer.mint("alice", Role.OPERATOR, ttl_s=60, now=clock.now)
    assert verifier.verify(token).subject == "alice"
    assert verifier.verify(token).role is Role.OPERATOR  # from the cache
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError):
        verifier.verify(tampered)
    clock.now += 60 + LEEWAY_S  # the last second of its leeway: still good
    assert verifier.verify(token).subject == "alice"
    clock.now += 1
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)  # cached, yet refused
    with pytest.raises(TokenError, match="expired"):
        TokenVerifier(public, clock=clock).verify(token)  # and refused when verified afresh


def test_an_expired_token_is_refused_even_before_it_is_cached():
    private, public = generate_keypair()
    signer, verifier = TokenSigner(private), TokenVerifier(public)
    token = signer.mint("bob", Role.VIEWER, ttl_s=60, now=time.time() - 60 - LEEWAY_S - 5)
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_a_token_without_a_numeric_expiry_is_refused():
    private, public = generate_keypair()
    key = serialization.load_pem_private_key(private.encode(), password=None)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "role": "admin", "iat": now}
    verifier = TokenVerifier(public)
    with pytest.raises(TokenError, match="exp"):
        verifier.verify(jwt.encode(claims, key, algorithm=ALGORITHM))  # type: ignore[arg-type]
    with pytest.raises(TokenError, match="exp"):
        verifier.verify(
            jwt.encode({**claims, "exp": "later"}, key, algorithm=ALGORITHM)  # type: ignore[arg-type]
        )


def test_token_from_another_key_is_refused():
    signer = TokenSigner(generate_keypair()[0])
    verifier = TokenVerifier(generate_keypair()[1])
    with pytest.raises(TokenError):
        verifier.verify(signer.mint("mallory", Role.ADMIN))
