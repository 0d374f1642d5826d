"""Relay decision latency: from ``alert.created`` on the bus to its ``relay.decision``.

audio-control runs as its own process (``audio-control serve``, as deployed) against a
throwaway PostgreSQL database and a private stream namespace on the machine's Redis, with the
station's settings set to relay TOR for 039035. The composer is off, so what is measured is
the deciding path alone (consume, convert by ECIG, evaluate, one transaction with the outbox,
publish); composing a message is measured by ``compose.py``.

Two loads, each printed with p50/p99 and CPU per decision of the service process:
- burst: N alerts written at once, the latency of each includes its wait in the queue (this
  is the station's throughput, not a latency: decisions are made one at a time per replica);
- paced: alerts at a steady rate (default 50/s) with the burst's N decisions still open in
  the store (N alerts in flight), the latency of one decision as a busy station sees it.

There is no peer doing the same work: the Flask station never made relay decisions (its
forwarding module did not exist), so the numbers stand alone.

    uv run --frozen --group bench python bench/audio_control/decisions.py -n 1000 --rate 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

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

from eas_schemas.cap import (
    CapAlert,
    CapArea,
    CapCertainty,
    CapInfo,
    CapMsgType,
    CapScope,
    CapSeverity,
    CapStatus,
    CapUrgency,
    ValuePair,
)
from eas_schemas.envelope import EventEnvelope, decode_entry, encode_entry
from eas_schemas.events import (
    AlertEventType,
    AlertLifecycle,
    AlertState,
    AlertSummary,
    FeedKind,
)
from eas_schemas.station_settings import CURRENT_SETTINGS_KEY, StationSettings


def alert(n: int, run: str) -> CapAlert:
    sent = datetime.now(UTC).replace(microsecond=0)
    return CapAlert(
        identifier=f"bench-{run}-{n}",
        sender="w-nws.webmaster@noaa.gov",
        sent=sent,
        status=CapStatus.ACTUAL,
        msg_type=CapMsgType.ALERT,
        scope=CapScope.PUBLIC,
        infos=[
            CapInfo(
                event="Tornado Warning",
                urgency=CapUrgency.IMMEDIATE,
                severity=CapSeverity.EXTREME,
                certainty=CapCertainty.OBSERVED,
                event_codes=[ValuePair(value_name="SAME", value="TOR")],
                expires=sent + timedelta(minutes=45),
                sender_name="NWS Cleveland OH",
                description="At 2:05 PM EDT, a severe thunderstorm capable of producing a "
                "tornado was located near Parma, moving east at 30 mph.",
                instruction="Take cover now. Move to a basement or an interior room.",
                parameters=[ValuePair(value_name="EAS-ORG", value="WXR")],
                areas=[
                    CapArea(
                        area_desc="Cuyahoga, OH",
                        geocodes=[ValuePair(value_name="SAME", value="039035")],
                    )
                ],
            )
        ],
    )


def envelope(n: int, run: str, first_id: int) -> EventEnvelope[AlertLifecycle]:
    cap = alert(n, run)
    info = cap.infos[0]
    summary = AlertSummary(
        id=first_id + n,
        identifier=cap.identifier,
        sender=cap.sender,
        sent=cap.sent,
        status=cap.status,
        msg_type=cap.msg_type,
        state=AlertState.ACTIVE,
        source=FeedKind.NWS,
        event=info.event,
        same_event="TOR",
        severity=info.severity,
        urgency=info.urgency,
        certainty=info.certainty,
        headline=None,
        area_desc="Cuyahoga, OH",
        same_codes=["039035"],
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Watcher(threading.Thread):
    """Reads relay.decisions as a subscriber would and stamps each first decision."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        super().__init__(daemon=True)
        self.client, self.key = client, key
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        last = "0-0"
        while not self.stop.is_set():
            got = self.client.xread({self.key: last}, count=1000, block=200)
            now = time.perf_counter()
            for _, entries in got or []:
                for entry_id, fields in entries:
                    last = entry_id
                    data = decode_entry(fields).data
                    if data.get("revision") == 1 and data.get("alert_id") is not None:
                        self.seen.setdefault(int(data["alert_id"]), now)


