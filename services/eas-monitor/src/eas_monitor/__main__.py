"""`eas-monitor serve|migrate|asyncapi`."""

from __future__ import annotations

import argparse
import asyncio
import json

import uvicorn

from eas_monitor.app import asyncapi_document, create_app
from eas_monitor.migrate import upgrade_url
from eas_monitor.settings import EasMonitorSettings
from servicekit.web import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eas-monitor")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API and supervise the input workers")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8003)
    serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    sub.add_parser("migrate", help="upgrade the database schema to the latest version")
    sub.add_parser("asyncapi", help="print the AsyncAPI document of this service's bus use")
    args = parser.parse_args(argv)
    if args.command == "asyncapi":
        print(json.dumps(asyncapi_document(), indent=2, sort_keys=True))
        return 0
    settings = EasMonitorSettings()
    configure_logging(settings.log_level, settings.log_json)
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
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
