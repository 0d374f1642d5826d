"""EAS Station ws-broadcaster: fans bus events out to browsers over native WebSocket at /ws."""

__version__ = "0.1.0"
