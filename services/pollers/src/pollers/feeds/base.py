"""What every feed returns from one poll, and the little they share."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eas_schemas.events import FeedKind
from pollers.cap_xml import ParsedAlert

if TYPE_CHECKING:
    import redis

    from pollers.http_fetch import Sleeper
    from pollers.settings import PollersSettings


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


@dataclass(frozen=True)
class FeedContext:
    """What every feed is built from: the settings, the shared Redis client, and the HTTP
    limits and retry policy every HTTP feed uses."""

    settings: PollersSettings
    client: redis.Redis
    http: dict[str, Any]


@dataclass(frozen=True)
class FeedSpec:
    """A feed to run, before it is built: ``key`` changes whenever any of its settings does."""

    kind: FeedKind
    name: str
    key: tuple[Any, ...]
    make: Callable[[Sleeper], Feed]


def spec_key(kind: FeedKind, name: str, **values: Any) -> tuple[Any, ...]:
    return (kind.value, name, *sorted((k, repr(v)) for k, v in values.items()))


class Feed(abc.ABC):
    name: str
    kind: FeedKind
    interval_s: float

    @classmethod
    def specs(cls, ctx: FeedContext) -> list[FeedSpec]:
        """The feeds of this kind the settings ask for; raises `FeedConfigError` naming what
        is missing. Nothing is built (no HTTP client opened) until ``make``."""
        raise NotImplementedError(f"{cls.__name__} is not built from settings")

    @abc.abstractmethod
    def poll(self) -> PollResult: ...

    def redact(self, text: str) -> str:
        """Remove secrets from a message before it is logged or published."""
        return text

    def close(self) -> None:  # noqa: B027  (optional hook, not every feed holds a client)
        """Release clients (HTTP connections)."""
