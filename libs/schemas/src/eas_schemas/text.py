"""Field types for what clients send: text PostgreSQL can store and compare as given, times
it can hold. One definition for every service's request models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\t\n\r]")


def clean_text(value: str) -> str:
    """No NUL or other control characters (PostgreSQL text refuses NUL), no lone surrogates
    (they cannot be encoded as UTF-8 on the way to the database)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (such as NUL)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    return value


def one_line(value: str) -> str:
    value = clean_text(value)
    if _LINE_BREAKS.search(value):
        raise ValueError("must be one line (no line breaks or tabs)")
    return value


def utc_time(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("time is outside the representable range once converted to UTC") from exc


# Free text (comments, narration): line breaks and tabs allowed, other control characters not.
CleanText = Annotated[str, AfterValidator(clean_text)]
# Names, filters, identifiers, notes: one line.
OneLine = Annotated[str, AfterValidator(one_line)]
# An ISO 8601 time with an offset, converted to UTC (a 422 if that leaves the calendar).
UtcTime = Annotated[AwareDatetime, AfterValidator(utc_time)]
