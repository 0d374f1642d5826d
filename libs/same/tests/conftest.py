from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture
def samples_dir(tmp_path: Path) -> Path:
    if not SAMPLES.exists():
        pytest.fail(f"SAME sample recordings not found at {SAMPLES}")
    dst = tmp_path / "samples"
    shutil.copytree(SAMPLES, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst
