"""The one family of errors a service layer raises, their HTTP answers, and their documentation.

Services raise these instead of HTTPException so the service layer stays free of HTTP; one set
of handlers (installed by ``servicekit.web.install_common``) turns each into its status with a
JSON body. Two body shapes only:

- every 4xx/5xx but 422: ``{"detail": "what was wrong, in words"}`` (``ErrorOut``);
- 422, whether the schema or the service refused the request: ``{"detail": [{"loc", "msg",
  "type"}, ...], "fields": ["settings.identity.callsign", ...]}`` (``ValidationErrorOut``),
  never echoing the input (it can be a password, a PIN, or text JSON cannot hold).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from asyncpg.exceptions import PostgresConnectionError
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from servicekit.db import database_unreachable

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(ServiceError):
    """A request whose parts each parse but do not make sense together (a stale cursor)."""

    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


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


class Throttled(ServiceError):
    status_code = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class Unavailable(ServiceError):
    status_code = 503


class NotConfirmed(ServiceError):
    """The action was asked for but could not be confirmed in time."""

    status_code = 504


Loc = Sequence[str | int]


def problem(loc: Loc, msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


class Invalid(ServiceError):
    """The service read the request and refused it: ``errors`` name every bad field.

    ``Invalid("the uploaded file is empty", loc=("body", "file"))`` for one problem, or
    ``Invalid.of([problem(...), ...])`` for several (a settings document checked as a whole).
    """

    status_code = 422

    def __init__(self, message: str, *, loc: Loc = ("body",), type_: str = "value_error") -> None:
        super().__init__(message)
        self.errors: list[dict[str, Any]] = [problem(loc, message, type_)]

    @classmethod
    def of(cls, errors: list[dict[str, Any]]) -> Invalid:
        first = errors[0]["msg"] if errors else "validation failed"
        invalid = cls(str(first))
        invalid.errors = [dict(e) for e in errors]
        return invalid

    @classmethod
    def from_validation(cls, exc: ValidationError, prefix: Loc = ("body",)) -> Invalid:
        """Pydantic's errors under ``prefix``, minus the input (it may hold a secret)."""
        return cls.of(
            [
                problem([*prefix, *e["loc"]], e["msg"], e["type"])
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
        )

    @property
    def fields(self) -> list[str]:
        return field_names(self.errors)


# ---- documentation ---------------------------------------------------------------------------


class ErrorOut(BaseModel):
    """Every error answer other than 422."""

    detail: str = Field(description="what was wrong, in words")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A request the schema or the service refused: every bad field named, input not echoed."""

    detail: list[FieldError]
    fields: list[str] = Field(description="the bad fields as dotted paths, e.g. identity.callsign")


Responses = dict[int | str, dict[str, Any]]


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


def unprocessable(description: str = "a field is invalid") -> dict[str, Any]:
    return {"model": ValidationErrorOut, "description": description}


# Declared once on every router: FastAPI then documents our 422 shape instead of its own.
COMMON_RESPONSES: Responses = {
    401: error("no token, or an expired or invalid one"),
    403: error("the token's role lacks the permission, or the CSRF check failed"),
    422: unprocessable("the request does not match the schema, or a value is not acceptable"),
}


# ---- handlers --------------------------------------------------------------------------------


def _printable(text: str) -> str:
    # Lone surrogates from a hostile body cannot be encoded as UTF-8; escape them instead.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def field_names(errors: list[dict[str, Any]]) -> list[str]:
    return [".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in errors]


def _unprocessable_response(errors: list[dict[str, Any]]) -> JSONResponse:
    clean = [
        {
            "loc": [_printable(p) if isinstance(p, str) else p for p in e.get("loc", ())],
            "msg": _printable(str(e.get("msg", ""))),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    return JSONResponse({"detail": clean, "fields": field_names(clean)}, status_code=422)


async def service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, Invalid):
        return _unprocessable_response(exc.errors)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers())


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 without the echoed ``input``.

    The standard handler sends every invalid value back. That leaks what must never come back
    (a password or feed PIN that failed validation) and fails with a 500 on values JSON cannot
    hold (a lone surrogate, ``NaN``). Where (``loc``) and what was wrong (``msg``, ``type``)
    are what a caller needs.
    """
    assert isinstance(exc, RequestValidationError)
    return _unprocessable_response(list(exc.errors()))


# What FastAPI answers (as a 400) when a body cannot even be decoded: JSON that is not UTF-8,
# a broken multipart or form body. Undocumented on every route, and unlike its sibling (JSON
# that does not parse: a 422 json_invalid) it does not say where: answered as a 422 below.
_BODY_PARSE_ERROR = "There was an error parsing the body"


async def body_parse_error_handler(request: Request, exc: Exception) -> Response:
    """A body FastAPI could not decode is a 422 naming the body, like malformed JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
        # Starlette answers a broken form upload with a bare 400; it is a body that cannot be
        # read, like malformed JSON: the same 422 naming the body.
        msg = f"the multipart/form body could not be read: {exc.detail}"
        return _unprocessable_response([problem(("body",), msg, "body_invalid")])
    if exc.status_code != 400 or exc.detail != _BODY_PARSE_ERROR:
        return await http_exception_handler(request, exc)
    content_type = request.headers.get("content-type", "").split(";")[0].strip() or "none"
    if isinstance(exc.__cause__, UnicodeDecodeError):
        msg = "the body is not valid JSON text: it must be UTF-8 encoded"
    else:
        msg = f"the body could not be decoded as the declared content type ({content_type})"
    return _unprocessable_response([problem(("body",), msg, "body_invalid")])


async def redis_error_handler(request: Request, exc: Exception) -> Response:
    # What needs Redis inside a request (login throttling, dedup) fails closed, as a clear 503.
    log.warning("redis unavailable during %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse({"detail": "Redis is unavailable; try again shortly"}, 503)


DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"
DATABASE_RETRY_AFTER_S = 5


async def database_error_handler(request: Request, exc: Exception) -> Response:
    # A read or write during a database outage answers at once with what is wrong (the engine
    # connects with a timeout), instead of a bare 500 or a hang: clients and nginx retry.
    if not database_unreachable(exc):
        log.exception("database error during %s", request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, 500)
    log.warning("database unavailable during %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE},
        503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, body_parse_error_handler)
    app.add_exception_handler(RedisError, redis_error_handler)
    for kind in (DBAPIError, PoolTimeout, ConnectionError, PostgresConnectionError):
        app.add_exception_handler(kind, database_error_handler)
