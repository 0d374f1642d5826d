from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

HEADER = "ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "eas_same.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_encode_decode_file(tmp_path: Path) -> None:
    out = tmp_path / "msg.wav"
    r = run("encode", "--header", HEADER, "-o", str(out), "--rate", "16000", "--attention", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == HEADER
    r = run("decode", str(out))
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == [HEADER, "NNNN"]
    r = run("decode", "--json", str(out))
    objs = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [o["type"] for o in objs] == ["header", "attention", "eom"]
    h = objs[0]
    assert h["text"] == HEADER and h["bursts"] == 3 and 0 <= h["confidence"] <= 1
    assert h["parsed"]["event"] == "TOR" and h["parsed"]["locations"] == ["039035"]
    assert h["start_s"] < h["end_s"] < objs[2]["start_s"]


def test_encode_from_fields_and_flac_stereo(tmp_path: Path) -> None:
    out = tmp_path / "f.wav"
    r = run(
        "encode",
        "--org",
        "WXR",
        "--event",
        "TOR",
        "--location",
        "039035",
        "--location",
        "039055",
        "--duration",
        "0100",
        "--issued",
        "3181518",
        "--callsign",
        "KXYZ/FM",
        "-o",
        str(out),
        "--no-eom",
        "--attention",
        "0",
        "--tone",
        "nwr",
    )
    assert r.returncode == 0, r.stderr
    text = "ZCZC-WXR-TOR-039035-039055+0100-3181518-KXYZ/FM -"
    x, rate = sf.read(str(out))
    flac = tmp_path / "s.flac"
    sf.write(str(flac), np.stack([x, x], axis=1), rate)
    r = run("decode", str(flac))
    assert r.stdout.decode().splitlines() == [text]


def test_decode_stdin_raw(tmp_path: Path) -> None:
    out = tmp_path / "m.wav"
    run("encode", "--header", HEADER, "-o", str(out), "--rate", "22050", "--attention", "1")
    x, _ = sf.read(str(out), dtype="int16")
    r = run("decode", "-", "--rate", "22050", stdin=x.astype("<i2").tobytes())
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == [HEADER, "NNNN"]


def test_errors(tmp_path: Path) -> None:
    r = run("decode", str(tmp_path / "missing.wav"))
    assert r.returncode == 2 and b"cannot read" in r.stderr
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wav")
    assert run("decode", str(junk)).returncode == 2
    assert run("decode", "-").returncode == 2  # raw stdin needs --rate
    r = run("encode", "--header", "ZCZC-WXR-TOR-", "-o", str(tmp_path / "x.wav"))
    assert r.returncode == 2 and b"invalid header" in r.stderr


def test_describe() -> None:
    r = run("describe", HEADER)
    assert r.returncode == 0
    assert "Tornado Warning" in r.stdout.decode() and "Cuyahoga County, OH" in r.stdout.decode()
    r = run("describe", "ZCZC-WXR-TOR-039035+0010-3181518-KXYZ/FM -")
    assert r.returncode == 2 and b"purge time" in r.stderr
    r = run("describe", "--json", "--year", "2024", HEADER)
    d = json.loads(r.stdout)
    assert d["event"] == "TOR" and "November 13, 2024" in d["description"]
