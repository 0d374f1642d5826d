"""`eas-station run`: the whole station on one machine ("monolithic mode").

Same code and bus as the scaled deployment, fewer processes: every FastAPI service (alerts-api,
station-api, ws-broadcaster's ``/ws``) and the dashboard run in one supervised process behind
one port (``eas_station.gateway``, which migrates each service's schema before it serves); the
sync pollers run as a second supervised process. With no ``EAS_REDIS_URL`` an embedded
Redis-compatible server is started (data kept in ``<data dir>/redis`` with an append-only
file); with no ``EAS_DATABASE_URL`` the store is SQLite in ``<data dir>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eas_station.demo import DemoSetup, demo_dir
from servicekit.auth.cli import MintRefused, mint_audited
from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, write_keypair
from servicekit.embedded import EmbeddedRedis
from servicekit.logs import configure_logging

log = logging.getLogger("eas_station")


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        log.info("starting %s: %s", self.name, " ".join(self.argv))
        self.process = subprocess.Popen(self.argv, env=self.env)
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


def station_env(
    args: argparse.Namespace, data_dir: Path
) -> tuple[dict[str, str], EmbeddedRedis | None]:
    env = dict(os.environ)
    embedded: EmbeddedRedis | None = None
    if not env.get("EAS_REDIS_URL"):
        # A fresh password each start: only the station's own processes (its environment)
        # and its owner (the 0600 url file, for `eas-station token`) can use the bus.
        embedded = EmbeddedRedis(
            data_dir / "redis",
            persist=True,
            password=secrets.token_urlsafe(24),
            die_with_parent=True,
        )
        env["EAS_REDIS_URL"] = embedded.start()
        url_file = data_dir / "redis" / "url"
        url_file.unlink(missing_ok=True)
        fd = os.open(url_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(env["EAS_REDIS_URL"])
        log.info(
            "no EAS_REDIS_URL: embedded Redis-compatible server on 127.0.0.1:%d (password "
            "required; the URL is in %s)",
            embedded.port,
            url_file,
        )
    if not env.get("EAS_DATABASE_URL"):
        env["EAS_DATABASE_URL"] = f"sqlite+aiosqlite:///{(data_dir / 'eas-station.db').resolve()}"
        log.info("no EAS_DATABASE_URL: SQLite at %s", data_dir / "eas-station.db")
    keys = data_dir / "keys"
    if not env.get("EAS_AUTH_PUBLIC_KEY_FILE") and not env.get("EAS_AUTH_PUBLIC_KEY"):
        if not (keys / "signing.pem").exists():
            write_keypair(keys)
            log.info("made the station signing keys in %s", keys)
        env["EAS_AUTH_PUBLIC_KEY_FILE"] = str((keys / "signing.pub.pem").resolve())
        # station-api signs the tokens the others verify: the private half stays on this box.
        if not env.get("EAS_AUTH_SIGNING_KEY_FILE") and not env.get("STATION_API_SIGNING_KEY_FILE"):
            env["EAS_AUTH_SIGNING_KEY_FILE"] = str((keys / "signing.pem").resolve())
    # The key that signs the station log and the audit log lives beside the token keys, out
    # of the database; audio-control and station-api share it (made 0600 on first start).
    if not env.get("EAS_CHAIN_KEY_FILE"):
        env["EAS_CHAIN_KEY_FILE"] = str((keys / "chain.pem").resolve())
    # A station reachable only from this machine lets local readers in without a token, so
    # the first look needs no setup; bound to any other address it requires tokens for reads.
    if "EAS_ANONYMOUS_READ" not in env:
        env["EAS_ANONYMOUS_READ"] = (
            "true" if args.host in ("127.0.0.1", "localhost", "::1") else "false"
        )
    # The names the station answers to (DNS rebinding): loopback, plus the bound address and
    # this machine's name when it listens beyond loopback. Other names: EAS_GATEWAY_ALLOWED_HOSTS.
    if "EAS_GATEWAY_ALLOWED_HOSTS" not in env:
        hosts = ["localhost", "127.0.0.1", "::1"]
        if args.host not in hosts:
            name = socket.gethostname()
            hosts += [name, f"{name}.local", socket.getfqdn()]
            if args.host not in ("0.0.0.0", "::"):
                hosts.append(args.host)
        env["EAS_GATEWAY_ALLOWED_HOSTS"] = ",".join(dict.fromkeys(hosts))
    env.setdefault("EAS_MONITOR_DATA_DIR", str((data_dir / "eas-monitor").resolve()))
    env.setdefault("AUDIO_CONTROL_AIRED_DIR", str((data_dir / "aired").resolve()))
    if not env.get("POLLERS_CAP_FOLDER") and env.get("EAS_CAP_FOLDER"):
        env["POLLERS_CAP_FOLDER"] = env["EAS_CAP_FOLDER"]
    env.setdefault("EAS_LOG_JSON", "true")
    return env, embedded


def children(args: argparse.Namespace, env: dict[str, str]) -> list[Child]:
    py = sys.executable
    kids = [
        Child(
            "gateway",
            [
                py,
                "-m",
                "eas_station.gateway",
                "serve",
                "--host",
                args.host,
                "--port",
                str(args.port),
            ],
            env,
        ),
    ]
    # Always: with no feed configured the pollers idle and take feeds from station settings.
    kids.append(Child("pollers", [py, "-m", "pollers", "run"], env))
    return kids


def supervise(kids: list[Child]) -> None:
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for kid in kids:
        kid.start()
    while not stopping:
        now = time.monotonic()
        for kid in kids:
            if kid.process is not None and kid.process.poll() is not None:
                code = kid.process.returncode
                # A child that ran a while before dying gets a fresh backoff.
                kid.backoff = 1.0 if now - kid.started_at > 60 else min(kid.backoff * 2, 30.0)
                kid.next_start = now + kid.backoff
                kid.process = None
                kid.restarts += 1
                log.error(
                    "%s exited with %s; restart %d in %.0fs",
                    kid.name,
                    code,
                    kid.restarts,
                    kid.backoff,
                )
            if kid.process is None and now >= kid.next_start:
                kid.start()
        time.sleep(0.2)
    log.info("stopping the station")
    for kid in kids:
        kid.stop()
    for kid in kids:
        kid.wait(timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eas-station", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every service of the station on this machine")
    run.add_argument("--host", default=os.environ.get("EAS_HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("EAS_PORT", "8080")))
    run.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EAS_DATA_DIR", "var")))
    run.add_argument(
        "--demo",
        action="store_true",
        help="a demo station in <data dir>/demo, started fresh: its own area and relay rules, "
        "a CAP Tornado Warning and an on-air Severe Thunderstorm Warning, aired into "
        "<data dir>/demo/aired",
    )
    token = sub.add_parser("token", help="print an access token signed with this station's key")
    token.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value)
    token.add_argument("--ttl", type=int, default=3600)
    token.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EAS_DATA_DIR", "var")))
    flask = sub.add_parser(
        "import-flask",
        help="import a Flask EAS Station's alerts, area, users, received headers and inputs",
    )
    flask.add_argument("--from", dest="source", required=True, help="postgresql://user@host/db")
    flask.add_argument(
        "--to", dest="target", default=None, help="this station's database (EAS_DATABASE_URL)"
    )
    flask.add_argument("--data-dir", type=Path, default=Path(os.environ.get("EAS_DATA_DIR", "var")))
    flask.add_argument(
        "--flask-secret-key-file",
        type=Path,
        default=None,
        help="file holding the Flask station's SECRET_KEY (its passwords are peppered with it)",
    )
    flask.add_argument("--dry-run", action="store_true", help="print what would be imported")
    args = parser.parse_args(argv)
    configure_logging("INFO", as_json=False)
    if args.command == "import-flask":
        from eas_station.flask_import import main as import_flask

        return import_flask(
            args.source, args.target, args.data_dir, args.flask_secret_key_file, args.dry_run
        )
    if args.command == "token":
        # The mint is audited on the station's bus: the embedded one, while the station runs.
        url_file = args.data_dir / "redis" / "url"
        if not os.environ.get("EAS_REDIS_URL") and url_file.exists():
            os.environ["EAS_REDIS_URL"] = url_file.read_text().strip()
        key = args.data_dir / "keys" / "signing.pem"
        if not key.exists():
            print(f"no signing key at {key}: run the station once first", file=sys.stderr)
            return 2
        try:
            minted = mint_audited(
                TokenSigner(key.read_text()),
                "station-cli",
                Role(args.role),
                args.ttl,
                "eas-station",
            )
        except MintRefused as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(minted)
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir
    setup: DemoSetup | None = None
    if args.demo:
        data_dir = demo_dir(args.data_dir)
        os.environ["EAS_CAP_FOLDER"] = str((data_dir / "cap").resolve())
        os.environ.pop("POLLERS_CAP_FOLDER", None)
    env, embedded = station_env(args, data_dir)
    if args.demo:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        setup = DemoSetup(f"http://{host}:{args.port}", data_dir / "keys" / "signing.pem", data_dir)
        setup.start()
    try:
        supervise(children(args, env))
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
