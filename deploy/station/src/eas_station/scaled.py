"""`scripts/scaled`: the scaled topology of ``deploy/compose.yml``, run for real on one machine.

``deploy/compose.yml`` is the one source of the service list, commands, environment and
replica counts; this module reads it and starts each replica as a separate process the way
its container would run, so the two cannot drift:

- the infrastructure services (an ``image:`` without a ``build:``) are not started: Redis and
  PostgreSQL are the machine's (a fresh database and bus namespace per run), and the proxy is
  Debian's ``nginx`` with the same ``deploy/nginx.conf`` the proxy container mounts, changed
  only where a container name becomes a loopback port (each upstream lists every replica),
  the listen address, and where its own files go;
- one-shot services (``restart: "no"``, e.g. ``migrations``) run first, in order, and must
  exit 0; every other service then starts with ``deploy.replicas`` copies and is restarted when
  it dies (compose's ``restart: unless-stopped``);
- each replica's environment is its compose ``environment`` (interpolated like compose does)
  with the machine's addresses put in: ``/run/secrets/<name>`` becomes the secret's file,
  a volume's mount point becomes a folder of the run, ``0.0.0.0`` becomes ``127.0.0.1``, the
  container port (``--port N``, ``PORT``, ``*_PORT``) becomes the replica's own free port,
  and the bus, database and trusted proxy are the run's.

``ScaledStation`` is what the integration and fault tests drive (kill a replica, read its
port); ``main`` is the command a person runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from servicekit.embedded import free_port

log = logging.getLogger("eas_station.scaled")

REPO = Path(__file__).resolve().parents[4]
COMPOSE = REPO / "deploy" / "compose.yml"
# Copied into every process from the runner's own environment; everything else comes from
# compose.yml, as in a container.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONUNBUFFERED")
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_UPSTREAM = re.compile(r"upstream\s+(\w+)\s*\{\s*server\s+([\w.-]+):(\d+)\s*;\s*\}")


class TopologyError(RuntimeError):
    """compose.yml says something this runner cannot run as written."""


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's variable syntax: ``${V}``, ``${V:-default}``, ``${V-default}``,
    ``${V:?message}``, ``${V?message}`` and ``$$`` for a literal dollar."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        present = name in variables
        empty = not variables.get(name)
        if op in (":-", "-"):
            missing = empty if op == ":-" else not present
            return arg if missing else variables[name]
        if op in (":?", "?"):
            missing = empty if op == ":?" else not present
            if missing:
                raise TopologyError(f"compose.yml needs {name}: {arg}")
            return variables[name]
        return variables.get(name, "")

    return _INTERPOLATION.sub(one, value)


@dataclass(frozen=True)
class ServiceSpec:
    """One service of compose.yml, as written there."""

    name: str
    command: list[str]
    environment: dict[str, str]
    replicas: int
    restart: str
    volumes: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]
    ready_check: bool
    depends_on: tuple[str, ...]

    @property
    def one_shot(self) -> bool:
        return self.restart == "no"

    @property
    def container_port(self) -> int | None:
        """The port the container serves on: its ``--port`` argument, else its ``PORT``."""
        if "--port" in self.command:
            return int(self.command[self.command.index("--port") + 1])
        for key, value in self.environment.items():
            if (key == "PORT" or key.endswith("_PORT")) and value.isdigit():
                return int(value)
        return None


@dataclass(frozen=True)
class Topology:
    services: dict[str, ServiceSpec]
    infrastructure: dict[str, dict[str, Any]]
    secrets: dict[str, str]
    compose_dir: Path

    @property
    def one_shots(self) -> list[ServiceSpec]:
        return [s for s in self.services.values() if s.one_shot]

    @property
    def long_running(self) -> list[ServiceSpec]:
        return [s for s in self.services.values() if not s.one_shot]

    def nginx_conf(self) -> Path:
        """The file the proxy container mounts as /etc/nginx/nginx.conf."""
        for spec in self.infrastructure.values():
            for volume in spec.get("volumes", []):
                source, _, rest = str(volume).partition(":")
                if rest.split(":")[0] == "/etc/nginx/nginx.conf":
                    return (self.compose_dir / source).resolve()
        raise TopologyError("no service of compose.yml mounts an nginx.conf")


def _command(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return shlex.split(raw)
    return [str(part) for part in raw]


def load_topology(path: Path = COMPOSE, variables: dict[str, str] | None = None) -> Topology:
    """Every service of compose.yml: what runs (a ``build:``) and what the machine provides."""
    variables = dict(os.environ if variables is None else variables)
    document = yaml.safe_load(path.read_text())
    services: dict[str, ServiceSpec] = {}
    infrastructure: dict[str, dict[str, Any]] = {}
    for name, raw in document["services"].items():
        if "build" not in raw:
            infrastructure[name] = raw
            continue
        env_raw = raw.get("environment") or {}
        if isinstance(env_raw, list):
            env_raw = dict(item.split("=", 1) for item in env_raw)
        environment = {
            key: interpolate(str(value), variables)
            for key, value in env_raw.items()
            if value is not None
        }
        volumes = []
        for volume in raw.get("volumes", []):
            source, _, rest = str(volume).partition(":")
            volumes.append((source, rest.split(":")[0]))
        depends = raw.get("depends_on") or []
        healthcheck = raw.get("healthcheck") or {}
        services[name] = ServiceSpec(
            name=name,
            command=_command(raw["command"]),
            environment=environment,
            replicas=int((raw.get("deploy") or {}).get("replicas", 1)),
            restart=str(raw.get("restart", "no")),
            volumes=tuple(volumes),
            secrets=tuple(
                s if isinstance(s, str) else str(s["source"]) for s in raw.get("secrets", [])
            ),
            ready_check="/readyz" in " ".join(map(str, healthcheck.get("test", []))),
            depends_on=tuple(depends if isinstance(depends, list) else depends.keys()),
        )
    secrets = {name: str(spec["file"]) for name, spec in (document.get("secrets") or {}).items()}
    return Topology(services, infrastructure, secrets, path.parent.resolve())


@dataclass
class Replica:
    """One process of one service."""

    service: str
    index: int
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port: int | None
    ready_check: bool
    restart: bool
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: float = 0.5
    next_start: float = 0.0
    started_at: float = 0.0
    held: bool = False  # stopped on purpose: not restarted until started again

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            # Its own session: a signal to the runner reaches replicas only through it, and
            # a kill reaches everything the replica started.
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def url(self, path: str = "") -> str:
        if self.port is None:
            raise TopologyError(f"{self.name} serves no port")
        return f"http://127.0.0.1:{self.port}{path}"


def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


async def _admin_sql(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@dataclass
class ScaledStation:
    """The compose topology as local processes behind nginx. ``start()``, then drive it."""

    redis_url: str
    postgres_admin_url: str
    run_dir: Path
    compose: Path = COMPOSE
    port: int = 0
    cap_folder: Path | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    # Extra environment for every replica (tests: shorter timings); compose's wins otherwise.
    extra_env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 120.0
    keep_database: bool = False
    nginx: str = "nginx"

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.topology = load_topology(self.compose, self._variables())
        self.namespace = f"scaled-{self.run_id}"
        self.database = f"eas_scaled_{self.run_id}"
        self.database_url = _with_database(self.postgres_admin_url, self.database)
        self.replicas: dict[str, list[Replica]] = {}
        self.keys_dir = self.run_dir / "keys"
        self._nginx: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._database_made = False
        if not self.port:
            self.port = free_port()

    # ------------------------------------------------------------------ environment
    def _variables(self) -> dict[str, str]:
        variables = dict(os.environ)
        # The machine's Redis is given as a URL (with its password, if any); compose's own
        # ${EAS_REDIS_PASSWORD} only builds a URL this runner replaces.
        variables.setdefault("EAS_REDIS_PASSWORD", "unused-by-the-local-run")
        return variables

    def _binds(self) -> dict[str, Path]:
        """compose.yml's relative host paths, as this run provides them."""
        binds = {"./keys": self.keys_dir}
        if self.cap_folder is not None:
            binds["./cap"] = self.cap_folder.resolve()
        return binds

    def _host_path(self, source: str) -> Path:
        for prefix, target in self._binds().items():
            if source == prefix or source.startswith(prefix + "/"):
                return target / source[len(prefix) :].lstrip("/")
        if source.startswith((".", "/")):
            return (self.topology.compose_dir / source).resolve()
        return self.run_dir / "volumes" / source  # a named volume

    def _replica_env(self, spec: ServiceSpec, index: int, port: int | None) -> dict[str, str]:
        env = {key: os.environ[key] for key in BASE_ENV if key in os.environ}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        mounts = {target: self._host_path(source) for source, target in spec.volumes}
        secrets = {
            f"/run/secrets/{name}": self._host_path(self.topology.secrets[name])
            for name in spec.secrets
        }
        container_port = spec.container_port
        for key, value in {**self.extra_env, **spec.environment}.items():
            if value in secrets:
                value = str(secrets[value])
            for target, local in mounts.items():
                if value == target or value.startswith(target + "/"):
                    value = str(local) + value[len(target) :]
            if value in ("0.0.0.0", "::"):
                value = "127.0.0.1"
            if (
                port is not None
                and (key == "PORT" or key.endswith("_PORT"))
                and value == str(container_port)
            ):
                value = str(port)
            env[key] = value
        # The machine's servers, the run's own database and bus namespace, and nginx on
        # loopback as the one trusted proxy (compose: its fixed address).
        env["EAS_REDIS_URL"] = self.redis_url
        if "EAS_DATABASE_URL" in spec.environment:
            env["EAS_DATABASE_URL"] = self.database_url
        env["EAS_BUS_NAMESPACE"] = self.namespace
        if "EAS_TRUSTED_PROXIES" in spec.environment:
            env["EAS_TRUSTED_PROXIES"] = "127.0.0.1"
        # A container's hostname names it; here each replica gets the same stable name, so a
        # restarted one takes back its own pending messages and leases.
        env.setdefault("EAS_INSTANCE", f"{spec.name}-{index}")
        for local in mounts.values():
            if not local.suffix:
                local.mkdir(parents=True, exist_ok=True)
        return env

    def _replica_argv(self, spec: ServiceSpec, port: int | None) -> list[str]:
        argv = ["127.0.0.1" if part in ("0.0.0.0", "::") else part for part in spec.command]
        if port is not None and "--port" in argv:
            argv[argv.index("--port") + 1] = str(port)
        return argv

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        self._make_keys()
        asyncio.run(_admin_sql(self.postgres_admin_url, f'CREATE DATABASE "{self.database}"'))
        self._database_made = True
        for spec in self.topology.one_shots:
            self._run_once(spec)
        for spec in self.topology.long_running:
            port_needed = spec.container_port is not None
            self.replicas[spec.name] = [
                Replica(
                    service=spec.name,
                    index=i,
                    argv=self._replica_argv(spec, port := free_port() if port_needed else None),
                    env=self._replica_env(spec, i, port),
                    cwd=self.run_dir / "work" / f"{spec.name}-{i}",
                    log_path=self.run_dir / "logs" / f"{spec.name}-{i}.log",
                    port=port,
                    ready_check=spec.ready_check,
                    restart=spec.restart in ("always", "unless-stopped", "on-failure"),
                )
                for i in range(1, spec.replicas + 1)
            ]
        for replica in self.all_replicas():
            replica.start()
        self._supervisor = threading.Thread(target=self._supervise, name="scaled-supervisor")
        self._supervisor.start()
        self.wait_ready()
        self._start_nginx()
        self._wait(lambda: _http_ok(f"{self.origin}/"), "nginx")

    def _make_keys(self) -> None:
        if (self.keys_dir / "signing.pem").exists():
            return
        subprocess.run(
            [str(Path(sys.executable).parent / "eas-token"), "keygen", "--dir", str(self.keys_dir)],
            check=True,
            capture_output=True,
        )

    def _run_once(self, spec: ServiceSpec) -> None:
        log_path = self.run_dir / "logs" / f"{spec.name}.log"
        cwd = self.run_dir / "work" / spec.name
        cwd.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            done = subprocess.run(
                self._replica_argv(spec, None),
                env=self._replica_env(spec, 1, None),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=self.ready_timeout_s,
            )
        if done.returncode != 0:
            raise TopologyError(f"{spec.name} exited with {done.returncode}; see {log_path}")
        log.info("%s done", spec.name)

    def all_replicas(self) -> list[Replica]:
        return [r for group in self.replicas.values() for r in group]

    def replica(self, service: str, index: int = 1) -> Replica:
        return self.replicas[service][index - 1]

    def _supervise(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                for r in self.all_replicas():
                    if r.process is None or r.held or not r.restart:
                        continue
                    if r.process.poll() is None:
                        continue
                    if r.next_start == 0.0:
                        # Docker's restart policy: a short, doubling delay (reset after 10 s up).
                        r.backoff = 0.5 if now - r.started_at > 10 else min(r.backoff * 2, 10)
                        r.next_start = now + r.backoff
                        log.warning(
                            "%s exited with %s; restarting in %.1fs",
                            r.name,
                            r.process.returncode,
                            r.backoff,
                        )
                    elif now >= r.next_start:
                        r.next_start = 0.0
                        r.restarts += 1
                        r.start()
            self._stop.wait(0.1)

    def kill(self, service: str, index: int = 1, signum: int = signal.SIGKILL) -> int:
        """Kill one replica (its whole process group); the supervisor restarts it. Returns
        the pid that was killed."""
        r = self.replica(service, index)
        pid = r.pid
        if pid is None:
            raise TopologyError(f"{r.name} is not running")
        r.signal(signum)
        assert r.process is not None
        r.process.wait(timeout=30)
        return pid

    def hold(self, service: str, index: int = 1) -> None:
        """Stop a replica and keep it stopped (``docker compose stop``)."""
        with self._lock:
            r = self.replica(service, index)
            r.held = True
        r.signal(signal.SIGTERM)
        if r.process is not None:
            try:
                r.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                r.signal(signal.SIGKILL)
                r.process.wait(timeout=10)

    def release(self, service: str, index: int = 1) -> None:
        with self._lock:
            r = self.replica(service, index)
            r.held = False
            r.next_start = 0.0
            if r.process is None or r.process.poll() is not None:
                r.start()

    def is_ready(self, r: Replica) -> bool:
        if r.pid is None:
            return False
        if r.port is None or not r.ready_check:
            return True
        return _http_ok(r.url("/readyz"))

    def wait_ready(self, replicas: list[Replica] | None = None) -> None:
        for r in replicas or self.all_replicas():
            self._wait(lambda r=r: self.is_ready(r), r.name)

    def _wait(self, check: Any, what: str) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise TopologyError(f"{what} not ready within {self.ready_timeout_s:.0f} s; logs in "
                            f"{self.run_dir / 'logs'}")  # fmt: skip

    # ------------------------------------------------------------------ nginx
    def nginx_config(self) -> str:
        """deploy/nginx.conf with each upstream's container replaced by its replicas'
        loopback ports, the listen address, and the run's own log and pid files."""
        text = self.topology.nginx_conf().read_text()

        def upstream(match: re.Match[str]) -> str:
            name, host = match.group(1), match.group(2)
            group = self.replicas.get(host)
            if not group:
                raise TopologyError(f"nginx upstream {name} names {host}, not in compose.yml")
            servers = " ".join(f"server 127.0.0.1:{r.port};" for r in group)
            return f"upstream {name} {{ {servers} }}"

        text, count = _UPSTREAM.subn(upstream, text)
        if count == 0:
            raise TopologyError("nginx.conf has no upstream of the form 'server host:port;'")
        text, listens = re.subn(r"listen\s+80\s*;", f"listen 127.0.0.1:{self.port};", text)
        if listens != 1:
            raise TopologyError("nginx.conf should have one 'listen 80;'")
        own = self.run_dir / "nginx"
        text = text.replace(
            "http {",
            f"http {{\n  access_log {own / 'access.log'};\n"
            + "".join(
                f"  {kind}_temp_path {own / kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            1,
        )
        return text

    def _start_nginx(self) -> None:
        own = self.run_dir / "nginx"
        own.mkdir(parents=True, exist_ok=True)
        conf = own / "nginx.conf"
        conf.write_text(self.nginx_config())
        argv = [
            self.nginx,
            "-p",
            str(own),
            "-c",
            str(conf),
            "-e",
            str(own / "error.log"),
            "-g",
            f"daemon off; pid {own / 'nginx.pid'};",
        ]
        test = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        if test.returncode != 0:
            raise TopologyError(f"nginx rejects the configuration: {test.stderr}")
        self._nginx = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        if self._nginx is not None and self._nginx.poll() is None:
            self._nginx.send_signal(signal.SIGQUIT)
            try:
                self._nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._nginx.kill()
        for r in self.all_replicas():
            r.signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for r in self.all_replicas():
            if r.process is None:
                continue
            try:
                r.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.signal(signal.SIGKILL)
                r.process.wait(timeout=10)
        if self._database_made and not self.keep_database:
            asyncio.run(
                _admin_sql(
                    self.postgres_admin_url,
                    f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)',
                )
            )

    def __enter__(self) -> ScaledStation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/scaled", description=__doc__.split("\n\n")[0])
    parser.add_argument("--compose", type=Path, default=COMPOSE)
    parser.add_argument("--port", type=int, default=int(os.environ.get("EAS_PORT", "8080")))
    parser.add_argument(
        "--redis-url", default=os.environ.get("EAS_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get("EAS_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a database to connect to while creating the run's own",
    )  # fmt: skip
    parser.add_argument("--cap-folder", type=Path, default=None, help="the pollers' CAP folder")
    parser.add_argument("--run-dir", type=Path, default=Path("var/scaled"))
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("nginx is not installed: run ./scripts/setup.sh", file=sys.stderr)
        return 2
    station = ScaledStation(
        redis_url=args.redis_url,
        postgres_admin_url=args.postgres_admin_url,
        run_dir=args.run_dir,
        compose=args.compose,
        port=args.port,
        cap_folder=args.cap_folder,
        keep_database=args.keep_database,
        nginx=shutil.which("nginx") or "/usr/sbin/nginx",
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    with station:
        print(f"scaled station at {station.origin}/ (database {station.database}, bus namespace "
              f"{station.namespace}, logs in {station.run_dir / 'logs'})")  # fmt: skip
        for r in station.all_replicas():
            where = f"127.0.0.1:{r.port}" if r.port else "no port"
            print(f"  {r.name:<26} pid {r.pid}  {where}")
        print(f"an admin token: {Path(sys.executable).parent / 'eas-token'} mint --role admin "
              f"--key {station.keys_dir / 'signing.pem'}")  # fmt: skip
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
