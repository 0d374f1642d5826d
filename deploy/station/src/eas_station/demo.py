"""`eas-station run --demo`: a station that shows the whole path, offline, within a minute.

The demo runs the ordinary station in its own data folder (``<data dir>/demo``, started fresh
each time) and, once the services answer, sets it up through their own APIs as an operator
would: the station's identity and area (Cuyahoga County, Ohio, SAME 039035), relay rules that
relay tornado and severe thunderstorm warnings and the weekly test at once; then it brings
the two kinds of alert a station receives:

- a CAP Tornado Warning for the county, written into the station's CAP folder (the pollers
  read it as they read any folder feed), issued now so it is neither stale nor expired;
- an on-air transmission: a WAV file carrying a Severe Thunderstorm Warning's SAME header,
  attention signal and EOM, added as an eas-monitor file input, so it is heard and decoded.

Each is decided, composed, aired into the WAV folder output (``<demo dir>/aired``) and
logged; the dashboard at ``/`` shows it happen.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from eas_same.encoder import generate, write_wav
from eas_same.header import SameHeader
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner

log = logging.getLogger("eas_station.demo")

MARKER = ".eas-station-demo"
COUNTY = "039035"
DEMO_SETTINGS: dict[str, Any] = {
    "identity": {
        "name": "EAS Station demo",
        "callsign": "DEMO/FM ",
        "originator": "EAS",
        "timezone": "America/New_York",
    },
    "location": {"same_codes": [COUNTY], "ugc_codes": ["OHC035", "OHZ014"]},
    "relay": {
        "enabled": True,
        "events": ["TOR", "SVR", "RWT"],
        "delay_s": 0,
        "require_confirmation": [],
    },
}


def demo_dir(data_dir: Path) -> Path:
    """The demo's own data folder, emptied first (only if the demo made it)."""
    folder = data_dir / "demo"
    if folder.exists():
        if not (folder / MARKER).exists():
            raise SystemExit(f"{folder} exists and was not made by the demo: move it away first")
        shutil.rmtree(folder)
    (folder / "cap").mkdir(parents=True)
    (folder / MARKER).write_text("made by `eas-station run --demo`; removed at its next start\n")
    return folder


def tornado_warning_xml(now: datetime) -> str:
    """The shipped Tornado Warning, issued ``now`` and valid for 45 minutes."""
    template = resources.files("eas_station").joinpath("demo/tornado-warning.xml").read_text()
    expires = now + timedelta(minutes=45)
    fill = {
        "@IDENTIFIER@": f"urn:oid:2.49.0.1.840.0.demo.{uuid.uuid4().hex}",
        "@SENT@": now.isoformat(timespec="seconds"),
        "@EXPIRES@": expires.isoformat(timespec="seconds"),
        "@VTEC_START@": now.strftime("%y%m%dT%H%MZ"),
        "@VTEC_END@": expires.strftime("%y%m%dT%H%MZ"),
        "@WMO_TIME@": now.strftime("%d%H%M"),
        "@HEADLINE_TIME@": now.strftime("%b %d at %H:%M UTC"),
    }
    for token, value in fill.items():
        template = template.replace(token, value)
    return template


def on_air_wav(path: Path, now: datetime) -> str:
    """A Severe Thunderstorm Warning as a station upstream would send it; returns the header."""
    header = SameHeader.create(
        originator="WXR",
        event="SVR",
        locations=(COUNTY,),
        duration="0100",
        issued=now,
        callsign="KCLE/NWS",
    )
    rate = 22_050
    write_wav(path, generate(header, rate, attention=8.0, tone="nwr"), rate)
    return header.text


class DemoError(Exception):
    """The station answered the demo's call with an error."""


class DemoSetup(threading.Thread):
    """Waits for the station to answer, then configures it and brings the alerts."""

    def __init__(self, base_url: str, signing_key: Path, folder: Path) -> None:
        super().__init__(name="demo-setup", daemon=True)
        self.base_url = base_url
        self.signing_key = signing_key
        self.folder = folder
        self.done = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.configure()
        except Exception as exc:  # the station keeps running; the operator is told why
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("the demo could not set the station up: %s", self.error)
        finally:
            self.done.set()

    def _call(self, method: str, path: str, body: Any | None = None) -> Any:
        token = TokenSigner(self.signing_key.read_text()).mint("demo", Role.ADMIN, ttl_s=300)
        answer = httpx.request(
            method,
            self.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if answer.status_code >= 400:
            raise DemoError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else None

    def _wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                self._call("GET", "/api/settings")
                self._call("GET", "/api/audio/decisions?limit=1")
                self._call("GET", "/api/eas-monitor/inputs")
                return
            except (OSError, httpx.TransportError, DemoError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise TimeoutError(f"the station did not answer within {timeout_s:.0f} s ({last})")

    def configure(self) -> None:
        self._wait_ready()
        saved = self._call(
            "PATCH", "/api/settings", {"patch": DEMO_SETTINGS, "comment": "demo station"}
        )
        log.info("demo: station settings version %s saved", saved.get("version"))
        # The services follow settings within a second; give them that before the alerts.
        time.sleep(2.0)
        now = datetime.now(UTC).replace(microsecond=0)
        cap = self.folder / "cap" / "demo-tornado-warning.xml"
        tmp = cap.with_suffix(".tmp")
        tmp.write_text(tornado_warning_xml(now))
        tmp.rename(cap)
        log.info("demo: a CAP Tornado Warning for %s is in %s", COUNTY, cap.parent)
        wav = self.folder / "on-air-svr.wav"
        header = on_air_wav(wav, now)
        made = self._call(
            "POST",
            "/api/eas-monitor/inputs",
            {"name": "demo-on-air", "config": {"kind": "file", "path": str(wav)}},
        )
        self._call("POST", f"/api/eas-monitor/inputs/{made['id']}/start")
        log.info("demo: an on-air input plays %s", header)
        log.info(
            "demo: open %s/ to watch them be decided and aired; aired audio lands in %s",
            self.base_url,
            self.folder / "aired",
        )
