"""SAME code tables, as the decoder and header parser use them.

The table itself lives in :mod:`eas_schemas.same_codes` (one table for the decoder, every
API, the relay rules and the dashboard); this module only names it for ``eas_same``.
"""

from __future__ import annotations

from eas_schemas.same_codes import (
    DEVIATIONS,
    EVENT_CODES,
    EVENT_TABLE,
    MARINE_AREAS,
    NATIONAL_EVENTS,
    ORIGINATOR_PHRASES,
    ORIGINATORS,
    SUBDIVISIONS,
    TEST_EVENTS,
    counties,
    county_exists,
    deviation_text,
    event_name,
    states,
    valid_state_code,
)

#: Every event code the decoder accepts (code -> name).
EVENTS = EVENT_CODES

__all__ = [
    "DEVIATIONS",
    "EVENTS",
    "EVENT_CODES",
    "EVENT_TABLE",
    "MARINE_AREAS",
    "NATIONAL_EVENTS",
    "ORIGINATORS",
    "ORIGINATOR_PHRASES",
    "SUBDIVISIONS",
    "TEST_EVENTS",
    "counties",
    "county_exists",
    "deviation_text",
    "event_name",
    "states",
    "valid_state_code",
]
