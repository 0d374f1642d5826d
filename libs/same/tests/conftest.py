from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from eas_same.decoder import Event, SameDecoder

SAMPLES = Path("/work/shared/samples/same")
if not SAMPLES.exists():  # CI lays shared/ beside the clone
    for parent in Path(__file__).resolve().parents:
        cand = parent.parent / "shared" / "samples" / "same"
        if cand.exists():
            SAMPLES = cand
            break


def decode_all(
    x: np.ndarray, rate: int, chunk: int | None = None
) -> tuple[list[Event], SameDecoder]:
    dec = SameDecoder(rate)
    events: list[Event] = []
    if chunk is None:
        events.extend(dec.feed(x))
    else:
        for i in range(0, len(x), chunk):
            events.extend(dec.feed(x[i : i + chunk]))
    events.extend(dec.flush())
    return events, dec


def headers(events: list[Event]) -> list[str]:
    return [e.text for e in events if e.type == "header"]


def eoms(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type == "eom"]


def multimon_decode(x: np.ndarray, rate: int) -> list[str]:
    """Lines multimon-ng -a EAS prints for float samples at any rate."""
    exe = shutil.which("multimon-ng")
    if exe is None:
        pytest.fail("multimon-ng is not installed (Debian package multimon-ng is required)")
    if rate != 22050:
        from math import gcd

        g = gcd(22050, rate)
        x = resample_poly(x, 22050 // g, rate // g)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    out = subprocess.run(
        [exe, "-q", "-t", "raw", "-a", "EAS", "-"], input=pcm, capture_output=True, check=True
    ).stdout.decode("ascii", "replace")
    return [line[5:].strip() for line in out.splitlines() if line.startswith("EAS: ")]


@pytest.fixture
def samples_dir(tmp_path: Path) -> Path:
    if not SAMPLES.exists():
        pytest.fail(f"SAME sample recordings not found at {SAMPLES}")
    dst = tmp_path / "samples"
    shutil.copytree(SAMPLES, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst
