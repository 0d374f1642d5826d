"""HTTP endpoints under /api/audio. Thin: validate, call the service, answer."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audio_control import repository as repo
from audio_control.rules import precedence_of
from audio_control.schemas import (
    MAX_TEXT,
    OUTPUT_NAME,
    DecisionPage,
    DecisionStateQuery,
    LogEntryOut,
    LogPage,
    MessageOut,
    MessagePage,
    OperatorNote,
    OriginationIn,
    OutputIn,
    OutputOut,
    OutputUpdate,
    Source,
    StateFilter,
    TestIn,
)
from audio_control.services.decisions import RelayService
from audio_control.services.messages import MessageService, Origination
from audio_control.services.outputs import OutputService
from audio_control.services.playout import PlayoutService
from audio_control.services.station_log import LogKind, StationLog
from eas_schemas.clock import utcnow
from eas_schemas.playout_events import CommandKind, PlayoutEvent, PlayoutReply
from eas_schemas.relay_events import OPEN_STATES, RelayDecisionEvent
from eas_schemas.same_codes import SameEventCode
from eas_schemas.station_settings import Originator
from eas_schemas.text import OneLine, UtcTime
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import (
    COMMON_RESPONSES,
    BadRequest,
    Conflict,
    Invalid,
    Responses,
    TooLarge,
    error,
)
from servicekit.hashchain import VerificationOut

router = APIRouter(prefix="/api/audio", tags=["audio"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.AUDIO_READ))]
Writer = Annotated[Principal, Depends(require(Permission.AUDIO_WRITE))]
Confirmer = Annotated[Principal, Depends(require(Permission.RELAY_CONFIRM))]
# Outputs and their keying are station configuration (what goes on which transmitter): the
# settings permission (admins), like the station settings themselves; reading them is audio's.
Configurer = Annotated[Principal, Depends(require(Permission.SETTINGS_WRITE))]
DecisionId = Annotated[int, Path(ge=1, le=2**62, description="relay decision id")]
MessageId = Annotated[int, Path(ge=1, le=2**62, description="EAS message id")]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=64, description="next_cursor of the last page")]

_NOT_FOUND: Responses = {404: error("no such decision")}
_STATE_CONFLICT: Responses = {409: error("the decision is not in a state that allows it")}
_CREATED: Responses = {
    201: {"headers": {"Location": {"description": "the message", "schema": {"type": "string"}}}},
    409: error("the station's area is not configured, or the text could not be spoken"),
}

RMT_SCRIPT = (
    "This is a test of the Emergency Alert System by {station}. This is only a test. "
    "Equipment that can quickly warn you during emergencies is being tested. *** If this had "
    "been an actual emergency, official messages would have followed the alert tone. This "
    "concludes this required monthly test of the Emergency Alert System."
)


def _relay(request: Request) -> RelayService:
    relay: RelayService = request.app.state.relay_service
    return relay


def _messages(request: Request) -> MessageService:
    messages: MessageService = request.app.state.message_service
    return messages


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _before(cursor: str | None) -> int | None:
    try:
        return repo.decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise BadRequest("invalid cursor: use next_cursor as given") from exc


# ---- decisions -----------------------------------------------------------------------------


@router.get(
    "/decisions",
    summary="Relay decisions, newest first, with every rule checked",
    response_model=DecisionPage,
    responses={400: error("invalid cursor, or since not before until")},
)
async def list_decisions(
    request: Request,
    _: Reader,
    state: Annotated[
        DecisionStateQuery | None,
        Query(description="a decision state, or open (waiting, scheduled or confirmed)"),
    ] = None,
    source: Annotated[Source | None, Query(description="cap or air")] = None,
    event_code: Annotated[SameEventCode | None, Query(description="e.g. TOR")] = None,
    alert_id: Annotated[int | None, Query(ge=1, le=2**62, description="alerts-api id")] = None,
    since: Annotated[UtcTime | None, Query(description="made at or after")] = None,
    until: Annotated[UtcTime | None, Query(description="made before")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DecisionPage:
    if since and until and since >= until:
        raise BadRequest("since must be before until")
    states = (
        [s.value for s in OPEN_STATES]
        if state is StateFilter.OPEN
        else [state.value]
        if state is not None
        else None
    )
    f = repo.DecisionFilter(
        states=states,
        source=source.value if source else None,
        event_code=event_code,
        alert_id=alert_id,
        since=since,
        until=until,
    )
    items, next_cursor = await _relay(request).page(f, _before(cursor), limit)
    return DecisionPage(items=items, next_cursor=next_cursor)


@router.get(
    "/decisions/{decision_id}",
    summary="One relay decision in its current state",
    response_model=RelayDecisionEvent,
    responses=_NOT_FOUND,
)
async def get_decision(request: Request, decision_id: DecisionId, _: Reader) -> RelayDecisionEvent:
    return await _relay(request).get(decision_id)


@router.post(
    "/decisions/{decision_id}/forward",
    summary="Relay an ignored or expired decision by hand (audited)",
    response_model=RelayDecisionEvent,
    responses={**_NOT_FOUND, **_STATE_CONFLICT},
)
async def forward_decision(
    request: Request,
    decision_id: DecisionId,
    principal: Confirmer,
    body: OperatorNote | None = None,
) -> RelayDecisionEvent:
    note = body.note if body else None
    return await _relay(request).forward(decision_id, principal, _client(request), note)


@router.get(
    "/confirmations",
    summary="Decisions waiting for an operator, in air order",
    response_model=list[RelayDecisionEvent],
)
async def pending_confirmations(request: Request, _: Reader) -> list[RelayDecisionEvent]:
    return await _relay(request).pending()


@router.post(
    "/confirmations/{decision_id}/confirm",
    summary="Confirm a pending relay: it airs after the relay delay (audited)",
    response_model=RelayDecisionEvent,
    responses={**_NOT_FOUND, **_STATE_CONFLICT},
)
async def confirm(
    request: Request, decision_id: DecisionId, principal: Confirmer
) -> RelayDecisionEvent:
    return await _relay(request).confirm(decision_id, principal, _client(request))


@router.post(
    "/confirmations/{decision_id}/reject",
    summary="Reject a pending relay: it never airs (audited)",
    response_model=RelayDecisionEvent,
    responses={**_NOT_FOUND, **_STATE_CONFLICT},
)
async def reject(
    request: Request,
    decision_id: DecisionId,
    principal: Confirmer,
    body: OperatorNote | None = None,
) -> RelayDecisionEvent:
    note = body.note if body else None
    return await _relay(request).reject(decision_id, principal, _client(request), note)


# ---- messages ------------------------------------------------------------------------------


@router.get(
    "/messages",
    summary="Generated EAS messages, newest first",
    response_model=MessagePage,
    responses={400: error("invalid cursor")},
)
async def list_messages(
    request: Request,
    _: Reader,
    kind: Annotated[str | None, Query(pattern=r"^(relay|origination)$")] = None,
    decision_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MessagePage:
    rows, next_cursor = await _messages(request).page(kind, decision_id, _before(cursor), limit)
    return MessagePage(items=[MessageOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/messages/{message_id}",
    summary="One message: header, narration source and the map of its components",
    response_model=MessageOut,
    responses={404: error("no such message")},
)
async def get_message(request: Request, message_id: MessageId, _: Reader) -> MessageOut:
    return MessageOut.of(await _messages(request).get(message_id))


@router.get(
    "/messages/{message_id}/audio",
    summary="The message as a WAV (16-bit PCM mono)",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}, 404: error("no such message")},
)
async def message_audio(request: Request, message_id: MessageId, _: Reader) -> Response:
    wav = await _messages(request).audio(message_id)
    return Response(
        wav,
        media_type="audio/wav",
        headers={"Content-Disposition": f'inline; filename="eas-message-{message_id}.wav"'},
    )


# ---- origination ---------------------------------------------------------------------------


async def _created(request: Request, message_id: int) -> JSONResponse:
    body = MessageOut.of(await _messages(request).get(message_id))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/api/audio/messages/{message_id}"},
    )


def _origination(body: OriginationIn, request: Request) -> Origination:
    station = _messages(request).station.settings
    return Origination(
        event_code=body.event_code,
        originator=(body.originator or station.identity.originator).value,
        locations=tuple(body.locations),
        duration=body.duration,
        text=body.text if body.narration == "tts" else None,
    )


@router.post(
    "/originations",
    summary="Compose a message to originate, spoken by text-to-speech (audited)",
    status_code=201,
    response_model=MessageOut,
    responses=_CREATED,
)
async def originate(request: Request, body: OriginationIn, principal: Writer) -> JSONResponse:
    service = _messages(request)
    message_id = await service.originate(_origination(body, request), principal, _client(request))
    return await _created(request, message_id)


@router.post(
    "/originations/upload",
    summary="Compose a message to originate with recorded narration (WAV, FLAC, Ogg, MP3)",
    status_code=201,
    response_model=MessageOut,
    responses={
        **_CREATED,
        413: error("the upload is over the size limit"),
        415: error("the upload is not audio this station can decode"),
    },
)
async def originate_upload(
    request: Request,
    principal: Writer,
    event_code: Annotated[str, Form(max_length=3)],
    locations: Annotated[str, Form(max_length=31 * 7, description="comma-separated PSSCCC")],
    duration: Annotated[str, Form(max_length=4)],
    audio: Annotated[UploadFile, File(description="the narration")],
    originator: Annotated[str | None, Form(max_length=3)] = None,
) -> JSONResponse:
    service = _messages(request)
    try:
        body = OriginationIn.model_validate(
            {
                "event_code": event_code,
                "originator": originator,
                "locations": [c.strip() for c in locations.split(",") if c.strip()],
                "duration": duration,
                "narration": "none",
            }
        )
    except ValidationError as exc:
        raise Invalid.from_validation(exc, ("body",)) from exc
    limit = service.upload_max_bytes
    if audio.size is not None and audio.size > limit:
        raise TooLarge(f"the upload is {audio.size} bytes; at most {limit} are accepted")
    data = await audio.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"the upload is over {limit} bytes")
    if not data:
        raise Invalid("the uploaded file is empty", loc=("body", "audio"))
    origination = dataclasses.replace(
        _origination(body, request), upload=data, filename=audio.filename
    )
    message_id = await service.originate(origination, principal, _client(request))
    return await _created(request, message_id)


async def _test(request: Request, principal: Principal, event: str, body: TestIn) -> JSONResponse:
    service = _messages(request)
    station = service.station.settings
    area = [str(c) for c in station.location.same_codes]
    if not area:
        raise Conflict(
            "the station's area is not configured: set location.same_codes in the settings"
        )
    if event == "RWT" and body.text:
        raise Invalid("an RWT has no narration (header and EOM only)", loc=("body", "text"))
    text = None
    if event == "RMT":
        text = body.text or RMT_SCRIPT.format(station=station.identity.name)
        text = text[:MAX_TEXT]
    origination = Origination(
        event_code=event,
        originator=station.identity.originator.value,
        locations=tuple(area[:31]),
        duration=body.duration or ("0015" if event == "RWT" else "0100"),
        text=text,
    )
    message_id = await service.originate(origination, principal, _client(request))
    return await _created(request, message_id)


@router.post(
    "/originations/rwt",
    summary="Compose a Required Weekly Test for the station's area (header and EOM only)",
    status_code=201,
    response_model=MessageOut,
    responses=_CREATED,
)
async def originate_rwt(
    request: Request, principal: Writer, body: TestIn | None = None
) -> JSONResponse:
    return await _test(request, principal, "RWT", body or TestIn())


@router.post(
    "/originations/rmt",
    summary="Compose a Required Monthly Test for the station's area, with its test script",
    status_code=201,
    response_model=MessageOut,
    responses=_CREATED,
)
async def originate_rmt(
    request: Request, principal: Writer, body: TestIn | None = None
) -> JSONResponse:
    return await _test(request, principal, "RMT", body or TestIn())


# ---- playout -------------------------------------------------------------------------------

ItemId = Annotated[int, Path(ge=1, le=2**62, description="playout item id")]
OutputName = Annotated[str, Path(pattern=OUTPUT_NAME)]
_WORKER: Responses = {
    409: error("no playout worker is running"),
    504: error("the playout worker did not answer in time (it is busy or stuck)"),
}
_OUTPUT_WORKER: Responses = {404: error("no such output"), **_WORKER}


def _playout(request: Request) -> PlayoutService:
    playout: PlayoutService = request.app.state.playout_service
    return playout


@router.get(
    "/playout/queue",
    summary="What is on air and what waits, in air order",
    response_model=list[PlayoutEvent],
)
async def playout_queue(request: Request, _: Reader) -> list[PlayoutEvent]:
    return await _playout(request).queue()


@router.post(
    "/messages/{message_id}/send",
    summary="Send an originated message to air now, in its precedence (audited)",
    status_code=201,
    response_model=PlayoutEvent,
    responses={404: error("no such message"), 409: error("the message is a relay's")},
)
async def send_message(request: Request, message_id: MessageId, principal: Writer) -> JSONResponse:
    row = await _messages(request).get(message_id)
    precedence = precedence_of(row.event_code, row.originator, json.loads(row.locations))
    event = await _playout(request).send_message(
        message_id, principal, _client(request), precedence
    )
    return JSONResponse(event.model_dump(mode="json"), status_code=201)


@router.post(
    "/playout/{item_id}/resend",
    summary="Air an aired or interrupted item again (audited as a resend)",
    status_code=201,
    response_model=PlayoutEvent,
    responses={404: error("no such item"), 409: error("the item has not aired")},
)
async def resend(request: Request, item_id: ItemId, principal: Writer) -> JSONResponse:
    event = await _playout(request).resend(item_id, principal, _client(request))
    return JSONResponse(event.model_dump(mode="json"), status_code=201)


@router.post(
    "/playout/{item_id}/cancel",
    summary="Take a queued item off the queue before it plays (audited)",
    response_model=PlayoutEvent,
    responses={404: error("no such item"), 409: error("the item is not queued")},
)
async def cancel_item(request: Request, item_id: ItemId, principal: Writer) -> PlayoutEvent:
    return await _playout(request).cancel(item_id, principal, _client(request))


@router.post(
    "/playout/stop",
    summary="Stop what is on air: EOM on every output, then the queue goes on (audited)",
    response_model=PlayoutReply,
    responses=_WORKER,
)
async def stop_playout(request: Request, principal: Writer) -> PlayoutReply:
    reply = await _playout(request).command(CommandKind.STOP, principal.subject)
    await _messages(request).audit(
        principal, _client(request), "audio.stop", "playout", reply.detail
    )
    return reply


@router.get(
    "/playout/status",
    summary="What the playout worker holds and plays, as it answers now",
    response_model=PlayoutReply,
    responses={504: _WORKER[504]},
)
async def playout_status(request: Request, principal: Reader) -> PlayoutReply:
    return await _playout(request).command(CommandKind.STATUS, principal.subject)


class ToneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=2.0, gt=0, le=30, description="how long")


@router.post(
    "/outputs/{name}/test-tone",
    summary="Play a 1 kHz test tone on one output (refused while a message is on air)",
    response_model=PlayoutReply,
    responses=_OUTPUT_WORKER,
)
async def test_tone(
    request: Request, name: OutputName, principal: Writer, body: ToneIn | None = None
) -> PlayoutReply:
    return await _output_test(
        request, name, principal, body, CommandKind.TEST_TONE, "audio.test_tone"
    )


@router.post(
    "/outputs/{name}/key-test",
    summary="Key one output's transmitter for a few seconds, then unkey (audited)",
    response_model=PlayoutReply,
    responses=_OUTPUT_WORKER,
)
async def key_test(
    request: Request, name: OutputName, principal: Writer, body: ToneIn | None = None
) -> PlayoutReply:
    return await _output_test(request, name, principal, body, CommandKind.KEY, "audio.key_test")


async def _output_test(
    request: Request,
    name: str,
    principal: Principal,
    body: ToneIn | None,
    kind: CommandKind,
    action: str,
) -> PlayoutReply:
    """A test on one output (tone, or keying), answered by the worker, then audited."""
    seconds = (body or ToneIn()).seconds
    reply = await _playout(request).command(kind, principal.subject, output=name, seconds=seconds)
    await _messages(request).audit(
        principal, _client(request), action, f"output/{name}", reply.detail
    )
    return reply


# ---- outputs -------------------------------------------------------------------------------

_OUTPUT_NOT_FOUND: Responses = {404: error("no such output")}


def _outputs(request: Request) -> OutputService:
    outputs: OutputService = request.app.state.output_service
    return outputs


@router.get(
    "/outputs",
    summary="Playout outputs: config, keying, and what the worker last reported (no secret)",
    response_model=list[OutputOut],
)
async def list_outputs(request: Request, _: Reader) -> list[OutputOut]:
    return await _outputs(request).all()


@router.get(
    "/outputs/{name}",
    summary="One playout output and its status (no secret)",
    response_model=OutputOut,
    responses=_OUTPUT_NOT_FOUND,
)
async def get_output(request: Request, name: OutputName, _: Reader) -> OutputOut:
    return await _outputs(request).get(name)


@router.post(
    "/outputs",
    summary="Add a playout output (audited); the worker uses it from its next message",
    status_code=201,
    response_model=OutputOut,
    responses={409: error("an output has that name")},
)
async def create_output(request: Request, body: OutputIn, principal: Configurer) -> JSONResponse:
    out = await _outputs(request).create(body, principal, _client(request))
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/api/audio/outputs/{out.name}"},
    )


@router.put(
    "/outputs/{name}",
    summary="Change a playout output (audited); a secret left out is kept",
    response_model=OutputOut,
    responses={**_OUTPUT_NOT_FOUND, 409: error("the new name is taken")},
)
async def update_output(
    request: Request, name: OutputName, body: OutputUpdate, principal: Configurer
) -> OutputOut:
    return await _outputs(request).update(name, body, principal, _client(request))


@router.delete(
    "/outputs/{name}",
    summary="Delete a playout output (audited); refused while it is on air",
    status_code=204,
    response_class=Response,
    responses={**_OUTPUT_NOT_FOUND, 409: error("the output is on air")},
)
async def delete_output(request: Request, name: OutputName, principal: Configurer) -> Response:
    await _outputs(request).delete(name, principal, _client(request))
    return Response(status_code=204)


# ---- the station log -----------------------------------------------------------------------


def _station_log(request: Request) -> StationLog:
    log: StationLog = request.app.state.station_log
    return log


def _log_filter(
    since: Annotated[
        UtcTime | None, Query(alias="from", description="entries at or after this time")
    ] = None,
    until: Annotated[UtcTime | None, Query(alias="to", description="entries before it")] = None,
    kind: Annotated[list[LogKind] | None, Query(description="one or more kinds")] = None,
    event_code: Annotated[SameEventCode | None, Query(description="e.g. TOR")] = None,
    originator: Annotated[Originator | None, Query(description="SAME ORG, e.g. WXR")] = None,
    actor: Annotated[OneLine | None, Query(max_length=128, description="who acted")] = None,
    text: Annotated[
        OneLine | None,
        Query(min_length=2, max_length=200, description="in the summary, header or reasons"),
    ] = None,
) -> repo.LogFilter:
    if since and until and since >= until:
        raise Invalid("'to' must be after 'from'", loc=("query", "to"))
    return repo.LogFilter(
        since=since,
        until=until,
        kinds=[k.value for k in kind] if kind else None,
        event_code=event_code,
        originator=originator.value if originator else None,
        actor=actor,
        text=text,
    )


LogFilters = Annotated[repo.LogFilter, Depends(_log_filter)]


@router.get(
    "/log",
    summary="The station log, newest first, with the total matching the filters",
    response_model=LogPage,
    responses={400: error("invalid cursor")},
)
async def station_log(
    request: Request, _: Reader, filters: LogFilters, limit: Limit = 100, cursor: Cursor = None
) -> LogPage:
    items, total, next_cursor = await _station_log(request).page(filters, _before(cursor), limit)
    return LogPage(
        items=[LogEntryOut.model_validate(i) for i in items], total=total, next_cursor=next_cursor
    )


@router.get(
    "/log.csv",
    summary="The filtered station log as CSV, oldest first",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, header row first"}},
)
async def station_log_csv(request: Request, _: Reader, filters: LogFilters) -> StreamingResponse:
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        _station_log(request).csv_chunks(filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="station-log-{stamp}.csv"'},
    )


@router.get(
    "/log/verify",
    summary="Check the station log's hash chain: intact, or the first broken link and why",
    response_model=VerificationOut,
)
async def verify_station_log(request: Request, _: Reader) -> VerificationOut:
    return VerificationOut.of(await _station_log(request).verify())


@router.get(
    "/log/{year}/{month}.pdf",
    summary="The printable station log of one month (station time zone)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def station_log_pdf(
    request: Request,
    _: Reader,
    year: Annotated[int, Path(ge=2000, le=2999, description="e.g. 2026")],
    month: Annotated[int, Path(ge=1, le=12, description="1-12")],
) -> Response:
    pdf = await _station_log(request).month_pdf(year, month)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="station-log-{year}-{month:02d}.pdf"'},
    )
