"""The transport-agnostic hub: one stream reader, frames built once, fan-out that never awaits.

Hot path (``_dispatch``): an XREAD batch comes back; each entry becomes one ``Frame`` (the JSON
text, and for the raw-socket transport the finished WebSocket frame bytes) whatever the number
of clients; each subscribed client gets a reference appended to a plain list; after the whole
batch every touched client is flushed once. A transport's flush must not await: the
websockets transport writes the joined bytes straight to the socket's transport, the ASGI
transport hands them to the client's writer task. So a client that stops reading costs the
others nothing, and is cut off when its own buffer passes the limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel

from eas_schemas.ws_protocol import (
    COALESCED_TOPICS,
    TOPIC_STREAMS,
    CloseCode,
    ResyncReason,
    ResyncRequiredMessage,
    ServerPingMessage,
    SubscribedMessage,
    Topic,
    TopicFilter,
    TopicRequest,
)
from servicekit.auth.tokens import Principal
from servicekit.bus import parse_entry_id, stream_key
from ws_broadcaster.settings import WsBroadcasterSettings

log = logging.getLogger(__name__)

# Below this many bytes still unsent to a client, held latest-value events are written too.
COALESCE_LOW_WATER = 16_384


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed text frame (RFC 6455 5.2): what a server sends."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65_536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class Frame:
    """One server→client message, encoded once and shared by every recipient."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        wire = self._wire
        if wire is None:
            wire = self._wire = ws_text_frame(self.text.encode())
        return wire

    @classmethod
    def of(cls, message: BaseModel) -> Frame:
        return cls(message.model_dump_json())


@dataclass(slots=True)
class EventInfo:
    """What filters and coalescing look at, extracted once per event."""

    type: str
    relevant: bool | None
    input: str | None
    key: str


class CompiledFilter:
    __slots__ = ("inputs", "relevant", "types")

    def __init__(self, spec: TopicFilter) -> None:
        self.relevant = spec.relevant
        self.inputs = frozenset(spec.inputs) if spec.inputs else None
        self.types = frozenset(spec.types) if spec.types else None

    def matches(self, info: EventInfo) -> bool:
        if self.types is not None and info.type not in self.types:
            return False
        if self.relevant is not None and info.relevant is not self.relevant:
            return False
        return self.inputs is None or info.input in self.inputs


class Subscription:
    __slots__ = ("after", "filter", "held")

    def __init__(self, filter_: CompiledFilter | None, replaying: bool) -> None:
        self.filter = filter_
        # Live frames that arrive while history is being read; sent right after the replay.
        self.held: list[Frame] | None = [] if replaying else None
        # Per stream key, an id the client already has that this instance has not read yet
        # (it came from an instance that is ahead): live frames up to it are skipped.
        self.after: dict[str, tuple[int, int]] | None = None


@dataclass(slots=True)
class Stats:
    events_in: int = 0
    bad_entries: int = 0
    messages_out: int = 0
    coalesced_dropped: int = 0
    slow_disconnects: int = 0
    pong_timeouts: int = 0
    auth_failures: int = 0
    protocol_errors: int = 0
    connections_total: int = 0
    replayed: int = 0
    resyncs: int = 0
    read_errors: int = 0
    lag_ms: dict[str, float] = field(default_factory=dict)
    lag_entries: dict[str, int] = field(default_factory=dict)


