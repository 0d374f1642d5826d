"""Every read route the dashboard and the console use, and the memory of every process.

1. Each service alone (``<service> serve``, or ``pollers run``), on one PostgreSQL database
   seeded with alerts through AlertService.ingest: RSS at rest, then its read routes under
   ``wrk -t2 -c16`` (CPU per request, req/s, p99) and RSS at the end of that load.
2. The whole station as ``eas-station run`` (the gateway hosting every FastAPI service, plus
   the pollers process) on the same database: RSS at rest, every route through the one port,
   RSS under load.

Routes: alerts list/detail/stats, eas-monitor decodes, station-api settings, audio-control
decisions and log. Only the alert store is seeded: the other pages are what a quiet station
serves (few or no rows), so their figure is the cost of the route's own path.
Tokens: an admin's (every route is readable by it), minted with the bench's own signing key.

    uv run --frozen python bench/alerts_api/station_bench.py [--quick] [--duration 5]

Prints numbers; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REDIS_URL,
    Proc,
    cpu_by_process,
    db_url,
    delete_namespace,
    drop_database,
    free_port,
    measure_route,
    print_machine,
    recreate_database,
    rss_by_process,
    wait_http,
)
from http_bench import seed
from peers_bench import newest_ids

DB_NAME = "eas_bench_station"


def idle_cpu_pct(pgid: int, seconds: float) -> dict[str, float]:
    """Each process's CPU (% of one core) while nothing is asked of it: background work."""
    before = cpu_by_process(pgid, _label)
    time.sleep(seconds)
    after = cpu_by_process(pgid, _label)
    return {k: 100 * (v - before.get(k, 0.0)) / seconds for k, v in after.items()}


def _label(argv: list[str]) -> str:
    text = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv))
    for needle, label in (
        ("eas_station.gateway", "gateway"),
        ("pollers", "pollers"),
        ("eas-station run", "eas-station run (supervisor)"),
        ("eas-station", "eas-station run (supervisor)"),
        ("redis", "embedded redis"),
        ("audio_control.playout.worker", "playout worker"),
    ):
        if needle in text:
            return label
    return text[:60]


SERVICES: list[tuple[str, list[str], list[str]]] = [
    ("alerts-api", ["alerts-api", "serve"], ["alerts list", "alerts detail", "alerts stats"]),
    ("station-api", ["station-api", "serve"], ["settings"]),
    ("eas-monitor", ["eas-monitor", "serve"], ["decodes"]),
    ("audio-control", ["audio-control", "serve"], ["decisions", "log"]),
    # Its own server (no `serve` subcommand): the port comes from WS_BROADCASTER_PORT.
    ("ws-broadcaster", ["ws-broadcaster"], []),
    ("pollers", ["pollers", "run"], []),
]


