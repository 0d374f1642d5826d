"""Shared plumbing of the alerts-api benchmarks: machine facts, a throwaway database,
subprocesses in their own process group, keys and tokens, wrk runs and the CPU they cost
(server process group, PostgreSQL, the whole machine), per-process RSS. Not a test helper:
no assertions."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the workspace (/work/main)
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    facts = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    for dist in (
        "uvicorn",
        "gunicorn",
        "fastapi",
        "starlette",
        "flask",
        "gevent",
        "sqlalchemy",
        "asyncpg",
        "psycopg",
        "redis",
        "pydantic",
        "uvloop",
        "httptools",
    ):
        try:
            facts[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            facts[dist] = "-"
    with contextlib.suppress(Exception):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        facts["wrk"] = (out.stdout or out.stderr).split("[")[0].replace("wrk", "").strip()
    with contextlib.suppress(Exception):
        out = subprocess.run(
            ["redis-cli", "-u", REDIS_URL, "info", "server"],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in out.stdout.splitlines():
            if line.startswith("redis_version:"):
                facts["redis-server"] = line.split(":", 1)[1].strip()
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN) as conn:
            facts["postgresql"] = str(conn.execute("SHOW server_version").fetchone()[0])
    return facts


def print_machine(title: str) -> dict[str, str]:
    facts = machine()
    print(f"== {title}")
    print("machine: " + f"{facts['cpu']}, {facts['cores']} cores, Linux {facts['kernel']}")
    print(
        "versions: "
        + ", ".join(f"{k} {v}" for k, v in facts.items() if k not in ("cpu", "cores", "kernel"))
    )
    sys.stdout.flush()
    return facts


def db_url(name: str, driver: str = "postgresql") -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", f"{driver}://", 1)


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with contextlib.suppress(Exception), psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def delete_namespace(redis_url: str, namespace: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    return len(keys)


class Proc:
    """A subprocess in its own session (process group), logged to a file, killed as a group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        full_env = {**os.environ, **env}
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGTERM, wait_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(wait_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # children that outlived the leader (uv -> python, gunicorn workers)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    procs: list[Proc] = []
    try:
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()


def wait_http(
    url: str, proc: Proc | None, timeout_s: float = 60.0, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s}s: {last}\n{proc.tail() if proc else ''}")


def keypair(directory: Path) -> tuple[str, Path]:
    """(private PEM, public key file) made with servicekit's own generator."""
    from servicekit.auth.tokens import generate_keypair

    private, public = generate_keypair()
    pub = directory / "signing.pub.pem"
    pub.write_text(public)
    return private, pub


def mint_token(private_pem: str, ttl_s: int = 3600) -> str:
    from servicekit.auth.permissions import Role
    from servicekit.auth.tokens import TokenSigner

    return TokenSigner(private_pem).mint("bench", Role.VIEWER, ttl_s=ttl_s)


# ---- a varied alert corpus ---------------------------------------------------------------

EVENTS: list[tuple[str, str | None]] = [
    ("Tornado Warning", "TOR"),
    ("Severe Thunderstorm Warning", "SVR"),
    ("Flash Flood Warning", "FFW"),
    ("Winter Storm Warning", "WSW"),
    ("Flood Watch", "FFA"),
    ("Special Weather Statement", None),
    ("Blizzard Warning", "BZW"),
    ("Hurricane Warning", "HUW"),
    ("Civil Emergency Message", "CEM"),
    ("Required Weekly Test", "RWT"),
    ("Severe Thunderstorm Watch", "SVA"),
    ("Tornado Watch", "TOA"),
]
AREAS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("039035",), ("OHC035",)),
    (("039035", "039093", "039085"), ("OHC035", "OHC093", "OHZ011")),
    (("039000",), ()),
    (("048201", "048157"), ("TXC201", "TXZ213")),
    (("006037", "006059"), ("CAC037", "CAZ041")),
    (("000000",), ()),
    (("012086",), ("FLC086", "FLZ173")),
    (("017031", "017043", "017089", "017097"), ("ILC031", "ILZ014")),
]
DESCRIPTION = (
    "At {t}, a severe thunderstorm capable of producing a tornado was located near "
    "{place}, moving east at 35 mph. HAZARD...Tornado and quarter size hail. SOURCE...Radar "
    "indicated rotation. IMPACT...Flying debris will be dangerous to those caught without "
    "shelter. Mobile homes will be damaged or destroyed. Damage to roofs, windows, and "
    "vehicles will occur. Tree damage is likely. Locations impacted include {place}, "
    "Parma, Lakewood, Euclid, Strongsville and Westlake. Alert #{n}."
)
INSTRUCTION = (
    "TAKE COVER NOW! Move to a basement or an interior room on the lowest floor of a sturdy "
    "building. Avoid windows. If you are outdoors, in a mobile home, or in a vehicle, move to "
    "the closest substantial shelter and protect yourself from flying debris."
)


