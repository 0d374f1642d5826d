"""Logs for every process of the station: one JSON object per line on stderr (or plain text).

One format, so a log shipper parses every service the same way: ``time`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, ``thread``, and ``exc`` when there is a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

HANDLER_NAME = "eas-station"


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record, not the one it was made
    with: a host that swaps stderr (pytest's capture, a daemon redirecting it) and closes the
    old one would otherwise get "I/O operation on closed file" from a logging thread."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = StderrHandler()
    handler.setFormatter(
        JsonLogFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler: a host (pytest, an embedding process) keeps its handlers.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    # httpx logs request URLs at INFO, and some feed URLs carry a PIN.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
