"""SAME decoder benchmark: eas_same vs multimon-ng on a seeded corpus of impaired transmissions.

Run: uv run --frozen python bench/same_decoder/run.py [--quick] [--per-bucket N] [--jobs J]

Each transmission: a random valid header (1-8 locations) x3, 1 s gaps, a 2 s attention
signal, EOM x3, at 22050 Hz; transmitter clock offset uniform in +-2 %; band-limited
(300-3400 Hz) Gaussian noise at the bucket's SNR measured over the header bursts; one
header burst damaged (dropout or +10 dB noise over 25-60 % of it) in every third case.
Both decoders get the same 16-bit PCM. "exact" = the true header was reported;
"false" = any reported header text that differs from the truth (truncated or altered).

Deviation bucket, beside it: headers that break 47 CFR 11.31 but not their meaning (one kind
each, ``eas_same.simulate.DEVIATION_KINDS``: short unpadded callsign, odd printable callsign
characters, purge time off the steps, missing trailing dash, more than 31 locations, county
that does not exist, event code not in the table), sent with the simulator's explicit
``allow_deviations`` option, under the same impairments at DEVIATION_BUCKETS. "exact" there
= the true text reported *with exactly its deviation named*; "misnamed" = the true text with
other deviations named; "false" as above.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import time
from multiprocessing import Pool
from typing import Literal, TypedDict

import numpy as np

from eas_same.decoder import SameDecoder
from eas_same.simulate import (
    DEVIATION_KINDS,
    deviating_header,
    impair,
    random_header,
    transmission,
)

RATE = 22050
BUCKETS = [-6.0, -3.0, 0.0, 1.0, 2.0, 3.0, 4.5, 6.0, 10.0, 15.0, 20.0]
DEVIATION_BUCKETS = [3.0, 6.0, 10.0, 15.0, 20.0]

Case = tuple[str, float, int, int]  # corpus ("impaired" or "deviation"), SNR, index, seed


class Result(TypedDict):
    corpus: str
    kind: str  # the deviation kind, "" in the impaired corpus
    snr: float
    ours_ok: bool
    ours_misnamed: int
    ours_false: int
    mm_ok: bool
    mm_false: int
    cpu: float
    audio_s: float


def make_case(snr: float, i: int, seed: int) -> tuple[str, bytes]:
    s = seed * 1_000_003 + int((snr + 10) * 100) * 1009 + i
    rng = random.Random(s)
    h = random_header(rng).text
    tx = transmission(h, RATE, clock_offset=rng.uniform(-0.02, 0.02), attention=2.0)
    tx = impair(tx, snr_db=snr, seed=s % (2**32), damage=(i % 3 == 0))
    pcm = (np.clip(tx.samples, -1.0, 1.0) * 32767).astype("<i2")
    return h, pcm.tobytes()


def make_deviation_case(snr: float, i: int, seed: int) -> tuple[str, tuple[str, ...], bytes]:
    """Case ``i`` of the deviation bucket: kind ``DEVIATION_KINDS[i % 7]``, the impaired
    corpus's clock offsets and damage; returns the text, its deviations and the PCM."""
    s = seed * 2_000_003 + int((snr + 10) * 100) * 1013 + i
    rng = random.Random(s)
    kind = DEVIATION_KINDS[i % len(DEVIATION_KINDS)]
    header = deviating_header(rng, kind)
    tx = transmission(
        header, RATE, clock_offset=rng.uniform(-0.02, 0.02), attention=2.0, allow_deviations=True
    )
    tx = impair(tx, snr_db=snr, seed=s % (2**32), damage=(i % 3 == 0))
    pcm = (np.clip(tx.samples, -1.0, 1.0) * 32767).astype("<i2")
    return header.text, header.deviations, pcm.tobytes()


def run_case(case: Case) -> Result:
    corpus, snr, i, seed = case
    deviations: tuple[str, ...] = ()
    if corpus == "deviation":
        h, deviations, pcm = make_deviation_case(snr, i, seed)
    else:
        h, pcm = make_case(snr, i, seed)
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    t0 = time.process_time()
    dec = SameDecoder(RATE)
    events = dec.feed(x)
    events.extend(dec.flush())
    cpu = time.process_time() - t0
    heard = [e for e in events if e.type == "header"]
    ours = [e.text for e in heard]
    named = [e.header.deviations for e in heard if e.text == h]
    out = subprocess.run(
        ["multimon-ng", "-q", "-t", "raw", "-a", "EAS", "-"], input=pcm, capture_output=True
    ).stdout.decode("ascii", "replace")
    mm = [ln[5:].strip() for ln in out.splitlines() if ln.startswith("EAS: ZCZC")]
    truth = h.strip()
    return {
        "corpus": corpus,
        "kind": deviations[0] if deviations else "",
        "snr": snr,
        "ours_ok": h in ours and all(d == deviations for d in named),
        "ours_misnamed": sum(1 for d in named if d != deviations),
        "ours_false": sum(1 for t in ours if t != h),
        "mm_ok": truth in mm,
        "mm_false": sum(1 for t in mm if t != truth),
        "cpu": cpu,
        "audio_s": len(x) / RATE,
    }


def machine() -> str:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"cpu: {cpu}; cores: {os.cpu_count()}; python {platform.python_version()}; "
        f"numpy {np.__version__}"
    )