_NEXT_ID = [1]


def run_load(
    client: redis.Redis, ns: str, proc: Proc, n: int, rate: float | None, label: str
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    first_id = _NEXT_ID[0]
    _NEXT_ID[0] += n
    watcher = Watcher(client, f"{ns}:relay.decisions")
    watcher.start()
    envelopes = [envelope(i, run, first_id) for i in range(n)]
    sent: dict[int, float] = {}
    cpu0 = group_cpu_s(proc.pid)
    start = time.perf_counter()
    if rate is None:
        pipe = client.pipeline(transaction=False)
        for e in envelopes:
            pipe.xadd(f"{ns}:alert.events", dict(encode_entry(e)))
        stamp = time.perf_counter()
        pipe.execute()
        sent = {e.data.alert.id: stamp for e in envelopes}
    else:
        for i, e in enumerate(envelopes):
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            sent[e.data.alert.id] = time.perf_counter()
            client.xadd(f"{ns}:alert.events", dict(encode_entry(e)))
    deadline = time.perf_counter() + 120
    while len(set(sent) & set(watcher.seen)) < n and time.perf_counter() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    cpu = group_cpu_s(proc.pid) - cpu0
    watcher.stop.set()
    watcher.join()
    latencies = [(watcher.seen[k] - sent[k]) * 1000 for k in sent if k in watcher.seen]
    result = {
        "load": label,
        "alerts": n,
        "decided": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "decisions_per_s": round(len(latencies) / elapsed, 1),
        "service_cpu_ms_per_decision": round(cpu * 1000 / max(1, len(latencies)), 2),
    }
    print(
        f"{label:>24}: {result['decided']}/{n} decided, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms, "
        f"{result['decisions_per_s']} decisions/s, "
        f"{result['service_cpu_ms_per_decision']} ms service CPU per decision"
    )
    sys.stdout.flush()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="alerts per load")
    parser.add_argument("--rate", type=float, default=50.0, help="paced load, alerts/s")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    facts = print_machine("audio-control relay decision latency")
    name = f"bench_ac_{uuid.uuid4().hex[:8]}"
    ns = f"bench-ac-{uuid.uuid4().hex[:8]}"
    recreate_database(name)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    station = StationSettings.model_validate(
        {
            "identity": {"callsign": "WBNC/FM", "timezone": "America/New_York"},
            "location": {"same_codes": ["039035"]},
            "relay": {"enabled": True, "events": ["TOR"]},
        }
    )
    client.set(
        f"{ns}:{CURRENT_SETTINGS_KEY}",
        json.dumps({"version": 1, "settings": station.model_dump(mode="json")}),
    )
    results: list[dict[str, Any]] = []
    try:
        import asyncio

        from audio_control.migrate import upgrade_url

        asyncio.run(upgrade_url(db_url(name)))
        port = free_port()
        env = {
            "AUDIO_CONTROL_DATABASE_URL": db_url(name),
            "EAS_REDIS_URL": REDIS_URL,
            "EAS_BUS_NAMESPACE": ns,
            "AUDIO_CONTROL_RUN_COMPOSER": "false",
            "EAS_ANONYMOUS_READ": "true",
            "EAS_LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory() as tmp, processes() as procs:
            argv = [
                "uv",
                "run",
                "--frozen",
                "audio-control",
                "serve",
                "--no-migrate",
                "--port",
                str(port),
            ]
            proc = Proc("audio-control", argv, env, Path(tmp))
            procs.append(proc)
            wait_http(f"http://127.0.0.1:{port}/readyz", proc)
            run_load(client, ns, proc, 20, 20.0, "warm-up")
            # The burst leaves N open (scheduled) decisions in the store: the paced load then
            # decides with N alerts in flight, as a busy station would.
            results.append(run_load(client, ns, proc, args.n, None, f"burst ({args.n} at once)"))
            results.append(
                run_load(
                    client, ns, proc, args.n, args.rate, f"paced {args.rate:g}/s, {args.n} open"
                )
            )
    finally:
        delete_namespace(REDIS_URL, ns)
        drop_database(name)
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
