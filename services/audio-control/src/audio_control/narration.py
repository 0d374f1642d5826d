"""Narration: the audio between the attention signal and the EOM, and where it came from.

Sources (each recorded in :class:`Narration`):

* ``cap_audio``: the CAP ``<resource>`` audio (ECIG V1.0 3.5.1), fetched over http(s) with a
  size cap, a content-type check and the guide's time limits (2 minutes to download, 30 s for
  a stream to start), or taken from the CAP ``derefUri`` (base64 in the message itself);
* ``tts``: text-to-speech of the alert text (:mod:`audio_control.tts`);
* ``upload``: audio an operator uploaded with an originated message;
* ``air_clip``: the audio heard between header and EOM on a monitored input.

For a CAP alert :func:`narrate_cap_alert` falls back CAP audio -> TTS -> none ("header and
tones only"), and the :class:`NarrationChoice` records why each better source was not used.
Every narration is normalised (see :mod:`audio_control.audio_files`) when it is made, so all
sources air at one loudness and none can clip.

The fetch uses the caller's ``httpx.AsyncClient`` (the service owns its connection pool and
proxy settings); redirects are followed here, one hop at a time, so each target's scheme is
checked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np
import numpy.typing as npt

from .audio_files import (
    AudioDecodeError,
    DecodedAudio,
    FloatArray,
    Levels,
    decode_audio,
    normalise,
    resample,
)
from .tts import TtsError, synthesize

if TYPE_CHECKING:
    from eas_schemas.station_settings import MessageSettings

__all__ = [
    "CAP_AUDIO_MIME_TYPES",
    "STREAMING_MIME_TYPES",
    "AirClipDetail",
    "CapAudioDetail",
    "CapAudioResource",
    "Narration",
    "NarrationChoice",
    "NarrationConfig",
    "NarrationError",
    "NarrationSource",
    "SourceFailure",
    "TtsDetail",
    "UploadDetail",
    "UploadRefused",
    "fade_cut",
    "fetch_cap_audio",
    "narrate_cap_alert",
    "narration_from_air_clip",
    "narration_from_text",
    "narration_from_upload",
]

NarrationSource = Literal["cap_audio", "tts", "upload", "air_clip"]

# ECIG 2.1.1 mimeTypes and the common names servers give the same files.
STREAMING_MIME_TYPES = frozenset({"audio/x-ipaws-streaming-audio-mp3"})
CAP_AUDIO_MIME_TYPES = frozenset(
    {
        "audio/x-ipaws-audio-mp3",
        "audio/x-ipaws-audio-wav",
        "audio/x-ipaws-streaming-audio-mp3",
        "audio/mpeg",
        "audio/mp3",
        "audio/wav",
        "audio/x-wav",
    }
)
ALLOWED_SCHEMES = frozenset({"http", "https"})
FADE_S = 0.05  # a cut in the middle of a word must not click


@dataclass(frozen=True, slots=True)
class NarrationConfig:
    """Limits and choices for making narration; :meth:`from_settings` maps the station's
    ``messages`` settings, the time limits default to the guide's (ECIG 3.5.1)."""

    rate: int = 22_050
    tts_engine: str = "espeak-ng"
    tts_voice: str | None = "en-us"
    tts_rate_wpm: int = 160
    cap_audio_max_bytes: int = 20 * 1024 * 1024
    upload_max_bytes: int = 20 * 1024 * 1024
    narration_max_s: float = 120.0
    # An EAN has no narration limit (ECIG 3.5.2); this bounds memory only (10 min at 48 kHz
    # is 115 MB of float32). Live relay of an EAN stream belongs to playout, not here.
    ean_max_s: float = 600.0
    download_timeout_s: float = 120.0
    streaming_timeout_s: float = 30.0
    decode_timeout_s: float = 30.0
    tts_timeout_s: float = 30.0
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: MessageSettings, **overrides: Any) -> NarrationConfig:
        base = cls(
            rate=settings.sample_rate_hz,
            tts_engine=settings.tts_engine,
            tts_voice=settings.tts_voice,
            tts_rate_wpm=settings.tts_rate_wpm,
            cap_audio_max_bytes=settings.cap_audio_max_bytes,
            upload_max_bytes=settings.cap_audio_max_bytes,
            narration_max_s=settings.narration_max_s,
        )
        return replace(base, **overrides)

    def limit_s(self, is_ean: bool) -> float:
        return self.ean_max_s if is_ean else self.narration_max_s


