from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import decode_all, eoms, headers

EXPECTED = {
    "civ-lew-wolfip-16k.wav": "ZCZC-CIV-LEW-004013+1000-3032318-WOLF/IP -",
    "eas-rwt-wjontv-16k.wav": "ZCZC-EAS-RWT-042001-042071-042133+0300-3040858-WJON/TV -",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_recording(samples_dir: Path, name: str) -> None:
    x, rate = sf.read(str(samples_dir / name), dtype="float64")
    events, dec = decode_all(x, rate)
    assert headers(events) == [EXPECTED[name]]
    h = next(e for e in events if e.type == "header")
    assert h.bursts == 3 and h.agreed == 3
    ends = eoms(events)
    assert len(ends) == 1 and ends[0].bursts == 3
    assert ends[0].start_s > h.end_s
    assert dec.stats.headers_rejected == 0


def test_nonstandard_framing_gives_no_header(samples_dir: Path) -> None:
    x, rate = sf.read(str(samples_dir / "nonstandard-7e1-framing-44k.wav"), dtype="float64")
    events, _ = decode_all(x, rate)
    assert headers(events) == []
    assert eoms(events) == []


@pytest.mark.parametrize("chunk", [1, 7, 160, 4096, None])
def test_chunk_size_independence(samples_dir: Path, chunk: int | None) -> None:
    x, rate = sf.read(str(samples_dir / "eas-rwt-wjontv-16k.wav"), dtype="float64")
    ref, _ = decode_all(x, rate)
    got, _ = decode_all(x, rate, chunk)
    assert got == ref
    assert len(ref) == 2


def test_int16_input_and_stereo_mixdown(samples_dir: Path) -> None:
    x, rate = sf.read(str(samples_dir / "civ-lew-wolfip-16k.wav"), dtype="int16")
    events, _ = decode_all(np.asarray(x), rate)
    assert headers(events) == [EXPECTED["civ-lew-wolfip-16k.wav"]]
