"""Audio files in and out: bounded decoding with ffmpeg, loudness normalisation, WAV writing.

Decoding (CAP audio resources and operator uploads) runs ffmpeg and ffprobe as asyncio
subprocesses with the file on a pipe, never on disk and never named on the command line:

* the container is sniffed from its first bytes (WAV, FLAC, Ogg, MP3) and ffmpeg is told that
  format with ``-f`` and allowed only the ``pipe`` protocol: left to probe, ffmpeg would also
  accept an HLS or concat playlist, whose entries it would go and open (files on this machine,
  other hosts);
* ffprobe reports channels, rate and the declared length, and ``frames x channels`` is checked
  against a budget before anything is decoded: a FLAC or Vorbis file of a few kilobytes can
  declare hours of eight-channel audio;
* the decode itself is capped twice: ``-t`` stops ffmpeg at the length limit and the reader
  stops (and kills ffmpeg) past the byte count that length allows;
* every step has a time limit.

Normalisation (one rule for every narration source, so TTS, CAP audio, uploads and air clips
air at the same loudness): gain to a gated RMS of :data:`TARGET_RMS_DBFS` over the active
(non-pause) parts, then, if that would put any sample above :data:`PEAK_CEILING_DBFS`, less
gain until the peak sits at the ceiling. RMS, not peak, because two sources normalised to the
same peak can differ by 10 dB in loudness (speech crest factors vary that much); gated, so the
1 s pauses of ``***`` and leading silence do not make a paused text louder; -20 dBFS because
typical speech, with a crest factor of 12 to 18 dB, then peaks below the -1 dBFS ceiling
without a limiter (a limiter would change the audio, which the guide wants aired as sent).
Clipping is impossible: the gain never lets a sample exceed the ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "PEAK_CEILING_DBFS",
    "TARGET_RMS_DBFS",
    "AudioDecodeError",
    "AudioFormat",
    "AudioProbe",
    "DecodeFailure",
    "DecodedAudio",
    "Levels",
    "decode_audio",
    "measure_levels",
    "normalise",
    "parse_wav_stream",
    "probe_audio",
    "resample",
    "sniff_format",
    "wav_bytes",
    "write_wav",
]

FloatArray = npt.NDArray[np.float32]
AudioFormat = Literal["wav", "flac", "ogg", "mp3"]

TARGET_RMS_DBFS = -20.0
PEAK_CEILING_DBFS = -1.0
_GATE_ABS_DBFS = -60.0  # frames quieter than this are pauses, whatever the level of the rest
_GATE_REL_DB = -20.0  # and so are frames 20 dB below the loud part (95th percentile frame)
_FRAME_S = 0.05

# ffmpeg demuxer names for the sniffed formats
_DEMUXER: dict[AudioFormat, str] = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3"}
MAX_CHANNELS = 8
MAX_INPUT_RATE = 384_000
# The declared frames x channels budget: what a 48 kHz stereo file of the allowed length holds.
_BUDGET_RATE, _BUDGET_CHANNELS = 48_000, 2

DecodeFailure = Literal[
    "unsupported_format", "not_audio", "too_long", "too_big", "silent", "decoder_failed"
]


class AudioDecodeError(Exception):
    """Audio that was refused; ``reason`` is a short code, ``str()`` says why in words."""

    def __init__(self, reason: DecodeFailure, message: str) -> None:
        super().__init__(message)
        self.reason: DecodeFailure = reason


@dataclass(frozen=True, slots=True)
class AudioProbe:
    format: AudioFormat
    codec: str
    channels: int
    sample_rate: int
    duration_s: float | None  # declared; None when the container does not say


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: FloatArray  # mono float32 at ``rate``
    rate: int
    probe: AudioProbe
    capped: bool  # the source was longer than the decode limit; samples hold the first part

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True, slots=True)
class Levels:
    peak_dbfs: float
    rms_dbfs: float  # gated (active parts only); -inf for silence


def _require_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise AudioDecodeError(
            "decoder_failed", f"{name} is not installed (Debian package ffmpeg is required)"
        )
    return exe


def sniff_format(data: bytes) -> AudioFormat | None:
    """The container of ``data`` from its magic bytes, or None for anything else."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame header: 11 sync bits, layer bits not "reserved" (00).
    if len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0 and (data[1] & 0x06):
        return "mp3"
    return None


