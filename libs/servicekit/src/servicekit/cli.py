"""The command line every HTTP service shares: ``serve``, ``migrate``, ``asyncapi``.

A service adds its own commands (station-api's ``create-admin``) through ``extra``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from servicekit.logs import configure_logging
from servicekit.manifest import ServiceManifest
from servicekit.settings import StoreSettings


@dataclass(frozen=True)
class ServiceCli:
    manifest: ServiceManifest
    # add_commands adds more subcommands; run_extra gets (args, settings) and returns an exit
    # code, or None when the command is not one of its own.
    add_commands: Callable[[Any], None] | None = None
    run_extra: Callable[[argparse.Namespace, Any], int | None] | None = None

    def main(self, argv: list[str] | None = None) -> int:
        m = self.manifest
        parser = argparse.ArgumentParser(prog=m.name, description=m.summary)
        sub = parser.add_subparsers(dest="command", required=True)
        serve = sub.add_parser("serve", help=f"run {m.name}: {m.summary}")
        serve.add_argument("--host", default="127.0.0.1")
        serve.add_argument("--port", type=int, default=m.default_port)
        if m.upgrade_url is not None:
            serve.add_argument(
                "--no-migrate", action="store_true", help="do not upgrade the schema first"
            )
            sub.add_parser("migrate", help="upgrade the database schema to the latest version")
        if m.asyncapi_document is not None:
            sub.add_parser("asyncapi", help="print the AsyncAPI document of its bus use")
        if self.add_commands is not None:
            self.add_commands(sub)
        args = parser.parse_args(argv)
        if args.command == "asyncapi" and m.asyncapi_document is not None:
            print(json.dumps(m.asyncapi_document(), indent=2, sort_keys=True))
            return 0
        settings = m.settings()
        configure_logging(settings.log_level, settings.log_json)
        if self.run_extra is not None:
            code = self.run_extra(args, settings)
            if code is not None:
                return code
        migrating = args.command == "migrate" or not getattr(args, "no_migrate", True)
        if m.upgrade_url is not None and isinstance(settings, StoreSettings) and migrating:
            asyncio.run(m.upgrade_url(settings.database_url))
        if args.command == "serve":
            uvicorn.run(
                m.create_app(settings),
                host=args.host,
                port=args.port,
                log_config=None,
                ws="none",
                access_log=False,
                # Client addresses (login throttling, audit) come from the socket, or from a
                # configured proxy's headers (servicekit.proxy), never from uvicorn's default
                # of trusting every loopback peer.
                proxy_headers=False,
            )
        return 0
