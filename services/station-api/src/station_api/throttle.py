"""Login throttling in Redis, shared by every station-api replica.

Attempts are counted per user name and per client address in a fixed window that starts at
the first attempt. Once either count reaches its limit, logins for that user (or from that
address) are refused with 429 until the window ends — even with the right password, so a
guesser learns nothing from the answer. A success clears the user's count and takes back its
own address count, never the earlier failures, so one good account cannot be used to reset a
password-spraying address.

An attempt is counted (atomically, in one script) *before* the slow password check: counting
after it let N parallel guesses all read the same count and all pass.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis.asyncio as aioredis

from servicekit.bus import stream_key
from servicekit.errors import Throttled

# KEYS: counters; ARGV: window, then one limit per key. Refuses (counting nothing) when any
# counter is at its limit, else counts the attempt in every counter. Returns {0} or {wait}.
_ATTEMPT = """
local wait = -1
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl > wait then wait = ttl end
  end
end
if wait >= 0 then return {1, wait} end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[1], 'NX')
end
return {0, 0}
"""

# KEYS: the user's counter, the address's counter. A success clears the first and takes its
# own attempt back from the second (only while it still exists: a lone DECR would leave a
# negative counter with no expiry).
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 and tonumber(redis.call('GET', KEYS[2])) > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"""


def _digest(value: str) -> str:
    # Keys stay short and free of whatever characters a user name or address contains.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        window_s: int,
        max_user: int,
        max_addr: int,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.window_s = window_s
        self.max_user = max_user
        self.max_addr = max_addr
        self._script: Any = client.register_script(_ATTEMPT)
        self._succeeded: Any = client.register_script(_SUCCEEDED)

    def _keys(self, username: str, addr: str, scope: str = "auth") -> tuple[str, str]:
        return (
            stream_key(f"{scope}.throttle:user:{_digest(username.lower())}", self.namespace),
            stream_key(f"{scope}.throttle:addr:{_digest(addr)}", self.namespace),
        )

    async def _attempt(self, keys: list[str], limits: list[int], what: str) -> None:
        refused, wait = await self._script(keys=keys, args=[self.window_s, *limits])
        if int(refused):
            wait = int(wait) if int(wait) > 0 else self.window_s
            raise Throttled(f"too many {what}; try again in {wait} s", wait)

    async def attempt(self, username: str, addr: str) -> None:
        """Count one login (or password check) attempt, or raise Throttled."""
        await self._attempt(
            list(self._keys(username, addr)), [self.max_user, self.max_addr], "failed logins"
        )

    async def attempt_setup(self, addr: str) -> None:
        """Count one first-admin setup attempt from ``addr`` (per address only: a global
        count would let anyone lock the real operator out of setup)."""
        await self._attempt([self._keys("", addr, "setup")[1]], [self.max_addr], "setup attempts")

    async def succeeded(self, username: str, addr: str) -> None:
        await self._succeeded(keys=list(self._keys(username, addr)), args=[])
