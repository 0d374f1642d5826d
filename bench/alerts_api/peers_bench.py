"""alerts-api against honest peers, in one run, on one seeded database.

Servers (each in turn, on the same 5,000-alert database seeded through AlertService.ingest):

- alerts-api, uvicorn 2 workers (read cache on: the default)
- alerts-api, uvicorn 2 workers, ALERTS_API_READ_CACHE=false (every request to PostgreSQL)
- alerts-api, uvicorn 2 workers, cache off and ALERTS_API_FAST_READS=false (list and
  random-id detail only: every request through FastAPI, as before alerts_api.fast_reads)
- same-design Flask 3 + gunicorn sync x(2*cores+1), psycopg, the pre-rendered item_json,
  one query, the same Ed25519 check with a verified-token cache   (peers/flask_app.py)
- bare ASGI callable on uvicorn x2 over an asyncpg pool, same queries and check
  (peers/asgi_app.py)
- the old-design Flask reference (renders 50 rows per request; list only)  (flask_ref/)

Routes, each under ``wrk -t2 -c64 --latency`` with a viewer token:

- list:          GET /api/alerts?status=all&limit=50
- detail:        GET /api/alerts/<id of the newest alert>
- detail-random: GET /api/alerts/<random id of the 5,000> (a wrk Lua script; cache misses)
- stats:         GET /api/alerts/stats

Printed per (server, route): req/s, p50/p99, non-2xx, server CPU ms per request (CPU of the
server's process group / requests: the steady figure on a busy machine), PostgreSQL CPU,
server RSS at rest and at the end of the load; then the ratios against the Flask peer.

    uv run --frozen python bench/alerts_api/peers_bench.py            # 10 s per run
    uv run --frozen python bench/alerts_api/peers_bench.py --quick    # 1,000 alerts, 4 s per run

Prints numbers; asserts nothing about time (exit 1 only when a body check fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
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
    db_url,
    delete_namespace,
    drop_database,
    free_port,
    group_rss_mb,
    keypair,
    measure_route,
    mint_token,
    print_machine,
    recreate_database,
    wait_http,
)
from http_bench import compare, seed

DB_NAME = "eas_bench_peers"
HERE = Path(__file__).resolve().parent
LIST = "/api/alerts?status=all&limit=50"
CORES = os.cpu_count() or 1


def servers(args: argparse.Namespace) -> list[dict[str, Any]]:
    uvicorn = ["uv", "run", "--frozen", "uvicorn", "--host", "127.0.0.1", "--no-access-log"]
    uvicorn += ["--log-level", "warning", "--ws", "none", "--workers", "2"]
    gunicorn = ["uv", "run", "--frozen", "gunicorn", "--pythonpath", str(HERE)]
    gunicorn += [
        "--log-level",
        "warning",
        "--timeout",
        "60",
        "-k",
        "sync",
        "-w",
        str(2 * CORES + 1),
    ]
    fastapi = [*uvicorn, "--factory", "alerts_api.app:create_app"]
    out = [
        {"name": "alerts-api (uvicorn x2)", "key": "ours", "argv": fastapi, "env": {}},
        {
            "name": "alerts-api, cache off (uvicorn x2)",
            "key": "ours-nocache",
            "argv": fastapi,
            "env": {"ALERTS_API_READ_CACHE": "false"},
        },
        {
            # Every miss as it was before the fast reads: through FastAPI and SQLAlchemy.
            "name": "alerts-api, cache off, fast reads off (uvicorn x2)",
            "key": "ours-nofast",
            "argv": fastapi,
            "env": {"ALERTS_API_READ_CACHE": "false", "ALERTS_API_FAST_READS": "false"},
            "routes": ["list", "detail-random"],
        },
        {
            "name": f"Flask same design (gunicorn sync x{2 * CORES + 1})",
            "key": "flask",
            "argv": [*gunicorn, "peers.flask_app:create_app()"],
            "env": {},
        },
        {
            "name": "bare ASGI (uvicorn x2, asyncpg)",
            "key": "asgi",
            "argv": [*uvicorn, "--app-dir", str(HERE), "peers.asgi_app:app"],
            "env": {},
        },
        {
            "name": f"Flask OLD design, renders rows (gunicorn sync x{2 * CORES + 1})",
            "key": "flask-old",
            "argv": [*gunicorn, "flask_ref.app:create_app()"],
            "env": {"FLASK_REF_MODE": "core", "FLASK_REF_POOL_SIZE": "2"},
            "routes": ["list"],
        },
    ]
    return [s for s in out if s["key"] in args.servers]


def bench_server(
    srv: dict[str, Any],
    routes: dict[str, tuple[str, Path | None]],
    args: argparse.Namespace,
    env: dict[str, str],
    token: str,
    tmp: Path,
) -> list[dict[str, Any]]:
    port = free_port()
    argv = list(srv["argv"])
    if srv["key"].startswith("flask"):
        argv[-1:-1] = ["-b", f"127.0.0.1:{port}"]
    else:
        argv += ["--port", str(port)]
    proc = Proc(re.sub(r"[^a-z0-9]+", "-", srv["key"]), argv, {**env, **srv["env"]}, tmp)
    results: list[dict[str, Any]] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout_s=90)
        time.sleep(1.0)
        rest_mb = group_rss_mb(proc.pid)
        for route in [r for r in srv.get("routes", list(routes)) if r in routes]:
            path, script = routes[route]
            w = measure_route(port, path, token, proc.pid, args, script)
            res: dict[str, Any] = {
                **w,
                "server": srv["name"],
                "key": srv["key"],
                "route": route,
                "rss_rest_mb": rest_mb,
            }
            res["rss_load_mb"] = group_rss_mb(proc.pid)
            results.append(res)
            print(
                f"   {route}: {w['rps']:.0f} req/s p99 {w['p99']:.1f} ms "
                f"cpu {w['cpu_ms_req']:.2f} ms/req non-2xx {w['non2xx']}",
                flush=True,
            )
    except Exception as exc:
        results.append(
            {"server": srv["name"], "key": srv["key"], "route": "-", "error": f"{exc}"[:1500]}
        )
    finally:
        proc.kill()
    return results


def newest_ids(url: str) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
        row = c.execute("SELECT min(id), max(id) FROM alerts").fetchone()
        newest = c.execute("SELECT id FROM alerts ORDER BY sent DESC, id DESC LIMIT 1").fetchone()
    assert row is not None and newest is not None
    return int(newest[0]), int(row[0]), int(row[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=["ours", "ours-nocache", "ours-nofast", "flask", "asgi", "flask-old"],
    )
    parser.add_argument(
        "--routes",
        type=lambda s: s.split(","),
        default=["list", "detail", "detail-random", "stats"],
    )
    parser.add_argument("--quick", action="store_true", help="1,000 alerts, 4 s runs")
    args = parser.parse_args()
    if args.quick:
        args.seed, args.duration, args.warmup = 1000, 4, 1
    print_machine(
        f"alerts-api vs peers, {args.seed} alerts, wrk -t2 -c{args.connections} -d{args.duration}s"
    )
    ns = f"bench-{secrets.token_hex(4)}"
    url = db_url(DB_NAME)
    results: list[dict[str, Any]] = []
    try:
        recreate_database(DB_NAME)
        seconds = asyncio.run(seed(url, args.seed))
        print(f"seeded {args.seed} alerts in {seconds:.1f}s", flush=True)
        newest, lo, hi = newest_ids(db_url(DB_NAME))
        with tempfile.TemporaryDirectory(prefix="eas-bench-peers-") as tmpdir:
            tmp = Path(tmpdir)
            private, pub = keypair(tmp)
            token = mint_token(private, ttl_s=3600)
            script = tmp / "random_detail.lua"
            script.write_text(
                f'request = function()\n  return wrk.format("GET", "/api/alerts/" .. '
                f"math.random({lo}, {hi}))\nend\n"
            )
            routes: dict[str, tuple[str, Path | None]] = {
                "list": (LIST, None),
                "detail": (f"/api/alerts/{newest}", None),
                "detail-random": (f"/api/alerts/{newest}", script),
                "stats": ("/api/alerts/stats", None),
            }
            routes = {k: v for k, v in routes.items() if k in args.routes}
            env = {
                "ALERTS_API_DATABASE_URL": url,
                "ALERTS_API_RUN_CONSUMER": "false",
                "ALERTS_API_STATION_SAME_CODES": "039035",
                "EAS_REDIS_URL": REDIS_URL,
                "EAS_BUS_NAMESPACE": ns,
                "EAS_AUTH_PUBLIC_KEY_FILE": str(pub),
                "EAS_LOG_LEVEL": "WARNING",
                "PEER_DATABASE_URL": db_url(DB_NAME),
                "PEER_PUBLIC_KEY_FILE": str(pub),
                "FLASK_REF_DATABASE_URL": db_url(DB_NAME, "postgresql+psycopg"),
                "FLASK_REF_PUBLIC_KEY_FILE": str(pub),
            }
            for srv in servers(args):
                print(f"-- {srv['name']} ...", flush=True)
                results += bench_server(srv, routes, args, env, token, tmp)
    finally:
        with contextlib.suppress(Exception):
            delete_namespace(REDIS_URL, ns)
        drop_database(DB_NAME)
    return report(results)


def _check(ref: dict[str, Any] | None, r: dict[str, Any]) -> str:
    if r.get("status") != 200:
        return f"status {r.get('status')}"
    if ref is None:
        return "ok"
    if r["route"] == "list":
        if r["key"] == "flask-old":
            # The old design renders the 29 fields it was written for; fields added to the
            # item since (relevance_matches, deviations) are not in it: compare what it has.
            c = compare(r["body"], ref["body"])
            good = c["same_ids_in_order"] and c["value_mismatches"] == 0
            return "ok (its fields)" if good else f"MISMATCH {c['first_mismatches']}"
        c = compare(ref["body"], r["body"])
        good = c["same_ids_in_order"] and c["value_mismatches"] == 0
        return "ok" if good else f"MISMATCH {c['first_mismatches']}"
    a, b = json.loads(ref["body"]), json.loads(r["body"])
    if r["route"] == "stats":
        return "ok" if a == b else "MISMATCH"
    same = a["alert"]["id"] == b["alert"]["id"] and set(a) == set(b)
    same = same and len(a["history"]) == len(b["history"])
    return "ok" if same else "MISMATCH"


def report(results: list[dict[str, Any]]) -> int:
    ok = [r for r in results if "error" not in r]
    refs = {r["route"]: r for r in ok if r["key"] == "ours-nocache"}
    peer = {r["route"]: r for r in ok if r["key"] == "flask"}
    print(
        "\n| server | route | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/req | "
        "PostgreSQL CPU ms/req | RSS rest MB | RSS load MB | busy % | vs Flask peer req/s |"
        " server CPU/req vs Flask peer | body |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    bad = 0
    for r in results:
        if "error" in r:
            print(f"| {r['server']} | error | {r['error'][:120]} |")
            bad += 1
            continue
        check = _check(refs.get(r["route"]) if r["route"] != "detail-random" else None, r)
        bad += not check.startswith("ok")
        p = peer.get(r["route"])
        ratio = f"{r['rps'] / p['rps']:.2f}x" if p and p["rps"] else "-"
        cpu = f"{r['cpu_ms_req'] / p['cpu_ms_req']:.2f}x" if p and p["cpu_ms_req"] else "-"
        print(
            f"| {r['server']} | {r['route']} | {r['rps']:.0f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['non2xx']} | {r['cpu_ms_req']:.2f} | {r['pg_ms_req']:.2f} | "
            f"{r['rss_rest_mb']:.0f} | {r['rss_load_mb']:.0f} | {r['busy_pct']:.0f} | "
            f"{ratio} | {cpu} | {check} |"
        )
    print(
        "\nCPU per request = CPU of the server's process group / requests served; the "
        "busy column is the whole machine's (other users included)."
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
