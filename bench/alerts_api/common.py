"""Shared plumbing of the alerts-api benchmarks: machine facts, a throwaway database,
subprocesses in their own process group, keys and tokens. Not a test helper: no assertions."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

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


def group_cpu_s(pgid: int) -> float:
    """utime+stime (seconds) of the live processes in a process group."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        f = _stat(pid)
        if f and int(f[2]) == pgid:  # f[2] = pgrp
            total += (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime
    return total


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
            total += (int(f[11]) + int(f[12])) / CLK_TCK
    return total


def system_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return float(sum(parts) - idle), float(sum(parts))


def python_pid_in_group(pgid: int, needle: str) -> int | None:
    """The python process of a `uv run ...` group whose command line contains needle."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        f = _stat(pid)
        if not f or int(f[2]) != pgid:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "python" in cmd.split(" ")[0] and needle in cmd:
            return int(pid)
    return None


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
