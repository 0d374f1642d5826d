"""SAME header model: parse, validate, format and describe.

Header layout (47 CFR 11.31(c))::

    ZCZC-ORG-EEE-PSSCCC(-PSSCCC ... up to 31)+TTTT-JJJHHMM-LLLLLLLL-

Strict by default (what the station sends):

* ``ORG`` one of PEP, CIV, WXR, EAS;
* ``EEE`` one of the event codes of :mod:`eas_schemas.same_codes`;
* 1 to 31 location codes ``PSSCCC``: ``P`` digit 0-9, ``SS`` ``00`` (national), a state or
  territory FIPS code, or an NWS marine area; ``CCC`` three digits (``000`` = whole state);
  ``SS`` = ``00`` requires ``CCC`` = ``000``;
* ``TTTT`` purge time HHMM in the standard steps: 15-minute steps up to one hour
  (0015, 0030, 0045, 0100) and 30-minute steps beyond (0130 ... 9930);
* ``JJJHHMM`` day-of-year 001-366, hour 00-23, minute 00-59 (UTC);
* ``LLLLLLLL`` exactly 8 printable ASCII characters, no ``-``, then the final ``-``.

A strictly parsed header has no deviations (except ``purge_step`` when
``lenient_duration=True`` lets one through).

``lenient=True`` (what the station receives) also accepts every header whose meaning is
unambiguous although it breaks the letter of the rule, and names each deviation (the names
and their plain-language text are :data:`eas_schemas.same_codes.DEVIATIONS`):

* ``callsign_length``: a callsign of 1 to 7 characters ended by ``-`` (no padding);
* ``callsign_characters``: printable characters other than ``A-Z 0-9 / space``;
* ``purge_step``: any HHMM purge time with MM <= 59 off the legal steps (``+0010``, ``+0000``);
* ``missing_trailing_dash``: 8 callsign characters and no final ``-``;
* ``location_count``: 32 to :data:`MAX_LENIENT_LOCATIONS` locations;
* ``unknown_county``: a county part that is not in the FIPS tables (state part known);
* ``unknown_event``: three capital letters that are not in the event table.

Never accepted: no ``ZCZC-``, an unknown originator, an event that is not three capital
letters, non-printable or non-ASCII characters, fields that cannot be split, a location that
is not six digits or names no state, a time that does not exist, an empty callsign, and a
callsign shorter than 8 without its dash (indistinguishable from a header cut off there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import codes

__all__ = [
    "MAX_LENIENT_LOCATIONS",
    "MAX_LOCATIONS",
    "SameHeader",
    "SameHeaderError",
    "describe_location",
    "format_header",
    "header_length",
    "parse_header",
    "resolve_issue_time",
    "validate_duration",
]

MAX_LOCATIONS = 31
#: Most locations a leniently parsed header may carry (twice the limit of 11.31; beyond
#: that a run of digits is far more likely noise than a real list).
MAX_LENIENT_LOCATIONS = 62

_HEADER_RE = re.compile(
    r"ZCZC-(?P<org>[^-]{3})-(?P<event>[^-]{3})-(?P<locs>[^+]*)\+(?P<dur>[^-]{4})"
    r"-(?P<issued>[^-]{7})-(?P<callsign>[^-]{8})-"
)
# Lenient: the callsign may be 1-7 characters before its dash, or 8 without one.
_LENIENT_RE = re.compile(
    r"ZCZC-(?P<org>[^-]{3})-(?P<event>[^-]{3})-(?P<locs>[^+]*)\+(?P<dur>[^-]{4})"
    r"-(?P<issued>[^-]{7})-(?:(?P<callsign>[^-]{1,8})-|(?P<undashed>[^-]{8}))"
)
_LOC_RE = re.compile(r"\d{6}")
_EVENT_RE = re.compile(r"[A-Z]{3}")
_EXPECTED_CALLSIGN_RE = re.compile(r"[A-Z0-9/ ]*")
_LEGAL_STEPS = frozenset(
    ["0015", "0030", "0045"] + [f"{h:02d}{m:02d}" for h in range(1, 100) for m in (0, 30)]
)


class SameHeaderError(ValueError):
    """A SAME header that does not parse or does not validate; ``str()`` is the reason."""


def header_length(n_locations: int) -> int:
    """Number of characters of a header with ``n_locations`` location codes."""
    return 35 + 7 * n_locations


def is_legal_purge_step(text: str) -> bool:
    """Whether a TTTT field is one of the steps 11.31(c) allows."""
    return text in _LEGAL_STEPS


def validate_duration(text: str, *, lenient: bool = False) -> timedelta:
    """Return the purge duration of a ``TTTT`` field, raising on invalid values."""
    if len(text) != 4 or not text.isdigit() or not text.isascii():
        raise SameHeaderError(f"purge time {text!r} is not four digits (HHMM)")
    hh, mm = int(text[:2]), int(text[2:])
    if mm > 59:
        raise SameHeaderError(f"purge time {text!r} has minutes above 59")
    # One rule for what sends and what is strict: the same steps a receiver notes as
    # ``purge_step`` when they are off them.
    if not lenient and not is_legal_purge_step(text):
        if hh == 0:
            raise SameHeaderError(
                f"purge time {text!r} is not a 15-minute step (0015, 0030, 0045) below one hour"
            )
        raise SameHeaderError(
            f"purge time {text!r} is not a 30-minute step (MM 00 or 30) above one hour"
        )
    return timedelta(hours=hh, minutes=mm)


def _validate_location(code: str) -> None:
    if not _LOC_RE.fullmatch(code) or not code.isascii():
        raise SameHeaderError(f"location code {code!r} is not six digits (PSSCCC)")
    ss, ccc = code[1:3], code[3:]
    if not codes.valid_state_code(ss):
        raise SameHeaderError(f"location code {code!r}: {ss!r} is not a state FIPS code")
    if ss == "00" and (ccc != "000"):
        raise SameHeaderError(f"location code {code!r}: national code must be 000000")


def _validate_issued(text: str) -> tuple[int, int, int]:
    if len(text) != 7 or not text.isdigit() or not text.isascii():
        raise SameHeaderError(f"issue time {text!r} is not seven digits (JJJHHMM)")
    day, hh, mm = int(text[:3]), int(text[3:5]), int(text[5:])
    if not 1 <= day <= 366:
        raise SameHeaderError(f"issue time {text!r}: day of year {day} is not 001-366")
    if hh > 23:
        raise SameHeaderError(f"issue time {text!r}: hour {hh} is not 00-23")
    if mm > 59:
        raise SameHeaderError(f"issue time {text!r}: minute {mm} is not 00-59")
    return day, hh, mm


def _validate_callsign(text: str, *, lenient: bool = False) -> None:
    # Its characters are checked with the whole header's (printable ASCII) and by the form
    # (no '-'); here only its length.
    if len(text) != 8 and not (lenient and 1 <= len(text) < 8):
        raise SameHeaderError(f"callsign {text!r} is not 8 characters")


def _issue_datetime(year: int, day: int, hour: int, minute: int) -> datetime:
    last = 366 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 365
    if day > last:
        raise SameHeaderError(f"day of year {day} does not exist in {year}")
    return datetime(year, 1, 1, hour, minute, tzinfo=UTC) + timedelta(days=day - 1)


def resolve_issue_time(day: int, hour: int, minute: int, now: datetime) -> datetime:
    """Issue time for ``JJJHHMM`` received at ``now``: the candidate in the previous, the
    current or the next year nearest to ``now`` (so day 365 decoded on 1 January maps to
    the previous year)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    best: datetime | None = None
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            cand = _issue_datetime(year, day, hour, minute)
        except SameHeaderError:
            continue
        if best is None or abs(cand - now) < abs(best - now):
            best = cand
    assert best is not None  # day <= 366 always exists in one of three consecutive years
    return best