def corpus(
    n: int,
    *,
    expires_hours: float = 48.0,
    rich: bool = False,
    seed_minutes_ago: int = 0,
    run_id: str = "",
) -> list:
    """n distinct CAP alerts, sent one second apart (oldest first), with Update/Cancel chains.

    Per 20 alerts: #7 updates #6, #15 cancels #14, #19 updates #7 (an Update of an Update):
    2 alert.updated + 1 alert.cancelled expected when the references resolve.
    Returns a list of CapAlert. ``rich`` adds NWS-sized description/instruction and polygons.
    """
    from datetime import UTC, datetime, timedelta

    from eas_schemas.cap import CapMsgType, CapSeverity, CapUrgency
    from eas_testkit.factories import make_alert

    severities = [CapSeverity.EXTREME, CapSeverity.SEVERE, CapSeverity.MODERATE, CapSeverity.MINOR]
    urgencies = [CapUrgency.IMMEDIATE, CapUrgency.EXPECTED, CapUrgency.FUTURE]
    minutes = seed_minutes_ago or (n // 60 + 120)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)
    alerts: list = []
    for i in range(n):
        event, same_event = EVENTS[i % len(EVENTS)]
        same, ugc = AREAS[(i // 3) % len(AREAS)]
        r = i % 20
        msg_type, refs = CapMsgType.ALERT, None
        if r == 7 and i >= 1:
            msg_type, refs = CapMsgType.UPDATE, [alerts[i - 1]]
        elif r == 15 and i >= 1:
            msg_type, refs = CapMsgType.CANCEL, [alerts[i - 1]]
        elif r == 19 and i >= 12:
            msg_type, refs = CapMsgType.UPDATE, [alerts[i - 12]]
        sent = base + timedelta(seconds=i)
        polygon = None
        if rich and i % 2 == 0:
            lat, lon = 41.0 + (i % 50) / 100, -81.9 + (i % 70) / 100
            polygon = [
                (lat, lon),
                (lat + 0.2, lon),
                (lat + 0.2, lon + 0.3),
                (lat, lon + 0.3),
                (lat, lon),
            ]
        alert = make_alert(
            identifier=f"urn:oid:2.49.0.1.840.0.bench{run_id}.{i:07d}",
            sent=sent,
            msg_type=msg_type,
            references=refs,
            event=event,
            same_event=same_event,
            same_codes=same,
            ugc_codes=ugc,
            expires_in=timedelta(hours=expires_hours if i % 7 else expires_hours / 48),
            severity=severities[i % 4],
            urgency=urgencies[i % 3],
            polygon=polygon,
        )
        if rich:
            info = alert.infos[0].model_copy(
                update={
                    "description": DESCRIPTION.format(
                        t=sent.strftime("%H%M %Z"), place="Cleveland", n=i
                    ),
                    "instruction": INSTRUCTION,
                }
            )
            alert = alert.model_copy(update={"infos": [info]})
        alerts.append(alert)
    return alerts


def expected_lifecycle(n: int) -> dict[str, int]:
    updated = cancelled = 0
    for i in range(n):
        r = i % 20
        if (r == 7 and i >= 1) or (r == 19 and i >= 12):
            updated += 1
        elif r == 15 and i >= 1:
            cancelled += 1
    return {"alert.created": n, "alert.updated": updated, "alert.cancelled": cancelled}


def subject_of(alert) -> str:
    return f"{alert.sender}/{alert.identifier}/{alert.sent.isoformat()}"


# ---- CPU accounting and sampling -----------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from 'state' on


def group_processes(pgid: int) -> Iterator[tuple[str, list[str], list[str]]]:
    """(pid, /proc stat fields from 'state' on, argv) of each live process of a group, the
    ``uv run`` launchers left out (they only wait for their child)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        f = _stat(pid)
        if not f or int(f[2]) != pgid:  # f[2] = pgrp
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and Path(argv[0]).name == "uv":
            continue
        yield pid, f, argv


def _cpu_s(f: list[str]) -> float:
    return (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime


def group_cpu_s(pgid: int) -> float:
    """utime+stime (seconds) of the live processes in a process group."""
    return sum(_cpu_s(f) for _, f, _ in group_processes(pgid))


def _rss_mb(pid: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


def group_rss_mb(pgid: int) -> float:
    """Resident memory of the group's processes (MB), the ``uv run`` launchers left out."""
    return sum(_rss_mb(pid) for pid, _, _ in group_processes(pgid))


def by_process(
    pgid: int, label: Callable[[list[str]], str], measure: Callable[[str, list[str]], float]
) -> dict[str, float]:
    """``measure(pid, stat fields)`` summed per ``label(argv)`` over the group's processes."""
    out: dict[str, float] = {}
    for pid, f, argv in group_processes(pgid):
        if argv:
            name = label(argv)
            out[name] = out.get(name, 0.0) + measure(pid, f)
    return out


def rss_by_process(pgid: int, label: Callable[[list[str]], str]) -> dict[str, float]:
    return by_process(pgid, label, lambda pid, _: _rss_mb(pid))


def cpu_by_process(pgid: int, label: Callable[[list[str]], str]) -> dict[str, float]:
    return by_process(pgid, label, lambda _, f: _cpu_s(f))


def postgres_cpu_s() -> float:
    """utime+stime of every postgres process (the server is shared: a rough figure)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() not in ("postgres", "postmaster"):
                    continue
        except OSError:
            continue
        f = _stat(pid)
        if f:
            total += _cpu_s(f)
    return total


def system_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return float(sum(parts) - idle), float(sum(parts))


def python_pid_in_group(pgid: int, needle: str) -> int | None:
    """The python process of a `uv run ...` group whose command line contains needle."""
    for pid, _, argv in group_processes(pgid):
        if argv and "python" in argv[0] and needle in " ".join(argv):
            return int(pid)
    return None


# ---- wrk, and what a run of it cost --------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def ms(text: str) -> float:
    """A wrk duration (``812.00us``, ``3.10ms``, ``1.20s``) in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(
    port: int,
    path: str,
    token: str,
    seconds: int,
    connections: int,
    script: Path | None = None,
) -> dict[str, Any]:
    """``wrk -t2 -c<connections> -d<seconds>s --latency`` with a Bearer token, parsed: rps,
    p50/p75/p90/p99 (ms), non2xx, socket_errors, requests, transfer, wrk_cpu_s, raw."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    argv += ["-H", f"Authorization: Bearer {token}"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=False
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res: dict[str, Any] = {"raw": out}
    res["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}"] = ms(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Transfer/sec:\s+(\S+)", out)
    res["transfer"] = m.group(1) if m else "?"
    return res


@contextlib.contextmanager
def costs(pgid: int) -> Iterator[dict[str, float]]:
    """CPU seconds of the server's process group and of PostgreSQL, and the whole machine's
    busy %, over the ``with`` block (filled in on exit)."""
    cpu0, pg0, (busy0, all0) = group_cpu_s(pgid), postgres_cpu_s(), system_busy()
    out: dict[str, float] = {}
    try:
        yield out
    finally:
        busy1, all1 = system_busy()
        out["server_cpu_s"] = group_cpu_s(pgid) - cpu0
        out["postgres_cpu_s"] = postgres_cpu_s() - pg0
        out["busy_pct"] = 100 * (busy1 - busy0) / max(all1 - all0, 1)


def load(
    port: int,
    path: str,
    token: str,
    pgid: int,
    *,
    seconds: int,
    connections: int,
    warmup: int = 0,
    script: Path | None = None,
) -> dict[str, Any]:
    """A warm-up, then a measured wrk run: its figures plus server/PostgreSQL CPU per request
    (``cpu_ms_req``, ``pg_ms_req``: the steady figures on a busy machine) and ``busy_pct``."""
    if warmup:
        wrk(port, path, token, warmup, connections, script)
    with costs(pgid) as cost:
        w = wrk(port, path, token, seconds, connections, script)
    requests = max(w["requests"], 1)
    w.update(cost)
    w["cpu_ms_req"] = 1000 * cost["server_cpu_s"] / requests
    w["pg_ms_req"] = 1000 * cost["postgres_cpu_s"] / requests
    return w


def measure_route(
    port: int, path: str, token: str, pgid: int, args: Any, script: Path | None = None
) -> dict[str, Any]:
    """One GET (``status``, ``body``: what the route answers), then ``load`` with the
    script's ``args.duration``, ``args.connections`` and ``args.warmup``."""
    status, body, _ = http_get(port, path, token)
    w = load(
        port,
        path,
        token,
        pgid,
        seconds=args.duration,
        connections=args.connections,
        warmup=args.warmup,
        script=script,
    )
    return {**w, "status": status, "body": body}


def http_get(port: int, path: str, token: str) -> tuple[int, bytes, str]:
    """(status, body, content type) of one GET with a Bearer token; errors are answers too."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


class PySpy:
    """`py-spy record --format raw` on one pid (installed on demand by `uv tool run`)."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.out = out
        self.popen = subprocess.Popen(
            [
                "uv",
                "tool",
                "run",
                "--from",
                "py-spy",
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--rate",
                str(rate),
                "--nonblocking",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)


def _category(frame: str) -> str:
    f = frame.lower()
    for key, name in (
        ("sqlalchemy", "sqlalchemy"),
        ("asyncpg", "asyncpg"),
        ("pydantic", "pydantic"),
        ("redis", "redis-py"),
        ("starlette", "starlette/fastapi"),
        ("fastapi", "starlette/fastapi"),
        ("uvicorn", "uvicorn"),
        ("httptools", "uvicorn"),
        ("greenlet", "greenlet"),
        ("jwt", "jwt/crypto"),
        ("cryptography", "jwt/crypto"),
        ("json", "json"),
        ("asyncio", "asyncio/uvloop"),
        ("uvloop", "asyncio/uvloop"),
        ("alerts_api", "alerts_api"),
        ("servicekit", "servicekit"),
        ("eas_schemas", "eas_schemas"),
        ("prometheus", "prometheus"),
    ):
        if key in f:
            return name
    return "other"


def summarize_raw(path: Path, top: int = 25, focus: tuple[str, ...] = ()) -> str:
    """Own time by leaf function and by package, plus inclusive share of focus frames."""
    leaf: dict[str, int] = {}
    cats: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    if not path.exists():
        return f"(no py-spy output at {path})"
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
        # package of the innermost frame that is not the C-level builtin noise
        cats[_category(frames[-1])] = cats.get(_category(frames[-1]), 0) + count
        seen = set()
        for fr in frames:
            for needle in focus:
                if needle in fr and needle not in seen:
                    seen.add(needle)
                    inclusive[needle] = inclusive.get(needle, 0) + count
    if not total:
        return "(no samples)"
    out = [f"{total} samples (active CPU only, --idle not set)"]
    out.append("own time by package:")
    for k, v in sorted(cats.items(), key=lambda kv: -kv[1]):
        out.append(f"  {100 * v / total:5.1f}%  {k}")
    if inclusive:
        out.append("inclusive time of selected frames:")
        for k, v in sorted(inclusive.items(), key=lambda kv: -kv[1]):
            out.append(f"  {100 * v / total:5.1f}%  {k}")
    out.append(f"top {top} functions by own time:")
    for k, v in sorted(leaf.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {100 * v / total:5.1f}%  {k[:150]}")
    return "\n".join(out)
