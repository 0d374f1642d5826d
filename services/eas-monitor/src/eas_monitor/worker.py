"""One monitored input's capture and decoder process: ``python -m eas_monitor.worker
--input-id N`` with its :class:`~eas_monitor.protocol.WorkerSpec` as JSON on stdin.

Sync code on purpose: a capture thread reads the source (reconnecting with backoff) into a
queue; the main thread decodes, meters levels, keeps the clip ring and publishes with
``SyncBus``. The decoder costs a few milliseconds per second of audio, so one core serves
many inputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from eas_monitor.clips import AudioRing, new_clip_id, write_clip
from eas_monitor.dedup import Aggregator
from eas_monitor.levels import ChangeGate, LevelMeter
from eas_monitor.protocol import EXIT_CONFIG, WorkerSpec
from eas_monitor.sources import (
    Chunk,
    Source,
    SourceConfigError,
    SourceEnded,
    SourceError,
    make_source,
)
from eas_schemas.envelope import EventEnvelope
from eas_schemas.monitor_events import (
    AUDIO_INPUT_LEVEL_TYPE,
    AttentionToneKind,
    DecoderState,
    Hearing,
    InputLevel,
)
from eas_schemas.streams import AUDIO_METRICS
from servicekit.bus import SyncBus, sync_redis
from servicekit.outbound import redact

if TYPE_CHECKING:
    from eas_same import SameDecoder

log = logging.getLogger("eas_monitor.worker")

RECEIVING_HOLD_S = 4.0  # a burst sync this recent means a transmission is coming in
IN_MESSAGE_MAX_S = 300.0  # a header without EOM stops counting as "in message" after this


@dataclass(slots=True)
class _Msg:
    kind: str  # open | audio | error | end | fatal
    chunk: Chunk | None = None
    rate: int = 0
    error: str = ""


def capture_loop(
    source: Source, out: queue.Queue[_Msg], stop: threading.Event, backoff_s: float, cap_s: float
) -> None:
    """Open, read, reopen with exponential backoff; never raises."""
    delay = backoff_s
    while not stop.is_set():
        try:
            source.open()
        except SourceConfigError as exc:
            out.put(_Msg("fatal", error=str(exc)))
            return
        except SourceError as exc:
            out.put(_Msg("error", error=str(exc)))
            stop.wait(delay)
            delay = min(delay * 2, cap_s)
            continue
        out.put(_Msg("open", rate=source.rate))
        try:
            while not stop.is_set():
                chunk = source.read()
                if chunk is not None and len(chunk):
                    out.put(_Msg("audio", chunk=chunk))
                    delay = backoff_s  # audio flowed: the next failure starts from scratch
        except SourceEnded:
            out.put(_Msg("end"))
            return
        except SourceError as exc:
            out.put(_Msg("error", error=str(exc)))
        except Exception as exc:  # a bug or an odd file: report, then retry like an error
            out.put(_Msg("error", error=f"{type(exc).__name__}: {exc}"))
        finally:
            source.close()
        if not source.retry:
            out.put(_Msg("fatal", error="source failed and cannot be reopened"))
            return
        stop.wait(delay)
        delay = min(delay * 2, cap_s)


class Worker:
    def __init__(self, spec: WorkerSpec, out: TextIO) -> None:
        self.spec = spec
        self.s = spec.settings
        self.out = out
        self.source_name = f"eas-monitor/{self.s.instance}/input-{spec.input_id}"
        self.client = sync_redis(self.s.redis_url, timeout_s=5.0)
        self.bus = SyncBus(self.client, self.s.bus_namespace)
        self.aggregator = Aggregator(
            self.client,
            self.bus,
            aggregation_s=self.s.aggregation_window_s,
            grace_s=self.s.takeover_grace_s,
        )
        self.stop = threading.Event()
        self.queue: queue.Queue[_Msg] = queue.Queue(maxsize=200)
        self.rate = 0
        self.decoder: SameDecoder | None = None
        self.decoder_base = 0  # absolute sample index where the current decoder started
        self.meter: LevelMeter | None = None
        self.gate = ChangeGate(self.s.level_interval_s, self.s.level_change_db, time.monotonic)
        self.ring: AudioRing | None = None
        self.total = 0
        self.chunk_wall = time.time()
        self.errors = 0
        self.last_error: str | None = None
        self.signal = False
        self.last_header: str | None = None
        self.last_header_at: datetime | None = None
        self.last_eom_at: datetime | None = None
        self._syncs = 0
        self._last_sync = -1e9
        self._rate_marks: list[tuple[float, int]] = []
        self._next_progress = 0.0

    # ------------------------------------------------------------------ reporting
    def emit(self, message: dict[str, Any]) -> None:
        try:
            self.out.write(json.dumps(message, default=str) + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            # The supervisor is gone: an unsupervised worker must not live on.
            self.stop.set()

    def decoder_state(self) -> DecoderState:
        now = time.monotonic()
        if now - self._last_sync < RECEIVING_HOLD_S and (
            self.last_header_at is None
            or (datetime.now(UTC) - self.last_header_at).total_seconds() > RECEIVING_HOLD_S
        ):
            return DecoderState.RECEIVING
        if (
            self.last_header_at is not None
            and (self.last_eom_at is None or self.last_eom_at < self.last_header_at)
            and datetime.now(UTC) - self.last_header_at < timedelta(seconds=IN_MESSAGE_MAX_S)
        ):
            return DecoderState.IN_MESSAGE
        return DecoderState.IDLE

    def samples_per_s(self) -> float:
        now = time.monotonic()
        self._rate_marks.append((now, self.total))
        self._rate_marks = [(t, n) for t, n in self._rate_marks if now - t <= 5.0]
        t0, n0 = self._rate_marks[0]
        return round((self.total - n0) / (now - t0), 1) if now - t0 > 0.5 else 0.0

    def progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_progress:
            return
        self._next_progress = now + self.s.progress_interval_s
        self.emit(
            {
                "t": "progress",
                "samples_total": self.total,
                "samples_per_s": self.samples_per_s(),
                "signal": self.signal,
                "decoder_state": self.decoder_state().value,
                "last_header": self.last_header,
                "last_header_at": self.last_header_at.isoformat() if self.last_header_at else None,
                "errors": self.errors,
                "last_error": self.last_error,
            }
        )

    def fail(self, error: str) -> None:
        self.errors += 1
        error = redact(error)
        self.last_error = error[:500]
        log.warning("input %s: %s", self.spec.input_id, error)

    # ------------------------------------------------------------------ audio
    def on_open(self, rate: int) -> None:
        if self.decoder is not None:
            self.handle(self.decoder.flush())
        # Imported here, not at the top: the capture (and its connection errors) should not
        # wait for the decoder's import (numpy only since it dropped scipy, still ~0.1 s).
        from eas_same import SameDecoder

        self.rate = rate
        self.decoder = SameDecoder(rate)
        self.decoder_base = self.total
        self.meter = LevelMeter(
            rate, self.s.level_interval_s, self.s.silence_dbfs, self.s.clip_dbfs
        )
        if self.ring is None or self.ring.rate != rate:
            seconds = self.s.clip_max_s + self.s.clip_pre_s + self.s.clip_post_s + 10.0
            self.ring = AudioRing(rate, seconds)
            self.ring.total = self.total
        self.emit({"t": "state", "state": "running", "rate": rate})

    def on_audio(self, chunk: Chunk) -> None:
        assert self.decoder is not None and self.meter is not None and self.ring is not None
        self.chunk_wall = time.time()
        self.ring.write(chunk)
        self.total += len(chunk)
        for level in self.meter.feed(chunk):
            self.signal = not level.silence
            if self.gate.offer(level):
                self.publish_level(level.peak_dbfs, level.rms_dbfs, level.silence, level.clipping)
        before = self.decoder.stats.syncs_header + self.decoder.stats.syncs_eom
        events = self.decoder.feed(chunk)
        if self.decoder.stats.syncs_header + self.decoder.stats.syncs_eom != before:
            self._last_sync = time.monotonic()
        self.handle(events)

    def publish_level(self, peak: float, rms: float, silence: bool, clipping: bool) -> None:
        level = InputLevel(
            input_id=self.spec.input_id,
            name=self.spec.name,
            peak_dbfs=peak,
            rms_dbfs=rms,
            silence=silence,
            clipping=clipping,
            window_s=self.s.level_interval_s,
            at=datetime.now(UTC),
        )
        envelope = EventEnvelope[InputLevel](
            type=AUDIO_INPUT_LEVEL_TYPE,
            source=self.source_name,
            subject=f"input-{self.spec.input_id}",
            data=level,
        )
        try:
            self.bus.publish(AUDIO_METRICS, envelope)
        except Exception as exc:
            self.fail(f"level not published: {exc}")

    def wall(self, absolute_sample: int) -> datetime:
        """Wall time of a sample: audio arrives in real time, so count back from now."""
        back = (self.total - absolute_sample) / self.rate
        return datetime.fromtimestamp(self.chunk_wall - back, UTC)

    def hearing(
        self, start: int, end: int, confidence: float, bursts: int, agreed: int, clip: str | None
    ) -> Hearing:
        a, b = self.decoder_base + start, self.decoder_base + end
        return Hearing(
            input_id=self.spec.input_id,
            input_name=self.spec.name,
            heard_at=datetime.now(UTC),
            confidence=confidence,
            bursts=bursts,
            agreed=agreed,
            start_s=round(a / self.rate, 3),
            end_s=round(b / self.rate, 3),
            started_at=self.wall(a),
            ended_at=self.wall(b),
            clip_id=clip,
        )

    def keep_clip(self, start: int, end: int) -> str | None:
        assert self.ring is not None
        a = self.decoder_base + start - round(self.s.clip_pre_s * self.rate)
        b = self.decoder_base + end + round(self.s.clip_post_s * self.rate)
        b = min(b, a + round(self.s.clip_max_s * self.rate))
        samples = self.ring.extract(a, b)
        if not len(samples):
            return None
        clip_id = new_clip_id()
        try:
            write_clip(Path(self.s.clips_dir), clip_id, samples, self.rate)
        except OSError as exc:
            self.fail(f"clip not written: {exc}")
            return None
        return clip_id

    def handle(self, events: list[Any]) -> None:
        for ev in events:
            try:
                self._handle(ev)
            except Exception as exc:
                self.fail(f"{type(ev).__name__} not published: {type(exc).__name__}: {exc}")

    def _handle(self, ev: Any) -> None:
        from eas_monitor.payloads import attention_event, eom_event, header_event
        from eas_same import AttentionTone, EndOfMessage, HeaderDecoded

        src = self.source_name
        if isinstance(ev, HeaderDecoded):
            clip = self.keep_clip(ev.start_sample, ev.end_sample)
            h = self.hearing(
                ev.start_sample, ev.end_sample, ev.confidence, ev.bursts, ev.agreed, clip
            )
            self.last_header, self.last_header_at = ev.text, h.heard_at
            header = ev.header
            self.aggregator.hear(
                "header",
                ev.text,
                h,
                self.s.dedup_window_s,
                lambda hs: header_event(header, hs, src),
            )
        elif isinstance(ev, EndOfMessage):
            h = self.hearing(ev.start_sample, ev.end_sample, ev.confidence, ev.bursts, 0, None)
            self.last_eom_at = h.heard_at
            self.aggregator.hear(
                "eom", ev.text, h, self.s.eom_window_s, lambda hs: eom_event(hs, src)
            )
        elif isinstance(ev, AttentionTone):
            kind = AttentionToneKind(ev.kind)
            h = self.hearing(ev.start_sample, ev.end_sample, 1.0, 0, 0, None)
            self.aggregator.hear(
                "attention",
                kind.value,
                h,
                self.s.eom_window_s,
                lambda hs: attention_event(kind, hs, src),
            )

    def publish_due(self, everything: bool = False) -> None:
        for pending in self.aggregator.due(everything=everything):
            window = self.s.dedup_window_s if pending.kind == "header" else self.s.eom_window_s
            try:
                self.aggregator.publish(pending, window)
            except Exception as exc:
                self.fail(f"{pending.kind} not published: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ main loop
    def run(self, source: Source) -> int:
        reader = threading.Thread(
            target=capture_loop,
            args=(
                source,
                self.queue,
                self.stop,
                self.s.reconnect_backoff_s,
                self.s.reconnect_backoff_max_s,
            ),
            name="capture",
            daemon=True,
        )
        self.emit({"t": "state", "state": "connecting"})
        reader.start()
        code = 0
        finished = False
        while not self.stop.is_set():
            try:
                msg = self.queue.get(timeout=0.1)
            except queue.Empty:
                msg = None
            if msg is not None:
                if msg.kind == "audio" and msg.chunk is not None:
                    self.on_audio(msg.chunk)
                elif msg.kind == "open":
                    self.on_open(msg.rate)
                elif msg.kind == "error":
                    self.fail(msg.error)
                    self.emit({"t": "state", "state": "connecting", "error": self.last_error})
                elif msg.kind == "fatal":
                    self.fail(msg.error)
                    self.emit({"t": "fatal", "error": msg.error})
                    code = EXIT_CONFIG
                    break
                elif msg.kind == "end":
                    finished = True
                    break
            self.publish_due()
            self.progress()
        self.stop.set()
        reader.join(timeout=1.5)
        if reader.is_alive():
            source.close()  # unblocks a read stuck in ffmpeg's pipe
        if self.decoder is not None:
            self.handle(self.decoder.flush())
        if finished:
            # Let the aggregation windows run out, so other inputs still get listed.
            while self.aggregator.pending:
                time.sleep(0.05)
                self.publish_due()
        else:
            self.publish_due(everything=True)
        self.progress(force=True)
        if finished:
            self.emit({"t": "state", "state": "finished"})
        self.client.close()
        return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eas_monitor.worker")
    parser.add_argument("--input-id", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    spec = WorkerSpec.model_validate_json(sys.stdin.read())
    if spec.input_id != args.input_id:
        print(f"spec is for input {spec.input_id}, not {args.input_id}", file=sys.stderr)
        return EXIT_CONFIG
    out = sys.stdout
    worker = Worker(spec, out)

    def on_term(_signum: int, _frame: object) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    source = make_source(
        spec.config, ffmpeg=spec.settings.ffmpeg, stream_rate=spec.settings.stream_rate,
        chunk_s=spec.settings.chunk_s,
    )  # fmt: skip
    try:
        return worker.run(source)
    finally:
        # Never leave ffmpeg behind.
        source.close()


if __name__ == "__main__":
    raise SystemExit(main())
