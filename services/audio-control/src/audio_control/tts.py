"""Text-to-speech for alert narration (ECIG V1.0 3.5.4): an exact rendering of the alert text,
each ``***`` (the guide's mark of deleted text) a one-second pause.

Engines run as asyncio subprocesses (so the service's event loop keeps running while one
speaks), the text on stdin and never on the command line (where it would be visible to every
user in ``ps`` and limited in length, and where a text beginning with ``-`` would be read as an
option). The pause is made here, not by the engine: the text is split at ``***``, each part is
spoken on its own and exactly one second of silence goes between, so the pause is the same with
every engine and can be checked in the samples.

Engines live in a registry (:data:`ENGINES`, :func:`register_engine`); espeak-ng (Debian
``espeak-ng``) is the default, flite (Debian ``flite``) is registered and used where installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_files import FloatArray, parse_wav_stream, resample

__all__ = [
    "ENGINES",
    "PAUSE_MARK",
    "PAUSE_S",
    "SpeechResult",
    "TtsEngine",
    "TtsError",
    "installed_engines",
    "register_engine",
    "resolve_engine",
    "split_pauses",
    "synthesize",
]

PAUSE_MARK = "***"
PAUSE_S = 1.0  # ECIG 3.5.2: "***" is followed by a one-second pause
MAX_TEXT_CHARS = 1800  # ECIG 3.6: the alert text is at most 1800 characters


class TtsError(Exception):
    """Speech could not be made; ``str()`` says why (engine missing, bad text, engine failed)."""


@dataclass(frozen=True, slots=True)
class TtsEngine:
    """How to run one engine.

    ``argv(exe, voice, rate_wpm, out_path)`` is the command; the text always goes on stdin.
    ``out_path`` is None for engines that write WAV to stdout, else a file the engine must
    write (for engines that seek back in their output to fill in the WAV header)."""

    name: str
    executable: str
    argv: Callable[[str, str, int, str | None], list[str]]
    writes_stdout: bool
    default_voice: str
    debian_package: str

    def path(self) -> str | None:
        return shutil.which(self.executable)


def _espeak_argv(exe: str, voice: str, rate_wpm: int, out: str | None) -> list[str]:
    # --stdin reads the whole text at once (without it espeak-ng speaks line by line);
    # no -m, so markup in an alert text is spoken as text, never obeyed.
    return [exe, "--stdin", "--stdout", "-v", voice, "-s", str(rate_wpm)]


def _flite_argv(exe: str, voice: str, rate_wpm: int, out: str | None) -> list[str]:
    assert out is not None
    # flite speaks at about 175 words per minute; duration_stretch scales the time.
    stretch = f"{175.0 / rate_wpm:.3f}"
    return [
        exe,
        "-voice",
        voice,
        "--setf",
        f"duration_stretch={stretch}",
        "-f",
        "/dev/stdin",
        "-o",
        out,
    ]


ENGINES: dict[str, TtsEngine] = {}


def register_engine(engine: TtsEngine) -> None:
    ENGINES[engine.name] = engine


register_engine(
    TtsEngine(
        name="espeak-ng",
        executable="espeak-ng",
        argv=_espeak_argv,
        writes_stdout=True,
        default_voice="en-us",
        debian_package="espeak-ng",
    )
)
register_engine(
    TtsEngine(
        name="flite",
        executable="flite",
        argv=_flite_argv,
        # flite seeks back to write the WAV sizes: on a pipe it leaves a zeroed header
        writes_stdout=False,
        default_voice="slt",
        debian_package="flite",
    )
)


def installed_engines() -> list[str]:
    return sorted(name for name, engine in ENGINES.items() if engine.path() is not None)


def resolve_engine(name: str) -> tuple[TtsEngine, str]:
    """The engine ``name`` and its executable, or a :class:`TtsError` naming the installed
    ones."""
    engine = ENGINES.get(name)
    installed = installed_engines()
    listing = ", ".join(installed) if installed else "none"
    if engine is None:
        raise TtsError(
            f"unknown text-to-speech engine {name!r}; known: {', '.join(sorted(ENGINES))}; "
            f"installed: {listing}"
        )
    exe = engine.path()
    if exe is None:
        raise TtsError(
            f"text-to-speech engine {name!r} is not installed (Debian package "
            f"{engine.debian_package}); installed engines: {listing}"
        )
    return engine, exe


_WS_RE = re.compile(r"\s+")


def split_pauses(text: str) -> list[str]:
    """The parts of ``text`` between ``***`` marks, whitespace-collapsed; a part may be empty
    (text starting or ending with ``***``, or two marks in a row: two pauses)."""
    return [_WS_RE.sub(" ", part).strip() for part in text.split(PAUSE_MARK)]


@dataclass(frozen=True, slots=True)
class SpeechResult:
    samples: FloatArray  # mono float32 at ``rate``, not yet normalised
    rate: int
    engine: str
    voice: str
    rate_wpm: int
    text: str  # exactly the text spoken (with its *** marks)
    pauses: int


_TRIM_LEVEL = 10 ** (-60 / 20)


def _trim_silence(samples: FloatArray, rate: int, *, start: bool, end: bool) -> FloatArray:
    loud = np.flatnonzero(np.abs(samples) > _TRIM_LEVEL)
    if not len(loud):
        return samples[:0]
    first = int(loud[0]) if start else 0
    last = int(loud[-1]) + 1 if end else len(samples)
    return samples[first:last]


async def _speak_part(
    engine: TtsEngine, exe: str, text: str, voice: str, rate_wpm: int, timeout_s: float
) -> tuple[FloatArray, int]:
    with contextlib.ExitStack() as stack:
        out_path: str | None = None
        if not engine.writes_stdout:
            tmpdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="eas-tts-"))
            out_path = str(Path(tmpdir) / "speech.wav")
        proc = await asyncio.create_subprocess_exec(
            *engine.argv(exe, voice, rate_wpm, out_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout_s):
                out, err = await proc.communicate(text.encode("utf-8"))
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise TtsError(f"{engine.name} took more than {timeout_s:g} s") from exc
        if proc.returncode != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()
            raise TtsError(
                f"{engine.name} failed (exit {proc.returncode}): "
                f"{message[-1][:300] if message else 'no message'}"
            )
        wav = out if out_path is None else await asyncio.to_thread(Path(out_path).read_bytes)
        try:
            return parse_wav_stream(wav)
        except ValueError as exc:
            raise TtsError(f"{engine.name} did not produce a usable WAV: {exc}") from exc


async def synthesize(
    text: str,
    *,
    rate: int,
    engine: str = "espeak-ng",
    voice: str | None = None,
    rate_wpm: int = 160,
    timeout_s: float = 30.0,
    max_chars: int = MAX_TEXT_CHARS,
) -> SpeechResult:
    """Speak ``text`` (``***`` = one-second pause) at ``rate`` samples per second."""
    spec, exe = resolve_engine(engine)
    if not text.strip():
        raise TtsError("the text to speak is empty")
    if len(text) > max_chars:
        raise TtsError(f"the text has {len(text)} characters; at most {max_chars} are spoken")
    if any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in text):
        raise TtsError("the text contains control characters")
    parts = split_pauses(text)
    if not any(parts):
        raise TtsError("the text has nothing to speak besides *** pauses")
    chosen_voice = voice or spec.default_voice
    if chosen_voice.startswith("-"):
        raise TtsError(f"voice {chosen_voice!r} must not start with '-'")
    spoken = [p for p in parts if p]
    # Parts are spoken side by side, but not more at once than the small machines have cores.
    slots = asyncio.Semaphore(2)

    async def speak(part: str) -> tuple[FloatArray, int]:
        async with slots:
            return await _speak_part(spec, exe, part, chosen_voice, rate_wpm, timeout_s)

    results = await asyncio.gather(*(speak(p) for p in spoken))
    pause = np.zeros(round(PAUSE_S * rate), dtype=np.float32)
    pieces: list[FloatArray] = []
    it = iter(results)
    for i, part in enumerate(parts):
        if i:
            pieces.append(pause)
        if part:
            samples, engine_rate = next(it)
            # Engines end each text with their own sentence pause; trimmed only where a ***
            # pause joins, so that pause is exactly PAUSE_S long.
            samples = _trim_silence(samples, engine_rate, start=i > 0, end=i < len(parts) - 1)
            pieces.append(resample(samples, engine_rate, rate))
    audio = np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)
    return SpeechResult(
        samples=audio,
        rate=rate,
        engine=spec.name,
        voice=chosen_voice,
        rate_wpm=rate_wpm,
        text=text,
        pauses=len(parts) - 1,
    )
