"""The station log: every message received (CAP and on air), every decision and its reasons,
every origination and required test, and every playout result per output, with who acted.

Entries are hash-chained and signed (``servicekit.hashchain``, key file outside the database)
and written in the transaction of what they record: a decision committed has its entry
committed with it, a rolled-back one has none. The chain's head is taken last in each of
those transactions (``StationLog.write`` is called at their end), so lock order is the same
everywhere and concurrent writers — two replicas — take turns instead of forking the chain.

Reads: filtered pages (newest first, with a total), CSV, a printable month (PDF, fpdf2), and
``verify`` (intact, or the first broken link and why). Retention (station settings
``retention.station_log_days``) prunes the oldest entries behind a signed anchor.
"""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audio_control import repository as repo
from audio_control.services.station import StationView
from audio_control.tables import STATION_LOG_FIELDS, chain_heads, station_log
from eas_schemas.clock import utcnow
from eas_schemas.envelope import EventEnvelope
from eas_schemas.playout_events import PlayoutEvent
from eas_schemas.relay_events import DecisionState, RelayDecisionEvent
from eas_schemas.streams import PLAYOUT_EVENTS, StreamSpec
from servicekit.hashchain import ChainKey, HashChain, Verification

CHAIN = "station-log"


class LogKind(StrEnum):
    RECEIVED_CAP = "received_cap"  # a CAP message reached the station
    RECEIVED_AIR = "received_air"  # a SAME header was heard on a monitored input
    DECISION = "decision"  # a relay decision changed (state, reasons, message)
    RELAYED = "relayed"  # a relay decision's message aired
    ORIGINATED = "originated"  # an operator composed or sent a message of the station's own
    TEST = "test"  # a scheduled required test: originated, missed (with why) or failed
    PLAYOUT = "playout"  # queued, started, finished, interrupted, failed, cancelled
    OPERATOR = "operator"  # an operator confirmed, rejected or forwarded a decision


Entry = dict[str, Any]

CSV_COLUMNS = (
    "seq",
    "at",
    "kind",
    "summary",
    "originator",
    "event_code",
    "locations",
    "header",
    "decision_state",
    "reasons",
    "output",
    "result",
    "actor",
    "alert_id",
    "decision_id",
    "message_id",
    "item_id",
    "detail",
    "hash",
)


