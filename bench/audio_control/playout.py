"""Playout latency: from a relay decision to the first sample on an output, and from an EAN's
decision to the cut of the message it preempts.

audio-control runs as deployed on one machine (``audio-control serve`` with its supervised
playout worker process) against a throwaway PostgreSQL database and a private stream
namespace on the machine's Redis, relaying TOR and EAN for 039035, with one ``null`` output
that takes audio at real time as a sound card would. Each round starts from an empty queue:

- ``first sample``: an ``alert.created`` Tornado Warning with a 75-word description goes on
  the bus; measured from its ``relay.decision`` (the event's own time, revision 1) to the
  output's first sample (``first_sample_at`` that the worker records per output and reports
  on ``playout.interrupted``/``finished``). This includes composing the message (espeak-ng
  narration) and the worker noticing the queued item; the relay delay is 0.
- ``EAN preemption``: while that warning is on air, an EAN arrives; measured from the EAN's
  ``relay.decision`` to the warning's cut on the output (``cut_at``: the worker stopped its
  audio and started the EOM).

After each round an operator's stop (``POST /api/audio/playout/stop``) empties the air.
There is no peer: the Flask station never played anything out (its playout queue and output
service were never connected).

    uv run --frozen --group bench python bench/audio_control/playout.py --rounds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "alerts_api"))
from common import (
    REDIS_URL,
    Proc,
    db_url,
    delete_namespace,
    drop_database,
    free_port,
    group_cpu_s,
    print_machine,
    processes,
    recreate_database,
    wait_http,
)
from decisions import alert, percentile

from eas_schemas.cap import CapAlert, CapArea, CapInfo, ValuePair
from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.events import AlertEventType, AlertLifecycle, AlertState, AlertSummary, FeedKind
from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, StationSettings
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair


def ean(run: str) -> CapAlert:
    base = alert(0, run)
    info = base.infos[0]
    return base.model_copy(
        update={
            "identifier": f"bench-ean-{run}",
            "sender": "ipaws@fema.dhs.gov",
            "infos": [
                CapInfo(
                    **{
                        **info.model_dump(),
                        "event": "Emergency Action Notification",
                        "event_codes": [ValuePair(value_name="SAME", value="EAN")],
                        "parameters": [ValuePair(value_name="EAS-ORG", value="PEP")],
                        "description": "This is an Emergency Action Notification.",
                        "instruction": None,
                        "areas": [
                            CapArea(
                                area_desc="United States",
                                geocodes=[ValuePair(value_name="SAME", value="000000")],
                            )
                        ],
                    }
                )
            ],
        }
    )


def envelope(cap: CapAlert, alert_id: int, same_event: str) -> EventEnvelope[AlertLifecycle]:
    info = cap.infos[0]
    codes = [g.value for a in info.areas for g in a.geocodes if g.value_name == "SAME"]
    summary = AlertSummary(
        id=alert_id,
        identifier=cap.identifier,
        sender=cap.sender,
        sent=cap.sent,
        status=cap.status,
        msg_type=cap.msg_type,
        state=AlertState.ACTIVE,
        source=FeedKind.NWS,
        event=info.event,
        same_event=same_event,
        severity=info.severity,
        urgency=info.urgency,
        certainty=info.certainty,
        headline=None,
        area_desc=info.areas[0].area_desc,
        same_codes=codes,
        ugc_codes=[],
        onset=None,
        expires=info.expires,
        relevant=True,
        relevance_reason="bench",
    )
    return EventEnvelope[AlertLifecycle](
        type=AlertEventType.CREATED.value,
        source="alerts-api/bench",
        data=AlertLifecycle(alert=summary, reason="received", cap=cap),
    )


class Watcher(threading.Thread):
    """Follows relay.decisions and playout.events; keeps what the rounds measure."""

    def __init__(self, client: redis.Redis, ns: str) -> None:
        super().__init__(daemon=True)
        self.client, self.ns = client, ns
        self.decided: dict[int, datetime] = {}  # alert id -> decision time (revision 1)
        self.decision_of: dict[int, int] = {}  # decision id -> alert id
        self.playing: dict[int, int] = {}  # alert id -> playout item id, once on air
        self.ended: dict[int, dict[str, Any]] = {}  # item id -> per-output detail at its end
        self.item_decision: dict[int, int] = {}
        self.queued_at: dict[int, datetime] = {}  # item id -> its playout.queued time
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        last = {f"{self.ns}:relay.decisions": "0-0", f"{self.ns}:playout.events": "0-0"}
        while not self.stop.is_set():
            got = self.client.xread(last, count=500, block=100)
            for key, entries in got or []:
                for entry_id, fields in entries:
                    last[key] = entry_id
                    env = decode_entry(fields)
                    with self.lock:
                        self._take(key, env)

    def _take(self, key: str, env: EventEnvelope[Any]) -> None:
        data = env.data
        if key.endswith("relay.decisions"):
            if data.get("alert_id") is not None:
                self.decision_of[int(data["decision_id"])] = int(data["alert_id"])
                if data.get("revision") == 1:
                    self.decided.setdefault(int(data["alert_id"]), env.time)
            return
        item, decision = data.get("item_id"), data.get("decision_id")
        if item is None or decision is None:
            return
        self.item_decision[int(item)] = int(decision)
        alert_id = self.decision_of.get(int(decision))
        if env.type == "playout.queued":
            self.queued_at.setdefault(int(item), env.time)
        if env.type == "playout.started" and alert_id is not None:
            self.playing.setdefault(alert_id, int(item))
        if env.type in ("playout.finished", "playout.interrupted") and data.get("output"):
            self.ended[int(item)] = dict(data.get("detail") or {})

    def wait(self, what: str, test: Any, timeout_s: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = test()
            if found is not None:
                return found
            time.sleep(0.01)
        raise TimeoutError(f"no {what} within {timeout_s:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    facts = print_machine("audio-control playout latency")
    name = f"bench_po_{uuid.uuid4().hex[:8]}"
    ns = f"bench-po-{uuid.uuid4().hex[:8]}"
    recreate_database(name)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    station = StationSettings.model_validate(
        {
            "identity": {"callsign": "WBNC/FM", "timezone": "America/New_York"},
            "location": {"same_codes": ["039035"]},
            "relay": {"enabled": True, "events": ["TOR"], "delay_s": 0},
        }
    )
    client.set(
        f"{ns}:{CURRENT_SETTINGS_KEY}",
        json.dumps({"version": 1, "settings": station.model_dump(mode="json")}),
    )
    first: list[float] = []
    composed: list[float] = []  # decision -> queued (the message composed, the item queued)
    preempt: list[float] = []
    ean_queued: list[float] = []  # EAN decision -> its item queued
    run = uuid.uuid4().hex[:6]
    try:
        import asyncio

        from sqlalchemy import create_engine, insert

        from audio_control.migrate import upgrade_url
        from audio_control.tables import playout_outputs

        asyncio.run(upgrade_url(db_url(name)))
        engine = create_engine(db_url(name, "postgresql+psycopg"))
        with engine.begin() as conn:
            now = datetime.now(UTC)
            conn.execute(
                insert(playout_outputs).values(
                    name="bench-null",
                    kind="null",
                    config=json.dumps({"kind": "null", "realtime": True}),
                    keying=json.dumps({"kind": "none"}),
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            )
        engine.dispose()
        private, public = generate_keypair()
        token = TokenSigner(private).mint("bench", Role.OPERATOR, ttl_s=3600)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp, processes() as procs:
            key_file = Path(tmp) / "signing.pub.pem"
            key_file.write_text(public)
            env = {
                "AUDIO_CONTROL_DATABASE_URL": db_url(name),
                "EAS_REDIS_URL": REDIS_URL,
                "EAS_BUS_NAMESPACE": ns,
                "EAS_AUTH_PUBLIC_KEY_FILE": str(key_file),
                "AUDIO_CONTROL_COMPOSER_INTERVAL_S": "0.2",
                "AUDIO_CONTROL_REQUEUE_INTERRUPTED": "false",
                "EAS_LOG_LEVEL": "WARNING",
            }
            argv = ["uv", "run", "--frozen", "audio-control", "serve", "--no-migrate"]
            proc = Proc("audio-control", [*argv, "--port", str(port)], env, Path(tmp))
            procs.append(proc)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/readyz", proc)
            http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
            watcher = Watcher(client, ns)
            watcher.start()
            watcher.wait(
                "playout worker",
                lambda: True if http.get("/api/audio/playout/status").json().get("ok") else None,
            )
            cpu0 = group_cpu_s(proc.pid)
            for i in range(args.rounds + 1):
                tor_id, ean_id = 10_000 + 2 * i, 10_001 + 2 * i
                tor = alert(i, run)
                tor = tor.model_copy(update={"sent": datetime.now(UTC).replace(microsecond=0)})
                client.xadd(f"{ns}:alert.events", dict(encode_entry(envelope(tor, tor_id, "TOR"))))
                item = watcher.wait("TOR on air", lambda tid=tor_id: watcher.playing.get(tid))
                time.sleep(0.5)
                client.xadd(
                    f"{ns}:alert.events",
                    dict(encode_entry(envelope(ean(f"{run}-{i}"), ean_id, "EAN"))),
                )
                cut = watcher.wait("TOR cut", lambda it=item: watcher.ended.get(it))
                watcher.wait("EAN on air", lambda eid=ean_id: watcher.playing.get(eid))
                http.post("/api/audio/playout/stop").raise_for_status()
                ean_item = watcher.playing[ean_id]
                watcher.wait("EAN stopped", lambda it=ean_item: watcher.ended.get(it))
                if i == 0:
                    continue  # warm-up: first TTS, first connections
                decided = watcher.decided[tor_id]
                on_air = datetime.fromisoformat(cut["first_sample_at"])
                first.append((on_air - decided).total_seconds() * 1000)
                composed.append((watcher.queued_at[item] - decided).total_seconds() * 1000)
                cut_at = datetime.fromisoformat(cut["cut_at"])
                preempt.append((cut_at - watcher.decided[ean_id]).total_seconds() * 1000)
                ean_at = watcher.queued_at[watcher.playing[ean_id]] - watcher.decided[ean_id]
                ean_queued.append(ean_at.total_seconds() * 1000)
                print(
                    f"round {i}: first sample {first[-1]:.0f} ms, preemption {preempt[-1]:.0f} ms"
                )
            cpu = group_cpu_s(proc.pid) - cpu0
            watcher.stop.set()
    finally:
        delete_namespace(REDIS_URL, ns)
        drop_database(name)
    results = {
        "rounds": len(first),
        "first_sample_p50_ms": round(percentile(first, 50), 1),
        "first_sample_p99_ms": round(percentile(first, 99), 1),
        "first_sample_max_ms": round(max(first), 1),
        "of_which_queued_p50_ms": round(percentile(composed, 50), 1),
        "preemption_p50_ms": round(percentile(preempt, 50), 1),
        "preemption_p99_ms": round(percentile(preempt, 99), 1),
        "preemption_max_ms": round(max(preempt), 1),
        "of_which_ean_queued_p50_ms": round(percentile(ean_queued, 50), 1),
        "service_cpu_s_per_round": round(cpu / (args.rounds + 1), 3),
    }
    print(
        f"decision -> first sample: p50 {results['first_sample_p50_ms']} ms, "
        f"p99 {results['first_sample_p99_ms']} ms, max {results['first_sample_max_ms']} ms "
        "(target under 1000 ms + delay 0); "
        f"of which decision -> queued (composed) p50 {results['of_which_queued_p50_ms']} ms"
    )
    print(
        f"EAN decision -> cut: p50 {results['preemption_p50_ms']} ms, "
        f"p99 {results['preemption_p99_ms']} ms, max {results['preemption_max_ms']} ms "
        "(target under 250 ms); "
        f"of which EAN decision -> queued p50 {results['of_which_ean_queued_p50_ms']} ms"
    )
    print(
        f"service + worker CPU per round (two decisions, two messages composed, "
        f"~1 s of audio): {results['service_cpu_s_per_round']} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
