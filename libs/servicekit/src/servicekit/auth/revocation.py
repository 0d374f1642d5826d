"""Access tokens revoked before they expire, honoured by every verifier and the broadcaster.

station-api publishes a ``TokenRevoked`` (through its outbox) on logout (that token) and when
a user is disabled, demoted, deleted or given a new password (every token of that user issued
before). Every service follows the ``auth.revocations`` stream from one access-token lifetime
back and keeps what still matters in memory; ``TokenVerifier`` consults it on every call, its
cache included, and ws-broadcaster closes the sockets a revocation covers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from eas_schemas.envelope import EventEnvelope, decode_entry
from eas_schemas.system_events import AUTH_REVOCATIONS, TOKEN_REVOKED_TYPE, TokenRevoked
from servicekit.auth.tokens import Principal
from servicekit.bus import stream_key
from servicekit.tail import StreamTail

log = logging.getLogger(__name__)

# How far back a starting service reads: no access token lives longer (the mint cap).
LOOKBACK_S = 86_400


def revocation_envelope(
    subject: str,
    reason: str,
    *,
    valid_for_s: float,
    token_id: str | None = None,
    now: float | None = None,
    source: str = "station-api",
) -> EventEnvelope[TokenRevoked]:
    # Whole milliseconds, as tokens carry their mint time: a token minted right after (the new
    # session of a password change) is never covered by the cut made just before it.
    at = int((time.time() if now is None else now) * 1000) / 1000
    return EventEnvelope[TokenRevoked](
        type=TOKEN_REVOKED_TYPE,
        source=source,
        subject=subject,
        data=TokenRevoked(
            subject=subject,
            token_id=token_id,
            not_before=at,
            until=at + valid_for_s + 60,
            reason=reason,
        ),
    )


class RevocationList:
    def __init__(self) -> None:
        self._subjects: dict[str, tuple[float, float]] = {}  # subject -> (not_before, until)
        self._tokens: dict[str, float] = {}  # token id -> until
        self.listeners: list[Callable[[TokenRevoked], None]] = []
        self.applied = 0

    def apply(self, revoked: TokenRevoked) -> None:
        if revoked.token_id is not None:
            self._tokens[revoked.token_id] = max(
                revoked.until, self._tokens.get(revoked.token_id, 0)
            )
        else:
            old = self._subjects.get(revoked.subject, (0.0, 0.0))
            self._subjects[revoked.subject] = (
                max(old[0], revoked.not_before),
                max(old[1], revoked.until),
            )
        self.applied += 1
        self._prune()
        for listener in self.listeners:
            listener(revoked)

    def _prune(self) -> None:
        now = time.time()
        for token_id in [t for t, until in self._tokens.items() if until < now]:
            del self._tokens[token_id]
        for subject in [s for s, (_, until) in self._subjects.items() if until < now]:
            del self._subjects[subject]

    def revoked(self, principal: Principal) -> bool:
        if principal.token_id is not None and principal.token_id in self._tokens:
            return True
        cut = self._subjects.get(principal.subject)
        if cut is None:
            return False
        issued = principal.issued_at
        return issued is None or issued < cut[0]

    def covers(self, revoked: TokenRevoked, principal: Principal) -> bool:
        """Whether this one revocation voids ``principal`` (for closing open sockets)."""
        if revoked.token_id is not None:
            return principal.token_id == revoked.token_id
        if principal.subject != revoked.subject:
            return False
        return principal.issued_at is None or principal.issued_at < revoked.not_before


async def follow_revocations(
    client: aioredis.Redis,
    namespace: str,
    revocations: RevocationList,
    stop: asyncio.Event,
    lookback_s: float = LOOKBACK_S,
) -> None:
    """Apply every revocation from ``lookback_s`` ago on, until ``stop``."""
    key = stream_key(AUTH_REVOCATIONS, namespace)
    start = f"{int((time.time() - lookback_s) * 1000)}-0"
    tail = StreamTail(client, {key: start})
    while not stop.is_set():
        try:
            entries = await tail.read(block_ms=500)
        except Exception as exc:  # Redis away: keep what we know, try again
            log.warning("revocations: read failed: %s", exc)
            await asyncio.sleep(1.0)
            continue
        for _key, _entry_id, fields in entries:
            try:
                revoked = TokenRevoked.model_validate(decode_entry(fields).data)
            except ValueError as exc:
                log.warning("revocations: unreadable entry skipped: %s", exc)
                continue
            revocations.apply(revoked)
