"""Time to a composed EAS message, ready to air (issue #14 target: with TTS, under 2 s).

Run: uv run --frozen python bench/audio_control/compose.py [--n N] [--rate R] [--cases ...]

Each case does what audio-control does for one alert, end to end in this process, and ends
with the 16-bit WAV bytes in memory:

* ``tones``: header and tones only (no narration): compose + WAV;
* ``tts``: espeak-ng speaks a typical NWS warning text (one ``***`` pause, about 75 words):
  synthesize (asyncio subprocess per part) + normalise + compose + WAV;
* ``tts-max``: the same for an 1800-character text (the ECIG 3.6 maximum; at 160 words per
  minute close to the 120 s narration limit, cut if a slower ``--wpm`` takes it past);
* ``cap-mp3``: a 60 s MP3 (64 kbit/s mono 22.05 kHz, ECIG 3.5.2) carried in the CAP
  ``derefUri``: base64 + ffprobe + ffmpeg decode + normalise + compose + WAV (no network, so
  the number is the station's own cost, not the alert server's).

Per case: wall time per message (median, p95, max) and CPU seconds per message of this process
and its children (espeak-ng, ffmpeg), from ``getrusage``. The machine is shared: the load
average at start is printed so a slow run can be told from a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata

import httpx
import numpy as np

from audio_control.composer import ComposedMessage, compose
from audio_control.narration import (
    CapAudioResource,
    Narration,
    NarrationConfig,
    fetch_cap_audio,
    narration_from_text,
)
from eas_same.header import parse_header

HEADER = "ZCZC-WXR-TOR-039035-039055-039085+0030-3181518-KCLE/NWS-"
TYPICAL_TEXT = (
    "The National Weather Service in Cleveland has issued a tornado warning for northern "
    "Cuyahoga County, southern Lake County and western Geauga County until 4 15 PM Eastern "
    "Daylight Time. At 3 42 PM, a severe thunderstorm capable of producing a tornado was "
    "located near Parma, moving northeast at 35 miles per hour. *** Take cover now. Move to a "
    "basement or an interior room on the lowest floor of a sturdy building. Avoid windows."
)
CASES = ("tones", "tts", "tts-max", "cap-mp3")


def long_text(chars: int = 1800) -> str:
    out = ""
    while len(out) + len(TYPICAL_TEXT) + 1 <= chars:
        out = f"{out} {TYPICAL_TEXT}".strip()
    return out


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        f"cpu: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}",
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {metadata.version('scipy')}, kernel {platform.release()}",
    ]
    for tool, flag in (("espeak-ng", "--version"), ("ffmpeg", "-version")):
        exe = shutil.which(tool)
        if exe is None:
            lines.append(f"{tool}: not installed")
            continue
        out = subprocess.run([exe, flag], capture_output=True, text=True, check=False).stdout
        lines.append(out.splitlines()[0].strip() if out else f"{tool}: no version output")
    return lines


def cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_mp3(seconds: float, rate: int) -> bytes:
    """A speech-band test signal encoded the way ECIG 3.5.2 asks CAP audio to be."""
    t = np.arange(round(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140.0, 420.0, 1100.0), 1))
    x = 0.2 * x * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    argv = ["ffmpeg", "-v", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
    argv += ["-c:a", "libmp3lame", "-b:a", "64k", "-ar", "22050", "-f", "mp3", "pipe:1"]
    proc = subprocess.run(argv, input=pcm, capture_output=True, check=True)
    return bytes(proc.stdout)


async def run_case(
    make: Callable[[], Awaitable[ComposedMessage]], n: int, warmup: int
) -> tuple[list[float], list[float], ComposedMessage]:
    walls: list[float] = []
    cpus: list[float] = []
    msg: ComposedMessage | None = None
    for i in range(warmup + n):
        c0, w0 = cpu_s(), time.perf_counter()
        msg = await make()
        wav = msg.wav_bytes()
        w1, c1 = time.perf_counter(), cpu_s()
        assert len(wav) == 44 + 2 * len(msg.samples)
        if i >= warmup:
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
    assert msg is not None
    return walls, cpus, msg


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


async def main_async(args: argparse.Namespace) -> int:
    header = parse_header(HEADER)
    config = NarrationConfig(rate=args.rate, tts_voice=args.voice, tts_rate_wpm=args.wpm)
    mp3 = make_mp3(60.0, 22050) if "cap-mp3" in args.cases else b""
    cap = CapAudioResource("audio/x-ipaws-audio-mp3", deref_uri=base64.b64encode(mp3).decode())
    texts = {"tts": TYPICAL_TEXT, "tts-max": long_text()}

    def composed(narration: Narration | None) -> ComposedMessage:
        return compose(header, narration, rate=args.rate, attention="broadcast", attention_s=8.0)

    async with httpx.AsyncClient(trust_env=False) as client:

        async def tones() -> ComposedMessage:
            return composed(None)

        async def tts(text: str) -> ComposedMessage:
            return composed(await narration_from_text(text, config=config))

        async def cap_mp3() -> ComposedMessage:
            return composed(await fetch_cap_audio(cap, client=client, config=config))

        makers: dict[str, Callable[[], Awaitable[ComposedMessage]]] = {
            "tones": tones,
            "tts": lambda: tts(texts["tts"]),
            "tts-max": lambda: tts(texts["tts-max"]),
            "cap-mp3": cap_mp3,
        }
        for line in machine():
            print(line)
        print(f"rate {args.rate} Hz, {args.n} messages per case after {args.warmup} warm-up")
        print(
            f"{'case':8s} {'audio s':>8s} {'narr s':>7s} {'median s':>9s} {'p95 s':>7s} "
            f"{'max s':>7s} {'CPU s/msg':>10s}"
        )
        for case in args.cases:
            walls, cpus, msg = await run_case(makers[case], args.n, args.warmup)
            narration = msg.of_kind("narration")
            narr_s = narration[0].duration_s if narration else 0.0
            print(
                f"{case:8s} {msg.duration_s:8.1f} {narr_s:7.1f} {statistics.median(walls):9.3f} "
                f"{p95(walls):7.3f} {max(walls):7.3f} {statistics.mean(cpus):10.3f}"
                + ("  (narration cut)" if msg.narration_truncated else "")
            )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="timed messages per case")
    ap.add_argument("--warmup", type=int, default=1, help="untimed messages first, per case")
    ap.add_argument("--rate", type=int, default=22050, help="message sample rate, Hz")
    ap.add_argument("--voice", default="en-us")
    ap.add_argument("--wpm", type=int, default=160)
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be at least 1")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
