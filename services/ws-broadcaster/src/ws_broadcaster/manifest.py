"""ws-broadcaster as the station runs and tests it (read through ``servicekit.manifest``).

``create_app`` is its ASGI transport, the one the one-port gateway mounts; the scaled
deployment runs the standalone server (``ws-broadcaster``) instead.
"""

from __future__ import annotations

from servicekit.manifest import ServiceManifest
from ws_broadcaster.asgi import create_asgi_app
from ws_broadcaster.settings import WsBroadcasterSettings

MANIFEST = ServiceManifest(
    name="ws-broadcaster",
    summary="bus events to browsers over WebSocket at /ws",
    prefixes=("/ws",),
    settings=WsBroadcasterSettings,
    create_app=create_asgi_app,
    default_port=8002,
    http_api=False,
    order=30,
)
