"""Werkzeug hashes imported from the Flask EAS Station: verified once, answered with Argon2."""

from __future__ import annotations

import hashlib

from station_api.passwords import FLASK_PEPPER_ITERATIONS, Passwords, flask_hash


def werkzeug_pbkdf2(password: str, salt: str = "q9Zx", iterations: int = 1000) -> str:
    """werkzeug's pbkdf2 format, made here from its definition (not by werkzeug)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2:sha256:{iterations}${salt}${digest.hex()}"


def test_a_werkzeug_pbkdf2_hash_verifies_and_is_replaced_by_argon2() -> None:
    passwords = Passwords(memory_cost_kib=8192, time_cost=1)
    stored = flask_hash(werkzeug_pbkdf2("correct horse battery"), None)
    ok, rehash = passwords.verify("correct horse battery", stored)
    assert ok and rehash is not None and rehash.startswith("$argon2id$")
    assert passwords.verify("correct horse battery", rehash) == (True, None)
    assert passwords.verify("wrong horse battery", stored) == (False, None)


def test_a_peppered_flask_hash_needs_the_pepper() -> None:
    passwords = Passwords(memory_cost_kib=8192, time_cost=1)
    pepper = bytes(range(32))
    inner = hashlib.pbkdf2_hmac(
        "sha256", b"pepper-me-please", pepper, FLASK_PEPPER_ITERATIONS
    ).hex()
    assert passwords.verify("pepper-me-please", flask_hash(werkzeug_pbkdf2(inner), pepper))[0]
    # Without the pepper the same hash cannot be verified.
    assert not passwords.verify("pepper-me-please", flask_hash(werkzeug_pbkdf2(inner), None))[0]


def test_damaged_or_foreign_flask_hashes_fail_the_login_quietly() -> None:
    passwords = Passwords(memory_cost_kib=8192, time_cost=1)
    for stored in (
        "flask$",
        "flask$$md5$abc$def",
        "flask$zz$" + werkzeug_pbkdf2("some-password"),  # pepper not hex
        "flask$$pbkdf2:sha256:notanumber$salt$00",
    ):
        assert passwords.verify("some-password", stored) == (False, None), stored