class Client:
    """One connected socket as the hub sees it; a transport subclasses ``_write``/``_close``."""

    transport_name = "base"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pending: list[Frame] = []
        self.coalesced: dict[str, Frame] = {}
        self.subs: dict[Topic, Subscription] = {}
        self.principal: Principal | None = None
        self.ping_sent_at: float | None = None
        self.dirty = False
        self.closed = False
        self.close_code: int | None = None
        self.expiry: asyncio.TimerHandle | None = None

    # The transport's part -------------------------------------------------------------------

    def _write(self) -> int:
        """Hand ``pending`` (and held coalesced frames, if the client keeps up) to the socket
        without awaiting; return how many frames went out, or -1 if the client is too slow."""
        raise NotImplementedError

    def _close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    # Shared ----------------------------------------------------------------------------------

    def flush(self) -> None:
        self.dirty = False
        if self.closed:
            self.pending.clear()
            self.coalesced.clear()
            return
        sent = self._write()
        if sent < 0:
            self.hub.stats.slow_disconnects += 1
            self.close(CloseCode.TOO_SLOW, "too slow: send queue overflowed")
            return
        self.hub.stats.messages_out += sent
        if self.coalesced:
            self.hub.coalesce_waiting.add(self)

    def send(self, frame: Frame) -> None:
        """A message for this client alone (answers, replay); queued behind what is pending."""
        if self.closed:
            return
        self.pending.append(frame)
        self.flush()

    def send_model(self, message: BaseModel) -> None:
        self.send(Frame.of(message))

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        if self.expiry is not None:
            self.expiry.cancel()
        self.hub.detach(self)
        self.pending.clear()
        self.coalesced.clear()
        self._close(code, reason)

    def set_principal(self, principal: Principal) -> None:
        self.principal = principal
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if principal.expires_at is not None:
            delay = max(0.0, principal.expires_at - time.time())
            self.expiry = asyncio.get_running_loop().call_later(
                delay, self.close, CloseCode.UNAUTHORIZED, "token expired"
            )


@dataclass(frozen=True, slots=True)
class _Stream:
    key: str
    name: str
    topic: Topic