async def _run(
    argv: list[str], data: bytes, *, timeout_s: float, max_stdout: int
) -> tuple[int, bytes, bytes, bool]:
    """Run ``argv`` with ``data`` on stdin; return (rc, stdout, stderr tail, stdout_capped).

    stdout is read as it comes and the process is killed once it passes ``max_stdout`` bytes,
    so a misbehaving decoder cannot fill memory."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

    async def feed() -> None:
        # The decoder may stop reading early (it hit -t); a broken pipe is not an error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()

    async def read_out() -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await stdout.read(1 << 16)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)
            total += len(chunk)
            if total > max_stdout:
                return b"".join(chunks)[: max_stdout + 1], True

    async def read_err() -> bytes:
        tail = b""
        while True:
            chunk = await stderr.read(1 << 14)
            if not chunk:
                return tail
            tail = (tail + chunk)[-4000:]

    feeder = asyncio.create_task(feed())
    err_task = asyncio.create_task(read_err())
    try:
        async with asyncio.timeout(timeout_s):
            out, capped = await read_out()
            if capped:
                proc.kill()
            await feeder
            err = await err_task
            rc = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    finally:
        for task in (feeder, err_task):
            if not task.done():
                task.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return rc, out, err, capped


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no message"


async def probe_audio(data: bytes, *, timeout_s: float = 15.0) -> AudioProbe:
    """Container, codec, channels, rate and declared length of ``data``; refuses anything
    that is not WAV, FLAC, Ogg or MP3 with an audio stream."""
    if not data:
        raise AudioDecodeError("not_audio", "the file is empty")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise AudioDecodeError(
            "unsupported_format", "not a WAV, FLAC, Ogg or MP3 file (unrecognised first bytes)"
        )
    argv = [
        _require_tool("ffprobe"),
        "-v",
        "error",
        "-protocol_whitelist",
        "pipe",
        "-f",
        _DEMUXER[fmt],
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
        "pipe:0",
    ]
    try:
        rc, out, err, _ = await _run(argv, data, timeout_s=timeout_s, max_stdout=1 << 20)
    except TimeoutError as exc:
        raise AudioDecodeError("decoder_failed", f"ffprobe took more than {timeout_s} s") from exc
    if rc != 0:
        raise AudioDecodeError("not_audio", f"not a readable {fmt} file: {_last_line(err)}")
    try:
        info = json.loads(out)
    except ValueError as exc:
        raise AudioDecodeError("decoder_failed", "ffprobe printed no JSON") from exc
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioDecodeError("not_audio", f"the {fmt} file has no audio stream")
    st = streams[0]
    try:
        channels = int(st.get("channels", 0))
        rate = int(st.get("sample_rate", 0))
    except (TypeError, ValueError) as exc:
        raise AudioDecodeError("not_audio", "ffprobe reported no channels or sample rate") from exc
    if channels < 1 or rate < 1:
        raise AudioDecodeError("not_audio", "the audio stream has no channels or no sample rate")
    duration: float | None = None
    for raw in (st.get("duration"), info.get("format", {}).get("duration")):
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value >= 0:
            duration = value
            break
    if fmt == "wav":
        # PCM cannot expand: its length is bounded by the bytes present, whatever the header
        # says (programs writing WAV to a pipe put 0x7ffff000 or 0xffffffff there).
        bits = int(st.get("bits_per_sample") or 0) or 16
        by_bytes = len(data) / max(1, channels * max(1, bits // 8)) / rate
        duration = by_bytes if duration is None else min(duration, by_bytes)
    return AudioProbe(
        format=fmt,
        codec=str(st.get("codec_name", "")),
        channels=channels,
        sample_rate=rate,
        duration_s=duration,
    )


async def decode_audio(
    data: bytes,
    rate: int,
    *,
    max_s: float,
    refuse_longer: bool,
    timeout_s: float = 30.0,
) -> DecodedAudio:
    """Decode ``data`` (WAV, FLAC, Ogg, MP3) to mono float32 at ``rate``, at most ``max_s``
    seconds of it. ``refuse_longer``: a source longer than ``max_s`` is an error (``too_long``)
    instead of being cut (``capped``)."""
    probe = await probe_audio(data, timeout_s=min(timeout_s, 15.0))
    if probe.channels > MAX_CHANNELS:
        raise AudioDecodeError(
            "unsupported_format", f"{probe.channels} channels; at most {MAX_CHANNELS} are accepted"
        )
    if probe.sample_rate > MAX_INPUT_RATE:
        raise AudioDecodeError(
            "unsupported_format",
            f"sample rate {probe.sample_rate} Hz; at most {MAX_INPUT_RATE} Hz is accepted",
        )
    if probe.duration_s is not None:
        if refuse_longer and probe.duration_s > max_s + 0.05:
            raise AudioDecodeError(
                "too_long", f"{probe.duration_s:.1f} s of audio; at most {max_s:g} s is accepted"
            )
        declared = probe.duration_s * probe.sample_rate * probe.channels
        budget = max_s * _BUDGET_RATE * _BUDGET_CHANNELS
        if declared > budget:
            raise AudioDecodeError(
                "too_big",
                f"the file declares {probe.duration_s:.0f} s x {probe.channels} channels at "
                f"{probe.sample_rate} Hz ({declared:.3g} samples), more than the "
                f"{budget:.3g} allowed for {max_s:g} s: refused before decoding",
            )
    # One sample past the limit tells "longer than max_s" from "exactly max_s".
    limit_frames = math.ceil(max_s * rate) + 1
    argv = [
        _require_tool("ffmpeg"),
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "pipe",
        "-f",
        _DEMUXER[probe.format],
        "-i",
        "pipe:0",
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-t",
        f"{(limit_frames + 1) / rate:.6f}",
        "-f",
        "f32le",
        "pipe:1",
    ]
    try:
        rc, out, err, capped_bytes = await _run(
            argv, data, timeout_s=timeout_s, max_stdout=limit_frames * 4
        )
    except TimeoutError as exc:
        raise AudioDecodeError(
            "decoder_failed", f"decoding took more than {timeout_s:g} s"
        ) from exc
    if rc != 0 and not capped_bytes:
        raise AudioDecodeError("not_audio", f"ffmpeg could not decode it: {_last_line(err)}")
    usable = len(out) - len(out) % 4
    samples = np.frombuffer(out[:usable], dtype="<f4").astype(np.float32)
    if not len(samples):
        raise AudioDecodeError("not_audio", "the file decodes to no audio")
    if not np.all(np.isfinite(samples)):
        raise AudioDecodeError("not_audio", "the file decodes to non-finite samples")
    max_frames = round(max_s * rate)
    longer = len(samples) > max_frames
    if longer and refuse_longer:
        raise AudioDecodeError(
            "too_long", f"more than {max_s:g} s of audio; at most {max_s:g} s is accepted"
        )
    # Decoded floats may exceed 1.0 (MP3 overshoot); normalisation later brings them down.
    return DecodedAudio(
        samples=samples[:max_frames] if longer else samples,
        rate=rate,
        probe=probe,
        capped=longer,
    )


def parse_wav_stream(data: bytes) -> tuple[FloatArray, int]:
    """Mono float32 samples and rate of a 16-bit PCM WAV written to a pipe.

    Engines writing WAV to stdout cannot seek back to fill in the sizes, so the RIFF and data
    sizes are ignored and the data chunk runs to the end of the bytes."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream (no RIFF/WAVE header)")
    pos = 12
    channels = rate = bits = 0
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = data[body : body + 16]
            if len(fmt) < 16:
                raise ValueError("WAV fmt chunk is truncated")
            tag = int.from_bytes(fmt[0:2], "little")
            channels = int.from_bytes(fmt[2:4], "little")
            rate = int.from_bytes(fmt[4:8], "little")
            bits = int.from_bytes(fmt[14:16], "little")
            if tag not in (1, 0xFFFE) or bits != 16 or channels < 1 or rate < 1:
                raise ValueError(
                    f"WAV is not 16-bit PCM (format {tag}, {bits} bits, {channels} channels)"
                )
        elif chunk_id == b"data":
            if not rate:
                raise ValueError("WAV data chunk comes before its fmt chunk")
            payload = data[body:]
            frame = 2 * channels
            payload = payload[: len(payload) - len(payload) % frame]
            pcm = np.frombuffer(payload, dtype="<i2").reshape(-1, channels)
            mono = pcm.astype(np.float32).mean(axis=1) / 32768.0
            return mono.astype(np.float32), rate
        pos = body + size + (size & 1)
    raise ValueError("WAV stream has no data chunk")


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int) -> FloatArray:
    """Band-limited polyphase resampling (exact rational ratio)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if from_rate == to_rate or not len(x):
        return x
    from scipy.signal import resample_poly

    g = math.gcd(from_rate, to_rate)
    return np.asarray(resample_poly(x, to_rate // g, from_rate // g), dtype=np.float32)


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def measure_levels(samples: npt.ArrayLike, rate: int) -> Levels:
    """Peak and gated RMS (see the module docstring) in dBFS."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if not len(x):
        return Levels(-math.inf, -math.inf)
    peak = float(np.max(np.abs(x)))
    n = max(1, round(_FRAME_S * rate))
    frames = len(x) // n
    if frames == 0:
        return Levels(_dbfs(peak), _dbfs(float(np.sqrt(np.mean(x * x)))))
    power = np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1)
    loud = float(np.percentile(power, 95))
    gate = max(10 ** (_GATE_ABS_DBFS / 10), loud * 10 ** (_GATE_REL_DB / 10))
    active = power[power > gate]
    if not len(active):
        return Levels(_dbfs(peak), -math.inf)
    return Levels(_dbfs(peak), _dbfs(float(np.sqrt(np.mean(active)))))


