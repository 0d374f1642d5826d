"""Domain errors raised by the service layer; app.py maps each to one HTTP answer."""

from __future__ import annotations

from typing import Any

from servicekit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "ServiceError",
    "Throttled",
    "Unauthorized",
    "Unavailable",
]


class Throttled(ServiceError):
    status_code = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)


class Invalid(ServiceError):
    """A document failed validation as a whole: ``errors`` name every bad field."""

    status_code = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("validation failed")
        self.errors = errors
