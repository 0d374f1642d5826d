"""`station-api serve|migrate|create-admin|asyncapi`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

import uvicorn

from servicekit.bus import async_redis
from servicekit.db import make_engine
from servicekit.web import configure_logging
from station_api.app import asyncapi_document, create_app
from station_api.audit import AuditLog
from station_api.errors import ServiceError
from station_api.identity import IdentityService
from station_api.migrate import upgrade_url
from station_api.passwords import Passwords
from station_api.settings import StationApiSettings
from station_api.throttle import LoginThrottle


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        # First line of stdin, so `printf '%s\n' "$PW" | station-api create-admin` works and the
        # password never appears in the process list or shell history.
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("Repeat it: ") != first:
        raise SystemExit("passwords differ")
    return first


async def _create_admin(settings: StationApiSettings, username: str, password: str) -> str:
    engine = make_engine(settings.database_url, pool_size=1)
    redis_client = async_redis(settings.redis_url)  # unused by create_admin; never connected
    try:
        service = IdentityService(
            engine,
            None,
            Passwords(settings.password_memory_kib, settings.password_time_cost),
            LoginThrottle(redis_client, settings.bus_namespace, 1, 1, 1),
            AuditLog(engine),
        )
        user = await service.create_admin(username, password)
        return user.username
    finally:
        await redis_client.aclose()
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="station-api")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API, the fleet view and the heartbeat")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8005)
    serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    sub.add_parser("migrate", help="upgrade the database schema to the latest version")
    admin = sub.add_parser("create-admin", help="create an admin user (password from stdin/prompt)")
    admin.add_argument("--username", required=True)
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    sub.add_parser("asyncapi", help="print the AsyncAPI document of this service's bus use")
    args = parser.parse_args(argv)
    if args.command == "asyncapi":
        print(json.dumps(asyncapi_document(), indent=2, sort_keys=True))
        return 0
    settings = StationApiSettings()
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "create-admin":
        password = _read_password(args.password_stdin)
        asyncio.run(upgrade_url(settings.database_url))
        try:
            name = asyncio.run(_create_admin(settings, args.username, password))
        except ServiceError as exc:
            detail = getattr(exc, "errors", None) or exc.detail
            print(f"create-admin: {detail}", file=sys.stderr)
            return 1
        print(f"admin {name!r} created")
        return 0
    if args.command == "migrate" or not args.no_migrate:
        asyncio.run(upgrade_url(settings.database_url))
    if args.command == "serve":
        uvicorn.run(
            create_app(settings),
            host=args.host,
            port=args.port,
            log_config=None,
            ws="none",
            access_log=False,
            proxy_headers=False,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
