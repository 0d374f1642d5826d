"""`station-api serve|migrate|create-admin|asyncapi`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from servicekit.cli import ServiceCli
from servicekit.db import make_engine
from servicekit.errors import ServiceError
from servicekit.hashchain import ChainKey
from station_api.manifest import MANIFEST
from station_api.migrate import upgrade_url
from station_api.passwords import Passwords
from station_api.services.accounts import AccountStore
from station_api.services.audit import AuditLog
from station_api.services.users import UserService
from station_api.settings import StationApiSettings


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
    try:
        passwords = Passwords(settings.password_memory_kib, settings.password_time_cost)
        audit = AuditLog(engine, ChainKey.load_or_create(settings.chain_key_file))
        users = UserService(AccountStore(engine, passwords, audit))
        user = await users.create_admin(username, password)
        return user.username
    finally:
        await engine.dispose()


def _add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("create-admin", help="create an admin user (password from stdin/prompt)")
    admin.add_argument("--username", required=True)
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )


def _run_command(args: argparse.Namespace, settings: StationApiSettings) -> int | None:
    if args.command != "create-admin":
        return None
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


main = ServiceCli(MANIFEST, add_commands=_add_commands, run_extra=_run_command).main

if __name__ == "__main__":
    raise SystemExit(main())
