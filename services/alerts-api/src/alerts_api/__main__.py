"""`alerts-api serve|migrate|asyncapi`."""

from __future__ import annotations

from alerts_api.app import asyncapi_document, create_app
from alerts_api.migrate import upgrade_url
from alerts_api.settings import AlertsApiSettings
from servicekit.cli import ServiceCli

CLI = ServiceCli(
    prog="alerts-api",
    serve_help="run the HTTP API and the ingest consumer",
    default_port=8001,
    settings=AlertsApiSettings,
    create_app=create_app,
    upgrade_url=upgrade_url,
    asyncapi_document=asyncapi_document,
)
main = CLI.main

if __name__ == "__main__":
    raise SystemExit(main())