# ---- what a narration records ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapAudioResource:
    """The CAP ``<resource>`` chosen for broadcast (resourceDesc "EAS Broadcast Content")."""

    mime_type: str
    uri: str | None = None
    deref_uri: str | None = None  # base64 content carried in the message
    digest: str | None = None  # CAP 1.2: SHA-1 of the resource, hex
    size: int | None = None


@dataclass(frozen=True, slots=True)
class CapAudioDetail:
    uri: str | None
    final_uri: str | None  # after redirects
    mime_type: str  # as the CAP message declared it
    content_type: str | None  # as the server sent it (None for derefUri)
    size_bytes: int
    sha256: str
    digest_checked: bool  # the CAP digest was present and matched
    streaming: bool
    stream_cut: bool  # a stream still running at the time limit: the audio received is used
    format: str
    codec: str


@dataclass(frozen=True, slots=True)
class TtsDetail:
    engine: str
    voice: str
    rate_wpm: int
    text: str  # exactly what was spoken
    pauses: int


@dataclass(frozen=True, slots=True)
class UploadDetail:
    filename: str | None
    size_bytes: int
    sha256: str
    format: str
    codec: str


@dataclass(frozen=True, slots=True)
class AirClipDetail:
    clip_id: str | None
    input_rate: int


NarrationDetail = CapAudioDetail | TtsDetail | UploadDetail | AirClipDetail


