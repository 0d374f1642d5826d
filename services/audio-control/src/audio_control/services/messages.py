"""EAS messages: the audio of relay decisions, and messages originated by an operator.

A decision that may air (scheduled, confirmed, forwarded, or waiting for confirmation, so the
operator can hear it first) gets its message composed in the background: a composer task
claims one decision at a time (``message_status`` pending -> composing, with a time so a
composer that died is taken over), narrates it (CAP audio, else text-to-speech, else header
and tones only — ECIG 3.5.1 — the choice and every failure recorded), composes it, stores the
WAV beside its component map, and announces the decision with its ``message_id``. Composing
never holds a transaction open: a CAP audio download may take up to two minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from audio_control import repository as repo
from audio_control.composer import ComposedMessage, compose
from audio_control.narration import (
    CapAudioResource,
    Narration,
    NarrationConfig,
    NarrationError,
    SourceFailure,
    UploadRefused,
    narrate_cap_alert,
    narration_from_text,
    narration_from_upload,
)
from audio_control.services.decisions import COMPOSED_STATES, SERVICE, RelayService
from audio_control.services.station import StationView
from audio_control.services.station_log import LogKind, entry
from eas_same.header import SameHeader, SameHeaderError
from eas_schemas.clock import utcnow
from eas_schemas.streams import AUDIT_RECORDS
from servicekit.auth.audit import audit_envelope
from servicekit.auth.tokens import Principal
from servicekit.db import database_unreachable
from servicekit.errors import Conflict, Invalid, NotFound, TooLarge, Unsupported
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)

# A composer that has not finished in this long is presumed dead; another takes the decision.
COMPOSE_TAKEOVER_S = 600.0

MessageKind = Literal["relay", "origination"]


@dataclass(frozen=True, slots=True)
class Origination:
    """What an operator asks to originate; every field already checked by the API model."""

    event_code: str
    originator: str
    locations: tuple[str, ...]
    duration: str
    text: str | None
    upload: bytes | None = None
    filename: str | None = None


class MessageService:
    def __init__(
        self,
        engine: Any,
        outbox: Outbox,
        relay: RelayService,
        station: StationView,
        http: httpx.AsyncClient,
        *,
        tts_timeout_s: float = 30.0,
        upload_max_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.relay = relay
        self.station = station
        self.http = http
        self.tts_timeout_s = tts_timeout_s
        self.upload_max_bytes = upload_max_bytes
        self.wake = asyncio.Event()
        self.composed = 0
        self.failed = 0
        # Decisions this composer claimed and could not finish because the database went
        # away: back to waiting as soon as it answers (not after COMPOSE_TAKEOVER_S, ten
        # minutes; and never marked failed: the outage is not the message's fault).
        self._cut_by_outage: set[int] = set()

    def config(self) -> NarrationConfig:
        return NarrationConfig.from_settings(
            self.station.settings.messages,
            tts_timeout_s=self.tts_timeout_s,
            upload_max_bytes=self.upload_max_bytes,
        )

    # ---- the composer task -------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Compose whatever waits, then sleep until woken (a new decision) or ``interval_s``."""
        while not stop.is_set():
            try:
                while not stop.is_set() and await self.compose_next():
                    pass
            except Exception as exc:
                if database_unreachable(exc):
                    log.warning("composer waits for the database: %s", type(exc).__name__)
                else:
                    log.exception("composer failed; retrying")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                waits = [
                    asyncio.ensure_future(self.wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                try:
                    await asyncio.wait(waits, timeout=interval_s, return_when="FIRST_COMPLETED")
                finally:
                    for w in waits:
                        w.cancel()

    async def compose_next(self) -> bool:
        """Compose the message of one waiting decision; False when none waits."""
        now = utcnow()
        if self._cut_by_outage:
            async with self.engine.begin() as conn:
                for decision_id in sorted(self._cut_by_outage):
                    await repo.release_composing(conn, decision_id)
            log.info(
                "composer: decisions %s wait again after the outage", sorted(self._cut_by_outage)
            )
            self._cut_by_outage.clear()
        async with self.engine.begin() as conn:
            row = await repo.claim_for_composing(
                conn,
                sorted(s.value for s in COMPOSED_STATES),
                now,
                now - timedelta(seconds=COMPOSE_TAKEOVER_S),
            )
        if row is None:
            return False
        spec = json.loads(row.compose or "{}")
        message_id: int | None = None
        failure: str | None = None
        try:
            composed, text = await self._compose_decision(spec)
            async with self.engine.begin() as conn:
                message_id = await self._store(
                    conn, composed, "relay", int(row.id), text, row.issued, "audio-control"
                )
                event = await self.relay.attach_message(conn, int(row.id), message_id, None)
                pending = await self.relay._announce(conn, [event] if event else [])
            self.composed += 1
        except Exception as exc:
            if database_unreachable(exc):
                self._cut_by_outage.add(int(row.id))
                raise
            # A message that cannot be made must show on the decision, never vanish.
            log.exception("message of decision %s not composed", row.id)
            failure = f"{type(exc).__name__}: {exc}"
            try:
                async with self.engine.begin() as conn:
                    event = await self.relay.attach_message(conn, int(row.id), None, failure)
                    pending = await self.relay._announce(conn, [event] if event else [])
            except Exception:
                self._cut_by_outage.add(int(row.id))  # recorded on the next try instead
                raise
            self.failed += 1
        await self.outbox.publish(pending)
        return True

    async def _compose_decision(self, spec: dict[str, Any]) -> tuple[ComposedMessage, str | None]:
        header = spec.get("header")
        if not header:
            raise ValueError("the decision has no header to compose")
        config = self.config()
        is_ean = bool(spec.get("is_ean"))
        text = spec.get("text")
        if spec.get("kind") == "cap":
            audio = spec.get("audio")
            resource = (
                CapAudioResource(
                    mime_type=audio["mime_type"],
                    uri=audio.get("uri"),
                    deref_uri=audio.get("deref_uri"),
                    digest=audio.get("digest"),
                    size=audio.get("size"),
                )
                if audio
                else None
            )
            choice = await narrate_cap_alert(
                resource, text, client=self.http, config=config, is_ean=is_ean
            )
            narration, failures = choice.narration, choice.failures
        else:
            # A heard header's own audio is not carried yet (eas-monitor keeps a clip of the
            # header bursts, not of the message after them); the plain-language text of the
            # header is spoken instead, and the message records it.
            narration, failures = await self._speak(text, config, is_ean)
        return self._compose(header, narration, failures, is_ean), text

    async def _speak(
        self, text: str | None, config: NarrationConfig, is_ean: bool
    ) -> tuple[Narration | None, tuple[SourceFailure, ...]]:
        if not text:
            return None, (SourceFailure("tts", "absent", "there is no text to speak"),)
        try:
            return await narration_from_text(text, config=config, is_ean=is_ean), ()
        except NarrationError as exc:
            return None, (exc.failure,)

    def _compose(
        self,
        header: str,
        narration: Narration | None,
        failures: tuple[SourceFailure, ...],
        is_ean: bool,
    ) -> ComposedMessage:
        messages = self.station.settings.messages
        return compose(
            header,
            narration,
            rate=self.config().rate,
            attention=messages.attention_kind,
            attention_s=messages.attention_signal_s,
            is_ean=is_ean,
            narration_max_s=messages.narration_max_s,
            narration_failures=failures,
        )

    async def _store(
        self,
        conn: Any,
        composed: ComposedMessage,
        kind: MessageKind,
        decision_id: int | None,
        text: str | None,
        issued: datetime,
        by: str,
    ) -> int:
        wav = composed.wav_bytes()
        header = composed.header
        tone = composed.of_kind("attention")
        values = {
            "kind": kind,
            "decision_id": decision_id,
            "header": header.text,
            "originator": header.originator,
            "event_code": header.event,
            "locations": json.dumps(list(header.locations)),
            "duration": header.duration,
            "issued": issued,
            "narration_source": composed.narration_source,
            "text": text,
            "tone": tone[0].detail.get("tone") if tone else None,
            "attention_s": tone[0].duration_s if tone else None,
            "rate": composed.rate,
            "duration_s": composed.duration_s,
            "sha256": hashlib.sha256(wav).hexdigest(),
            "components": json.dumps(composed.to_dict()),
            "created_at": utcnow(),
            "created_by": by,
        }
        return await repo.insert_message(conn, values, wav)

    # ---- origination -------------------------------------------------------------------

    async def originate(
        self, request: Origination, actor: Principal, client_addr: str | None
    ) -> int:
        """Compose an operator's message (a preview: part 2's playout airs it on request)."""
        settings = self.station.settings
        now = utcnow().replace(second=0, microsecond=0)
        try:
            header = SameHeader.create(
                originator=request.originator,
                event=request.event_code,
                locations=list(request.locations),
                duration=request.duration,
                issued=now,
                callsign=settings.identity.callsign,
            )
        except SameHeaderError as exc:
            raise Invalid(str(exc), loc=("body",)) from exc
        config = self.config()
        is_ean = request.event_code == "EAN"
        failures: tuple[SourceFailure, ...] = ()
        narration: Narration | None = None
        text = request.text
        if request.upload is not None:
            try:
                narration = await narration_from_upload(
                    request.upload, config=config, filename=request.filename, is_ean=is_ean
                )
            except UploadRefused as exc:
                if exc.reason == "too_big":
                    raise TooLarge(str(exc)) from exc
                if exc.reason in ("unsupported", "not_audio"):
                    raise Unsupported(f"the upload is not usable audio: {exc}") from exc
                raise Invalid(str(exc), loc=("body", "audio")) from exc
        elif text:
            try:
                narration = await narration_from_text(text, config=config, is_ean=is_ean)
            except NarrationError as exc:
                raise Conflict(f"the text could not be spoken: {exc}") from exc
        composed = self._compose(header.text, narration, failures, is_ean)
        async with self.engine.begin() as conn:
            message_id = await self._store(
                conn, composed, "origination", None, text, now, actor.subject
            )
            audit = audit_envelope(
                SERVICE,
                "audio.originate",
                actor,
                target=f"eas-message/{message_id}",
                client_addr=client_addr,
                detail={"header": header.text, "narration": composed.narration_source},
            )
            pending = await self.outbox.add(conn, [(AUDIT_RECORDS, audit)])
            if self.relay.log is not None:
                await self.relay.log.write(
                    conn,
                    [
                        entry(
                            LogKind.ORIGINATED,
                            f"Message {message_id} composed by {actor.subject}: {header.text}",
                            originator=header.originator,
                            event_code=header.event,
                            locations=list(header.locations),
                            header=header.text,
                            reasons=f"narration: {composed.narration_source}",
                            actor=actor.subject,
                            message_id=message_id,
                            detail={
                                "duration_s": f"{composed.duration_s:.3f}",
                                "client_addr": client_addr,
                                "text": text,
                            },
                        )
                    ],
                )
        await self.outbox.publish(pending)
        return message_id

    async def audit(
        self, actor: Principal, client_addr: str | None, action: str, target: str, what: str
    ) -> None:
        """An operator's playout action, in the station's audit log."""
        envelope = audit_envelope(
            SERVICE, action, actor, target=target, client_addr=client_addr, detail={"what": what}
        )
        async with self.engine.begin() as conn:
            pending = await self.outbox.add(conn, [(AUDIT_RECORDS, envelope)])
        await self.outbox.publish(pending)

    # ---- reads -------------------------------------------------------------------------

    async def get(self, message_id: int) -> Any:
        async with self.engine.connect() as conn:
            row = await repo.get_message(conn, message_id)
        if row is None:
            raise NotFound(f"no EAS message with id {message_id}")
        return row

    async def audio(self, message_id: int) -> bytes:
        async with self.engine.connect() as conn:
            wav = await repo.get_message_audio(conn, message_id)
        if wav is None:
            raise NotFound(f"no EAS message with id {message_id}")
        return wav

    async def page(
        self, kind: str | None, decision_id: int | None, before_id: int | None, limit: int
    ) -> tuple[list[Any], str | None]:
        async with self.engine.connect() as conn:
            rows = await repo.list_messages(conn, kind, decision_id, before_id, limit + 1)
        more, rows = len(rows) > limit, list(rows[:limit])
        return rows, repo.encode_cursor(int(rows[-1].id)) if more else None
