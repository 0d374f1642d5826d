"""Ingest throughput of alerts-api: alerts.ingested -> committed in PostgreSQL -> alert.created.

Publishes N distinct CAP alerts (varied events and codes, Update/Cancel chains) as envelopes
into a private bus namespace (pipelined XADD), starts `alerts-api serve` as a subprocess on a
throwaway database, and measures until N alert.created events are on alert.events and N alert
rows are committed. Then checks: nothing lost, nothing announced twice, DB rows == N.

Variants (all by default):
  normal  every alert published once
  dup     every alert published twice (second copy: a new envelope of the same CAP identity,
          right after the first, so both copies are usually handled concurrently)
  kill    the alerts-api process group is SIGKILLed halfway and restarted (min idle 2000 ms),
          so the dead consumer's pending entries are reclaimed with XAUTOCLAIM

    cd /work/main && uv run --frozen python bench/alerts_api/ingest.py            # N=10,000
    cd /work/main && uv run --frozen python bench/alerts_api/ingest.py --quick    # N=1,000

Prints numbers; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
import redis
from common import (
    REDIS_URL,
    Proc,
    PySpy,
    corpus,
    db_url,
    delete_namespace,
    drop_database,
    expected_lifecycle,
    free_port,
    group_cpu_s,
    keypair,
    postgres_cpu_s,
    print_machine,
    python_pid_in_group,
    recreate_database,
    subject_of,
    summarize_raw,
    system_busy,
)

from eas_schemas.envelope import encode_entry
from eas_schemas.streams import ALERT_EVENTS, ALERTS_API_GROUP, ALERTS_INGESTED
from eas_testkit.factories import ingested_envelope
from servicekit.bus import stream_key

DB_NAME = "eas_bench_ingest"


@dataclass
class EventLog:
    """Incremental reader of <ns>:alert.events."""

    client: redis.Redis
    key: str
    last: str = "-"
    by_type: dict[str, int] = field(default_factory=dict)
    created_subjects: dict[str, int] = field(default_factory=dict)
    created_ids: dict[str, set[str]] = field(default_factory=dict)
    envelope_ids: dict[str, int] = field(default_factory=dict)
    created_ms: list[int] = field(default_factory=list)

    def poll(self) -> int:
        got = 0
        while True:
            start = self.last if self.last == "-" else f"({self.last}"
            entries = self.client.xrange(self.key, min=start, max="+", count=5000)
            if not entries:
                return got
            for entry_id, fields in entries:
                self.last = entry_id
                etype = fields.get("type", "?")
                self.by_type[etype] = self.by_type.get(etype, 0) + 1
                eid = fields.get("id", "")
                self.envelope_ids[eid] = self.envelope_ids.get(eid, 0) + 1
                if etype == "alert.created":
                    subject = json.loads(fields["envelope"]).get("subject", "")
                    self.created_subjects[subject] = self.created_subjects.get(subject, 0) + 1
                    self.created_ids.setdefault(subject, set()).add(eid)
                    self.created_ms.append(int(entry_id.split("-")[0]))
            got += len(entries)

    @property
    def created(self) -> int:
        return self.by_type.get("alert.created", 0)


def db_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        q = conn.execute
        rows = q("SELECT count(*), count(DISTINCT (sender, identifier, sent)) FROM alerts")
        total, distinct = rows.fetchone()
        from alerts_api.tables import alert_outbox as outbox_table

        outbox = q(f"SELECT count(*) FROM {outbox_table.name}").fetchone()[0]
        unresolved = q(
            "SELECT count(*) FROM alert_references r JOIN alerts a ON a.sender = r.ref_sender "
            "AND a.identifier = r.ref_identifier AND a.sent = r.ref_sent "
            "WHERE r.ref_alert_id IS NULL"
        ).fetchone()[0]
        by_state = dict(q("SELECT state, count(*) FROM alerts GROUP BY state").fetchall())
    return {
        "rows": total,
        "distinct": distinct,
        "outbox_left": outbox,
        "unresolved_refs": unresolved,
        **{f"state_{k}": v for k, v in by_state.items()},
    }


def db_rows(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])
    except psycopg.Error:
        return 0  # schema not migrated yet


def publish(
    client: redis.Redis, key: str, entries: list[dict[str, str]], chunk: int = 1000
) -> float:
    started = time.perf_counter()
    for k in range(0, len(entries), chunk):
        pipe = client.pipeline(transaction=False)
        for fields in entries[k : k + chunk]:
            pipe.xadd(key, fields)  # private namespace: no MAXLEN, deleted afterwards
        pipe.execute()
    return time.perf_counter() - started


def run_variant(
    variant: str, alerts: list, args: argparse.Namespace, pub_key: Path, tmp: Path
) -> dict[str, Any]:
    n = len(alerts)
    ns = f"bench-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    url = db_url(DB_NAME)
    recreate_database(DB_NAME)
    in_key = stream_key(ALERTS_INGESTED, ns)
    events = EventLog(client, stream_key(ALERT_EVENTS, ns))
    procs: list[Proc] = []
    result: dict[str, Any] = {"variant": variant, "n": n, "namespace": ns}
    try:
        entries: list[dict[str, str]] = []
        for alert in alerts:
            entries.append(encode_entry(ingested_envelope(alert, feed="bench")))
            if variant == "dup":  # a second, distinct envelope of the same CAP identity
                entries.append(encode_entry(ingested_envelope(alert, feed="bench-dup")))
        result["published"] = len(entries)
        result["publish_s"] = publish(client, in_key, entries)
        env = {
            "ALERTS_API_DATABASE_URL": url,
            "EAS_REDIS_URL": REDIS_URL,
            "EAS_BUS_NAMESPACE": ns,
            "ALERTS_API_STATION_SAME_CODES": "039035",
            "EAS_AUTH_PUBLIC_KEY_FILE": str(pub_key),
            "EAS_LOG_LEVEL": "WARNING",
        }
        env.update(dict(kv.split("=", 1) for kv in args.env))
        if variant == "kill":
            env["ALERTS_API_CONSUMER_MIN_IDLE_MS"] = str(args.min_idle_ms)
        port = free_port()
        serve = ["uv", "run", "--frozen", "alerts-api", "serve", "--port", str(port)]
        profile_path = tmp / f"ingest-{variant}.prof"
        if args.profile and variant == "normal":
            serve = [
                "uv",
                "run",
                "--frozen",
                "python",
                "-m",
                "cProfile",
                "-o",
                str(profile_path),
                "-m",
                "alerts_api",
                "serve",
                "--port",
                str(port),
            ]
        t0 = time.perf_counter()
        busy0, all0 = system_busy()
        pg0 = postgres_cpu_s()
        procs.append(Proc(f"alerts-api-{variant}-1", serve, env, tmp))
        killed_at = None
        spy: PySpy | None = None
        cpu_before_kill = 0.0
        deadline = t0 + args.timeout
        rows = 0
        while time.perf_counter() < deadline:
            events.poll()
            rows = db_rows(url)
            if args.py_spy and variant == "normal" and spy is None and events.created:
                pid = python_pid_in_group(procs[-1].pid, "serve")
                if pid:
                    spy = PySpy(pid, tmp / "ingest.pyspy.txt")
            if variant == "kill" and killed_at is None and events.created >= n // 2:
                cpu_before_kill = group_cpu_s(procs[-1].pid)
                procs[-1].kill(signal.SIGKILL)
                killed_at = time.perf_counter() - t0
                result["killed_after_created"] = events.created
                result["killed_at_s"] = round(killed_at, 2)
                procs.append(Proc(f"alerts-api-{variant}-2", serve, env, tmp))
            if events.created >= n and rows >= n:
                break
            if not procs[-1].alive():
                raise RuntimeError(f"alerts-api exited:\n{procs[-1].tail()}")
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        service_cpu = cpu_before_kill + group_cpu_s(procs[-1].pid)
        busy1, all1 = system_busy()
        pg_cpu = postgres_cpu_s() - pg0
        if spy is not None:
            spy.stop()
            result["py_spy"] = summarize_raw(
                tmp / "ingest.pyspy.txt",
                focus=(
                    "ingest (alerts_api/service.py",
                    "_insert (",
                    "_link_references (",
                    "_to_outbox (",
                    "publish (servicekit/outbox.py",
                    "model_validate",
                    "model_dump_json",
                    "decode_entry",
                    "xack",
                    "build_item",
                    "summary_of",
                    "pool_pre_ping",
                    "_do_ping",
                    "commit (",
                    "begin (",
                ),
            )
        result["wall_s"] = round(wall, 2)
        result["service_cpu_s"] = round(service_cpu, 2)
        result["service_cpu_ms_per_alert"] = round(1000 * service_cpu / n, 2)
        result["postgres_cpu_s"] = round(pg_cpu, 2)
        result["machine_busy_pct"] = round(100 * (busy1 - busy0) / max(all1 - all0, 1), 1)
        result["completed"] = events.created >= n and rows >= n
        # Let the outbox flusher (5 s age, 2 s interval) and any redelivery show duplicates.
        time.sleep(args.settle)
        events.poll()
        if args.profile and variant == "normal":
            procs[-1].kill(signal.SIGINT, wait_s=30)
            result["profile"] = str(profile_path)
        ms = events.created_ms
        if len(ms) >= 2:
            span = (ms[-1] - ms[0]) / 1000
            result["span_s"] = round(span, 2)
            result["rate_first_to_last"] = round((len(ms) - 1) / span, 1) if span else None
            lo, hi = ms[len(ms) // 10], ms[(len(ms) * 9) // 10]
            result["rate_p10_p90"] = (
                round((len(ms) * 8 // 10) / ((hi - lo) / 1000), 1) if hi > lo else None
            )
        result["rate_wall_incl_startup"] = round(n / wall, 1)
        expected_subjects = {subject_of(a) for a in alerts}
        created = events.created_subjects
        result["events_by_type"] = dict(sorted(events.by_type.items()))
        result["expected_lifecycle"] = expected_lifecycle(n)
        result["lost"] = len(expected_subjects - created.keys())
        result["unexpected_subjects"] = len(created.keys() - expected_subjects)
        result["subjects_created_twice"] = sum(1 for c in created.values() if c > 1)
        # a subject created twice under two different envelope ids is a real double ingest;
        # the same envelope id twice is an at-least-once republish a reader can drop by id
        result["subjects_created_twice_distinct_ids"] = sum(
            1 for ids in events.created_ids.values() if len(ids) > 1
        )
        result["envelope_ids_twice"] = sum(1 for c in events.envelope_ids.values() if c > 1)
        result["db"] = db_counts(url)
        try:
            result["pending"] = client.xpending(in_key, ALERTS_API_GROUP)["pending"]
        except redis.ResponseError:
            result["pending"] = "n/a"
        result["deadletters"] = client.xlen(f"{ns}:bus.deadletter")
        result["ok"] = (
            result["completed"]
            and result["lost"] == 0
            and result["subjects_created_twice"] == 0
            and result["unexpected_subjects"] == 0
            and result["db"]["rows"] == n
            and result["db"]["distinct"] == n
        )
        return result
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()
        if not args.keep:
            delete_namespace(REDIS_URL, ns)
            drop_database(DB_NAME)
        client.close()


def print_profile(path: str, limit: int = 30) -> None:
    import pstats

    if not Path(path).exists():
        print(f"(no profile written at {path})")
        return
    stats = pstats.Stats(path)
    print("\n-- cProfile of the alerts-api process (normal variant), by own time --")
    stats.sort_stats("tottime").print_stats(limit)
    print("-- by cumulative time --")
    stats.sort_stats("cumulative").print_stats(limit)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="distinct alerts (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="N=1,000, short settle")
    parser.add_argument("--variants", default="normal,dup,kill")
    parser.add_argument("--min-idle-ms", type=int, default=2000)
    parser.add_argument(
        "--settle",
        type=float,
        default=8.0,
        help="seconds to keep watching after N (outbox flush, redelivery)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the normal variant's service under cProfile and print it",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="sample the normal variant's service with py-spy (uv tool run)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for alerts-api (e.g. ALERTS_API_DB_POOL_SIZE=20)",
    )
    parser.add_argument("--keep", action="store_true", help="keep database and streams")
    args = parser.parse_args()
    if args.quick:
        args.n, args.settle = 1000, 8.0
    print_machine(f"alerts-api ingest benchmark, N={args.n}")
    alerts = corpus(args.n, expires_hours=480, run_id=secrets.token_hex(3))
    results = []
    with tempfile.TemporaryDirectory(prefix="eas-bench-ingest-") as tmpdir:
        tmp = Path(tmpdir)
        _private, pub_key = keypair(tmp)
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            print(f"\n-- variant {variant}: publishing and ingesting ...", flush=True)
            res = run_variant(variant, alerts, args, pub_key, tmp)
            results.append(res)
            print(
                json.dumps(
                    {k: v for k, v in res.items() if k not in ("profile", "py_spy")}, indent=1
                )
            )
            if res.get("py_spy"):
                print("\n-- py-spy of the alerts-api process while ingesting --")
                print(res["py_spy"])
            if res.get("profile"):
                print_profile(res["profile"])
    print(
        "\n| variant | published | stored rows | alert.created | lost | created twice |"
        " of which distinct envelope ids | envelope ids seen twice |"
        " updated/cancelled (exp.) | alerts/s first->last | alerts/s p10-p90"
        " | alerts/s incl. startup | wall s | service CPU ms/alert | machine busy % | ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ev = r["events_by_type"]
        exp = r["expected_lifecycle"]
        print(
            f"| {r['variant']} | {r['published']} | {r['db']['rows']} | "
            f"{ev.get('alert.created', 0)} | {r['lost']} | {r['subjects_created_twice']} | "
            f"{r['subjects_created_twice_distinct_ids']} | {r['envelope_ids_twice']} | "
            f"{ev.get('alert.updated', 0)}/"
            f"{ev.get('alert.cancelled', 0)} ({exp['alert.updated']}/"
            f"{exp['alert.cancelled']}) | {r.get('rate_first_to_last')} | "
            f"{r.get('rate_p10_p90')} | {r['rate_wall_incl_startup']} | {r['wall_s']} | "
            f"{r['service_cpu_ms_per_alert']} | {r['machine_busy_pct']} | "
            f"{'yes' if r['ok'] else 'NO'} |"
        )
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
