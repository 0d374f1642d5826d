"""``eas-same`` command line: decode, encode, describe.

Exit codes: 0 success, 1 usage error (argparse uses 2 for usage too), 2 unreadable input or
invalid header.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .header import SameHeader, SameHeaderError, parse_header

if TYPE_CHECKING:  # the decoder (numpy, DSP set-up) loads only for `decode`
    from .decoder import Event

EXIT_BAD_INPUT = 2
CHUNK_SECONDS = 0.1


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _event_line(ev: Event, as_json: bool, show_attention: bool) -> str | None:
    from .decoder import AttentionTone, EndOfMessage, HeaderDecoded

    if as_json:
        return json.dumps(ev.to_dict(), sort_keys=False)
    if isinstance(ev, HeaderDecoded):
        return ev.text
    if isinstance(ev, EndOfMessage):
        return "NNNN"
    if isinstance(ev, AttentionTone) and show_attention:
        return f"ATTENTION {ev.kind} {ev.start_s:.2f}-{ev.end_s:.2f}"
    return None


def _read_stdin(rate: int) -> Iterator[npt.NDArray[np.float64]]:
    chunk_bytes = max(2, int(rate * CHUNK_SECONDS) * 2)
    stream = sys.stdin.buffer
    carry = b""
    while True:
        data = stream.read(chunk_bytes)
        if not data:
            break
        data = carry + data
        n = len(data) // 2 * 2
        carry = data[n:]
        if n:
            yield np.frombuffer(data[:n], dtype="<i2").astype(np.float64) / 32768.0


def _read_file(path: str) -> tuple[int, Iterator[npt.NDArray[np.float64]]]:
    import soundfile as sf

    f = sf.SoundFile(path)
    rate = int(f.samplerate)
    block = max(1024, int(rate * 1.0))

    def gen() -> Iterator[npt.NDArray[np.float64]]:
        with f:
            for blk in f.blocks(blocksize=block, dtype="float64", always_2d=True):
                yield np.asarray(blk.mean(axis=1), dtype=np.float64)

    return rate, gen()


def cmd_decode(args: argparse.Namespace) -> int:
    from .decoder import SameDecoder

    try:
        if args.path == "-":
            if not args.rate:
                _err("decoding raw PCM from stdin needs --rate HZ")
                return EXIT_BAD_INPUT
            rate, chunks = int(args.rate), _read_stdin(int(args.rate))
        else:
            rate, chunks = _read_file(args.path)
    except Exception as exc:
        _err(f"cannot read {args.path!r}: {exc}")
        return EXIT_BAD_INPUT
    try:
        dec = SameDecoder(rate)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    try:
        for chunk in chunks:
            for ev in dec.feed(chunk):
                _emit(ev, args)
    except BrokenPipeError:
        raise
    except Exception as exc:  # a corrupt file part-way through
        _err(f"error reading {args.path!r}: {exc}")
        for ev in dec.flush():
            _emit(ev, args)
        return EXIT_BAD_INPUT
    for ev in dec.flush():
        _emit(ev, args)
    if args.stats:
        sys.stderr.write(json.dumps(dec.stats.as_dict()) + "\n")
    return 0


def _emit(ev: Event, args: argparse.Namespace) -> None:
    line = _event_line(ev, args.json, args.attention)
    if line is not None:
        _print(line)


def _err(msg: str) -> None:
    sys.stderr.write(f"eas-same: error: {msg}\n")


def _issued(value: str) -> str | datetime:
    if value == "now":
        return datetime.now(UTC)
    return value


def cmd_encode(args: argparse.Namespace) -> int:
    from .encoder import generate, write_wav

    try:
        if args.header:
            header = parse_header(args.header, lenient=args.lenient)
        else:
            missing = [
                n
                for n in ("org", "event", "location", "duration", "callsign")
                if not getattr(args, n)
            ]
            if missing:
                _err("give --header, or all of --org --event --location --duration --callsign")
                return EXIT_BAD_INPUT
            header = SameHeader.create(
                originator=args.org,
                event=args.event,
                locations=[loc for group in args.location for loc in group.split(",")],
                duration=args.duration,
                issued=_issued(args.issued),
                callsign=args.callsign,
                lenient_duration=args.lenient,
            )
    except SameHeaderError as exc:
        _err(f"invalid header: {exc}")
        return EXIT_BAD_INPUT
    audio: npt.NDArray[np.float32] | None = None
    if args.audio:
        try:
            import soundfile as sf

            data, arate = sf.read(args.audio, dtype="float32", always_2d=True)
            if arate != args.rate:
                # the one scipy use left in the CLI: a narration file at another rate, when
                # encoding test messages; decoding never needs it
                from scipy.signal import resample_poly

                data = resample_poly(data, args.rate, arate, axis=0).astype(np.float32)
            audio = data.mean(axis=1)
        except Exception as exc:
            _err(f"cannot read audio {args.audio!r}: {exc}")
            return EXIT_BAD_INPUT
    try:
        samples = generate(
            header,
            args.rate,
            attention=args.attention,
            tone=args.tone,
            audio=audio,
            eom=not args.no_eom,
            allow_deviations=args.lenient,
        )
        write_wav(args.output, samples, args.rate)
    except (ValueError, OSError) as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    _print(header.text)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    try:
        header = parse_header(args.header, lenient=args.lenient)
    except SameHeaderError as exc:
        _err(f"invalid header: {exc}")
        return EXIT_BAD_INPUT
    now: datetime | None = None
    if args.year:
        text = header.describe(year=args.year)
    else:
        if args.now:
            now = datetime.now(UTC)
        text = header.describe(now=now)
    if args.json:
        d: dict[str, Any] = header.to_dict(now=now)
        d["description"] = text
        d["deviation_notes"] = header.deviation_texts
        _print(json.dumps(d))
    else:
        _print(text)
        for note in header.deviation_texts:
            _print(f"Deviation: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eas-same", description="SAME (EAS) encoder and decoder")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("decode", help="decode SAME headers and EOMs from audio")
    d.add_argument("path", help="WAV/FLAC/... file, or - for raw s16le mono PCM on stdin")
    d.add_argument("--rate", type=int, help="sample rate of raw stdin input (Hz)")
    d.add_argument("--json", action="store_true", help="one JSON object per event")
    d.add_argument(
        "--attention", action="store_true", help="also print attention-tone lines (text mode)"
    )
    d.add_argument("--stats", action="store_true", help="print decoder statistics to stderr")
    d.set_defaults(func=cmd_decode)

    e = sub.add_parser("encode", help="generate a SAME message as a 16-bit WAV file")
    e.add_argument("--header", help="complete header ZCZC-...-LLLLLLLL-")
    e.add_argument("--org", help="originator: PEP, CIV, WXR or EAS")
    e.add_argument("--event", help="event code, e.g. TOR")
    e.add_argument(
        "--location", action="append", help="PSSCCC location code (repeat, or comma-separated)"
    )
    e.add_argument("--duration", help="purge time HHMM, e.g. 0100")
    e.add_argument("--issued", default="now", help="JJJHHMM (UTC) or 'now' (default)")
    e.add_argument("--callsign", help="station identifier (padded to 8 characters)")
    e.add_argument("-o", "--output", required=True, help="output WAV path")
    e.add_argument("--rate", type=int, default=22050, help="sample rate (default 22050)")
    e.add_argument(
        "--attention", type=float, default=8.0, help="attention signal seconds (0 for none)"
    )
    e.add_argument("--tone", choices=["broadcast", "nwr"], default="broadcast")
    e.add_argument("--audio", help="narration audio file inserted after the attention signal")
    e.add_argument("--no-eom", action="store_true", help="omit the three EOM bursts")
    e.add_argument(
        "--lenient",
        action="store_true",
        help="encode a header that deviates from 47 CFR 11.31 as written (test signals only)",
    )
    e.set_defaults(func=cmd_encode)

    s = sub.add_parser("describe", help="plain-language text of a header")
    s.add_argument("header")
    s.add_argument("--year", type=int, help="resolve dates in this year")
    s.add_argument("--now", action="store_true", help="resolve dates against the current time")
    s.add_argument("--json", action="store_true", help="structured JSON output")
    s.add_argument(
        "--lenient",
        action="store_true",
        help="accept what a receiver accepts (deviations from 47 CFR 11.31 are named)",
    )
    s.set_defaults(func=cmd_describe)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
