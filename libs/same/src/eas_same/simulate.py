"""Seeded test signals: random valid headers and impaired transmissions.

Used by the tests and by ``bench/same_decoder/run.py``. Impairments:

* transmitter clock offset (baud rate *and* tone frequencies scale together): the message is
  encoded at ``rate / (1 + offset)`` and played at ``rate``;
* band-limited Gaussian noise (300-3400 Hz) at an SNR measured over the AFSK bursts only
  (signal power during the bursts / noise power);
* optionally one header burst damaged: a stretch of 25-60 % of it is either dropped out
  (zeroed) or buried under noise 10 dB above the signal;
* level (gain) and DC offset.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from . import codes
from .encoder import attention_tone, encode_burst, silence
from .header import MAX_LOCATIONS, SameHeader, SameHeaderError, parse_header

F32 = npt.NDArray[np.float32]

_DURATIONS = ["0015", "0030", "0045", "0100", "0130", "0200", "0300", "0600", "1200"]


def random_header(rng: random.Random, max_locations: int = 8) -> SameHeader:
    """A random valid header (real county codes, valid times, 8-character callsign)."""
    county_codes = sorted(codes.counties())
    org = rng.choice(sorted(codes.ORIGINATORS))
    event = rng.choice(sorted(codes.EVENTS))
    n = rng.choice([1, 1, 1, 2, 2, 3, 4, 5, 6, max_locations])
    locs = [
        f"{rng.randrange(10) if rng.random() < 0.2 else 0}{rng.choice(county_codes)}"
        for _ in range(n)
    ]
    issued = f"{rng.randint(1, 365):03d}{rng.randrange(24):02d}{rng.randrange(60):02d}"
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    call = rng.choice("KW") + "".join(rng.choice(letters) for _ in range(3))
    call += rng.choice(["/FM", "/AM", "/TV", "/NWS", "/IP", ""])
    return SameHeader.create(
        originator=org,
        event=event,
        locations=locs,
        duration=rng.choice(_DURATIONS),
        issued=issued,
        callsign=call[:8],
    )


#: Deviations from 11.31 that real stations send, one corpus kind each (``deviating_header``).
DEVIATION_KINDS = (
    "callsign_length",
    "callsign_characters",
    "purge_step",
    "missing_trailing_dash",
    "location_count",
    "unknown_county",
    "unknown_event",
)


def deviating_header(rng: random.Random, kind: str) -> SameHeader:
    """A random header that breaks 11.31 in the way ``kind`` names (and in no other), parsed
    as a receiver does (``lenient=True``) so its deviations are set. For the deviation corpus
    and tests: the station's encoder refuses to send it without ``allow_deviations``."""
    base = random_header(rng, max_locations=6)
    locs = list(base.locations)
    duration, call, end, event = base.duration, base.callsign, "-", base.event
    if kind == "callsign_length":
        call = call.rstrip()[:7] if len(call.rstrip()) < 8 else call[:7]
        call = call.rstrip() or "KXYZ"
    elif kind == "callsign_characters":
        call = rng.choice(["kxyz/fm ", "K.XY#Z  ", "W_ABC*TV", "N0CALL@ "])
    elif kind == "purge_step":
        duration = rng.choice(["0000", "0005", "0010", "0020", "0110", "0145", "0615"])
    elif kind == "missing_trailing_dash":
        end = ""
    elif kind == "location_count":
        county_codes = sorted(codes.counties())
        n = rng.randint(MAX_LOCATIONS + 1, MAX_LOCATIONS + 9)
        locs = [f"0{c}" for c in rng.sample(county_codes, n)]
    elif kind == "unknown_county":
        ss = rng.choice(["39", "42", "48", "06"])
        unused = [f"{c:03d}" for c in range(800, 1000) if f"{ss}{c:03d}" not in codes.counties()]
        locs[rng.randrange(len(locs))] = f"0{ss}{rng.choice(unused)}"
    elif kind == "unknown_event":
        event = rng.choice(["XYZ", "QQQ", "ZZW", "SVX"])
    else:
        raise ValueError(f"unknown deviation kind {kind!r}")
    text = (
        f"ZCZC-{base.originator}-{event}-{'-'.join(locs)}+{duration}-{base.issued_text}-{call}{end}"
    )
    header = parse_header(text, lenient=True)
    if header.deviations != (kind,):
        raise AssertionError(f"{text!r} deviates as {header.deviations}, not ({kind!r},)")
    return header


