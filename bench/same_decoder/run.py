"""SAME decoder benchmark: eas_same vs multimon-ng on a seeded corpus of impaired transmissions.

Run: uv run --frozen python bench/same_decoder/run.py [--quick] [--per-bucket N] [--jobs J]

Each transmission: a random valid header (1-8 locations) x3, 1 s gaps, a 2 s attention
signal, EOM x3, at 22050 Hz; transmitter clock offset uniform in +-2 %; band-limited
(300-3400 Hz) Gaussian noise at the bucket's SNR measured over the header bursts; one
header burst damaged (dropout or +10 dB noise over 25-60 % of it) in every third case.
Both decoders get the same 16-bit PCM. "exact" = the true header was reported;
"false" = any reported header text that differs from the truth (truncated or altered).
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

import numpy as np

from eas_same.decoder import SameDecoder
from eas_same.simulate import impair, random_header, transmission

RATE = 22050
BUCKETS = [-6.0, -3.0, 0.0, 1.0, 2.0, 3.0, 4.5, 6.0, 10.0, 15.0, 20.0]


def make_case(snr: float, i: int, seed: int) -> tuple[str, bytes]:
    s = seed * 1_000_003 + int((snr + 10) * 100) * 1009 + i
    rng = random.Random(s)
    h = random_header(rng).text
    tx = transmission(h, RATE, clock_offset=rng.uniform(-0.02, 0.02), attention=2.0)
    tx = impair(tx, snr_db=snr, seed=s % (2**32), damage=(i % 3 == 0))
    pcm = (np.clip(tx.samples, -1.0, 1.0) * 32767).astype("<i2")
    return h, pcm.tobytes()


def run_case(args: tuple[float, int, int]) -> dict[str, object]:
    snr, i, seed = args
    h, pcm = make_case(snr, i, seed)
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    t0 = time.process_time()
    dec = SameDecoder(RATE)
    events = dec.feed(x)
    events.extend(dec.flush())
    cpu = time.process_time() - t0
    ours = [e.text for e in events if e.type == "header"]
    out = subprocess.run(
        ["multimon-ng", "-q", "-t", "raw", "-a", "EAS", "-"], input=pcm, capture_output=True
    ).stdout.decode("ascii", "replace")
    mm = [ln[5:].strip() for ln in out.splitlines() if ln.startswith("EAS: ZCZC")]
    truth = h.strip()
    return {
        "snr": snr,
        "ours_ok": h in ours,
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="8 transmissions per bucket")
    ap.add_argument("--per-bucket", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    n = 8 if args.quick else args.per_bucket
    try:
        subprocess.run(["multimon-ng", "-h"], capture_output=True)
    except FileNotFoundError:
        print("multimon-ng not found (apt-get install multimon-ng)", file=sys.stderr)
        return 2
    cases = [(snr, i, args.seed) for snr in BUCKETS for i in range(n)]
    t0 = time.time()
    with Pool(args.jobs) as pool:
        results = pool.map(run_case, cases, chunksize=1)
    wall = time.time() - t0
    print(machine())
    print(f"corpus: {len(cases)} transmissions, {n} per bucket, seed {args.seed}, {RATE} Hz")
    print()
    print(
        f"{'SNR dB':>7} | {'eas_same exact':>14} {'false':>5} | {'multimon exact':>14} "
        f"{'false':>5} | {'ratio':>6}"
    )
    print("-" * 66)
    tot = {"ok": 0, "f": 0, "mok": 0, "mf": 0}
    for snr in BUCKETS:
        rs = [r for r in results if r["snr"] == snr]
        ok = sum(bool(r["ours_ok"]) for r in rs)
        fa = sum(int(r["ours_false"]) for r in rs)  # type: ignore[call-overload]
        mok = sum(bool(r["mm_ok"]) for r in rs)
        mfa = sum(int(r["mm_false"]) for r in rs)  # type: ignore[call-overload]
        tot["ok"] += ok
        tot["f"] += fa
        tot["mok"] += mok
        tot["mf"] += mfa
        ratio = f"{ok / mok:.2f}" if mok else ("inf" if ok else "-")
        print(
            f"{snr:7.1f} | {ok:>6}/{len(rs):<3} {100 * ok / len(rs):4.0f}% {fa:5d} | "
            f"{mok:>6}/{len(rs):<3} {100 * mok / len(rs):4.0f}% {mfa:5d} | {ratio:>6}"
        )
    print("-" * 66)
    total = len(results)
    print(
        f"{'all':>7} | {tot['ok']:>6}/{total:<4}      {tot['f']:5d} | {tot['mok']:>6}/{total:<4}"
        f"      {tot['mf']:5d} |"
    )
    cpu = sum(float(r["cpu"]) for r in results)  # type: ignore[arg-type]
    audio = sum(float(r["audio_s"]) for r in results)  # type: ignore[arg-type]
    print()
    print(
        f"eas_same throughput at {RATE} Hz: {audio / cpu:.0f} s of audio per CPU-second "
        f"({audio:.0f} s audio, {cpu:.2f} CPU-s, process_time); "
        f"one monitored input = {100 * cpu / audio:.2f} % of a core"
    )
    print(f"wall time {wall:.1f} s with {args.jobs} processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
