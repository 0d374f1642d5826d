"""Files of a CAP folder already read, by (path, mtime, size, sha256), kept in Redis.

An unchanged file (same mtime and size) is not even read again; a touched file whose content
hash is unchanged is not parsed again. One hash per folder, refreshed on every save, so a
folder that stops being polled is forgotten after the TTL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pollers.state_keys import digest, state_key

DEFAULT_FINGERPRINT_TTL_S = 4 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Fingerprint:
    mtime_ns: int
    size: int
    sha256: str

    def encode(self) -> str:
        return f"{self.mtime_ns}:{self.size}:{self.sha256}"

    @classmethod
    def decode(cls, text: str) -> Fingerprint | None:
        parts = text.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        return cls(int(parts[0]), int(parts[1]), parts[2])

    def same_stat(self, st: os.stat_result) -> bool:
        return self.mtime_ns == st.st_mtime_ns and self.size == st.st_size


class FileFingerprints:
    def __init__(
        self,
        client: redis.Redis,
        folder: Path,
        namespace: str = "",
        ttl_s: int = DEFAULT_FINGERPRINT_TTL_S,
    ) -> None:
        self.client = client
        self.key = state_key(namespace, "files", digest(str(folder.resolve()), 24))
        self.ttl_s = ttl_s

    def load(self) -> dict[str, Fingerprint]:
        raw: Any = self.client.hgetall(self.key)
        out: dict[str, Fingerprint] = {}
        for path, value in raw.items():
            fp = Fingerprint.decode(str(value))
            if fp is not None:
                out[str(path)] = fp
        return out

    def save(self, changed: Mapping[str, Fingerprint], removed: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        if changed:
            pipe.hset(self.key, mapping={p: fp.encode() for p, fp in changed.items()})
        gone = list(removed)
        if gone:
            pipe.hdel(self.key, *gone)
        pipe.expire(self.key, self.ttl_s)
        pipe.execute()