def routes(newest: int) -> dict[str, str]:
    return {
        "alerts list": "/api/alerts?status=all&limit=50",
        "alerts detail": f"/api/alerts/{newest}",
        "alerts stats": "/api/alerts/stats",
        "decodes": "/api/eas-monitor/decodes",
        "settings": "/api/settings",
        "decisions": "/api/audio/decisions",
        "log": "/api/audio/log",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds to measure rest CPU")
    parser.add_argument("--quick", action="store_true", help="500 alerts, 3 s runs")
    args = parser.parse_args()
    if args.quick:
        args.seed, args.duration = 500, 3
    print_machine(
        f"station read routes and memory, wrk -t2 -c{args.connections} -d{args.duration}s"
    )
    ns = f"bench-{secrets.token_hex(4)}"
    url = db_url(DB_NAME)
    rows: list[dict[str, Any]] = []
    memory: list[tuple[str, str, float, float, float]] = []
    try:
        recreate_database(DB_NAME)
        asyncio.run(seed(url, args.seed))
        newest, _, _ = newest_ids(url)
        paths = routes(newest)
        with tempfile.TemporaryDirectory(prefix="eas-bench-station-") as tmpdir:
            tmp = Path(tmpdir)
            from servicekit.auth.permissions import Role
            from servicekit.auth.tokens import TokenSigner, write_keypair

            keys = tmp / "data" / "keys"
            private_path, public_path = write_keypair(keys)
            token = TokenSigner(private_path.read_text()).mint("bench", Role.ADMIN, ttl_s=3600)
            env = {
                "EAS_DATABASE_URL": url,
                "EAS_REDIS_URL": REDIS_URL,
                "EAS_BUS_NAMESPACE": ns,
                "EAS_AUTH_PUBLIC_KEY_FILE": str(public_path),
                "EAS_AUTH_SIGNING_KEY_FILE": str(private_path),
                "EAS_CHAIN_KEY_FILE": str(keys / "chain.pem"),
                "EAS_MONITOR_DATA_DIR": str(tmp / "data" / "eas-monitor"),
                "AUDIO_CONTROL_AIRED_DIR": str(tmp / "data" / "aired"),
                "EAS_LOG_LEVEL": "WARNING",
                "EAS_LOG_JSON": "false",
            }
            for name, argv, wanted in SERVICES:
                print(f"-- {name} alone ...", flush=True)
                port = free_port()
                http = argv[-1] == "serve" or name == "ws-broadcaster"
                full = ["uv", "run", "--frozen", *argv]
                if argv[-1] == "serve":
                    full += ["--port", str(port)]
                own = {"WS_BROADCASTER_HOST": "127.0.0.1", "WS_BROADCASTER_PORT": str(port)}
                proc = Proc(f"svc-{name}", full, {**env, **own}, tmp)
                try:
                    if http:
                        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout_s=120)
                    time.sleep(2.0)  # background tasks settle (first settings sync, polls)
                    idle = sum(idle_cpu_pct(proc.pid, args.idle).values())
                    rest = sum(rss_by_process(proc.pid, _label).values())
                    for route in wanted:
                        w = measure_route(port, paths[route], token, proc.pid, args)
                        rows.append({"where": f"{name} alone", "route": route, **w})
                        print(
                            f"   {route}: {w['rps']:.0f} req/s, {w['cpu_ms_req']:.2f} ms "
                            f"CPU/req, status {w['status']}",
                            flush=True,
                        )
                    loaded_mb = sum(rss_by_process(proc.pid, _label).values())
                    memory.append((name, "alone", rest, loaded_mb, idle))
                except Exception as exc:
                    print(f"   ERROR: {exc}"[:1500], flush=True)
                finally:
                    proc.kill()
            print("-- eas-station run (gateway + pollers) ...", flush=True)
            port = free_port()
            proc = Proc(
                "station",
                [
                    "uv",
                    "run",
                    "--frozen",
                    "eas-station",
                    "run",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(tmp / "data"),
                ],
                env,
                tmp,
            )
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout_s=180)
                time.sleep(2.0)
                idle_by = idle_cpu_pct(proc.pid, args.idle)
                rest = rss_by_process(proc.pid, _label)
                for route, path in paths.items():
                    w = measure_route(port, path, token, proc.pid, args)
                    rows.append({"where": "eas-station run", "route": route, **w})
                    print(
                        f"   {route}: {w['rps']:.0f} req/s, {w['cpu_ms_req']:.2f} ms CPU/req,"
                        f" status {w['status']}",
                        flush=True,
                    )
                loaded = rss_by_process(proc.pid, _label)
                for label in sorted(set(rest) | set(loaded)):
                    memory.append(
                        (
                            label,
                            "eas-station run",
                            rest.get(label, 0.0),
                            loaded.get(label, 0.0),
                            idle_by.get(label, 0.0),
                        )
                    )
            except Exception as exc:
                print(f"   ERROR: {exc}"[:1500], flush=True)
            finally:
                proc.kill()
    finally:
        with contextlib.suppress(Exception):
            delete_namespace(REDIS_URL, ns)
        drop_database(DB_NAME)
    print(
        "\n| where | route | status | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/req |"
        " PostgreSQL CPU ms/req |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['where']} | {r['route']} | {r['status']} | {r['rps']:.0f} | {r['p50']:.1f} "
            f"| {r['p99']:.1f} | {r['non2xx']} | {r['cpu_ms_req']:.2f} | {r['pg_ms_req']:.2f} |"
        )
    print("\n| process | run as | RSS at rest MB | RSS after load MB | CPU at rest % of a core |")
    print("|---|---|---|---|---|")
    for name, where, rest_mb, load_mb, idle_pct in memory:
        print(f"| {name} | {where} | {rest_mb:.0f} | {load_mb:.0f} | {idle_pct:.1f} |")
    print(
        "\nserver CPU per request counts the whole process group, background work included: "
        "where the rest CPU is high, it is spread over the requests of the run."
    )
    return 0 if all(re.fullmatch(r"2\d\d", str(r["status"])) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
