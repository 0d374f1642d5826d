"""The field's reference decoder as tests call it: what ``multimon-ng -a EAS`` prints for
audio, so a test can say "both decoders read exactly this"."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import resample_poly

MULTIMON_RATE = 22_050  # the only rate multimon-ng's EAS demodulator takes


def multimon_eas(samples: npt.ArrayLike, rate: int) -> list[str]:
    """The ``EAS:`` lines multimon-ng prints for mono float samples at any rate."""
    exe = shutil.which("multimon-ng")
    if exe is None:
        pytest.fail("multimon-ng is not installed (Debian package multimon-ng is required)")
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if rate != MULTIMON_RATE:
        g = math.gcd(MULTIMON_RATE, rate)
        x = resample_poly(x, MULTIMON_RATE // g, rate // g)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    out = subprocess.run(
        [exe, "-q", "-t", "raw", "-a", "EAS", "-"], input=pcm, capture_output=True, check=True
    ).stdout.decode("ascii", "replace")
    return [line[5:].strip() for line in out.splitlines() if line.startswith("EAS: ")]
