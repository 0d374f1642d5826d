"""GET /api/alerts: alerts-api (FastAPI + uvicorn) against a Flask + Gunicorn reference.

Seeds one throwaway PostgreSQL database with 5,000 alerts through AlertService.ingest (so
alerts-api's pre-rendered item_json exists), then serves the SAME rows with each server
configuration in turn and runs

    wrk -t2 -c64 -d15s --latency -H 'Authorization: Bearer <token>' \
        'http://127.0.0.1:P/api/alerts?status=all&limit=50'

after a warm-up. Each response is checked (same 50 ids in the same order, same fields and
values in both implementations). wrk, the server and PostgreSQL share the machine's cores:
the table shows the CPU each took.

    cd /work/main && uv run --frozen python bench/alerts_api/http_bench.py
    cd /work/main && uv run --frozen python bench/alerts_api/http_bench.py --quick

Prints numbers; asserts nothing about time.
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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REDIS_URL,
    Proc,
    PySpy,
    corpus,
    costs,
    db_url,
    delete_namespace,
    drop_database,
    free_port,
    http_get,
    keypair,
    mint_token,
    print_machine,
    python_pid_in_group,
    recreate_database,
    summarize_raw,
    wait_http,
    wrk,
)

DB_NAME = "eas_bench_http"
HERE = Path(__file__).resolve().parent
PATH = "/api/alerts?status=all&limit=50"


# ---- seeding -------------------------------------------------------------------------------


async def seed(url: str, n: int, concurrency: int = 8) -> float:
    """Migrate and ingest n alerts through AlertService.ingest (item_json rendered)."""
    from sqlalchemy import text

    from alerts_api.migrate import upgrade_url
    from alerts_api.service import AlertService
    from eas_testkit.factories import ingested
    from servicekit.db import make_engine

    await upgrade_url(url)
    engine = make_engine(url, pool_size=concurrency)
    service = AlertService(engine, None, "bench/seed", ["039035"], ["OHC035"])
    alerts = corpus(n, expires_hours=6, rich=True, run_id=secrets.token_hex(3))
    # Chains in dependency order: plain alerts, then #7/#15 (targets are plain), then #19
    # (updates an update), so every reference resolves at insert time.
    passes = [
        [a for i, a in enumerate(alerts) if i % 20 not in (7, 15, 19)],
        [a for i, a in enumerate(alerts) if i % 20 in (7, 15)],
        [a for i, a in enumerate(alerts) if i % 20 == 19],
    ]
    started = time.perf_counter()
    # Batches of 200 through ingest_batch (one transaction each, as the consumer does),
    # pass after pass, so a chain's target is committed before its referrer arrives.
    for batch in passes:
        for i in range(0, len(batch), 200):
            await service.ingest_batch([ingested(a, feed="bench-seed") for a in batch[i : i + 200]])
    from alerts_api.tables import alert_outbox as outbox

    async with engine.begin() as conn:
        await conn.execute(outbox.delete())  # no bus while seeding
        await conn.execute(text("ANALYZE"))
    await engine.dispose()
    return time.perf_counter() - started


# ---- servers -------------------------------------------------------------------------------


def server_configs(args: argparse.Namespace) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = []
    for w in args.uvicorn_workers:
        configs.append(
            {
                "name": f"fastapi uvicorn w={w}",
                "kind": "fastapi",
                "argv": [
                    "uv",
                    "run",
                    "--frozen",
                    "uvicorn",
                    "--factory",
                    "alerts_api.app:create_app",
                    "--host",
                    "127.0.0.1",
                    "--workers",
                    str(w),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--ws",
                    "none",
                ],
                "workers": w,
            }
        )
    if args.fastapi_env:
        extra_env = dict(kv.split("=", 1) for kv in args.fastapi_env)
        w = max(args.uvicorn_workers)
        configs.append(
            {
                **configs[-1],
                "workers": w,
                "env": extra_env,
                "name": f"fastapi uvicorn w={w} " + " ".join(args.fastapi_env),
            }
        )
    gunicorn = [
        "uv",
        "run",
        "--frozen",
        "gunicorn",
        "--pythonpath",
        str(HERE),
        "--log-level",
        "warning",
        "--timeout",
        "60",
    ]
    flask_kinds = {
        "sync": (["-k", "sync", "-w", str(args.sync_workers)], 2),
        "gthread": (
            [
                "-k",
                "gthread",
                "-w",
                str(args.gthread_workers),
                "--threads",
                str(args.gthread_threads),
            ],
            args.gthread_threads,
        ),
        "gevent": (
            [
                "-k",
                "gevent",
                "-w",
                str(args.gevent_workers),
                "--worker-connections",
                str(args.gevent_connections),
            ],
            args.gevent_pool,
        ),
    }
    for mode in args.flask_modes:
        for kind in args.flask_workers:
            extra, pool = flask_kinds[kind]
            label = " ".join(x for x in extra if not x.startswith("-"))
            configs.append(
                {
                    "name": f"flask {mode} gunicorn {kind} ({label.split(' ', 1)[1]})",
                    "kind": "flask",
                    "mode": mode,
                    "argv": [*gunicorn, *extra, "flask_ref.app:create_app()"],
                    "pool": pool,
                }
            )
    return configs


def fetch(port: int, token: str) -> tuple[int, bytes, str]:
    return http_get(port, PATH, token)


def _norm(key: str, value: Any) -> Any:
    if isinstance(value, str) and key in (
        "sent",
        "onset",
        "expires",
        "effective",
        "received_at",
        "updated_at",
    ):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if key in ("same_codes", "ugc_codes", "references") and isinstance(value, list):
        return sorted(value)  # the store keeps codes as a set; order is not part of the contract
    return value


def compare(reference: bytes, other: bytes) -> dict[str, Any]:
    a, b = json.loads(reference)["items"], json.loads(other)["items"]
    out: dict[str, Any] = {
        "items": len(b),
        "fields": len(b[0]) if b else 0,
        "same_ids_in_order": [x["id"] for x in a] == [x["id"] for x in b],
        "key_sets_equal": all(set(x) == set(y) for x, y in zip(a, b, strict=False)),
    }
    mismatches = []
    for x, y in zip(a, b, strict=False):
        for k in x:
            if _norm(k, x.get(k)) != _norm(k, y.get(k)):
                mismatches.append(f"id {x['id']} {k}: {x.get(k)!r} != {y.get(k)!r}")
    out["value_mismatches"] = len(mismatches)
    out["first_mismatches"] = mismatches[:3]
    return out


def bench_one(
    cfg: dict[str, Any], args: argparse.Namespace, env: dict[str, str], token: str, tmp: Path
) -> dict[str, Any]:
    port = free_port()
    argv = [*cfg["argv"]]
    if cfg["kind"] == "fastapi":
        argv += ["--port", str(port)]
    else:
        argv[-1:-1] = ["-b", f"127.0.0.1:{port}"]
        env = {**env, "FLASK_REF_MODE": cfg["mode"], "FLASK_REF_POOL_SIZE": str(cfg["pool"])}
    env = {**env, **cfg.get("env", {})}
    name = re.sub(r"[^a-z0-9]+", "-", cfg["name"].lower())[:60]
    proc = Proc(name, argv, env, tmp)
    result: dict[str, Any] = {"name": cfg["name"], "kind": cfg["kind"]}
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout_s=90)
        status, body, ctype = fetch(port, token)
        result.update(status=status, body=body, bytes=len(body), content_type=ctype)
        if args.warmup:
            wrk(port, PATH, token, args.warmup, args.connections)
        spy = None
        if args.py_spy and cfg["kind"] == "fastapi" and cfg.get("workers") == 1:
            pid = python_pid_in_group(proc.pid, "uvicorn")
            if pid:
                spy = PySpy(pid, tmp / f"{name}.pyspy.txt")
                time.sleep(1.0)
        with costs(proc.pid) as cost:
            w = wrk(port, PATH, token, args.duration, args.connections)
        if spy is not None:
            spy.stop()
            result["py_spy"] = summarize_raw(
                tmp / f"{name}.pyspy.txt",
                focus=(
                    "list_alerts (",
                    "dependency (",
                    "verify (",
                    "list_page (",
                    "solve_dependencies",
                    "EdgeMiddleware",
                    "httptools",
                    "connect (",
                    "Query",
                    "_prepare_and_execute",
                    "execute (",
                ),
            )
        result.update({k: v for k, v in w.items() if k != "raw"})
        result["wrk_raw"] = w["raw"]
        result["server_cpu_s"] = cost["server_cpu_s"]
        result["postgres_cpu_s"] = cost["postgres_cpu_s"]
        result["machine_busy_pct"] = cost["busy_pct"]
        reqs = max(w["requests"], 1)
        result["server_cpu_ms_per_req"] = 1000 * result["server_cpu_s"] / reqs
        # after the load: the body is still right
        status2, body2, _ = fetch(port, token)
        result["after_load_same_body"] = status2 == 200 and json.loads(body2) == json.loads(body)
    except Exception as exc:
        result["error"] = f"{exc}"[:2000]
    finally:
        proc.kill()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--uvicorn-workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2]
    )
    parser.add_argument("--flask-modes", type=lambda s: s.split(","), default=["orm", "core"])
    parser.add_argument(
        "--flask-workers", type=lambda s: s.split(","), default=["sync", "gthread", "gevent"]
    )
    parser.add_argument("--sync-workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--gthread-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--gthread-threads", type=int, default=8)
    parser.add_argument("--gevent-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--gevent-connections", type=int, default=100)
    parser.add_argument(
        "--gevent-pool",
        type=int,
        default=16,
        help="SQLAlchemy pool_size (and max_overflow) per gevent worker",
    )
    parser.add_argument(
        "--fastapi-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add one more FastAPI run (most workers) with this environment",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="sample the 1-worker FastAPI server with py-spy during its wrk run",
    )
    parser.add_argument(
        "--quick", action="store_true", help="seed 1,000, 5 s runs, ORM reference only"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    if args.quick:
        args.seed, args.duration, args.warmup, args.flask_modes = 1000, 5, 1, ["orm"]
    print_machine(
        f"GET {PATH}: alerts-api vs Flask reference, {args.seed} alerts, "
        f"wrk -t2 -c{args.connections} -d{args.duration}s"
    )
    ns = f"bench-{secrets.token_hex(4)}"
    url = db_url(DB_NAME)
    results: list[dict[str, Any]] = []
    try:
        recreate_database(DB_NAME)
        seconds = asyncio.run(seed(url, args.seed))
        print(
            f"seeded {args.seed} alerts through AlertService.ingest in {seconds:.1f}s "
            f"({args.seed / seconds:.0f}/s, in-process, concurrency 8)",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="eas-bench-http-") as tmpdir:
            tmp = Path(tmpdir)
            private, pub = keypair(tmp)
            token = mint_token(private, ttl_s=3600)
            env = {
                "ALERTS_API_DATABASE_URL": url,
                "ALERTS_API_RUN_CONSUMER": "false",
                "ALERTS_API_STATION_SAME_CODES": "039035",
                "EAS_REDIS_URL": REDIS_URL,
                "EAS_BUS_NAMESPACE": ns,
                "EAS_AUTH_PUBLIC_KEY_FILE": str(pub),
                "EAS_LOG_LEVEL": "WARNING",
                "FLASK_REF_DATABASE_URL": db_url(DB_NAME, "postgresql+psycopg"),
                "FLASK_REF_PUBLIC_KEY_FILE": str(pub),
            }
            for cfg in server_configs(args):
                print(f"-- {cfg['name']} ...", flush=True)
                res = bench_one(cfg, args, env, token, tmp)
                results.append(res)
                if "error" in res:
                    print(f"   ERROR: {res['error']}")
                else:
                    print(
                        f"   {res['rps']:.0f} req/s, p50 {res['p50']:.1f} ms, "
                        f"p99 {res['p99']:.1f} ms, {res['bytes']} bytes, "
                        f"non-2xx {res['non2xx']}, socket errors {res['socket_errors']}",
                        flush=True,
                    )
    finally:
        with contextlib.suppress(Exception):
            delete_namespace(REDIS_URL, ns)
        if not args.keep:
            drop_database(DB_NAME)
    return report(results)


def report(results: list[dict[str, Any]]) -> int:
    ok = [r for r in results if "error" not in r and r.get("status") == 200]
    fast = [r for r in ok if r["kind"] == "fastapi"]
    flask = [r for r in ok if r["kind"] == "flask"]
    print("\n-- response checks (reference: first FastAPI body)")
    ref = fast[0]["body"] if fast else (flask[0]["body"] if flask else None)
    for r in ok:
        r["check"] = compare(ref, r["body"]) if ref else {}
        c = r["check"]
        print(
            f"   {r['name']}: {c.get('items')} items x {c.get('fields')} fields, "
            f"{r['bytes']} bytes, same ids in order: {c.get('same_ids_in_order')}, "
            f"same keys: {c.get('key_sets_equal')}, value mismatches: "
            f"{c.get('value_mismatches')} {c.get('first_mismatches') or ''}, "
            f"unchanged after load: {r.get('after_load_same_body')}"
        )
    for r in results:
        if r.get("py_spy"):
            print(f"\n-- py-spy of {r['name']} during wrk --\n{r['py_spy']}")
    best_flask = max(flask, key=lambda r: r["rps"], default=None)
    print(
        "\n| server | req/s | p50 ms | p75 ms | p90 ms | p99 ms | non-2xx | sock err | "
        "body bytes | server CPU ms/req | wrk CPU s | postgres CPU s | machine busy % |"
        " vs best Flask |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['name']} | error: {r['error'][:80]} |")
            continue
        ratio = f"{r['rps'] / best_flask['rps']:.2f}x" if best_flask else "-"
        print(
            f"| {r['name']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p75']:.1f} | "
            f"{r['p90']:.1f} | {r['p99']:.1f} | {r['non2xx']} | {r['socket_errors']} | "
            f"{r['bytes']} | {r['server_cpu_ms_per_req']:.2f} | {r['wrk_cpu_s']:.1f} | "
            f"{r['postgres_cpu_s']:.1f} | {r['machine_busy_pct']:.0f} | {ratio} |"
        )
    if fast and best_flask:
        best_fast = max(fast, key=lambda r: r["rps"])
        print(
            f"\nbest FastAPI: {best_fast['name']} {best_fast['rps']:.0f} req/s "
            f"(p99 {best_fast['p99']:.1f} ms); best Flask: {best_flask['name']} "
            f"{best_flask['rps']:.0f} req/s (p99 {best_flask['p99']:.1f} ms); "
            f"ratio {best_fast['rps'] / best_flask['rps']:.2f}x"
        )
        lean_fast = min(fast, key=lambda r: r["server_cpu_ms_per_req"])
        lean_flask = min(flask, key=lambda r: r["server_cpu_ms_per_req"])
        print(
            f"server CPU per request (robust to other load on the machine): FastAPI "
            f"{lean_fast['server_cpu_ms_per_req']:.2f} ms ({lean_fast['name']}), Flask "
            f"{lean_flask['server_cpu_ms_per_req']:.2f} ms ({lean_flask['name']}): "
            f"{lean_flask['server_cpu_ms_per_req'] / lean_fast['server_cpu_ms_per_req']:.2f}x"
            f" less CPU per request"
        )
        print(
            "closed loop (wrk): mean latency ~ connections / (req/s), so a p99 under 50 ms "
            "at 64 connections needs well over 64 / 0.05 = 1280 req/s"
        )
    correct = all(
        r["check"].get("same_ids_in_order")
        and r["check"].get("value_mismatches") == 0
        and r["non2xx"] == 0
        for r in ok
    )
    return 0 if correct and len(ok) == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
