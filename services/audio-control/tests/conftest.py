"""Builders of relay candidates: a CAP alert converted by the guide, or a header heard on air."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from audio_control.app import create_app
from audio_control.cap_to_eas import convert
from audio_control.migrate import upgrade_url
from audio_control.rules import Candidate
from audio_control.settings import AudioControlSettings
from eas_same import codes as same_tables
from eas_schemas.cap import (
    CapAlert,
    CapArea,
    CapCertainty,
    CapInfo,
    CapMsgType,
    CapReference,
    CapScope,
    CapSeverity,
    CapStatus,
    CapUrgency,
    ValuePair,
)
from eas_schemas.monitor_events import SameHeaderEvent, SameHeaderFields, SameLocation
from servicekit.auth.permissions import Role

from .service_helpers import set_station, station

NOW = datetime(2025, 5, 1, 18, 0, tzinfo=UTC)  # day 121
CALLSIGN = "WXYZ/FM"


def cap_alert(
    *,
    event: str = "Tornado Warning",
    same_event: str | None = "TOR",
    codes: tuple[str, ...] = ("039035",),
    sent: datetime = NOW,
    expires_in: timedelta | None = timedelta(hours=1),
    status: CapStatus = CapStatus.ACTUAL,
    msg_type: CapMsgType = CapMsgType.ALERT,
    scope: CapScope = CapScope.PUBLIC,
    parameters: tuple[tuple[str, str], ...] = (("EAS-ORG", "WXR"),),
    severity: CapSeverity = CapSeverity.EXTREME,
    urgency: CapUrgency = CapUrgency.IMMEDIATE,
    effective: datetime | None = None,
    onset: datetime | None = None,
) -> CapAlert:
    refs = (
        [CapReference(sender="w-nws@noaa.gov", identifier="old", sent=sent - timedelta(hours=1))]
        if msg_type in (CapMsgType.UPDATE, CapMsgType.CANCEL)
        else []
    )
    return CapAlert(
        identifier="NWS-TEST-1",
        sender="w-nws@noaa.gov",
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=refs,
        infos=[
            CapInfo(
                event=event,
                urgency=urgency,
                severity=severity,
                certainty=CapCertainty.OBSERVED,
                event_codes=[ValuePair(value_name="SAME", value=same_event)] if same_event else [],
                effective=effective,
                onset=onset,
                expires=sent + expires_in if expires_in is not None else None,
                sender_name="NWS Cleveland OH",
                description="A tornado was observed.",
                instruction="Take shelter now.",
                parameters=[ValuePair(value_name=n, value=v) for n, v in parameters],
                areas=[
                    CapArea(
                        area_desc="test area",
                        geocodes=[ValuePair(value_name="SAME", value=c) for c in codes],
                    )
                ],
            )
        ],
    )


def cap_candidate(*, now: datetime = NOW, alert_id: int | None = 7, **kw: Any) -> Candidate:
    alert = cap_alert(**kw)
    conversion = convert(
        alert,
        callsign=CALLSIGN,
        language="en",
        timezone="America/New_York",
        default_duration_minutes=60,
        now=now,
    )
    return Candidate.from_cap(alert, conversion, alert_id=alert_id)


def heard_event(
    *,
    originator: str = "WXR",
    event: str = "TOR",
    locations: tuple[str, ...] = ("039035",),
    duration: str = "0100",
    issued: datetime = NOW,
    callsign: str = "KCLE/NWS",
    confidence: float = 0.99,
    bursts: int = 3,
    agreed: int = 3,
) -> SameHeaderEvent:
    minutes = int(duration[:2]) * 60 + int(duration[2:])
    text = f"ZCZC-{originator}-{event}-{'-'.join(locations)}+{duration}-{issued:%j%H%M}-{callsign}-"
    fields = SameHeaderFields(
        originator=originator,
        originator_name=same_tables.ORIGINATORS.get(originator, originator),
        event_code=event,
        event_name=same_tables.event_name(event),
        locations=[SameLocation(code=c, name=c) for c in locations],
        duration=duration,
        duration_minutes=minutes,
        issued=issued,
        purge_at=issued + timedelta(minutes=minutes),
        callsign=callsign,
    )
    return SameHeaderEvent(
        text=text,
        header=fields,
        description="heard",
        confidence=confidence,
        bursts=bursts,
        agreed=agreed,
        inputs=[],
        first_heard_at=issued,
    )


def air_candidate(*, deviations: list[str] | None = None, **kw: Any) -> Candidate:
    return Candidate.from_air(
        heard_event(**kw), callsign=CALLSIGN, heard_event_id="1-0", deviations=deviations
    )


@pytest.fixture
def now() -> datetime:
    """The time every builder works at (test modules keep the same constant as NOW)."""
    return NOW


@pytest.fixture
def make_cap() -> Callable[..., Candidate]:
    return cap_candidate


@pytest.fixture
def make_air() -> Callable[..., Candidate]:
    return air_candidate


@pytest.fixture
def make_heard() -> Callable[..., SameHeaderEvent]:
    return heard_event


# ---- the service on real Redis and PostgreSQL ------------------------------------------------


@pytest.fixture
async def settings(
    database_url: str,
    redis_url: str,
    bus_namespace: str,
    keypair: tuple[str, str],
    tmp_path: Path,
) -> AudioControlSettings:
    await upgrade_url(database_url)
    return AudioControlSettings(
        database_url=database_url,
        redis_url=redis_url,
        bus_namespace=bus_namespace,
        auth_public_key=keypair[1],
        instance="test-1",
        heartbeat_interval_s=0.5,
        outbox_interval_s=0.2,
        sweep_interval_s=0.1,
        composer_interval_s=0.1,
        consumer_min_idle_ms=300,
        settings_sync_timeout_s=2.0,
        run_playout=False,
        chain_key_file=tmp_path / "keys" / "chain.pem",
        aired_dir=tmp_path / "aired",
    )


@pytest.fixture
async def service(
    settings: AudioControlSettings, aredis: Any, bus_namespace: str, token: Callable[[Role], str]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app started as the test station (relay on for TOR, SVR, RWT, RMT), operator token."""
    await set_station(aredis, bus_namespace, station())
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://audio") as http:
            http.app = app  # type: ignore[attr-defined]
            http.headers["Authorization"] = f"Bearer {token(Role.OPERATOR)}"
            yield http