def fade_cut(samples: FloatArray, rate: int, max_s: float) -> tuple[FloatArray, bool]:
    """``samples`` cut to ``max_s`` with a short fade-out; (samples, whether it was cut)."""
    n = round(max_s * rate)
    if len(samples) <= n:
        return samples, False
    out = samples[:n].copy()
    fade = min(n, round(FADE_S * rate))
    if fade:
        out[n - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out, True


@dataclass(frozen=True, slots=True)
class Narration:
    """Normalised mono narration at ``rate`` and its provenance. Make it with
    :meth:`from_audio` (or the ``narration_from_*`` functions), which normalise."""

    source: NarrationSource
    samples: FloatArray
    rate: int
    detail: NarrationDetail
    gain_db: float
    levels: Levels
    source_truncated: bool  # the source was longer than the limit and was cut

    def __post_init__(self) -> None:
        if self.samples.dtype != np.float32 or self.samples.ndim != 1:
            raise ValueError("narration samples must be 1-D float32")
        if not len(self.samples):
            raise ValueError("narration has no samples")
        if not np.all(np.isfinite(self.samples)) or float(np.max(np.abs(self.samples))) > 1.0:
            raise ValueError("narration samples must be finite and within [-1, 1]")

    @classmethod
    def from_audio(
        cls,
        source: NarrationSource,
        samples: npt.ArrayLike,
        rate: int,
        detail: NarrationDetail,
        *,
        max_s: float,
        truncated: bool = False,
    ) -> Narration:
        """Normalise ``samples`` and cut them to ``max_s``; raises :class:`AudioDecodeError`
        (``silent``) for audio with nothing in it."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        x, cut = fade_cut(x, rate, max_s)
        y, gain_db, levels = normalise(x, rate)
        return cls(
            source=source,
            samples=y,
            rate=rate,
            detail=detail,
            gain_db=gain_db,
            levels=levels,
            source_truncated=truncated or cut,
        )

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "duration_s": round(self.duration_s, 3),
            "gain_db": round(self.gain_db, 2),
            "peak_dbfs": round(self.levels.peak_dbfs, 2),
            "rms_dbfs": round(self.levels.rms_dbfs, 2),
            "source_truncated": self.source_truncated,
            **_detail_dict(self.detail),
        }


def _detail_dict(detail: NarrationDetail) -> dict[str, Any]:
    return {name: getattr(detail, name) for name in type(detail).__slots__}


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """Why one narration source was not used (``reason`` a short code, ``message`` words)."""

    source: NarrationSource
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "reason": self.reason, "message": self.message}


class NarrationError(Exception):
    def __init__(self, source: NarrationSource, reason: str, message: str) -> None:
        super().__init__(message)
        self.failure = SourceFailure(source, reason, message)


UploadRefusal = Literal[
    "too_long", "too_big", "not_audio", "unsupported", "silent", "decoder_failed"
]


class UploadRefused(Exception):
    """An upload that cannot be narration; ``reason`` is one of :data:`UploadRefusal`."""

    def __init__(self, reason: UploadRefusal, message: str) -> None:
        super().__init__(message)
        self.reason: UploadRefusal = reason


@dataclass(frozen=True, slots=True)
class NarrationChoice:
    """The narration chosen (None: header and tones only) and why better sources were not."""

    narration: Narration | None
    failures: tuple[SourceFailure, ...] = field(default=())

    @property
    def source(self) -> NarrationSource | Literal["none"]:
        return self.narration.source if self.narration is not None else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "narration": self.narration.to_dict() if self.narration is not None else None,
            "failures": [f.to_dict() for f in self.failures],
        }


# ---- CAP audio -------------------------------------------------------------------------------


def _media_type(value: str | None) -> str | None:
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _check_scheme(url: str, *, redirected_from: str | None = None) -> httpx.URL:
    where = f" (redirect from {redirected_from})" if redirected_from else ""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise NarrationError(
            "cap_audio", "bad_uri", f"resource URI {url!r} is invalid{where}"
        ) from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise NarrationError(
            "cap_audio",
            "scheme_not_allowed",
            f"resource URI scheme {parsed.scheme or '(none)'!r} is not allowed{where}; "
            "only http and https are fetched",
        )
    if not parsed.host:
        raise NarrationError("cap_audio", "bad_uri", f"resource URI {url!r} has no host{where}")
    return parsed


_B64_WS = re.compile(rb"\s+")


def _deref_bytes(deref: str, max_bytes: int) -> bytes:
    raw = _B64_WS.sub(b"", deref.encode("ascii", "replace"))
    if len(raw) * 3 // 4 > max_bytes:
        raise NarrationError(
            "cap_audio", "too_big", f"derefUri holds more than {max_bytes} bytes of audio"
        )
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NarrationError("cap_audio", "bad_deref", "derefUri is not valid base64") from exc


@dataclass(slots=True)
class _Fetched:
    body: bytes
    final_uri: str
    content_type: str
    stream_cut: bool


async def _fetch(
    client: httpx.AsyncClient, url: str, *, streaming: bool, config: NarrationConfig
) -> _Fetched:
    loop = asyncio.get_running_loop()
    start = loop.time()
    overall_deadline = start + config.download_timeout_s
    # A stream must start within streaming_timeout_s; a download finish within the download
    # limit. A stream that started is read until it ends, the size cap or the download limit.
    first_deadline = start + min(config.streaming_timeout_s, config.download_timeout_s)
    chunks: list[bytes] = []
    total = 0
    started = False
    current = url
    content_type = ""
    stream_cut = False
    try:
        async with asyncio.timeout_at(first_deadline if streaming else overall_deadline) as tmo:
            for _hop in range(config.max_redirects + 1):
                async with client.stream(
                    "GET",
                    current,
                    follow_redirects=False,
                    headers={"Accept": "audio/*", "Accept-Encoding": "identity"},
                ) as resp:
                    if resp.is_redirect:
                        location = resp.headers.get("location")
                        if not location:
                            raise NarrationError(
                                "cap_audio", "http_status", f"{current}: redirect without Location"
                            )
                        target = str(resp.url.join(location))
                        _check_scheme(target, redirected_from=current)
                        current = target
                        continue
                    if resp.status_code != 200:
                        raise NarrationError(
                            "cap_audio", "http_status", f"{current}: HTTP {resp.status_code}"
                        )
                    content_type = _media_type(resp.headers.get("content-type")) or ""
                    if content_type not in CAP_AUDIO_MIME_TYPES:
                        raise NarrationError(
                            "cap_audio",
                            "wrong_type",
                            f"{current}: content type {content_type or '(none)'!r} is not "
                            "an EAS audio type",
                        )
                    declared = resp.headers.get("content-length")
                    if (
                        not streaming
                        and declared is not None
                        and declared.isdigit()
                        and int(declared) > config.cap_audio_max_bytes
                    ):
                        raise NarrationError(
                            "cap_audio",
                            "too_big",
                            f"{current}: {declared} bytes, more than the "
                            f"{config.cap_audio_max_bytes} allowed",
                        )
                    async for chunk in resp.aiter_bytes():
                        if streaming and not started:
                            started = True
                            tmo.reschedule(overall_deadline)
                        chunks.append(chunk)
                        total += len(chunk)
                        if total > config.cap_audio_max_bytes:
                            if streaming:
                                stream_cut = True
                                break
                            raise NarrationError(
                                "cap_audio",
                                "too_big",
                                f"{current}: more than the {config.cap_audio_max_bytes} "
                                "bytes allowed",
                            )
                    break
            else:
                raise NarrationError(
                    "cap_audio", "redirect", f"more than {config.max_redirects} redirects"
                )
    except TimeoutError as exc:
        if not (streaming and started):
            limit = config.streaming_timeout_s if streaming else config.download_timeout_s
            what = "start streaming" if streaming else "download"
            raise NarrationError(
                "cap_audio",
                "timeout",
                f"{current}: did not {what} within {limit:g} s",
            ) from exc
        stream_cut = True
    except httpx.HTTPError as exc:
        raise NarrationError(
            "cap_audio", "network", f"{current}: {type(exc).__name__}: {exc}"
        ) from exc
    body = b"".join(chunks)
    if streaming and len(body) > config.cap_audio_max_bytes:
        body = body[: config.cap_audio_max_bytes]
    return _Fetched(body, current, content_type, stream_cut)


def _decode_failure(source: NarrationSource, exc: AudioDecodeError) -> NarrationError:
    return NarrationError(source, exc.reason, str(exc))


async def fetch_cap_audio(
    resource: CapAudioResource,
    *,
    client: httpx.AsyncClient,
    config: NarrationConfig,
    is_ean: bool = False,
) -> Narration:
    """The CAP resource as narration; raises :class:`NarrationError` saying which step failed."""
    mime = _media_type(resource.mime_type) or ""
    if mime not in CAP_AUDIO_MIME_TYPES:
        raise NarrationError(
            "cap_audio",
            "wrong_type",
            f"resource mimeType {resource.mime_type!r} is not an EAS audio type "
            f"({', '.join(sorted(CAP_AUDIO_MIME_TYPES))})",
        )
    streaming = mime in STREAMING_MIME_TYPES
    if resource.deref_uri:
        # CAP derefUri: the content itself, base64; no fetch, whatever uri says.
        body = _deref_bytes(resource.deref_uri, config.cap_audio_max_bytes)
        fetched = _Fetched(body, resource.uri or "", "", False)
        content_type: str | None = None
    elif resource.uri:
        _check_scheme(resource.uri)
        fetched = await _fetch(client, resource.uri, streaming=streaming, config=config)
        content_type = fetched.content_type
    else:
        raise NarrationError("cap_audio", "bad_uri", "resource has neither uri nor derefUri")
    if len(fetched.body) > config.cap_audio_max_bytes:
        raise NarrationError(
            "cap_audio", "too_big", f"more than the {config.cap_audio_max_bytes} bytes allowed"
        )
    digest_checked = False
    if resource.digest:
        actual = hashlib.sha1(fetched.body, usedforsecurity=False).hexdigest()
        if actual != resource.digest.strip().lower():
            raise NarrationError(
                "cap_audio",
                "digest_mismatch",
                f"SHA-1 of the audio is {actual}, the CAP digest says {resource.digest.strip()}",
            )
        digest_checked = True
    limit = config.limit_s(is_ean)
    try:
        decoded = await decode_audio(
            fetched.body,
            config.rate,
            max_s=limit,
            refuse_longer=False,
            timeout_s=config.decode_timeout_s,
        )
        detail = CapAudioDetail(
            uri=resource.uri,
            final_uri=fetched.final_uri or None,
            mime_type=resource.mime_type,
            content_type=content_type,
            size_bytes=len(fetched.body),
            sha256=hashlib.sha256(fetched.body).hexdigest(),
            digest_checked=digest_checked,
            streaming=streaming,
            stream_cut=fetched.stream_cut,
            format=decoded.probe.format,
            codec=decoded.probe.codec,
        )
        return Narration.from_audio(
            "cap_audio",
            decoded.samples,
            config.rate,
            detail,
            max_s=limit,
            truncated=decoded.capped,
        )
    except AudioDecodeError as exc:
        raise _decode_failure("cap_audio", exc) from exc


# ---- TTS, upload, air clip -------------------------------------------------------------------


async def narration_from_text(
    text: str, *, config: NarrationConfig, is_ean: bool = False
) -> Narration:
    """Text-to-speech narration; raises :class:`NarrationError` (source ``tts``)."""
    try:
        speech = await synthesize(
            text,
            rate=config.rate,
            engine=config.tts_engine,
            voice=config.tts_voice,
            rate_wpm=config.tts_rate_wpm,
            timeout_s=config.tts_timeout_s,
        )
    except TtsError as exc:
        raise NarrationError("tts", "tts_failed", str(exc)) from exc
    detail = TtsDetail(
        engine=speech.engine,
        voice=speech.voice,
        rate_wpm=speech.rate_wpm,
        text=speech.text,
        pauses=speech.pauses,
    )
    try:
        return Narration.from_audio(
            "tts", speech.samples, config.rate, detail, max_s=config.limit_s(is_ean)
        )
    except AudioDecodeError as exc:
        raise _decode_failure("tts", exc) from exc


_UPLOAD_REASONS: Mapping[str, UploadRefusal] = {
    "unsupported_format": "unsupported",
    "not_audio": "not_audio",
    "too_long": "too_long",
    "too_big": "too_big",
    "silent": "silent",
    "decoder_failed": "decoder_failed",
}


async def narration_from_upload(
    data: bytes,
    *,
    config: NarrationConfig,
    filename: str | None = None,
    is_ean: bool = False,
) -> Narration:
    """An operator's WAV/FLAC/Ogg/MP3 as narration; raises :class:`UploadRefused`. Unlike CAP
    audio, an upload longer than the limit is refused, not cut: the operator can fix it."""
    if len(data) > config.upload_max_bytes:
        raise UploadRefused(
            "too_big", f"{len(data)} bytes; at most {config.upload_max_bytes} are accepted"
        )
    limit = config.limit_s(is_ean)
    try:
        decoded: DecodedAudio = await decode_audio(
            data, config.rate, max_s=limit, refuse_longer=True, timeout_s=config.decode_timeout_s
        )
        detail = UploadDetail(
            filename=filename,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            format=decoded.probe.format,
            codec=decoded.probe.codec,
        )
        return Narration.from_audio("upload", decoded.samples, config.rate, detail, max_s=limit)
    except AudioDecodeError as exc:
        raise UploadRefused(_UPLOAD_REASONS[exc.reason], str(exc)) from exc


def narration_from_air_clip(
    samples: npt.ArrayLike,
    rate: int,
    *,
    config: NarrationConfig,
    clip_id: str | None = None,
    is_ean: bool = False,
) -> Narration:
    """Audio heard between a received header and its EOM, resampled to the message rate.
    Raises :class:`NarrationError` (source ``air_clip``) for an empty or silent clip."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not len(x) or not np.all(np.isfinite(x)):
        raise NarrationError("air_clip", "not_audio", "the clip is empty or not finite")
    if rate < 1:
        raise NarrationError("air_clip", "not_audio", f"clip sample rate {rate} is invalid")
    limit = config.limit_s(is_ean)
    # Resample no more than the limit (plus a little for the resampler's edge).
    keep = math.ceil((limit + 0.1) * rate)
    truncated = len(x) > round(limit * rate)
    y = resample(x[:keep], rate, config.rate)
    try:
        return Narration.from_audio(
            "air_clip",
            y,
            config.rate,
            AirClipDetail(clip_id=clip_id, input_rate=rate),
            max_s=limit,
            truncated=truncated,
        )
    except AudioDecodeError as exc:
        raise _decode_failure("air_clip", exc) from exc


def _unexpected(source: NarrationSource, exc: Exception) -> SourceFailure:
    return SourceFailure(source, "internal_error", f"{type(exc).__name__}: {exc}")


async def narrate_cap_alert(
    resource: CapAudioResource | None,
    text: str | None,
    *,
    client: httpx.AsyncClient,
    config: NarrationConfig,
    is_ean: bool = False,
) -> NarrationChoice:
    """ECIG 3.5.1: the CAP audio resource, else TTS of the alert text, else none; never raises
    for a failing source, it records it."""
    failures: list[SourceFailure] = []
    if resource is None:
        failures.append(SourceFailure("cap_audio", "absent", "the alert has no audio resource"))
    else:
        try:
            narration = await fetch_cap_audio(resource, client=client, config=config, is_ean=is_ean)
            return NarrationChoice(narration, tuple(failures))
        except NarrationError as exc:
            failures.append(exc.failure)
        except Exception as exc:
            # Any other fault (a tool missing, the OS refusing a process) must still leave
            # the alert its fallback: a missed alert is worse than a spoken one.
            failures.append(_unexpected("cap_audio", exc))
    if not text or not text.strip():
        failures.append(SourceFailure("tts", "absent", "the alert has no text to speak"))
    else:
        try:
            narration = await narration_from_text(text, config=config, is_ean=is_ean)
            return NarrationChoice(narration, tuple(failures))
        except NarrationError as exc:
            failures.append(exc.failure)
        except Exception as exc:
            failures.append(_unexpected("tts", exc))
    return NarrationChoice(None, tuple(failures))
