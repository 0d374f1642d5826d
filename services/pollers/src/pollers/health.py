"""A tiny ``/healthz`` + ``/readyz`` HTTP server in a thread (the pollers have no API)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

Report = Callable[[], tuple[bool, dict[str, Any]]]


class HealthServer:
    """``/healthz``: the process is alive (and what each feed did last); ``/readyz``: Redis
    answers and no feed is failing."""

    def __init__(self, host: str, port: int, healthz: Report, readyz: Report) -> None:
        routes = {"/healthz": healthz, "/readyz": readyz}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    self._send(404, {"detail": "not found"})
                    return
                try:
                    ok, body = route()
                except Exception as exc:
                    ok, body = False, {"error": f"{type(exc).__name__}: {exc}"}
                self._send(200 if ok else 503, body)

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # health probes every few seconds would drown the log

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="healthz", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()
        log.info("health endpoint on port %d", self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
