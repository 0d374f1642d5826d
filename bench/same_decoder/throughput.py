"""SAME decoder throughput: CPU time of one decoder (single process, time.process_time).

Run: uv run --frozen python bench/same_decoder/throughput.py [--minutes M] [--chunk N] [--rate R]

Two seeded streams at 22050 Hz, fed in chunks as a live input would be:

* ``sparse``: M minutes of band-limited noise (about -40 dBFS) with one transmission (header
  x3, 2 s attention signal, EOM x3, 15 dB SNR, clock offset within +-2 %) every 2 minutes;
* ``dense``: transmissions back to back (1 s apart) for M/4 minutes at 6-20 dB SNR.

Prints seconds of audio per CPU-second (x real time) and the headers found.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time

import numpy as np

from eas_same.simulate import band_noise, impair, random_header, transmission

RATE = 22050


def sparse_stream(minutes: float, seed: int, rate: int) -> tuple[np.ndarray, list[str]]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    n = int(minutes * 60 * rate)
    x = 0.01 * band_noise(n, rate, nrng)
    truth = []
    for start_s in np.arange(20.0, minutes * 60 - 30, 120.0):
        h = random_header(rng).text
        tx = transmission(h, rate, clock_offset=rng.uniform(-0.02, 0.02), attention=2.0)
        tx = impair(tx, snr_db=15.0, seed=rng.randrange(2**31))
        s = int(start_s * rate)
        seg = tx.samples[: n - s]
        x[s : s + len(seg)] += seg
        truth.append(h)
    return x, truth


def dense_stream(minutes: float, seed: int, rate: int) -> tuple[np.ndarray, list[str]]:
    rng = random.Random(seed)
    parts: list[np.ndarray] = []
    truth = []
    total = 0
    while total < minutes * 60 * rate:
        h = random_header(rng).text
        tx = transmission(h, rate, clock_offset=rng.uniform(-0.02, 0.02), attention=2.0)
        tx = impair(tx, snr_db=rng.uniform(6.0, 20.0), seed=rng.randrange(2**31))
        parts.append(tx.samples.astype(np.float64))
        total += len(tx.samples)
        truth.append(h)
    return np.concatenate(parts), truth


def measure(module: str, x: np.ndarray, rate: int, chunk: int) -> tuple[float, list[str]]:
    mod = importlib.import_module(module)
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    t0 = time.process_time()
    dec = mod.SameDecoder(rate)
    events = []
    for i in range(0, len(pcm), chunk):
        events.extend(dec.feed(pcm[i : i + chunk]))
    events.extend(dec.flush())
    cpu = time.process_time() - t0
    return cpu, [e.text for e in events if e.type == "header"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the sparse stream")
    ap.add_argument("--chunk", type=int, default=2048, help="samples per feed() call")
    ap.add_argument("--rate", type=int, default=RATE)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--module", default="eas_same.decoder", help="decoder module to time")
    args = ap.parse_args()
    for name, make, minutes in (
        ("sparse", sparse_stream, args.minutes),
        ("dense", dense_stream, args.minutes / 4),
    ):
        x, truth = make(minutes, args.seed, args.rate)
        audio = len(x) / args.rate
        cpu, found = measure(args.module, x, args.rate, args.chunk)
        exact = sum(1 for h in truth if h in found)
        false = sum(1 for h in found if h not in truth)
        print(
            f"{name:6s}: {audio:7.1f} s audio, {cpu:6.2f} CPU-s -> {audio / cpu:6.0f}x real time "
            f"({100 * cpu / audio:.2f} % of a core); headers {exact}/{len(truth)} exact, "
            f"{false} false"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
