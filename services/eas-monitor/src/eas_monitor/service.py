"""eas-monitor's logic: inputs (configured, persisted, supervised), decode history, clips, and
decoding uploaded files. Endpoints call this; this calls the repository and the supervisor."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import soundfile as sf
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from eas_monitor import repository as repo
from eas_monitor.clips import clip_file_name
from eas_monitor.inputs import (
    InputConfig,
    InputConfigError,
    StreamConfig,
    check_machine,
    config_adapter,
)
from eas_monitor.settings import EasMonitorSettings
from eas_monitor.supervisor import InputRecord, Supervisor
from eas_same import HeaderDecoded, SameDecoder
from eas_same.audiofile import TooMuchAudio, mono_blocks
from eas_same.header import describe_location
from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import (
    SAME_ATTENTION_TONE_TYPE,
    SAME_EOM_TYPE,
    SAME_HEADER_TYPE,
    DecoderState,
    InputKind,
    InputState,
    MonitorStatus,
    SameAttentionToneEvent,
    SameEomEvent,
    SameHeaderEvent,
)
from servicekit.errors import (
    Conflict,
    Invalid,
    NotConfirmed,
    NotFound,
    TooLarge,
    Unavailable,
    Unsupported,
)

log = logging.getLogger(__name__)

SAME_TYPES = (SAME_HEADER_TYPE, SAME_EOM_TYPE, SAME_ATTENTION_TONE_TYPE)
UPLOAD_FORMATS = ("WAV", "WAVEX", "FLAC")
_UPLOAD = ("body", "file")


@dataclass(frozen=True, slots=True)
class InputView:
    id: int
    name: str
    kind: InputKind
    config: InputConfig
    wanted_running: bool
    created_at: datetime
    updated_at: datetime
    status: MonitorStatus


def _record(row: dict[str, Any]) -> InputRecord:
    return InputRecord(
        id=int(row["id"]),
        name=row["name"],
        config=config_adapter.validate_json(row["config"]),
        wanted_running=bool(row["wanted_running"]),
    )


def _stored(config: InputConfig) -> str:
    if isinstance(config, StreamConfig):
        config = config.model_copy(update={"credentials": False})  # a view-only field
    return config.model_dump_json()


def encode_cursor(at: datetime, decode_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{decode_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when, int(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not one this API returned", loc=("query", "cursor")) from exc


class MonitorService:
    def __init__(
        self, engine: AsyncEngine, settings: EasMonitorSettings, supervisor: Supervisor | None
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.supervisor = supervisor
        self.stored = 0
        self.clips_pruned = 0

    # ------------------------------------------------------------------ inputs
    def _lock(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.supervisor.lock if self.supervisor else contextlib.nullcontext()

    def _status(self, rec: InputRecord) -> MonitorStatus:
        live = self.supervisor.status(rec.id) if self.supervisor else None
        if live is not None:
            return live
        now = datetime.now(UTC)
        return MonitorStatus(
            input_id=rec.id,
            name=rec.name,
            kind=rec.kind,
            state=InputState.STOPPED,
            running=False,
            signal_present=False,
            decoder_state=DecoderState.IDLE,
            samples_per_s=0.0,
            samples_total=0,
            restarts=0,
            errors=0,
            since=now,
            updated_at=now,
        )

    def _view(self, row: dict[str, Any]) -> InputView:
        rec = _record(row)
        config = rec.config
        if isinstance(config, StreamConfig):
            config = config.public()  # credentials are write-only
        return InputView(
            id=rec.id,
            name=rec.name,
            kind=rec.kind,
            config=config,
            wanted_running=rec.wanted_running,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            status=self._status(rec),
        )

    async def records(self) -> list[InputRecord]:
        async with self.engine.connect() as conn:
            return [_record(r) for r in await repo.list_inputs(conn)]

    async def list_inputs(self) -> list[InputView]:
        async with self.engine.connect() as conn:
            return [self._view(r) for r in await repo.list_inputs(conn)]

    async def _row(self, input_id: int) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = await repo.get_input(conn, input_id)
        if row is None:
            raise NotFound(f"input {input_id} does not exist")
        return row

    async def get_input(self, input_id: int) -> InputView:
        return self._view(await self._row(input_id))

    async def _check(self, config: InputConfig, *, starting: bool = False) -> None:
        """A configuration this machine cannot run: refused as invalid when it is being saved,
        as a conflict when a saved one is asked to start."""
        try:
            await asyncio.to_thread(check_machine, config, ffmpeg=self.settings.ffmpeg)
        except InputConfigError as exc:
            if starting:
                raise Conflict(str(exc)) from exc
            raise Invalid(str(exc), loc=("body", "config")) from exc

    async def create_input(self, name: str, config: InputConfig) -> InputView:
        await self._check(config)
        now = datetime.now(UTC)
        values = {
            "name": name,
            "kind": config.kind.value,
            "config": _stored(config),
            "wanted_running": False,
            "created_at": now,
            "updated_at": now,
        }
        async with self._lock():
            try:
                async with self.engine.begin() as conn:
                    new_id = await repo.insert_input(conn, values)
            except IntegrityError as exc:
                raise Conflict(f"an input named {name!r} exists already") from exc
            row = await self._row(new_id)
            if self.supervisor:
                await self.supervisor.upsert(_record(row))
        return self._view(row)

    async def update_input(
        self, input_id: int, name: str | None, config: InputConfig | None
    ) -> InputView:
        row = await self._row(input_id)
        values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        if name is not None:
            values["name"] = name
        if config is not None:
            if config.kind.value != row["kind"]:
                raise Invalid(
                    f"input {input_id} is a {row['kind']} input; create a new input to change "
                    "its kind",
                    loc=("body", "config", "kind"),
                )
            old = _record(row).config
            if isinstance(config, StreamConfig) and isinstance(old, StreamConfig):
                config = config.keeping_credentials_of(old)
            await self._check(config)
            values["config"] = _stored(config)
        async with self._lock():
            try:
                async with self.engine.begin() as conn:
                    await repo.update_input(conn, input_id, values)
            except IntegrityError as exc:
                raise Conflict(f"an input named {name!r} exists already") from exc
            row = await self._row(input_id)
            if self.supervisor:
                # A running input picks up its new configuration through a worker restart.
                await self.supervisor.upsert(_record(row))
        return self._view(row)

    async def delete_input(self, input_id: int) -> None:
        await self._row(input_id)
        async with self._lock():
            if self.supervisor:
                await self.supervisor.remove(input_id)
            async with self.engine.begin() as conn:
                await repo.delete_input(conn, input_id)

    def _need_supervisor(self) -> Supervisor:
        if self.supervisor is None:
            raise Unavailable("this eas-monitor instance runs no supervisor (run_supervisor off)")
        return self.supervisor

    async def start_input(self, input_id: int) -> InputView:
        supervisor = self._need_supervisor()
        row = await self._row(input_id)
        # The file may have gone, or the device been unplugged, since it was configured.
        await self._check(_record(row).config, starting=True)
        async with supervisor.lock:
            async with self.engine.begin() as conn:
                await repo.update_input(conn, input_id, {"wanted_running": True})
            row = await self._row(input_id)
            await supervisor.upsert(_record(row), kick=True)
        wanted = {InputState.RUNNING, InputState.FINISHED, InputState.FAILED, InputState.STANDBY}
        reached, rt = await supervisor.wait_for(input_id, wanted, self.settings.start_timeout_s)
        if rt is not None and rt.state == InputState.FAILED:
            raise Conflict(f"input {input_id} cannot run: {rt.last_error}")
        if rt is not None and rt.state == InputState.STANDBY:
            raise Conflict(
                f"input {input_id} is held by eas-monitor {rt.lease_holder}: this copy stands "
                "by and takes the input over if that one stops"
            )
        if not reached:
            state = rt.state.value if rt else "unknown"
            error = f"; last error: {rt.last_error}" if rt and rt.last_error else ""
            raise NotConfirmed(
                f"input {input_id} was not confirmed running within "
                f"{self.settings.start_timeout_s:g} s: state {state}{error}. "
                "The supervisor keeps trying; see GET /api/eas-monitor/status."
            )
        return self._view(row)

    async def stop_input(self, input_id: int) -> InputView:
        supervisor = self._need_supervisor()
        await self._row(input_id)
        async with supervisor.lock:
            async with self.engine.begin() as conn:
                await repo.update_input(conn, input_id, {"wanted_running": False})
            row = await self._row(input_id)
            await supervisor.upsert(_record(row))
        reached, rt = await supervisor.wait_for(
            input_id, {InputState.STOPPED}, self.settings.stop_timeout_s + 2.0
        )
        if not reached or (rt is not None and rt.alive):
            raise NotConfirmed(f"input {input_id}: the worker was not confirmed stopped")
        return self._view(row)

    async def statuses(self) -> list[MonitorStatus]:
        return [self._status(rec) for rec in await self.records()]

    # ------------------------------------------------------------------ decode history
    async def store_event(self, envelope: EventEnvelope[dict[str, Any]]) -> bool:
        """Keep one same.* event (idempotent: a redelivery changes nothing)."""
        if envelope.type not in SAME_TYPES:
            return False
        data = envelope.data
        event_code: str | None = None
        clip_id: str | None = None
        if envelope.type == SAME_HEADER_TYPE:
            header = SameHeaderEvent.model_validate(data)
            text, confidence, heard_at = header.text, header.confidence, header.first_heard_at
            event_code, clip_id, hearings = header.header.event_code, header.clip_id, header.inputs
        elif envelope.type == SAME_EOM_TYPE:
            eom = SameEomEvent.model_validate(data)
            text, confidence, heard_at, hearings = (
                "NNNN",
                eom.confidence,
                eom.first_heard_at,
                eom.inputs,
            )
        else:
            tone = SameAttentionToneEvent.model_validate(data)
            text = f"attention {tone.kind.value} {tone.duration_s:.1f} s"
            confidence, heard_at, hearings = 1.0, tone.first_heard_at, tone.inputs
        clips = []
        for h in hearings:
            if h.clip_id:
                meta = await asyncio.to_thread(self._clip_meta, h.clip_id)
                if meta is not None:
                    clips.append({"id": h.clip_id, "input_id": h.input_id, **meta})
        if clip_id is not None and clip_id not in {c["id"] for c in clips}:
            clip_id = None  # its file never made it to disk
        async with self.engine.begin() as conn:
            decode_id = await repo.insert_decode(
                conn,
                {
                    "event_id": envelope.id,
                    "type": envelope.type,
                    "text": text,
                    "event_code": event_code,
                    "confidence": confidence,
                    "heard_at": heard_at,
                    "clip_id": clip_id,
                    "envelope": envelope.model_dump_json(),
                    "stored_at": datetime.now(UTC),
                },
            )
            if decode_id is None:
                return False
            await repo.insert_decode_inputs(conn, decode_id, [h.input_id for h in hearings])
            for clip in clips:
                await repo.insert_clip(conn, {**clip, "decode_id": decode_id})
        self.stored += 1
        return True

    def _clip_meta(self, clip_id: str) -> dict[str, Any] | None:
        path = self.settings.clips_dir / clip_file_name(clip_id)
        try:
            info = sf.info(str(path))
            size = path.stat().st_size
        except (OSError, RuntimeError, sf.LibsndfileError):
            return None
        return {
            "file_name": path.name,
            "rate": int(info.samplerate),
            "duration_s": round(float(info.duration), 3),
            "size_bytes": size,
            "created_at": datetime.fromtimestamp(path.stat().st_mtime, UTC),
        }

    async def list_decodes(
        self, flt: repo.DecodeFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        after = decode_cursor(cursor) if cursor else None
        async with self.engine.connect() as conn:
            rows = await repo.list_decodes(conn, flt, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["heard_at"], rows[-1]["id"]) if more else None
        return [self._decode_out(r) for r in rows], next_cursor

    async def get_decode(self, decode_id: int) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = await repo.get_decode(conn, decode_id)
        if row is None:
            raise NotFound(f"decode {decode_id} does not exist")
        return self._decode_out(row)

    @staticmethod
    def _decode_out(row: dict[str, Any]) -> dict[str, Any]:
        envelope = json.loads(row["envelope"])
        return {
            "id": row["id"],
            "event_id": row["event_id"],
            "type": row["type"],
            "text": row["text"],
            "event_code": row["event_code"],
            "confidence": row["confidence"],
            "heard_at": row["heard_at"],
            "input_ids": row.get("input_ids", []),
            "clip_id": row["clip_id"],
            "data": envelope.get("data", {}),
        }

    # ------------------------------------------------------------------ clips
    async def clip_path(self, clip_id: str) -> Path:
        async with self.engine.connect() as conn:
            row = await repo.get_clip(conn, clip_id)
        if row is None:
            raise NotFound(f"clip {clip_id} does not exist (or was removed by retention)")
        path: Path = self.settings.clips_dir / str(row["file_name"])
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"clip {clip_id}'s audio file is gone")
        return path

    async def prune_clips(self) -> int:
        """Apply clip retention (age and count); remove orphan files a repeat left behind."""
        s = self.settings
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            doomed = await repo.expired_clips(
                conn, now - timedelta(days=s.clip_retention_days), s.clip_max_count
            )
            await repo.delete_clips(conn, [d["id"] for d in doomed])
            known = await repo.clip_file_names(conn)
        removed = 0
        for d in doomed:
            (s.clips_dir / d["file_name"]).unlink(missing_ok=True)
            removed += 1
        # Files no event refers to (a suppressed duplicate's clip) go after an hour.
        cutoff = now.timestamp() - 3600
        if s.clips_dir.is_dir():
            for path in s.clips_dir.glob("*.wav"):
                if path.name not in known and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        self.clips_pruned += removed
        return removed

    # ------------------------------------------------------------------ uploads
    def decode_upload(self, data: bytes) -> dict[str, Any]:
        """Decode a WAV/FLAC file in bounded blocks; raises Unsupported/Invalid/TooLarge."""
        if not data:
            raise Invalid("the uploaded file is empty", loc=_UPLOAD)
        limit = self.settings.upload_max_samples
        frames = 0
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                fmt, rate, channels = f.format, int(f.samplerate), int(f.channels)
                if fmt not in UPLOAD_FORMATS:
                    raise Unsupported(f"the upload is {fmt} audio; send WAV or FLAC")
                if rate < 6000:
                    raise Invalid(
                        f"the audio is sampled at {rate} Hz; SAME decoding needs 6000 Hz or more",
                        loc=_UPLOAD,
                    )
                decoder = SameDecoder(rate)
                events = []
                # Streaming into the decoder: memory stays one block whatever the length.
                for block in mono_blocks(f, limit):
                    frames += len(block)
                    events.extend(decoder.feed(block))
        except TooMuchAudio as exc:
            raise TooLarge(
                f"the upload holds {exc.samples} samples (frames x channels); the limit is "
                f"{limit} (EAS_MONITOR_UPLOAD_MAX_SAMPLES)"
            ) from exc
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise Unsupported("the upload is not a readable WAV or FLAC audio file") from exc
        if frames == 0:
            raise Invalid("the file holds no audio", loc=_UPLOAD)
        events.extend(decoder.flush())
        now = datetime.now(UTC)
        out: list[dict[str, Any]] = []
        for ev in events:
            item = ev.to_dict()
            if isinstance(ev, HeaderDecoded):
                item["description"] = ev.header.describe(now=now)
                item["location_names"] = [describe_location(c) for c in ev.header.locations]
                item["parsed"] = ev.header.to_dict(now=now)
                item["deviation_notes"] = ev.header.deviation_texts
            out.append(item)
        return {
            "format": fmt,
            "rate": rate,
            "channels": channels,
            "duration_s": round(frames / rate, 3),
            "events": out,
            "stats": decoder.stats.as_dict(),
        }
