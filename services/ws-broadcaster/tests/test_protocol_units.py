"""Pure parts: protocol models, token extraction, frame encoding, filters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eas_schemas.streams import ALL_STREAMS
from eas_schemas.ws_protocol import (
    CLIENT_MESSAGE,
    SERVER_MESSAGE,
    TOPIC_STREAMS,
    EventMessage,
    SubscribeMessage,
    Topic,
    TopicFilter,
    stream_topics,
)
from ws_broadcaster.hub import CompiledFilter, EventInfo, ws_text_frame
from ws_broadcaster.session import extract_token
from ws_broadcaster.testing import parse_frames


def test_every_public_stream_has_exactly_one_topic() -> None:
    public = {s.name for s in ALL_STREAMS if s.public}
    assert set(stream_topics()) == public
    assert set(TOPIC_STREAMS) == set(Topic)


def test_subscribe_accepts_names_and_objects() -> None:
    msg = CLIENT_MESSAGE.validate_python(
        {
            "type": "subscribe",
            "topics": [
                "health",
                {"topic": "alerts", "last_id": "17-0", "filter": {"relevant": True}},
            ],
        }
    )
    assert isinstance(msg, SubscribeMessage)
    assert [r.topic for r in msg.requests()] == [Topic.HEALTH, Topic.ALERTS]
    multi = CLIENT_MESSAGE.validate_python(
        {"type": "subscribe", "topics": [{"topic": "health", "last_id": {"system.alarm": "1-2"}}]}
    )
    assert isinstance(multi, SubscribeMessage)
    with pytest.raises(ValidationError):
        CLIENT_MESSAGE.validate_python({"type": "subscribe", "topics": ["alerts", "alerts"]})
    with pytest.raises(ValidationError):
        CLIENT_MESSAGE.validate_python(
            {"type": "subscribe", "topics": [{"topic": "alerts", "last_id": "nope"}]}
        )


def test_event_frame_text_validates_as_a_server_message() -> None:
    text = (
        '{"type":"event","topic":"alerts","stream":"alert.events","id":"1-0",'
        '"envelope":{"type":"alert.created","data":{}}}'
    )
    assert isinstance(SERVER_MESSAGE.validate_json(text), EventMessage)


@pytest.mark.parametrize(
    ("query", "auth", "cookie", "expected"),
    [
        ("token=q", "Bearer h", "eas_access=c", "q"),
        ("", "Bearer h", "eas_access=c", "h"),
        ("", "Basic h", "a=b; eas_access=c", "c"),
        ("other=1", None, None, None),
        ("", None, "bad cookie ;;; \x00", None),
    ],
)
def test_token_precedence(
    query: str, auth: str | None, cookie: str | None, expected: str | None
) -> None:
    assert extract_token(query, auth, cookie) == expected


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_text_frame_lengths_round_trip(size: int) -> None:
    payload = b"a" * size
    buf = bytearray(ws_text_frame(payload) * 2)
    assert parse_frames(buf) == [(1, payload), (1, payload)]
    assert buf == b""


def test_filters() -> None:
    info = EventInfo(type="alert.created", relevant=True, input=None, key="")
    assert CompiledFilter(TopicFilter(relevant=True)).matches(info)
    assert not CompiledFilter(TopicFilter(relevant=False)).matches(info)
    assert not CompiledFilter(TopicFilter(types=["alert.expired"])).matches(info)
    level = EventInfo(type="audio.level", relevant=None, input="fm1", key="fm1")
    assert CompiledFilter(TopicFilter(inputs=["fm1", "fm2"])).matches(level)
    assert not CompiledFilter(TopicFilter(inputs=["fm2"])).matches(level)
