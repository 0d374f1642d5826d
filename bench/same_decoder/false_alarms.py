"""Seeded false-alarm run: long mixed audio that must never yield a wrong header.

Run: uv run --frozen python bench/same_decoder/false_alarms.py [--minutes 30] [--seed 1]

Segments of 10-40 s, chosen at random: band-limited and white noise; music-like chords and
glides with energy at the SAME tones; random AFSK data at SAME rate (clock offset +-2 %);
an endless preamble; preamble + ``ZCZC`` sync followed by random characters (x3, like a
header); and real headers x3 whose bursts are each cut off at a random point, at 0-6 dB SNR
(the only header that may be reported there is the true one). Prints the number of wrong
headers (must be 0), wrong EOMs outside EOM segments, and the headers correctly reported.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys

import numpy as np

from eas_same.encoder import PREAMBLE, bytes_to_bits, modulate_bits
from eas_same.simulate import band_noise, random_header

RATE = 22050


def _afsk(bits: np.ndarray, offset: float) -> np.ndarray:
    fake = round(RATE / (1.0 + offset))
    y = modulate_bits(bits, fake, 0.3).astype(np.float64)
    # played at RATE: same samples, so tones and baud scale by RATE / fake
    return y


def segment(rng: random.Random, nrng: np.random.Generator) -> tuple[np.ndarray, str | None]:
    dur = rng.uniform(10.0, 40.0)
    n = int(dur * RATE)
    kind = rng.choice(["noise", "music", "afsk", "preamble", "sync_junk", "cut_header"])
    off = rng.uniform(-0.02, 0.02)
    truth = None
    if kind == "noise":
        x = (
            (0.3 * nrng.standard_normal(n))
            if rng.random() < 0.5
            else 0.3 * band_noise(n, RATE, nrng)
        )
    elif kind == "music":
        t = np.arange(n) / RATE
        x = np.zeros(n)
        for start in np.arange(0, dur, 0.25):
            f = rng.choice([261.6, 392.0, 523.3, 784.0, 1046.5, 1568.0, 1823.0, 2083.3, 1562.5])
            seg = (t >= start) & (t < start + 0.5)
            x[seg] += 0.2 * np.sin(2 * np.pi * f * t[seg]) * np.exp(-3 * (t[seg] - start))
        x += 0.1 * np.sin(2 * np.pi * (1800 + 300 * np.sin(2 * np.pi * 0.3 * t)) * t)
        x += 0.05 * nrng.standard_normal(n)
    elif kind == "afsk":
        x = _afsk(nrng.integers(0, 2, int(dur * 520)), off)
    elif kind == "preamble":
        x = _afsk(np.tile(bytes_to_bits(b"\xab"), int(dur * 65)), off)
    else:
        parts = [np.zeros(int(0.5 * RATE))]
        if kind == "sync_junk":
            body = b"ZCZC" + bytes(rng.randrange(32, 127) for _ in range(rng.randrange(10, 120)))
            bursts = [body] * 3
        else:
            truth = random_header(rng).text
            bursts = []
            for _ in range(3):
                cut = rng.randrange(8, len(truth))
                bursts.append(truth[:cut].encode())
        for b in bursts:
            parts += [_afsk(bytes_to_bits(PREAMBLE + b), off), np.zeros(RATE)]
        x = np.concatenate(parts)
        p_sig = 0.3**2 / 2
        snr = rng.uniform(0.0, 6.0)
        x = x + band_noise(len(x), RATE, nrng) * np.sqrt(p_sig / 10 ** (snr / 10))
    return x, truth


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--module", default="eas_same.decoder")
    args = ap.parse_args()
    mod = importlib.import_module(args.module)
    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)
    dec = mod.SameDecoder(RATE)
    total = 0.0
    wrong: list[str] = []
    right = 0
    truths = 0
    eoms = 0
    while total < args.minutes * 60:
        x, truth = segment(rng, nrng)
        x = np.concatenate([x, np.zeros(4 * RATE)])  # let groups close inside the segment
        truths += truth is not None
        total += len(x) / RATE
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        for i in range(0, len(pcm), 4096):
            for ev in dec.feed(pcm[i : i + 4096]):
                if ev.type == "header":
                    if ev.text == truth:
                        right += 1
                    else:
                        wrong.append(ev.text)
                elif ev.type == "eom":
                    eoms += 1
    for ev in dec.flush():
        if ev.type == "header":
            wrong.append(ev.text)
    print(
        f"{total / 60:.1f} min of mixed audio, seed {args.seed}: wrong headers {len(wrong)}, "
        f"EOMs {eoms}, cut-off headers recovered {right}/{truths}; "
        f"stats {dec.stats.as_dict()}"
    )
    for w in wrong:
        print("  WRONG:", w)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
