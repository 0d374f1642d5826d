"""Password hashing (Argon2id via pwdlib) and the password policy.

Hashing costs tens of megabytes and a good fraction of a second by design, so callers run it
in a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_LENGTH = 10
MAX_LENGTH = 256  # bounds the work one login attempt can cost


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
