"""ws-broadcaster end-to-end benchmark: XADD on Redis → frame read by a client socket.

For each transport (A: the standalone websockets server, B: the ASGI adapter under uvicorn)
and each client count (default 100, 1,000, 5,000), against a real server process:

- accept rate: N WebSocket handshakes (with a token) opened as fast as the load generator can;
- memory per idle connection: server RSS delta / N, subscribed to everything, idle;
- 50 events/s for a while: delivery latency p50/p99/max, delivered messages/s, lost messages;
- the limit: the publish rate is raised step by step until delivery falls behind; the best
  step's delivered messages/s with nothing lost and p99 under 100 ms is reported.

Latency is measured from the publisher's clock just before the XADD pipeline to the moment
a client's read returns the frame (same machine, same clock). Load generator: separate
processes, raw sockets with a minimal frame parser (no per-message library overhead), uvloop.

    uv run --frozen python bench/ws_broadcaster/run.py [--clients 100 1000 5000]
        [--transports A B] [--steady-s 10] [--step-s 4]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing as mp
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
import redis

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair

REDIS_URL = os.environ.get("EAS_REDIS_URL", "redis://127.0.0.1:6379/0")
STREAMS = ["alert.events", "same.events", "monitor.status", "poller.status", "settings.changed"]
SUBSCRIBE_ALL = (
    b'{"type":"subscribe","topics":["alerts","same","monitor","levels","pollers","health",'
    b'"settings"]}'
)
N_TOPICS = 7


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 1 << 20), hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- load generator (runs in worker processes) ----------------------------------------------


def _mask(payload: bytes, opcode: int = 1) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = (
        bytes((0x80 | opcode, 0x80 | n))
        if n < 126
        else bytes((0x80 | opcode, 0xFE)) + (n.to_bytes(2, "big"))
    )
    k = int.from_bytes(key * ((n + 3) // 4), "big") >> (8 * ((4 - n % 4) % 4))
    body = (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big") if n else b""
    return head + key + body


@dataclass
class Tally:
    events: int = 0
    subscribed: int = 0
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    closed: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)


class WsClient(asyncio.Protocol):
    """A WebSocket client that parses server frames with as little work as possible."""

    def __init__(self, tally: Tally, request: bytes, opened: asyncio.Future[bool]) -> None:
        self.tally = tally
        self.request = request
        self.opened = opened
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.closed += 1
        if not self.opened.done():
            self.opened.set_result(False)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            ok = b" 101 " in bytes(buf[:20])
            del buf[: end + 4]
            self.open = ok
            if not self.opened.done():
                self.opened.set_result(ok)
            if not ok:
                return
        tally = self.tally
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            start = pos + 2
            if b1 == 126:
                if size - pos < 4:
                    break
                b1 = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif b1 == 127:
                if size - pos < 10:
                    break
                b1 = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + b1
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                # {"type":"event" ... "data":{"seq":N,"t":<publish time>}}}
                kind = buf[start + 9 : start + 13]
                if kind == b"even":
                    # Only the bench's own events end with {"seq":N,"t":T}}} (not heartbeats).
                    i = buf.rfind(b'"t":', end - 32, end)
                    if i >= 0:
                        tally.events += 1
                        tally.latencies.append(now - float(buf[i + 4 : end - 3]))
                elif kind == b"ping":
                    assert self.transport is not None
                    self.transport.write(_mask(b'{"type":"pong"}'))
                elif kind == b"subs":
                    tally.subscribed += 1
            elif opcode == 8:
                code = int.from_bytes(buf[start : start + 2], "big") if b1 >= 2 else 0
                tally.close_codes[code] = tally.close_codes.get(code, 0) + 1
            pos = end
        if pos:
            del buf[:pos]

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_mask(payload))


async def _connect_many(
    tally: Tally, host: str, port: int, request: bytes, n: int, concurrency: int
) -> tuple[list[WsClient], int]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    opened: list[WsClient] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with sem:
            key = base64.b64encode(os.urandom(16))
            req = request + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
            done: asyncio.Future[bool] = loop.create_future()
            try:
                _, proto = await loop.create_connection(
                    lambda: WsClient(tally, req, done), host, port
                )
                if await asyncio.wait_for(done, 30):
                    opened.append(proto)
                else:
                    failures += 1
            except (OSError, TimeoutError):
                failures += 1

    await asyncio.gather(*(one() for _ in range(n)))
    return opened, failures


async def _worker_main(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally()
    clients: list[WsClient] = []
    while True:
        cmd, *args = await loop.run_in_executor(None, conn.recv)
        if cmd == "connect":
            host, port, path, n, concurrency = args
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            ).encode()
            started = time.perf_counter()
            opened_now, failures = await _connect_many(tally, host, port, request, n, concurrency)
            clients.extend(opened_now)
            conn.send((len(clients), failures, time.perf_counter() - started))
        elif cmd == "subscribe":
            tally.subscribed = 0
            for c in clients:
                c.send(SUBSCRIBE_ALL)
            deadline = time.monotonic() + 60
            while tally.subscribed < len(clients) * N_TOPICS and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            conn.send(tally.subscribed // N_TOPICS)
        elif cmd == "reset":
            tally.events = 0
            tally.latencies = array("d")
            conn.send(True)
        elif cmd == "report":
            conn.send((tally.events, tally.latencies.tobytes(), tally.closed, tally.close_codes))
        elif cmd == "close":
            for c in clients:
                if c.transport is not None:
                    c.transport.close()
            clients.clear()
            await asyncio.sleep(0.5)
            tally.closed = 0
            tally.close_codes = {}
            conn.send(True)
        elif cmd == "exit":
            conn.send(True)
            return


def worker_entry(conn: Connection) -> None:
    raise_nofile()
    try:
        import uvloop

        uvloop.run(_worker_main(conn))
    except ImportError:
        asyncio.run(_worker_main(conn))


class LoadGen:
    def __init__(self, workers: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_entry, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, *cmd: Any, split: int | None = None) -> list[Any]:
        for i, pipe in enumerate(self.pipes):
            if split is None:
                pipe.send(cmd)
            else:
                share = split // len(self.pipes) + (1 if i < split % len(self.pipes) else 0)
                pipe.send((*cmd[:4], share, *cmd[4:]))
        return [pipe.recv() for pipe in self.pipes]

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("exit")
        for proc in self.procs:
            proc.join(5)


# --- publisher (separate process) -----------------------------------------------------------


def publisher_entry(namespace: str, rate: float, duration: float, out: Connection) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = [f"{namespace}:{s}" for s in STREAMS]
    head = (
        '{"specversion":"1.0","id":"%s","type":"bench.event","source":"bench/1",'
        '"time":"2024-01-01T00:00:00Z","subject":null,"datacontenttype":"application/json",'
        '"schemaversion":1,"data":{"seq":%d,"t":%.6f}}'
    )
    sent = 0
    start = time.perf_counter()
    tick = 0.002
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= duration:
            break
        due = int(elapsed * rate) + 1 - sent
        if due > 0:
            pipe = client.pipeline(transaction=False)
            for _ in range(due):
                eid = uuid.uuid4().hex
                doc = head % (eid, sent, time.time())
                pipe.xadd(
                    keys[sent % len(keys)],
                    {"type": "bench.event", "id": eid, "envelope": doc},
                    maxlen=10_000,
                    approximate=True,
                )
                sent += 1
            pipe.execute()
        time.sleep(tick)
    out.send(sent)


def publish(namespace: str, rate: float, duration: float) -> int:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=publisher_entry, args=(namespace, rate, duration, child))
    proc.start()
    sent: int = parent.recv()
    proc.join()
    return sent


# --- servers ----------------------------------------------------------------------------------


def start_server(transport: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    if transport == "A":
        cmd = [sys.executable, "-m", "ws_broadcaster"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "ws_broadcaster.asgi:create_asgi_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws",
            "websockets-sansio",
            "--ws-per-message-deflate",
            "False",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backlog",
            "4096",
        ]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            time.sleep(0.5)  # let the hub pin its stream positions
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server {transport} did not start")


@dataclass
class Row:
    transport: str
    clients: int
    accept_per_s: float = 0.0
    connect_failures: int = 0
    kib_per_conn: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    steady_msgs_s: float = 0.0
    steady_lost: int = 0
    cpu_us_per_msg: float = 0.0
    limit_msgs_s: float = 0.0
    limit_p99_ms: float = 0.0
    limit_cpu_us_per_msg: float = 0.0
    limit_steps: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, int(q * len(values)))
    return values[k]


def measure(
    load: LoadGen, namespace: str, server: psutil.Process, rate: float, duration: float, n: int
) -> tuple[int, int, list[float], float]:
    """Publish at ``rate`` for ``duration``; (sent, received, sorted latencies, cpu s)."""
    load.ask("reset")
    cpu0 = sum(server.cpu_times()[:2])
    sent = publish(namespace, rate, duration)
    expected = sent * n
    deadline = time.monotonic() + 5
    received = 0
    while time.monotonic() < deadline:
        received = sum(r[0] for r in load.ask("report"))
        if received >= expected:
            break
        time.sleep(0.2)
    cpu = sum(server.cpu_times()[:2]) - cpu0
    reports = load.ask("report")
    lat: list[float] = []
    for _, raw, _, _ in reports:
        arr = array("d")
        arr.frombytes(raw)
        lat.extend(arr)
    lat.sort()
    return sent, sum(r[0] for r in reports), lat, cpu


def run_one(
    transport: str, n: int, args: argparse.Namespace, env: dict[str, str], token: str
) -> Row:
    row = Row(transport, n)
    port = free_port()
    namespace = f"bench-ws-{uuid.uuid4().hex[:8]}"
    env = {**env, "EAS_BUS_NAMESPACE": namespace, "WS_BROADCASTER_PORT": str(port)}
    proc = start_server(transport, port, env)
    server = psutil.Process(proc.pid)
    load = LoadGen(args.workers)
    try:
        time.sleep(0.5)
        rss0 = server.memory_info().rss
        t0 = time.perf_counter()
        results = load.ask("connect", "127.0.0.1", port, f"/ws?token={token}", 256, split=n)
        elapsed = time.perf_counter() - t0
        opened = sum(r[0] for r in results)
        row.connect_failures = sum(r[1] for r in results)
        row.accept_per_s = opened / max(r[2] for r in results)
        subscribed = sum(load.ask("subscribe"))
        time.sleep(1.0)
        row.kib_per_conn = (server.memory_info().rss - rss0) / max(opened, 1) / 1024
        print(
            f"  [{transport} n={n}] opened {opened} in {elapsed:.2f}s, subscribed {subscribed}",
            flush=True,
        )
        sent, received, lat, cpu = measure(load, namespace, server, 50, args.steady_s, opened)
        row.p50_ms, row.p99_ms = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
        row.max_ms = (lat[-1] * 1000) if lat else float("nan")
        row.steady_msgs_s = received / args.steady_s
        row.steady_lost = sent * opened - received
        row.cpu_us_per_msg = cpu / max(received, 1) * 1e6
        # The limit: raise the event rate until clients stop getting everything promptly.
        rate = max(20.0, args.start_msgs / max(opened, 1))
        for _ in range(args.max_steps):
            sent, received, lat, cpu = measure(load, namespace, server, rate, args.step_s, opened)
            offered = sent * opened / args.step_s
            delivered = received / args.step_s
            p99 = pct(lat, 0.99) * 1000
            row.limit_steps.append(
                f"{rate:.0f} ev/s: offered {offered:,.0f} msg/s, delivered {delivered:,.0f} "
                f"msg/s, lost {sent * opened - received}, p99 {p99:.1f} ms, "
                f"{cpu / max(received, 1) * 1e6:.2f} us/msg"
            )
            print("   ", row.limit_steps[-1], flush=True)
            complete = received >= sent * opened
            # "The limit" = the most delivered while every message arrived with p99 < 100 ms
            # (the yardstick the FastAPI + uvicorn reference was measured with).
            if complete and p99 < 100 and delivered > row.limit_msgs_s:
                row.limit_msgs_s, row.limit_p99_ms = delivered, p99
                row.limit_cpu_us_per_msg = cpu / max(received, 1) * 1e6
            if not complete or p99 > 1000:
                break
            rate *= 1.6
        load.ask("close")
    finally:
        load.stop()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    return row


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import uvicorn
    import websockets

    mem = psutil.virtual_memory().total / 2**30
    redis_version = redis.Redis.from_url(REDIS_URL).info()["redis_version"]
    return (
        f"{platform.platform()}; {model}; {os.cpu_count()} cores; {mem:.1f} GiB; "
        f"Python {platform.python_version()}; websockets {websockets.__version__}; "
        f"uvicorn {uvicorn.__version__}; redis {redis_version}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--transports", nargs="+", default=["A", "B"], choices=["A", "B"])
    parser.add_argument("--workers", type=int, default=4, help="load generator processes")
    parser.add_argument("--steady-s", type=float, default=10.0)
    parser.add_argument("--step-s", type=float, default=4.0)
    parser.add_argument("--max-steps", type=int, default=7)
    parser.add_argument("--start-msgs", type=float, default=20_000, help="first limit step")
    args = parser.parse_args()
    raise_nofile()
    print("machine:", machine(), flush=True)
    private, public = generate_keypair()
    token = TokenSigner(private).mint("bench", Role.VIEWER, ttl_s=24 * 3600)
    keydir = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    (keydir / "pub.pem").write_text(public)
    env = {
        **os.environ,
        "EAS_REDIS_URL": REDIS_URL,
        "EAS_AUTH_PUBLIC_KEY_FILE": str(keydir / "pub.pem"),
        "EAS_LOG_LEVEL": "WARNING",
        "EAS_HEARTBEAT_INTERVAL_S": "5",
        "WS_BROADCASTER_HOST": "127.0.0.1",
    }
    rows: list[Row] = []
    for n in args.clients:
        for transport in args.transports:
            rows.append(run_one(transport, n, args, env, token))
    print()
    print(
        "| transport | clients | accept/s | KiB/conn | p50 ms | p99 ms | max ms | msg/s @50ev/s "
        "| lost | µs CPU/msg | limit msg/s | p99 @limit | µs CPU/msg @limit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "A websockets" if r.transport == "A" else "B ASGI/uvicorn"
        print(
            f"| {name} | {r.clients:,} | {r.accept_per_s:,.0f} | {r.kib_per_conn:.1f} | "
            f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {r.steady_msgs_s:,.0f} | "
            f"{r.steady_lost} | {r.cpu_us_per_msg:.2f} | {r.limit_msgs_s:,.0f} | "
            f"{r.limit_p99_ms:.1f} | {r.limit_cpu_us_per_msg:.2f} |"
        )
    by = {(r.transport, r.clients): r for r in rows}
    print()
    for n in args.clients:
        a, b = by.get(("A", n)), by.get(("B", n))
        if a and b and b.limit_msgs_s and b.accept_per_s and a.kib_per_conn:
            print(
                f"A/B at {n:,} clients: limit msg/s x{a.limit_msgs_s / b.limit_msgs_s:.2f}, "
                f"accept/s x{a.accept_per_s / b.accept_per_s:.2f}, p99@50ev/s "
                f"{a.p99_ms:.1f} vs {b.p99_ms:.1f} ms, memory/conn "
                f"{a.kib_per_conn:.1f} vs {b.kib_per_conn:.1f} KiB, CPU/msg "
                f"{a.limit_cpu_us_per_msg:.2f} vs {b.limit_cpu_us_per_msg:.2f} µs"
            )


if __name__ == "__main__":
    main()
