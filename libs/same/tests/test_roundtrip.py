from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from eas_same.encoder import COMMON_RATES, generate
from eas_testkit.decoders import multimon_eas

from .conftest import decode_all, eoms, headers

HEADER = "ZCZC-WXR-TOR-039035-039055-039085+0130-3181518-KXYZ/FM -"


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_roundtrip_own_decoder(rate: int) -> None:
    x = generate(HEADER, rate, attention=2.0)
    events, _ = decode_all(x, rate)
    assert headers(events) == [HEADER]
    h = next(e for e in events if e.type == "header")
    assert h.bursts == 3 and h.agreed == 3 and h.confidence >= 0.99
    assert 0.4 < h.start_s < 0.6
    ends = eoms(events)
    assert len(ends) == 1 and ends[0].bursts == 3
    att = [e for e in events if e.type == "attention"]
    assert len(att) == 1 and att[0].kind == "broadcast"
    assert att[0].duration_s == pytest.approx(2.0, abs=0.15)


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_roundtrip_multimon(rate: int) -> None:
    x = generate(HEADER, rate, attention=1.0)
    lines = multimon_eas(x, rate)
    # multimon-ng prints a header once when its repetitions agree
    assert [line for line in lines if line.startswith("ZCZC")] == [HEADER]
    assert "NNNN" in lines


def test_nwr_tone_detected() -> None:
    x = generate(HEADER, 11025, attention=3.0, tone="nwr")
    events, _ = decode_all(x, 11025)
    att = [e for e in events if e.type == "attention"]
    assert [a.kind for a in att] == ["nwr"]


def test_minimodem_encoded_audio(tmp_path: Path) -> None:
    exe = shutil.which("minimodem")
    if exe is None:
        pytest.fail("minimodem is not installed (Debian package minimodem)")
    rate = 22050
    burst_path = tmp_path / "burst.wav"
    subprocess.run(
        [exe, "--tx", "same", "-R", str(rate), "-f", str(burst_path)],
        input=HEADER.encode(),
        check=True,
        capture_output=True,
    )
    burst, r = sf.read(str(burst_path), dtype="float64")
    assert r == rate
    gap = np.zeros(rate)
    x = np.concatenate([gap, burst, gap, burst, gap, burst, gap, gap])
    events, _ = decode_all(x, rate)
    assert headers(events) == [HEADER]