@dataclass(slots=True)
class Transmission:
    samples: F32
    rate: int
    header: str
    burst_spans: list[tuple[int, int]]  # header bursts (sample start, end)
    eom_spans: list[tuple[int, int]]
    clock_offset: float
    snr_db: float | None
    damaged_burst: int | None


def transmission(
    header: str | SameHeader,
    rate: int,
    *,
    clock_offset: float = 0.0,
    attention: float = 2.0,
    eom: bool = True,
    lead: float = 0.7,
    tail: float = 0.7,
    amplitude: float = 0.3,
    allow_deviations: bool = False,
) -> Transmission:
    """A clean transmission (header x3, attention, EOM x3) with a transmitter clock offset.

    A text is sent as it is (tests of what a receiver must refuse or tolerate). A parsed
    header follows the encoder's rule (``generate``): one that deviates from 11.31 is sent
    only with ``allow_deviations=True``, the deviation corpus's explicit option."""
    if isinstance(header, SameHeader):
        if header.deviations and not allow_deviations:
            raise SameHeaderError(
                f"header deviates from 47 CFR 11.31 ({', '.join(header.deviations)}): "
                "pass allow_deviations=True to send it"
            )
        header = header.text
    fake = round(rate / (1.0 + clock_offset))
    actual = rate / fake - 1.0
    parts: list[F32] = [silence(lead, fake)]
    spans: list[tuple[int, int]] = []
    espans: list[tuple[int, int]] = []
    pos = len(parts[0])
    burst = encode_burst(header, fake, amplitude)
    for i in range(3):
        if i:
            parts.append(silence(1.0, fake))
            pos += len(parts[-1])
        parts.append(burst)
        spans.append((pos, pos + len(burst)))
        pos += len(burst)
    if attention:
        for p in (silence(1.0, fake), attention_tone(attention, fake, "broadcast", amplitude)):
            parts.append(p)
            pos += len(p)
    if eom:
        e = encode_burst("NNNN", fake, amplitude)
        for _ in range(3):
            parts.append(silence(1.0, fake))
            pos += len(parts[-1])
            parts.append(e)
            espans.append((pos, pos + len(e)))
            pos += len(e)
    parts.append(silence(tail, fake))
    x = np.concatenate(parts)
    return Transmission(
        samples=x.astype(np.float32),
        rate=rate,
        header=header,
        burst_spans=spans,
        eom_spans=espans,
        clock_offset=actual,
        snr_db=None,
        damaged_burst=None,
    )


def band_noise(n: int, rate: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Unit-power Gaussian noise band-limited to 300-3400 Hz (or Nyquist)."""
    hi = min(3400.0, 0.45 * rate)
    sos = sps.butter(4, [300.0, hi], btype="bandpass", fs=rate, output="sos")
    w = sps.sosfilt(sos, rng.standard_normal(n + 2048))[2048:]
    return np.asarray(w / np.sqrt(np.mean(w * w)), dtype=np.float64)


def impair(
    tx: Transmission,
    *,
    snr_db: float,
    seed: int,
    damage: bool = False,
    gain: float = 1.0,
    dc: float = 0.0,
) -> Transmission:
    """Add band-limited noise at ``snr_db`` (over the bursts), optionally damage one header
    burst, then apply gain and DC offset."""
    rng = np.random.default_rng(seed)
    x = tx.samples.astype(np.float64)
    bursts = np.concatenate([x[s:e] for s, e in tx.burst_spans])
    p_sig = float(np.mean(bursts * bursts))
    noise = band_noise(len(x), tx.rate, rng) * np.sqrt(p_sig / 10 ** (snr_db / 10))
    damaged = None
    if damage:
        damaged = int(rng.integers(0, 3))
        s, e = tx.burst_spans[damaged]
        n = e - s
        ln = int(n * rng.uniform(0.25, 0.6))
        a = s + int(rng.integers(0, n - ln))
        if rng.random() < 0.5:
            x[a : a + ln] = 0.0  # dropout
        else:
            loud = band_noise(ln, tx.rate, rng) * np.sqrt(p_sig * 10.0)
            x[a : a + ln] += loud
    y = (x + noise) * gain + dc
    return Transmission(
        samples=y.astype(np.float32),
        rate=tx.rate,
        header=tx.header,
        burst_spans=tx.burst_spans,
        eom_spans=tx.eom_spans,
        clock_offset=tx.clock_offset,
        snr_db=snr_db,
        damaged_burst=damaged,
    )