def entry(
    kind: LogKind,
    summary: str,
    *,
    at: datetime | None = None,
    originator: str | None = None,
    event_code: str | None = None,
    locations: Sequence[str] = (),
    header: str | None = None,
    decision_state: str | None = None,
    reasons: str | None = None,
    output: str | None = None,
    result: Mapping[str, Any] | None = None,
    actor: str | None = None,
    alert_id: int | None = None,
    decision_id: int | None = None,
    message_id: int | None = None,
    item_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Entry:
    """One log entry's columns (what the chain's hash covers)."""
    values: Entry = {
        "at": at or utcnow(),
        "kind": kind.value,
        "summary": summary[:2000],
        "originator": originator,
        "event_code": event_code,
        "locations": json.dumps(list(locations)),
        "header": header,
        "decision_state": decision_state,
        "reasons": reasons,
        "output": output,
        "result": json.dumps(dict(result), sort_keys=True, default=str) if result else None,
        "actor": actor,
        "alert_id": alert_id,
        "decision_id": decision_id,
        "message_id": message_id,
        "item_id": item_id,
        "detail": json.dumps(dict(detail or {}), sort_keys=True, default=str),
    }
    return values


def header_parts(header: str | None) -> tuple[str | None, str | None, list[str]]:
    """(originator, event, locations) of a ``ZCZC-ORG-EEE-PSSCCC...+TTTT-...`` header."""
    if not header or not header.startswith("ZCZC-") or "+" not in header:
        return None, None, []
    parts = header.split("+", 1)[0].split("-")
    if len(parts) < 4:
        return None, None, []
    return parts[1], parts[2], parts[3:]


def _reasons(event: RelayDecisionEvent) -> str:
    failed = [f"{c.rule}: {c.detail}" for c in event.checks if not c.passed]
    return " ".join([event.reason, *(f"[{f}]" for f in failed)])


def decision_entry(
    event: RelayDecisionEvent, kind: LogKind | None = None, actor: str | None = None
) -> Entry:
    if kind is None:
        kind = LogKind.RELAYED if event.state is DecisionState.AIRED else LogKind.DECISION
    what = event.header or f"{event.event_name} ({event.event_code or 'no SAME code'})"
    return entry(
        kind,
        f"Decision {event.decision_id} {event.state.value}: {what}",
        at=event.decided_at,
        originator=event.originator,
        event_code=event.event_code,
        locations=event.locations,
        header=event.header,
        decision_state=event.state.value,
        reasons=_reasons(event),
        actor=actor or event.actor,
        alert_id=event.alert_id,
        decision_id=event.decision_id,
        message_id=event.message_id,
        detail={
            "revision": event.revision,
            "action": event.action.value,
            "source": event.source.value,
            "alert_identifier": event.alert_identifier,
            "heard_event_id": event.heard_event_id,
            "relay_at": event.relay_at,
            "purge_at": event.purge_at,
            "precedence_class": event.precedence_class.value,
        },
    )


def received_entry(
    event: RelayDecisionEvent, source: str, heard: str | None, merged: bool
) -> Entry:
    """The input a decision was made from, with the decision it got."""
    kind = LogKind.RECEIVED_CAP if source == "cap" else LogKind.RECEIVED_AIR
    where = "by CAP" if source == "cap" else "on air"
    joined = f"joined decision {event.decision_id}" if merged else "decided"
    values = decision_entry(event, kind)
    values["summary"] = (
        f"Received {where}: {event.event_name} ({event.event_code or 'no SAME code'}) from "
        f"{event.originator or '?'}, {joined}: {event.state.value}"
    )
    if heard:
        detail = json.loads(values["detail"])
        detail["heard_header"] = heard
        values["detail"] = json.dumps(detail, sort_keys=True, default=str)
    return values


def playout_entry(event: PlayoutEvent, etype: str) -> Entry:
    originator, _, locations = header_parts(event.header)
    on = f" on {event.output}" if event.output else ""
    verb = etype.removeprefix("playout.")
    result = (
        {
            "state": event.state.value,
            "output_kind": event.output_kind,
            "duration_s": f"{event.duration_s:.3f}" if event.duration_s is not None else None,
            **{k: v for k, v in event.detail.items() if not isinstance(v, float)},
            **{k: f"{v:.3f}" for k, v in event.detail.items() if isinstance(v, float)},
        }
        if event.output
        else None
    )
    return entry(
        LogKind.PLAYOUT,
        f"Item {event.item_id} {verb}{on}: {event.header}",
        at=event.at,
        originator=originator,
        event_code=event.event_code,
        locations=locations,
        header=event.header,
        reasons=event.reason,
        output=event.output,
        result=result,
        actor=event.actor,
        decision_id=event.decision_id,
        message_id=event.message_id,
        item_id=event.item_id,
        detail={"type": etype, "precedence_class": event.precedence_class.value},
    )


def playout_entries(items: Sequence[tuple[StreamSpec, EventEnvelope[Any]]]) -> list[Entry]:
    """Entries for the ``playout.*`` events among outbox items (queued, cancelled)."""
    out: list[Entry] = []
    for stream, envelope in items:
        if stream is PLAYOUT_EVENTS and isinstance(envelope.data, PlayoutEvent):
            out.append(playout_entry(envelope.data, envelope.type))
    return out


def _csv_safe(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection); reasons
    # and headers carry text from outside the station.
    if text and text[0] in "=+-@\t\r":
        text = "'" + text
    return text


class StationLog:
    def __init__(self, engine: AsyncEngine, key: ChainKey, station: StationView) -> None:
        self.engine = engine
        self.station = station
        self.chain = HashChain(CHAIN, station_log, chain_heads, key, STATION_LOG_FIELDS)

    # ---- writing (inside the caller's transaction, at its end) --------------------------

    async def write(self, conn: AsyncConnection, entries: Sequence[Entry]) -> None:
        for values in entries:
            await self.chain.append(conn, values)

    async def prune(self, now: datetime | None = None) -> int:
        if self.station.version == 0:
            # The station's retention is not known yet; the default must not delete what a
            # longer setting would keep.
            return 0
        days = self.station.settings.retention.station_log_days
        cutoff = (now or utcnow()) - timedelta(days=days)
        async with self.engine.begin() as conn:
            return await self.chain.prune(conn, station_log.c.at < cutoff)

    # ---- reading -----------------------------------------------------------------------

    async def page(
        self, f: repo.LogFilter, before_seq: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int, str | None]:
        async with self.engine.connect() as conn:
            rows = await repo.list_log(conn, f, before_seq, limit + 1)
            total = await repo.count_log(conn, f)
        more, rows = len(rows) > limit, list(rows[:limit])
        cursor = repo.encode_cursor(int(rows[-1].seq)) if more else None
        return [_row_dict(r) for r in rows], total, cursor

    async def csv_chunks(self, f: repo.LogFilter, page: int = 1000) -> AsyncIterator[str]:
        """The filtered log as CSV, oldest first, a page at a time (no session between)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        after: int | None = None
        while True:
            async with self.engine.connect() as conn:
                rows = await repo.log_in_order(conn, f, after, page)
            for r in rows:
                m = r._mapping
                writer.writerow([_csv_safe(m[c]) for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < page:
                return
            after = int(rows[-1].seq)

    async def verify(self) -> Verification:
        return await self.chain.verify(self.engine)

    async def month_pdf(self, year: int, month: int) -> bytes:
        """The printable station log of one month (in the station's time zone)."""
        identity = self.station.settings.identity
        zone = ZoneInfo(identity.timezone)
        start = datetime(year, month, 1, tzinfo=zone)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
        f = repo.LogFilter(since=start, until=end)
        rows: list[Any] = []
        after: int | None = None
        async with self.engine.connect() as conn:
            while True:
                batch = await repo.log_in_order(conn, f, after, 2000)
                rows.extend(batch)
                if len(batch) < 2000:
                    break
                after = int(batch[-1].seq)
        verdict = await self.verify()
        title = f"{calendar.month_name[month]} {year}"
        station = f"{identity.name} ({identity.callsign})"
        # fpdf2 is CPU-bound Python: off the event loop.
        return await asyncio.to_thread(_render_pdf, station, title, zone, rows, verdict)


def _row_dict(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {
        "seq": int(m["seq"]),
        "at": m["at"],
        "kind": m["kind"],
        "summary": m["summary"],
        "originator": m["originator"],
        "event_code": m["event_code"],
        "locations": json.loads(m["locations"]),
        "header": m["header"],
        "decision_state": m["decision_state"],
        "reasons": m["reasons"],
        "output": m["output"],
        "result": json.loads(m["result"]) if m["result"] else None,
        "actor": m["actor"],
        "alert_id": m["alert_id"],
        "decision_id": m["decision_id"],
        "message_id": m["message_id"],
        "item_id": m["item_id"],
        "detail": json.loads(m["detail"]),
        "hash": m["hash"],
    }


# ---- the printed log -------------------------------------------------------------------------


def _latin1(text: str | None) -> str:
    # The PDF's core fonts are Latin-1: anything else prints as '?' rather than failing.
    return (text or "").encode("latin-1", "replace").decode("latin-1")


class _LogPdf(FPDF):
    def __init__(self, station: str, title: str) -> None:
        super().__init__(orientation="landscape", unit="mm", format="letter")
        self.station, self.title_text = station, title
        self.set_auto_page_break(auto=True, margin=12)
        self.set_title(_latin1(f"Station log {title} - {station}"))
        self.set_creator("EAS Station")

    def header(self) -> None:
        self.set_font("Helvetica", "B", 11)
        self.cell(
            0,
            6,
            _latin1(f"EAS station log - {self.station} - {self.title_text}"),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.ln(1)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font("Helvetica", "", 7)
        self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="R")


def _render_pdf(
    station: str, title: str, zone: ZoneInfo, rows: Sequence[Any], verdict: Verification
) -> bytes:
    pdf = _LogPdf(station, title)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", "", 8)
    intact = (
        f"intact ({verdict.count} entries, {verdict.first_seq}-{verdict.last_seq})"
        if verdict.intact
        else f"BROKEN at entry {verdict.broken.seq if verdict.broken else '?'}: "
        f"{verdict.broken.detail if verdict.broken else ''}"
    )
    pdf.multi_cell(
        0,
        4,
        _latin1(
            f"Times are local ({zone.key}). {len(rows)} entries this month. Hash chain when "
            f"printed: {intact}; signing key {verdict.key_id}."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(2)
    widths = (12, 30, 22, 14, 12, 118, 24, 27)
    with pdf.table(
        col_widths=widths, text_align="LEFT", line_height=3.6, first_row_as_headings=True
    ) as table:
        head = table.row()
        for name in ("Seq", "Date/time", "Kind", "Event", "Org", "What", "Output", "Who"):
            head.cell(name)
        for r in rows:
            m = r._mapping
            result = json.loads(m["result"]) if m["result"] else {}
            what = m["summary"]
            if m["reasons"] and m["kind"] != LogKind.PLAYOUT.value:
                what = f"{what}\n{m['reasons']}"
            output = m["output"] or ""
            if result.get("state"):
                output = f"{output}: {result['state']}"
            cells = (
                str(m["seq"]),
                m["at"].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                m["kind"],
                m["event_code"] or "",
                m["originator"] or "",
                what[:1500],
                output,
                m["actor"] or "",
            )
            row = table.row()
            for text in cells:
                row.cell(_latin1(text))
    return bytes(pdf.output())
