"""`eas-monitor serve|migrate|asyncapi`."""

from __future__ import annotations

from eas_monitor.app import asyncapi_document, create_app
from eas_monitor.migrate import upgrade_url
from eas_monitor.settings import EasMonitorSettings
from servicekit.cli import ServiceCli

CLI = ServiceCli(
    prog="eas-monitor",
    serve_help="run the HTTP API and supervise the input workers",
    default_port=8003,
    settings=EasMonitorSettings,
    create_app=create_app,
    upgrade_url=upgrade_url,
    asyncapi_document=asyncapi_document,
)
main = CLI.main

if __name__ == "__main__":
    raise SystemExit(main())
