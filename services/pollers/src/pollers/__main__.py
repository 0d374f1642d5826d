"""``pollers run`` (until SIGTERM/SIGINT) and ``pollers once`` (each feed once, then exit).

Exit codes: 0 fine; 1 ``once`` had a failing feed (rejected documents alone do not count);
2 configuration error (for example NWS without a contact). With no feed configured (neither
the environment nor the station settings document), ``once`` exits 2 while ``run`` idles and
starts feeds as soon as station-api's settings configure one.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError

from pollers.feeds.base import FeedConfigError
from pollers.runner import Pollers
from pollers.settings import PollersSettings
from servicekit.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pollers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="poll every enabled feed until SIGTERM/SIGINT")
    sub.add_parser("once", help="poll every enabled feed once, print statuses and exit")
    args = parser.parse_args(argv)

    try:
        settings = PollersSettings()
    except ValidationError as exc:
        print(f"pollers: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    try:
        app = Pollers(settings, stop=stop, idle_ok=args.command == "run")
    except FeedConfigError as exc:
        print(f"pollers: {exc}", file=sys.stderr)
        return 2

    if args.command == "once":
        statuses = app.once()
        for status in statuses:
            print(status.model_dump_json())
        return 0 if all(s.ok for s in statuses) else 1

    def on_signal(signum: int, frame: FrameType | None) -> None:
        app.shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
