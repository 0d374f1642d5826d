"""`audio-control serve|migrate|asyncapi`."""

from __future__ import annotations

from audio_control.manifest import MANIFEST
from servicekit.cli import ServiceCli

main = ServiceCli(MANIFEST).main

if __name__ == "__main__":
    raise SystemExit(main())
