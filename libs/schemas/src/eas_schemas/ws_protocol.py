"""The browser WebSocket protocol at ``/ws`` (ws-broadcaster), for server and clients alike.

Every message is one JSON object in one text frame with a ``type``. The prose, examples and
close codes are in ``docs/ws-protocol.md``; this module is the machine-checkable version.

Topics group public streams the way the dashboard thinks about them. The topic → stream map is
built from the ``StreamSpec`` constants, so a renamed stream cannot silently fall out of it.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from eas_schemas import streams
from eas_schemas.streams import StreamSpec

PROTOCOL_VERSION = 1
WS_PATH = "/ws"
# Browsers cannot set headers on a WebSocket; the dashboard's login sets this cookie.
ACCESS_COOKIE = "eas_access"
TOKEN_QUERY_PARAM = "token"  # noqa: S105 - a parameter name, not a secret

# A Redis stream entry id: "<milliseconds>-<sequence>".
ENTRY_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"
EntryId = Annotated[str, Field(pattern=ENTRY_ID_PATTERN, examples=["1718000000000-0"])]


class Topic(StrEnum):
    ALERTS = "alerts"
    SAME = "same"
    MONITOR = "monitor"
    LEVELS = "levels"
    POLLERS = "pollers"
    HEALTH = "health"
    SETTINGS = "settings"
    RELAY = "relay"
    PLAYOUT = "playout"


TOPIC_STREAMS: dict[Topic, tuple[StreamSpec, ...]] = {
    Topic.ALERTS: (streams.ALERT_EVENTS,),
    Topic.SAME: (streams.SAME_EVENTS,),
    Topic.MONITOR: (streams.MONITOR_STATUS,),
    Topic.LEVELS: (streams.AUDIO_METRICS,),
    Topic.POLLERS: (streams.POLLER_STATUS,),
    Topic.HEALTH: (streams.SERVICE_HEARTBEAT, streams.SYSTEM_ALARMS),
    Topic.SETTINGS: (streams.SETTINGS_CHANGED,),
    Topic.RELAY: (streams.RELAY_DECISIONS,),
    Topic.PLAYOUT: (streams.PLAYOUT_EVENTS,),
}

# Latest-value topics: a client that falls behind gets the newest event per key instead of a
# queue of stale ones, and there is no replay (old levels are worthless after a reconnect).
COALESCED_TOPICS: frozenset[Topic] = frozenset({Topic.LEVELS})


def stream_topics() -> dict[str, Topic]:
    """Bare stream name → the topic it belongs to (each public stream is in exactly one)."""
    out: dict[str, Topic] = {}
    for topic, specs in TOPIC_STREAMS.items():
        for spec in specs:
            out[spec.name] = topic
    return out


def _check_topic_map() -> None:
    public = {s.name for s in streams.ALL_STREAMS if s.public}
    mapped = [s.name for specs in TOPIC_STREAMS.values() for s in specs]
    if len(mapped) != len(set(mapped)) or set(mapped) - public:
        raise RuntimeError("TOPIC_STREAMS must map each public stream once, and only those")


_check_topic_map()


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (4xxx mirror HTTP statuses where one fits)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect (to another instance) and resume
    MESSAGE_TOO_BIG = 1009  # a client frame over the server's max frame size
    INTERNAL_ERROR = 1011
    UNAUTHORIZED = 4401  # no/invalid/expired token, auth timeout, or the token expired
    FORBIDDEN = 4403  # valid token, but the role may not read (lacks alerts:read)
    PONG_TIMEOUT = 4408  # no pong to the server's pings within the timeout
    TOO_SLOW = 4008  # the client did not read fast enough; its send queue overflowed


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"  # not JSON, not an object, or a binary frame
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"  # known type, wrong fields
    UNKNOWN_TOPIC = "unknown_topic"
    BAD_FILTER = "bad_filter"  # a filter the topic does not support
    NOT_AUTHENTICATED = "not_authenticated"  # a request before auth completed
    BAD_TOKEN = "bad_token"  # noqa: S105 - an `auth` message while connected whose token failed
    FORBIDDEN_TOPIC = "forbidden_topic"  # the role may not read that topic


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Filters


class TopicFilter(_Message):
    """Narrows one topic; all given conditions must hold. Absent fields do not filter."""

    relevant: bool | None = Field(
        default=None,
        description="alerts only: keep events whose data.alert.relevant equals this",
    )
    inputs: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="levels/monitor only: keep events whose data.input is one of these",
    )
    types: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="any topic: keep events whose envelope type is one of these",
    )


# Which filter fields a topic accepts (anything else is a `bad_filter` error).
FILTER_FIELDS: dict[Topic, frozenset[str]] = {
    Topic.ALERTS: frozenset({"relevant", "types"}),
    Topic.SAME: frozenset({"types"}),
    Topic.MONITOR: frozenset({"inputs", "types"}),
    Topic.LEVELS: frozenset({"inputs", "types"}),
    Topic.POLLERS: frozenset({"types"}),
    Topic.HEALTH: frozenset({"types"}),
    Topic.SETTINGS: frozenset({"types"}),
    Topic.RELAY: frozenset({"types"}),
    Topic.PLAYOUT: frozenset({"types"}),
}


# ---------------------------------------------------------------------------------------------
# Client → server


class TopicRequest(_Message):
    topic: Topic
    last_id: EntryId | dict[str, EntryId] | None = Field(
        default=None,
        description="the last stream entry id the client saw on this topic; the server sends "
        "what came after it before live events. For a topic of several streams, an object "
        "{stream name: id} is exact; a single id is applied to each of its streams.",
    )
    filter: TopicFilter | None = None


class AuthMessage(_Message):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=8192)


class SubscribeMessage(_Message):
    type: Literal["subscribe"]
    ref: str | None = Field(default=None, max_length=64, description="echoed in the answers")
    topics: list[Topic | TopicRequest] = Field(min_length=1, max_length=len(Topic))

    @model_validator(mode="after")
    def _unique(self) -> SubscribeMessage:
        names = [t if isinstance(t, Topic) else t.topic for t in self.topics]
        if len(names) != len(set(names)):
            raise ValueError("a topic may appear only once per subscribe")
        return self

    def requests(self) -> list[TopicRequest]:
        return [TopicRequest(topic=t) if isinstance(t, Topic) else t for t in self.topics]


class UnsubscribeMessage(_Message):
    type: Literal["unsubscribe"]
    ref: str | None = Field(default=None, max_length=64)
    topics: list[Topic] = Field(min_length=1, max_length=len(Topic))


class PongMessage(_Message):
    type: Literal["pong"]
    t: int | None = Field(default=None, description="the ping's t, echoed (optional)")


class PingMessage(_Message):
    """A client may ping too (to detect a dead server); the server answers `pong`."""

    type: Literal["ping"]
    t: int | None = None


ClientMessage = Annotated[
    AuthMessage | SubscribeMessage | UnsubscribeMessage | PongMessage | PingMessage,
    Field(discriminator="type"),
]
CLIENT_MESSAGE: TypeAdapter[
    AuthMessage | SubscribeMessage | UnsubscribeMessage | PongMessage | PingMessage
] = TypeAdapter(ClientMessage)
CLIENT_TYPES: frozenset[str] = frozenset({"auth", "subscribe", "unsubscribe", "pong", "ping"})


# ---------------------------------------------------------------------------------------------
# Server → client


class PrincipalInfo(_Message):
    subject: str
    role: str | None = Field(description="null for an anonymous reader")
    expires_at: float | None = Field(
        description="token expiry, Unix seconds; the socket is closed with 4401 then"
    )


class WelcomeMessage(_Message):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    server: str = Field(description="ws-broadcaster/<instance>")
    principal: PrincipalInfo
    topics: list[Topic]
    ping_interval_s: float
    ping_timeout_s: float
    max_frame_bytes: int


class EventMessage(_Message):
    """One bus event. ``id`` is the Redis stream entry id: keep the last one per topic (and per
    ``stream`` for multi-stream topics) and send it as ``last_id`` when resubscribing."""

    type: Literal["event"] = "event"
    topic: Topic
    stream: str = Field(description="bare stream name, e.g. alert.events")
    id: EntryId
    envelope: dict[str, Any] = Field(description="the CloudEvents-shaped EventEnvelope, verbatim")


class SubscribedMessage(_Message):
    """Sent per topic once its replay is complete; live events for the topic follow."""

    type: Literal["subscribed"] = "subscribed"
    ref: str | None = None
    topic: Topic
    replayed: int = Field(ge=0)
    last_ids: dict[str, EntryId]


class ResyncReason(StrEnum):
    TRIMMED = "trimmed"  # the id is older than the oldest entry the stream still keeps
    TOO_MANY = "too_many"  # more events were missed than the server replays
    UNKNOWN_ID = "unknown_id"  # the id is newer than anything the stream has (Redis reset)


class ResyncRequiredMessage(_Message):
    """Events after ``last_id`` cannot all be replayed: reload the topic's state (REST) and
    treat what follows as live. Sent before the `subscribed` for that topic."""

    type: Literal["resync_required"] = "resync_required"
    ref: str | None = None
    topic: Topic
    stream: str
    reason: ResyncReason
    last_id: EntryId
    first_id: EntryId | None = Field(description="oldest entry still kept, if any")


class UnsubscribedMessage(_Message):
    type: Literal["unsubscribed"] = "unsubscribed"
    ref: str | None = None
    topics: list[Topic]


class ServerPingMessage(_Message):
    """Answer with {"type": "pong"} within ping_timeout_s or the socket is closed with 4408."""

    type: Literal["ping"] = "ping"
    t: int = Field(description="server time, Unix milliseconds")


class ServerPongMessage(_Message):
    type: Literal["pong"] = "pong"
    t: int | None = None


class ErrorMessage(_Message):
    """A request was not understood or not allowed; the connection stays open."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None


ServerMessage = Annotated[
    WelcomeMessage
    | EventMessage
    | SubscribedMessage
    | ResyncRequiredMessage
    | UnsubscribedMessage
    | ServerPingMessage
    | ServerPongMessage
    | ErrorMessage,
    Field(discriminator="type"),
]
SERVER_MESSAGE: TypeAdapter[
    WelcomeMessage
    | EventMessage
    | SubscribedMessage
    | ResyncRequiredMessage
    | UnsubscribedMessage
    | ServerPingMessage
    | ServerPongMessage
    | ErrorMessage
] = TypeAdapter(ServerMessage)
