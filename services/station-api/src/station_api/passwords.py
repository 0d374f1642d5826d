"""Password hashing (Argon2id via pwdlib) and the password policy.

Hashing costs tens of megabytes and a good fraction of a second by design, so callers run it
in a worker thread (``asyncio.to_thread``), never on the event loop.

Users imported from the Flask EAS Station (``eas-station import-flask``) keep their werkzeug
hash until their first login, stored as ``flask$<pepper hex or empty>$<werkzeug hash>``.
werkzeug itself (maintained by Pallets, the library that wrote those hashes) checks them, so
every format it ever wrote (``pbkdf2:sha256:N$salt$hash``, ``scrypt:n:r:p$salt$hash``) is
verified exactly; a match is answered with an Argon2 hash to store in its place.
"""

from __future__ import annotations

import hashlib

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from werkzeug.security import check_password_hash

MIN_LENGTH = 10
MAX_LENGTH = 256  # bounds the work one login attempt can cost

FLASK_PREFIX = "flask$"
# The Flask station's pepper step: PBKDF2-HMAC-SHA256 of the password keyed with a subkey of
# its SECRET_KEY, hex; werkzeug hashed that, not the password itself.
FLASK_PEPPER_ITERATIONS = 100_000


def flask_hash(werkzeug_hash: str, pepper: bytes | None) -> str:
    return f"{FLASK_PREFIX}{pepper.hex() if pepper else ''}${werkzeug_hash}"


def _verify_flask(password: str, stored: str) -> bool:
    pepper_hex, sep, werkzeug_hash = stored[len(FLASK_PREFIX) :].partition("$")
    if not sep or not werkzeug_hash.startswith(("pbkdf2:", "scrypt:")):
        return False
    candidates = []
    if pepper_hex:
        pepper = bytes.fromhex(pepper_hex)
        candidates.append(
            hashlib.pbkdf2_hmac("sha256", password.encode(), pepper, FLASK_PEPPER_ITERATIONS).hex()
        )
    # Hashes written before the Flask station peppered passwords hold the password itself.
    candidates.append(password)
    return any(check_password_hash(werkzeug_hash, c) for c in candidates)


class Passwords:
    def __init__(self, memory_cost_kib: int = 65_536, time_cost: int = 3) -> None:
        self._hasher = PasswordHash(
            (Argon2Hasher(memory_cost=memory_cost_kib, time_cost=time_cost),)
        )
        # Verified when the user name is unknown, so a miss costs as much time as a wrong
        # password and response timing does not reveal which user names exist.
        self._dummy = self._hasher.hash("not-a-real-password-only-for-timing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """(matches, a new hash when the stored one used older parameters)."""
        if password_hash is None or len(password) > MAX_LENGTH:
            self._hasher.verify(password[:MAX_LENGTH], self._dummy)
            return False, None
        if password_hash.startswith(FLASK_PREFIX):
            try:
                ok = _verify_flask(password, password_hash)
            except ValueError:  # a damaged imported hash is a failed login
                return False, None
            return (True, self.hash(password)) if ok else (False, None)
        try:
            return self._hasher.verify_and_update(password, password_hash)
        except Exception:  # a corrupt stored hash is a failed login, not a 500
            return False, None


def policy_problem(password: str, username: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must be at most {MAX_LENGTH} characters"
    if password.strip().lower() == username.lower():
        return "password must not be the user name"
    return None