@dataclass(frozen=True, slots=True)
class SameHeader:
    """A validated SAME header. Build it with :func:`parse_header` or :meth:`create`."""

    originator: str
    event: str
    locations: tuple[str, ...]
    duration: str  # TTTT as sent, HHMM
    issued_text: str  # JJJHHMM as sent
    callsign: str  # as sent: 8 characters, or 1-7 in a leniently parsed header
    raw: str = field(compare=False)
    #: how the header breaks the letter of 11.31 (empty for a standard header), in the
    #: order of :data:`eas_schemas.same_codes.DEVIATIONS`
    deviations: tuple[str, ...] = field(default=(), compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        *,
        originator: str,
        event: str,
        locations: list[str] | tuple[str, ...],
        duration: str,
        issued: str | datetime,
        callsign: str,
        lenient_duration: bool = False,
    ) -> SameHeader:
        """Build and validate a header from fields. ``callsign`` shorter than 8 characters is
        padded with spaces; ``issued`` may be a datetime (converted to UTC JJJHHMM). Always
        standard except for a purge time off the steps with ``lenient_duration``."""
        if isinstance(issued, datetime):
            if issued.tzinfo is None:
                issued = issued.replace(tzinfo=UTC)
            issued = issued.astimezone(UTC).strftime("%j%H%M")
        if len(callsign) > 8:
            raise SameHeaderError(f"callsign {callsign!r} is longer than 8 characters")
        text = (
            f"ZCZC-{originator}-{event}-{'-'.join(locations)}+{duration}-{issued}-"
            f"{callsign.ljust(8)}-"
        )
        return parse_header(text, lenient_duration=lenient_duration)

    # ------------------------------------------------------------------ properties
    @property
    def text(self) -> str:
        return format_header(self)

    @property
    def deviation_texts(self) -> list[str]:
        """Plain-language text of each deviation, in order."""
        return [codes.deviation_text(d) for d in self.deviations]

    @property
    def purge_duration(self) -> timedelta:
        return validate_duration(self.duration, lenient=True)

    @property
    def issue_day(self) -> int:
        return int(self.issued_text[:3])

    @property
    def issue_hour(self) -> int:
        return int(self.issued_text[3:5])

    @property
    def issue_minute(self) -> int:
        return int(self.issued_text[5:])

    @property
    def originator_name(self) -> str:
        return codes.ORIGINATORS[self.originator]

    @property
    def event_name(self) -> str:
        return codes.event_name(self.event)

    @property
    def is_national(self) -> bool:
        return self.event in codes.NATIONAL_EVENTS

    # ------------------------------------------------------------------ times
    def issued_at(self, year: int) -> datetime:
        """Issue time (UTC, timezone-aware) for a given year."""
        return _issue_datetime(year, self.issue_day, self.issue_hour, self.issue_minute)

    def purge_at(self, year: int) -> datetime:
        """Purge (expiry) time: issue time + TTTT (HHMM, not minutes)."""
        return self.issued_at(year) + self.purge_duration

    def issued_near(self, now: datetime) -> datetime:
        """Issue time resolved against a reference "now" (see :func:`resolve_issue_time`)."""
        return resolve_issue_time(self.issue_day, self.issue_hour, self.issue_minute, now)

    def purge_near(self, now: datetime) -> datetime:
        return self.issued_near(now) + self.purge_duration

    # ------------------------------------------------------------------ description
    def describe(self, *, now: datetime | None = None, year: int | None = None) -> str:
        """Plain-language text in the style of EAS decoder displays."""
        event = self.event_name
        article = "an" if event[:1].upper() in "AEIOU" else "a"
        areas = "; ".join(describe_location(loc) for loc in self.locations)
        start: datetime | None = None
        if now is not None:
            start = self.issued_near(now)
        elif year is not None:
            start = self.issued_at(year)
        if start is not None:
            end = start + self.purge_duration
            when = (
                f"beginning at {_clock(start)} on {_date(start)} and ending at "
                f"{_clock(end)} on {_date(end)} (UTC)"
            )
        else:
            t0 = timedelta(hours=self.issue_hour, minutes=self.issue_minute)
            t1 = t0 + self.purge_duration
            when = (
                f"beginning at {_clock_td(t0)} and ending at {_clock_td(t1)} (UTC) "
                f"(day {self.issue_day:03d}, valid for {_hhmm_words(self.purge_duration)})"
            )
        phrase = codes.ORIGINATOR_PHRASES[self.originator]
        return (
            f"{phrase} {article} {event} for {areas}; {when}. "
            f"Message from {self.callsign.rstrip()}."
        )

    def to_dict(self, *, now: datetime | None = None) -> dict[str, Any]:
        """JSON-serializable structured form (times resolved against ``now`` if given)."""
        out: dict[str, Any] = {
            "raw": self.raw,
            "text": self.text,
            "originator": self.originator,
            "originator_name": self.originator_name,
            "event": self.event,
            "event_name": self.event_name,
            "locations": list(self.locations),
            "duration": self.duration,
            "duration_minutes": int(self.purge_duration.total_seconds() // 60),
            "issued_jjjhhmm": self.issued_text,
            "callsign": self.callsign,
            "deviations": list(self.deviations),
        }
        if now is not None:
            out["issued"] = self.issued_near(now).isoformat()
            out["purge_at"] = self.purge_near(now).isoformat()
        return out


def _clock(t: datetime) -> str:
    return _clock_words(t.hour, t.minute)


def _clock_td(td: timedelta) -> str:
    minutes = int(td.total_seconds() // 60) % (24 * 60)
    return _clock_words(*divmod(minutes, 60))


def _clock_words(hh: int, mm: int) -> str:
    """A 24-hour time on the 12-hour clock a listener reads: 0:05 is 12:05 AM, 12:00 noon PM."""
    return f"{hh % 12 or 12}:{mm:02d} {'AM' if hh < 12 else 'PM'}"


def _date(t: datetime) -> str:
    return f"{t.strftime('%A')}, {t.strftime('%B')} {t.day}, {t.year}"


def _hhmm_words(td: timedelta) -> str:
    minutes = int(td.total_seconds() // 60)
    hh, mm = divmod(minutes, 60)
    parts = []
    if hh:
        parts.append(f"{hh} hour{'s' if hh != 1 else ''}")
    if mm or not hh:
        parts.append(f"{mm} minute{'s' if mm != 1 else ''}")
    return " ".join(parts)


def describe_location(code: str) -> str:
    """Plain-language name of a PSSCCC location code (``Cuyahoga County, OH``)."""
    p, ss, ccc = code[0], code[1:3], code[3:]
    if ss == "00":
        return "the United States"
    sub = codes.SUBDIVISIONS.get(p, "")
    prefix = f"{sub.lower()} " if sub else ""
    if ss in codes.MARINE_AREAS:
        return f"{prefix}marine area {code} ({codes.MARINE_AREAS[ss]})"
    state = codes.states().get(ss)
    if state is None:
        return f"area {code}"
    abbr, name = state
    if ccc == "000":
        return f"{prefix}all of {name}" if not sub else f"{prefix}{name}"
    county = codes.counties().get(ss + ccc)
    if county is None:
        return f"{prefix}area {code} ({abbr})"
    return f"{prefix}{county}, {abbr}"


def parse_header(text: str, *, lenient: bool = False, lenient_duration: bool = False) -> SameHeader:
    """Parse and validate a complete header (``ZCZC-...-LLLLLLLL-``). Raises
    :class:`SameHeaderError` with the reason on any invalid field.

    ``lenient=True`` accepts the deviations listed in the module docstring and names them
    in :attr:`SameHeader.deviations`; ``lenient_duration=True`` accepts only a purge time off
    the legal steps (named ``purge_step`` too)."""
    if not text.startswith("ZCZC-"):
        raise SameHeaderError("header does not start with 'ZCZC-'")
    if not text.isascii():
        raise SameHeaderError("header contains non-ASCII characters")
    bad = next((ch for ch in text if not ch.isprintable()), None)
    if bad is not None:
        raise SameHeaderError(f"header contains an invalid character {bad!r} (not printable)")
    m = (_LENIENT_RE if lenient else _HEADER_RE).fullmatch(text)
    if m is None:
        raise SameHeaderError(
            "header does not have the form ZCZC-ORG-EEE-PSSCCC(-PSSCCC)+TTTT-JJJHHMM-LLLLLLLL-"
        )
    deviations: set[str] = set()
    org, event = m["org"], m["event"]
    if org not in codes.ORIGINATORS:
        raise SameHeaderError(f"originator {org!r} is not one of PEP, CIV, WXR, EAS")
    if event not in codes.EVENTS:
        if not (lenient and _EVENT_RE.fullmatch(event)):
            raise SameHeaderError(f"event code {event!r} is not a known SAME event code")
        deviations.add("unknown_event")
    locs = tuple(m["locs"].split("-")) if m["locs"] else ()
    most = MAX_LENIENT_LOCATIONS if lenient else MAX_LOCATIONS
    if not 1 <= len(locs) <= most:
        raise SameHeaderError(f"{len(locs)} location codes; 1 to {MAX_LOCATIONS} are allowed")
    if len(locs) > MAX_LOCATIONS:
        deviations.add("location_count")
    for loc in locs:
        _validate_location(loc)
        # Strict parsing has never checked counties (the origination API does, with the same
        # table); only a receiver notes them.
        if lenient and not codes.county_exists(loc):
            deviations.add("unknown_county")
    validate_duration(m["dur"], lenient=lenient or lenient_duration)
    if not is_legal_purge_step(m["dur"]):
        deviations.add("purge_step")
    _validate_issued(m["issued"])
    callsign = m["callsign"] if m["callsign"] is not None else m["undashed"]
    _validate_callsign(callsign, lenient=lenient)
    if len(callsign) < 8:
        deviations.add("callsign_length")
    # 11.31(c) asks only for the participant's identification: any printable character but
    # '-' is legal, and a receiver notes the unusual ones.
    if lenient and not _EXPECTED_CALLSIGN_RE.fullmatch(callsign):
        deviations.add("callsign_characters")
    if m["callsign"] is None:
        deviations.add("missing_trailing_dash")
    return SameHeader(
        originator=org,
        event=event,
        locations=locs,
        duration=m["dur"],
        issued_text=m["issued"],
        callsign=callsign,
        raw=text,
        deviations=tuple(d for d in codes.DEVIATIONS if d in deviations),
    )


def format_header(h: SameHeader) -> str:
    """The header as sent (for a standard header, the standard text)."""
    end = "" if "missing_trailing_dash" in h.deviations else "-"
    return (
        f"ZCZC-{h.originator}-{h.event}-{'-'.join(h.locations)}+{h.duration}-"
        f"{h.issued_text}-{h.callsign}{end}"
    )
