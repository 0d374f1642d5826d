"""`alerts-api serve|migrate|asyncapi`."""

from __future__ import annotations

from alerts_api.manifest import MANIFEST
from servicekit.cli import ServiceCli

main = ServiceCli(MANIFEST).main

if __name__ == "__main__":
    raise SystemExit(main())