class Hub:
    def __init__(
        self, redis: aioredis.Redis, settings: WsBroadcasterSettings, instance: str
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.instance = instance
        self.streams: dict[str, _Stream] = {}
        for topic, specs in TOPIC_STREAMS.items():
            for spec in specs:
                key = stream_key(spec, settings.bus_namespace)
                self.streams[key] = _Stream(key, spec.name, topic)
        self.topic_keys: dict[Topic, list[_Stream]] = {t: [] for t in Topic}
        for s in self.streams.values():
            self.topic_keys[s.topic].append(s)
        self.positions: dict[str, str] = {}
        self.subscribers: dict[Topic, dict[Client, Subscription]] = {t: {} for t in Topic}
        self.clients: set[Client] = set()
        self.coalesce_waiting: set[Client] = set()
        self.stats = Stats()
        self.ready = False
        self.stopping = False
        self.last_read_ok = 0.0

    # Clients -----------------------------------------------------------------------------------

    def attach(self, client: Client) -> None:
        self.clients.add(client)
        self.stats.connections_total += 1

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        self.coalesce_waiting.discard(client)
        for topic in client.subs:
            self.subscribers[topic].pop(client, None)
        client.subs.clear()

    def clients_by_transport(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.clients:
            out[c.transport_name] = out.get(c.transport_name, 0) + 1
        return out

    def close_all(self, code: int, reason: str) -> None:
        for client in list(self.clients):
            client.close(code, reason)

    # Reading the bus ---------------------------------------------------------------------------

    async def pin_positions(self) -> None:
        """Start at the current end of each stream (a broadcaster shows what happens now;
        history is what clients ask for with ``last_id``)."""
        pipe = self.redis.pipeline(transaction=False)
        keys = list(self.streams)
        for key in keys:
            pipe.xinfo_stream(key)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        for key, info in zip(keys, results, strict=True):
            if isinstance(info, Exception):
                self.positions[key] = "0-0"  # no stream yet: everything it will hold is new
            else:
                self.positions[key] = str(info["last-generated-id"])
        self.ready = True
        self.last_read_ok = time.monotonic()

    async def run_reader(self) -> None:
        backoff = 0.1
        task = asyncio.current_task()
        while not self.stopping:
            try:
                streams: Any = self.positions
                reply: Any = await self.redis.xread(
                    streams, count=self.settings.read_batch, block=1000
                )
                self.last_read_ok = time.monotonic()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.stopping or (task is not None and task.cancelling()):
                    # redis-py can turn a cancellation into its own error (a read timeout
                    # racing the cancel); treat it as the stop it was.
                    raise asyncio.CancelledError from exc
                self.stats.read_errors += 1
                log.warning("stream read failed (retrying in %.1fs): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if reply:
                self.dispatch(reply)

    def dispatch(self, reply: Iterable[tuple[str, list[tuple[str, dict[str, str]]]]]) -> None:
        touched: list[Client] = []
        stats = self.stats
        queue_size = self.settings.queue_size
        overflowed: list[Client] = []
        for key, entries in reply:
            stream = self.streams[key]
            topic = stream.topic
            subs = self.subscribers[topic]
            coalesce = topic in COALESCED_TOPICS
            for entry_id, fields in entries:
                self.positions[key] = entry_id
                built = self.build(stream, entry_id, fields)
                if built is None:
                    continue
                frame, info = built
                stats.events_in += 1
                if not subs:
                    continue
                for client, sub in subs.items():
                    flt = sub.filter
                    if flt is not None and not flt.matches(info):
                        continue
                    if sub.after is not None and _already_seen(sub, key, entry_id):
                        continue
                    if sub.held is not None:
                        sub.held.append(frame)
                        if len(sub.held) > queue_size:
                            overflowed.append(client)
                        continue
                    if not client.dirty:
                        client.dirty = True
                        touched.append(client)
                    if coalesce:
                        if info.key in client.coalesced:
                            stats.coalesced_dropped += 1
                        client.coalesced[info.key] = frame
                    else:
                        client.pending.append(frame)
        for client in touched:
            client.flush()
        for client in overflowed:
            if not client.closed:
                stats.slow_disconnects += 1
                client.close(CloseCode.TOO_SLOW, "too slow: send queue overflowed")

    def build(
        self, stream: _Stream, entry_id: str, fields: dict[str, str]
    ) -> tuple[Frame, EventInfo] | None:
        raw = fields.get("envelope")
        try:
            doc = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            # Not an envelope: skip it rather than send clients something they cannot parse.
            self.stats.bad_entries += 1
            return None
        data = doc.get("data")
        relevant: bool | None = None
        input_: str | None = None
        key = ""
        if isinstance(data, dict):
            alert = data.get("alert")
            if isinstance(alert, dict):
                rel = alert.get("relevant")
                relevant = rel if isinstance(rel, bool) else None
            inp = data.get("input")
            input_ = inp if isinstance(inp, str) else None
            if stream.topic in COALESCED_TOPICS:
                out = data.get("output")
                key = input_ or (out if isinstance(out, str) else "") or str(doc.get("subject"))
        etype = doc.get("type")
        info = EventInfo(
            type=etype if isinstance(etype, str) else "", relevant=relevant, input=input_, key=key
        )
        # The envelope is embedded verbatim: it was serialized once by its producer, and is
        # known to be JSON (just parsed); topic/stream/id are plain ASCII without quotes.
        text = (
            f'{{"type":"event","topic":"{stream.topic.value}","stream":"{stream.name}",'
            f'"id":"{entry_id}","envelope":{raw}}}'
        )
        return Frame(text), info

    # Subscriptions -----------------------------------------------------------------------------

    async def subscribe(
        self, client: Client, requests: list[TopicRequest], ref: str | None
    ) -> None:
        for request in requests:
            if client.closed:
                return
            await self._subscribe_one(client, request, ref)

    async def _subscribe_one(self, client: Client, request: TopicRequest, ref: str | None) -> None:
        topic = request.topic
        streams = self.topic_keys[topic]
        flt = CompiledFilter(request.filter) if request.filter is not None else None
        if flt is not None and flt.relevant is None and flt.inputs is None and flt.types is None:
            flt = None
        replay = request.last_id is not None and topic not in COALESCED_TOPICS
        # No await between reading the positions and registering: every entry up to these
        # positions has been fanned out already, every later one will reach `held` or the
        # client, so replay (up to the positions) and live join without gap or duplicate.
        positions = {s.key: self.positions.get(s.key, "0-0") for s in streams}
        old = client.subs.get(topic)
        sub = Subscription(flt, replaying=replay)
        if old is not None and old.held is None and not replay:
            sub.after = old.after
        client.subs[topic] = sub
        self.subscribers[topic][client] = sub
        replayed = 0
        if replay:
            for s in streams:
                last = _last_id_for(request.last_id, s.name)
                if last is None:
                    continue
                frames, resync = await self._history(s, last, positions[s.key], flt, sub)
                if client.closed or client.subs.get(topic) is not sub:
                    return
                if resync is not None:
                    self.stats.resyncs += 1
                    client.pending.append(
                        Frame.of(
                            ResyncRequiredMessage(
                                ref=ref,
                                topic=topic,
                                stream=s.name,
                                reason=resync[0],
                                last_id=last,
                                first_id=resync[1],
                            )
                        )
                    )
                client.pending.extend(frames)
                replayed += len(frames)
            self.stats.replayed += replayed
            held = sub.held or []
            sub.held = None
            client.pending.extend(held)
        client.send_model(
            SubscribedMessage(
                ref=ref,
                topic=topic,
                replayed=replayed,
                last_ids={s.name: positions[s.key] for s in streams},
            )
        )

    async def _history(
        self,
        stream: _Stream,
        last_id: str,
        position: str,
        flt: CompiledFilter | None,
        sub: Subscription,
    ) -> tuple[list[Frame], tuple[ResyncReason, str | None] | None]:
        """Frames for entries in (last_id, position], or why they cannot all be given."""
        last, pos = parse_entry_id(last_id), parse_entry_id(position)
        limit = self.settings.replay_limit
        pipe = self.redis.pipeline(transaction=True)
        pipe.xrange(stream.key, min="(" + last_id, max=position, count=limit + 1)
        pipe.xinfo_stream(stream.key)
        rows_any, info_any = await pipe.execute(raise_on_error=False)
        info: dict[str, Any] | None = None if isinstance(info_any, Exception) else info_any
        first_id: str | None = None
        if info is not None and info.get("first-entry"):
            first_id = str(info["first-entry"][0])
        if last > pos:
            head = parse_entry_id(str(info["last-generated-id"])) if info else (0, 0)
            if last > head:
                return [], (ResyncReason.UNKNOWN_ID, first_id)
            # Another instance is ahead of this one: skip live entries the client has.
            sub.after = dict(sub.after or {})
            sub.after[stream.key] = last
            return [], None
        if isinstance(rows_any, Exception):
            raise rows_any
        if info is not None and _trimmed_after(last, info, first_id):
            return [], (ResyncReason.TRIMMED, first_id)
        if len(rows_any) > limit:
            return [], (ResyncReason.TOO_MANY, first_id)
        frames: list[Frame] = []
        for entry_id, fields in rows_any:
            built = self.build(stream, str(entry_id), fields)
            if built is None:
                continue
            frame, event = built
            if flt is None or flt.matches(event):
                frames.append(frame)
        return frames, None

    def unsubscribe(self, client: Client, topics: Iterable[Topic]) -> None:
        for topic in topics:
            client.subs.pop(topic, None)
            self.subscribers[topic].pop(client, None)

    # Housekeeping ------------------------------------------------------------------------------

    async def run_pings(self) -> None:
        interval = self.settings.ping_interval_s
        timeout = self.settings.ping_timeout_s
        tick = max(0.05, min(interval, timeout) / 4)
        next_ping = time.monotonic() + interval
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for client in list(self.clients):
                if client.principal is None:
                    continue  # still authenticating: the auth timeout governs it
                sent = client.ping_sent_at
                if sent is not None and now - sent > timeout:
                    self.stats.pong_timeouts += 1
                    client.close(CloseCode.PONG_TIMEOUT, "no pong")
            if now >= next_ping:
                next_ping = now + interval
                frame = Frame.of(ServerPingMessage(t=int(time.time() * 1000)))
                for client in list(self.clients):
                    if client.principal is None or client.closed:
                        continue
                    if client.ping_sent_at is None:
                        client.ping_sent_at = now
                    client.send(frame)

    async def run_coalesce_flush(self) -> None:
        """Retry clients that had latest-value events held back because they were behind."""
        while True:
            await asyncio.sleep(self.settings.coalesce_flush_s)
            waiting, self.coalesce_waiting = self.coalesce_waiting, set()
            for client in waiting:
                if client.coalesced and not client.closed:
                    client.flush()

    async def run_lag(self, interval_s: float = 2.0) -> None:
        task = asyncio.current_task()
        while not self.stopping:
            try:
                await self.measure_lag()
            except Exception as exc:
                if self.stopping or (task is not None and task.cancelling()):
                    # redis-py may turn a cancellation into its own error: honour the stop.
                    raise asyncio.CancelledError from exc
                log.debug("lag not measured: %s", exc)
            await asyncio.sleep(interval_s)

    async def measure_lag(self) -> None:
        keys = list(self.streams)
        # Positions before asking: the reader may move on while we wait, and comparing the
        # stream head with a newer position would look like the stream went backwards.
        before = {key: self.positions.get(key, "0-0") for key in keys}
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.xinfo_stream(key)
        infos: list[Any] = await pipe.execute(raise_on_error=False)
        now_ms = time.time() * 1000
        for key, info in zip(keys, infos, strict=True):
            name = self.streams[key].name
            pos = before[key]
            if isinstance(info, Exception):
                self.stats.lag_ms[name], self.stats.lag_entries[name] = 0.0, 0
                continue
            head = str(info["last-generated-id"])
            if parse_entry_id(head) < parse_entry_id(pos):
                # The stream was deleted and recreated (Redis flushed or restarted without
                # persistence): ids started over, so reading after our old id would see nothing.
                if self.positions.get(key) == pos:
                    log.warning("stream %s restarted below our position; reading from 0", key)
                    self.positions[key] = "0-0"
                continue
            if head == pos:
                self.stats.lag_ms[name], self.stats.lag_entries[name] = 0.0, 0
                continue
            behind: Any = await self.redis.xrange(key, min="(" + pos, max=head, count=10_000)
            self.stats.lag_entries[name] = len(behind)
            first_unread = parse_entry_id(str(behind[0][0]))[0] if behind else now_ms
            self.stats.lag_ms[name] = max(0.0, now_ms - first_unread)


def _last_id_for(last_id: str | dict[str, str] | None, stream_name: str) -> str | None:
    if last_id is None or isinstance(last_id, str):
        return last_id
    return last_id.get(stream_name)


def _already_seen(sub: Subscription, key: str, entry_id: str) -> bool:
    after = sub.after
    if after is None:
        return False
    limit = after.get(key)
    if limit is None:
        return False
    if parse_entry_id(entry_id) <= limit:
        return True
    del after[key]
    if not after:
        sub.after = None
    return False


def _trimmed_after(last: tuple[int, int], info: dict[str, Any], first_id: str | None) -> bool:
    """Were entries after ``last`` removed? XDEL moves max-deleted-entry-id (Redis 7); MAXLEN
    trimming only removes from the front, so an id before the first kept entry has lost some
    unless nothing was ever removed (entries-added == length)."""
    max_deleted = info.get("max-deleted-entry-id")
    if max_deleted is not None and last < parse_entry_id(str(max_deleted)):
        return True
    added, length = info.get("entries-added"), int(info.get("length", 0))
    if added is not None and int(added) == length:
        return False
    if first_id is None:
        return last != (0, 0)  # everything was removed
    return last < parse_entry_id(first_id)