CountKey = Literal["ours_ok", "ours_misnamed", "ours_false", "mm_ok", "mm_false"]


def _count(rs: list[Result], key: CountKey) -> int:
    return sum(int(r[key]) for r in rs)


def _rate(ok: int, n: int) -> str:
    return f"{ok:>6}/{n:<3} {100 * ok / n:4.0f}%" if n else f"{'-':>15}"


def print_impaired(results: list[Result]) -> None:
    print(
        f"{'SNR dB':>7} | {'eas_same exact':>14} {'false':>5} | {'multimon exact':>14} "
        f"{'false':>5} | {'ratio':>6}"
    )
    print("-" * 66)
    for snr in BUCKETS:
        rs = [r for r in results if r["snr"] == snr]
        ok, fa, mok, mfa = (_count(rs, k) for k in ("ours_ok", "ours_false", "mm_ok", "mm_false"))
        ratio = f"{ok / mok:.2f}" if mok else ("inf" if ok else "-")
        print(
            f"{snr:7.1f} | {_rate(ok, len(rs))} {fa:5d} | {_rate(mok, len(rs))} {mfa:5d} | "
            f"{ratio:>6}"
        )
    print("-" * 66)
    ok, fa, mok, mfa = (_count(results, k) for k in ("ours_ok", "ours_false", "mm_ok", "mm_false"))
    total = len(results)
    print(f"{'all':>7} | {ok:>6}/{total:<4}      {fa:5d} | {mok:>6}/{total:<4}      {mfa:5d} |")


def print_deviation(results: list[Result]) -> None:
    print(
        f"{'SNR dB':>7} | {'exact, named':>15} {'misnamed':>8} {'false':>5} | "
        f"{'multimon exact':>15} {'false':>5}"
    )
    print("-" * 66)
    keys: tuple[CountKey, ...] = ("ours_ok", "ours_misnamed", "ours_false", "mm_ok", "mm_false")
    for snr in DEVIATION_BUCKETS:
        rs = [r for r in results if r["snr"] == snr]
        ok, mis, fa, mok, mfa = (_count(rs, k) for k in keys)
        print(
            f"{snr:7.1f} | {_rate(ok, len(rs))} {mis:8d} {fa:5d} | {_rate(mok, len(rs))} {mfa:5d}"
        )
    print("-" * 66)
    ok, mis, fa, mok, mfa = (_count(results, k) for k in keys)
    total = len(results)
    print(
        f"{'all':>7} | {ok:>6}/{total:<4}       {mis:8d} {fa:5d} | "
        f"{mok:>6}/{total:<4}       {mfa:5d}"
    )
    print()
    print("by kind, exact with the deviation named (eas_same; multimon-ng exact in brackets):")
    for kind in DEVIATION_KINDS:
        rs = [r for r in results if r["kind"] == kind]
        cells = []
        for snr in DEVIATION_BUCKETS:
            rk = [r for r in rs if r["snr"] == snr]
            cells.append(f"{snr:g} dB {_count(rk, 'ours_ok')}/{len(rk)} ({_count(rk, 'mm_ok')})")
        print(f"  {kind:<22} " + "  ".join(cells))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="8 transmissions per bucket")
    ap.add_argument("--per-bucket", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-deviation", action="store_true", help="impaired corpus only")
    args = ap.parse_args()
    n = 8 if args.quick else args.per_bucket
    # every deviation kind equally often in each bucket
    kinds = len(DEVIATION_KINDS)
    n_dev = 0 if args.no_deviation else kinds * -(-n // kinds)
    try:
        subprocess.run(["multimon-ng", "-h"], capture_output=True)
    except FileNotFoundError:
        print("multimon-ng not found (apt-get install multimon-ng)", file=sys.stderr)
        return 2
    cases: list[Case] = [("impaired", snr, i, args.seed) for snr in BUCKETS for i in range(n)]
    cases += [("deviation", snr, i, args.seed) for snr in DEVIATION_BUCKETS for i in range(n_dev)]
    t0 = time.time()
    with Pool(args.jobs) as pool:
        results = pool.map(run_case, cases, chunksize=1)
    wall = time.time() - t0
    impaired = [r for r in results if r["corpus"] == "impaired"]
    deviation = [r for r in results if r["corpus"] == "deviation"]
    print(machine())
    print(
        f"impaired corpus: {len(impaired)} transmissions, {n} per bucket, seed {args.seed}, "
        f"{RATE} Hz"
    )
    print()
    print_impaired(impaired)
    if deviation:
        print()
        print(
            f"deviation corpus: {len(deviation)} transmissions, {n_dev} per bucket "
            f"({n_dev // kinds} of each kind), seed {args.seed}, {RATE} Hz"
        )
        print()
        print_deviation(deviation)
    cpu = sum(r["cpu"] for r in impaired)
    audio = sum(r["audio_s"] for r in impaired)
    print()
    print(
        f"eas_same throughput at {RATE} Hz (impaired corpus): {audio / cpu:.0f} s of audio per "
        f"CPU-second ({audio:.0f} s audio, {cpu:.2f} CPU-s, process_time); "
        f"one monitored input = {100 * cpu / audio:.2f} % of a core"
    )
    print(f"wall time {wall:.1f} s with {args.jobs} processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
