"""Login throttling in Redis, shared by every station-api replica.

Failures are counted per user name and per client address in a fixed window that starts at
the first failure. Once either count reaches its limit, logins for that user (or from that
address) are refused with 429 until the window ends — even with the right password, so a
guesser learns nothing from the answer. A success clears the user's count, never the
address's, so one good account cannot be used to reset a password-spraying address.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from servicekit.bus import stream_key
from servicekit.errors import Throttled


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

    def _keys(self, username: str, addr: str) -> tuple[str, str]:
        return (
            stream_key(f"auth.throttle:user:{_digest(username.lower())}", self.namespace),
            stream_key(f"auth.throttle:addr:{_digest(addr)}", self.namespace),
        )

    async def check(self, username: str, addr: str) -> None:
        user_key, addr_key = self._keys(username, addr)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(user_key)
        pipe.ttl(user_key)
        pipe.get(addr_key)
        pipe.ttl(addr_key)
        user_n, user_ttl, addr_n, addr_ttl = await pipe.execute()
        waits = []
        if user_n is not None and int(user_n) >= self.max_user:
            waits.append(int(user_ttl))
        if addr_n is not None and int(addr_n) >= self.max_addr:
            waits.append(int(addr_ttl))
        if waits:
            wait = max(waits) if max(waits) > 0 else self.window_s
            raise Throttled(f"too many failed logins; try again in {wait} s", wait)

    async def failed(self, username: str, addr: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        for key in self._keys(username, addr):
            pipe.incr(key)
            pipe.expire(key, self.window_s, nx=True)
        await pipe.execute()

    async def succeeded(self, username: str, addr: str) -> None:
        await self.client.delete(self._keys(username, addr)[0])
