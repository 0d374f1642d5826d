"""NWS API responses of several vintages: nothing dropped for a merely non-conformant field.

``vintage-2017-sender-name.json`` is shaped like the API's early responses (identifiers
``NWS-IDP-PROD-...``, the office's name in ``sender`` and no ``senderName``, the SAME event
code among ``parameters``, a mis-cased status and CAP 1.0's "Very Likely"); ``active.json`` is
today's shape. ``cap-NWS-IDP-PROD-2577343-2418958.xml`` is the per-alert CAP XML the API
serves for the first of the old alerts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import redis

from eas_schemas.cap import CapAlert, CapCertainty, CapMsgType, CapStatus
from eas_schemas.streams import ALERTS_INGESTED
from pollers.cap_xml import parse_cap_alert
from pollers.cycle import FeedLoop
from pollers.feeds.base import FeedContext
from pollers.feeds.nws_api import CapXmlFetcher, NwsApiFeed
from pollers.http_fetch import RetryPolicy, UrlGuard, make_client
from pollers.nws_geojson import NWS_CAP_SENDER, parse_nws_json
from pollers.publisher import AlertPublisher
from pollers.seen_alerts import SeenAlerts
from pollers.settings import PollersSettings
from servicekit.bus import SyncBus, stream_key

SVR = "NWS-IDP-PROD-2577343-2418958"
SVS = "NWS-IDP-PROD-2577399-2419011"
WIND = "NWS-IDP-PROD-2577401-2419013"


@pytest.fixture
def old(nws_fixtures: Path) -> bytes:
    return (nws_fixtures / "vintage-2017-sender-name.json").read_bytes()


@pytest.fixture
def svr_xml(nws_fixtures: Path) -> bytes:
    return (nws_fixtures / f"cap-{SVR}.xml").read_bytes()


def test_old_vintage_is_normalised_alert_by_alert(old: bytes) -> None:
    batch = parse_nws_json(old)
    assert [p.alert.identifier for p in batch.alerts] == [SVR, SVS, WIND]
    # Only what cannot be an alert is rejected, each on its own, with its reason.
    assert batch.rejections == [
        "feature #4 (NWS-IDP-PROD-2577402-2419014): no area: no SAME/UGC geocode and no "
        "usable geometry",
        "feature #5 (NWS-IDP-PROD-2577403-2419015): missing properties.sent",
    ]
    svr, svs, wind = batch.alerts
    assert svr.alert.sender == NWS_CAP_SENDER
    assert svr.deviations == ("sender_held_name", "sender_assumed_nws")
    info = svr.alert.infos[0]
    assert info.sender_name == "NWS Tulsa OK"  # where today's API puts it
    assert info.same_event_code() == "SVR"  # from parameters, as the old API carried it
    assert svr.alert.same_codes() == ["040143", "040145"]
    # The Update's reference names the office too; normalised the same way it still points
    # at the alert it updates.
    assert svs.alert.msg_type is CapMsgType.UPDATE
    (ref,) = svs.alert.references
    assert (ref.sender, ref.identifier, ref.sent) == (
        svr.alert.sender,
        svr.alert.identifier,
        svr.alert.sent,
    )
    assert "reference_sender_normalised" in svs.deviations
    assert wind.alert.status is CapStatus.ACTUAL
    assert wind.alert.infos[0].certainty is CapCertainty.LIKELY
    assert wind.alert.infos[0].expires is None
    assert set(wind.deviations) >= {"enum_case", "time_unusable", "sender_held_name"}


def test_cap_xml_wins_over_a_guessed_sender(old: bytes, svr_xml: bytes) -> None:
    asked: list[str] = []

    def cap_xml(identifier: str) -> CapAlert | None:
        asked.append(identifier)
        return parse_cap_alert(svr_xml) if identifier == SVR else None

    batch = parse_nws_json(old, cap_xml=cap_xml)
    svr = batch.alerts[0]
    assert svr.deviations == ("sender_held_name", "from_cap_xml")
    assert svr.alert.sender == "w-nws.webmaster@noaa.gov"
    assert [c.value for c in svr.alert.infos[0].event_codes] == ["SVR", "SVW"]
    # Asked for every alert whose sender had to be guessed, and only for those; the rejected
    # one without sent is asked too (its CAP XML could have made it an alert).
    assert asked == [SVR, SVS, WIND, "NWS-IDP-PROD-2577402-2419014", "NWS-IDP-PROD-2577403-2419015"]
    assert "sender_assumed_nws" in batch.alerts[1].deviations


def test_cap_xml_of_another_alert_is_not_taken(old: bytes, svr_xml: bytes) -> None:
    batch = parse_nws_json(old, cap_xml=lambda identifier: parse_cap_alert(svr_xml))
    assert [p.alert.identifier for p in batch.alerts[:3]] == [SVR, SVS, WIND]
    assert "sender_assumed_nws" in batch.alerts[1].deviations


def test_todays_vintage_has_no_deviations(nws_fixtures: Path) -> None:
    batch = parse_nws_json((nws_fixtures / "active.json").read_bytes(), cap_xml=_never)
    assert batch.rejections == [] and all(p.deviations == () for p in batch.alerts)


def _never(identifier: str) -> CapAlert | None:
    raise AssertionError(f"asked for the CAP XML of {identifier}, whose JSON was usable")


def test_sender_of_another_producer_is_sanitised(nws_fixtures: Path) -> None:
    doc: dict[str, Any] = json.loads((nws_fixtures / "active.json").read_text())
    props = doc["features"][0]["properties"]
    props["id"] = props["identifier"] = "COUNTY-EMA-2026-01"
    props["sender"] = "Summit County EMA"
    (parsed,) = parse_nws_json(json.dumps(doc["features"][0])).alerts
    assert parsed.alert.sender == "Summit-County-EMA"
    assert parsed.deviations == ("sender_invalid", "sender_sanitised")


def test_unknown_status_is_never_guessed(nws_fixtures: Path) -> None:
    doc: dict[str, Any] = json.loads((nws_fixtures / "active.json").read_text())
    doc["features"][0]["properties"]["status"] = "Real"
    doc["features"][1]["properties"]["urgency"] = "Soon"
    batch = parse_nws_json(json.dumps(doc))
    assert len(batch.alerts) == 2
    assert batch.rejections[0].endswith("properties.status 'Real' is not a CAP status")
    assert batch.alerts[0].alert.infos[0].urgency.value == "Unknown"
    assert batch.alerts[0].deviations == ("enum_unknown",)


# ---- the feed: the CAP XML fetched per alert, bounded, rate-limited, cached ------------------


def _feed(base: str, sleeper: Any, **kwargs: Any) -> NwsApiFeed:
    return NwsApiFeed(
        contact="ops@station.example",
        areas=["OK"],
        base_url=base,
        sleep=sleeper,
        rng=random.Random(7),
        policy=RetryPolicy(max_attempts=1),
        allow_private_hosts=("127.0.0.1",),
        **kwargs,
    )


def _api(old: bytes, svr_xml: bytes) -> Any:
    def answer(seen: Any) -> tuple[int, dict[str, str], bytes]:
        if seen.path == "/alerts/active":
            return 200, {"Content-Type": "application/geo+json"}, old
        if seen.path == f"/alerts/{SVR}" and seen.headers["accept"] == "application/cap+xml":
            return 200, {"Content-Type": "application/cap+xml"}, svr_xml
        return 404, {}, b'{"title": "Not Found"}'

    return answer


def test_feed_fetches_cap_xml_rate_limited_and_cached(
    fake_server: Any, sleeper: Any, old: bytes, svr_xml: bytes
) -> None:
    fake_server.responder = _api(old, svr_xml)
    feed = _feed(fake_server.url, sleeper, cap_xml_min_interval_s=2.0)
    result = feed.poll()
    assert [p.alert.identifier for p in result.alerts] == [SVR, SVS, WIND]
    assert result.alerts[0].deviations == ("sender_held_name", "from_cap_xml")
    assert len(result.rejections) == 2
    xml_asks = [r for r in fake_server.requests if r.path != "/alerts/active"]
    assert [r.path for r in xml_asks] == [f"/alerts/{i}" for i in (SVR, SVS, WIND)] + [
        "/alerts/NWS-IDP-PROD-2577402-2419014",
        "/alerts/NWS-IDP-PROD-2577403-2419015",
    ]
    assert all("ops@station.example" in r.headers["user-agent"] for r in xml_asks)
    # Never two CAP XML requests closer than the interval (the sleeper records each wait).
    assert len(sleeper.waits) == 4 and all(0 < w <= 2.0 for w in sleeper.waits)
    # The next poll asks for nothing again: the good answer is cached, the 404s are held off.
    fake_server.requests.clear()
    again = feed.poll()
    assert [r.path for r in fake_server.requests] == ["/alerts/active"]
    assert again.alerts[0].deviations == ("sender_held_name", "from_cap_xml")


def test_feed_asks_at_most_its_budget_per_poll(
    fake_server: Any, sleeper: Any, old: bytes, svr_xml: bytes
) -> None:
    fake_server.responder = _api(old, svr_xml)
    result = _feed(fake_server.url, sleeper, cap_xml_per_poll=1).poll()
    xml_asks = [r for r in fake_server.requests if r.path != "/alerts/active"]
    assert [r.path for r in xml_asks] == [f"/alerts/{SVR}"]
    # Past the budget the alerts still come, with their sender assumed.
    assert [p.alert.identifier for p in result.alerts] == [SVR, SVS, WIND]
    assert "sender_assumed_nws" in result.alerts[1].deviations


def test_settings_bound_the_cap_xml_requests(
    fake_server: Any, sleeper: Any, old: bytes, svr_xml: bytes
) -> None:
    fake_server.responder = _api(old, svr_xml)
    settings = PollersSettings(
        nws_contact="ops@station.example",
        nws_areas=["OK"],
        nws_base_url=fake_server.url,
        nws_cap_xml_per_poll=0,
        nws_cap_xml_interval_s=0.5,
    )
    http = {"policy": RetryPolicy(max_attempts=1), "allow_private_hosts": ("127.0.0.1",)}
    (spec,) = NwsApiFeed.specs(FeedContext(settings, None, http))  # type: ignore[arg-type]
    feed = spec.make(sleeper)
    assert isinstance(feed, NwsApiFeed) and feed.cap_xml.min_interval_s == 0.5
    result = feed.poll()
    assert [r.path for r in fake_server.requests] == ["/alerts/active"]  # never asked
    assert len(result.alerts) == 3


@pytest.mark.integration
def test_deviations_reach_the_bus(
    fake_server: Any,
    sleeper: Any,
    old: bytes,
    svr_xml: bytes,
    sync_redis_client: redis.Redis,
    bus_namespace: str,
    stream_reader: Any,
) -> None:
    fake_server.responder = _api(old, svr_xml)
    publisher = AlertPublisher(
        SyncBus(sync_redis_client, bus_namespace),
        SeenAlerts(sync_redis_client, bus_namespace),
        "pollers/test",
    )
    status = FeedLoop(_feed(fake_server.url, sleeper), publisher, rng=random.Random(5)).run_cycle()
    assert status.new == 3 and len(status.rejected) == 2
    published = stream_reader(stream_key(ALERTS_INGESTED, bus_namespace))
    by_id = {a["data"]["alert"]["identifier"]: a["data"] for a in published}
    assert by_id[SVR]["deviations"] == ["sender_held_name", "from_cap_xml"]
    assert by_id[SVS]["deviations"][0] == "sender_held_name"


def test_fetcher_memory_is_bounded(fake_server: Any, sleeper: Any) -> None:
    fake_server.responder = lambda seen: (404, {}, b"")
    clock = [0.0]
    fetcher = CapXmlFetcher(
        make_client(2.0, 2.0),
        fake_server.url,
        "eas-station-pollers/test (ops@station.example)",
        UrlGuard(("127.0.0.1",)),
        sleeper,
        per_poll=100,
        min_interval_s=0,
        cache_size=4,
        clock=lambda: clock[0],
    )
    for n in range(10):
        clock[0] += 1
        assert fetcher(f"NWS-IDP-PROD-{n}") is None
    assert len(fetcher._failed) <= 4 and "NWS-IDP-PROD-9" in fetcher._failed
    # A failure is held off, then asked again once the hold-off passed.
    asked = len(fake_server.requests)
    assert fetcher("NWS-IDP-PROD-9") is None and len(fake_server.requests) == asked
    clock[0] += fetcher.retry_after_s + 1
    assert fetcher("NWS-IDP-PROD-9") is None and len(fake_server.requests) == asked + 1
