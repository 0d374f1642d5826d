"""`audio-control serve|migrate|asyncapi|playout`."""

from __future__ import annotations

import argparse
from typing import Any

from audio_control.manifest import MANIFEST
from audio_control.settings import AudioControlSettings
from servicekit.cli import ServiceCli


def _add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "playout",
        help="run the playout worker alone (the API runs with AUDIO_CONTROL_RUN_PLAYOUT=false)",
    )


def _run_command(args: argparse.Namespace, settings: Any) -> int | None:
    if args.command != "playout":
        return None
    from audio_control.playout.worker import main as run_worker

    assert isinstance(settings, AudioControlSettings)
    return run_worker()


main = ServiceCli(MANIFEST, add_commands=_add_commands, run_extra=_run_command).main

if __name__ == "__main__":
    raise SystemExit(main())
