"""`ws-broadcaster`: run the standalone server (transport A) until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from servicekit.logs import configure_logging
from ws_broadcaster.server import run_standalone
from ws_broadcaster.settings import WsBroadcasterSettings


def main() -> None:
    settings = WsBroadcasterSettings()
    configure_logging(settings.log_level, settings.log_json)
    # The library logs every connection at INFO; thousands of browsers make that noise.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.root.level))
    run_standalone(settings)


if __name__ == "__main__":
    main()