def normalise(samples: npt.ArrayLike, rate: int) -> tuple[FloatArray, float, Levels]:
    """``samples`` at the narration level: (normalised float32, gain in dB, levels after).

    Raises :class:`AudioDecodeError` (``silent``) when there is nothing above the gate."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    before = measure_levels(x, rate)
    if not math.isfinite(before.rms_dbfs) or before.rms_dbfs < _GATE_ABS_DBFS:
        raise AudioDecodeError("silent", "the audio is silent (nothing above -60 dBFS)")
    gain_db = min(TARGET_RMS_DBFS - before.rms_dbfs, PEAK_CEILING_DBFS - before.peak_dbfs)
    y = x * 10 ** (gain_db / 20)
    # float rounding must not carry a sample past the ceiling
    ceiling = 10 ** (PEAK_CEILING_DBFS / 20)
    out: FloatArray = np.clip(y, -ceiling, ceiling).astype(np.float32)
    return out, gain_db, measure_levels(out, rate)


def wav_bytes(samples: npt.ArrayLike, rate: int) -> bytes:
    """16-bit PCM mono WAV of float samples in [-1, 1] (out-of-range values are clipped)."""
    x = np.clip(np.asarray(samples, dtype=np.float64).reshape(-1), -1.0, 1.0)
    pcm = np.round(x * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int) -> None:
    """:func:`wav_bytes` to a file, written beside it first and renamed, so a reader never
    sees half a message."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(wav_bytes(samples, rate))
    tmp.replace(target)
