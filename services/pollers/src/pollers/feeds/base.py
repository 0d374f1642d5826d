"""What every feed returns from one poll, and the little they share."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from eas_schemas.events import FeedKind
from pollers.cap_xml import ParsedAlert


class FeedConfigError(ValueError):
    """The feed cannot run as configured (the process refuses to start)."""


@dataclass
class PollResult:
    """One poll of one feed, before anything is published.

    ``commit`` saves the feed's progress (IPAWS cursor, NWS ETag, file fingerprints). The
    cycle calls it only after every alert of ``alerts`` reached the bus: progress saved before
    that would turn a Redis outage into a silently missed alert.
    """

    documents: int = 0
    alerts: list[ParsedAlert] = field(default_factory=list)
    not_modified: bool = False
    errors: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    retry_after_s: float | None = None
    commit: Callable[[], None] | None = None
    new: int = 0  # filled in by the cycle: alerts published this cycle


class Feed(abc.ABC):
    name: str
    kind: FeedKind
    interval_s: float

    @abc.abstractmethod
    def poll(self) -> PollResult: ...

    def redact(self, text: str) -> str:
        """Remove secrets from a message before it is logged or published."""
        return text

    def close(self) -> None:  # noqa: B027  (optional hook, not every feed holds a client)
        """Release clients (HTTP connections)."""
