"""Domain errors a service layer raises; each maps to one HTTP status with its ``detail``.

Services raise these instead of HTTPException so the service layer stays free of HTTP, and
add subclasses for what is theirs (station-api's Throttled carries Retry-After).
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class TooLarge(ServiceError):
    status_code = 413


class Unsupported(ServiceError):
    status_code = 415


class Unavailable(ServiceError):
    status_code = 503


class NotConfirmed(ServiceError):
    """The action was asked for but could not be confirmed in time."""

    status_code = 504
