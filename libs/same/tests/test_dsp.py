"""The decoder's numpy-only filter design and Bessel function against scipy's, and the
decode path's promise not to import scipy (about 1.5 s of every one-shot decode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal as sps
from scipy import special

from eas_same._dsp import firwin_lowpass, i0e
from eas_same.encoder import generate

HEADER = "ZCZC-WXR-TOR-039035+0100-3181518-KXYZ/FM -"


def _decoder_design(rate: int) -> tuple[int, float]:
    # the decoder's own choice (SameDecoder.__init__): taps and cut-off for this rate
    fs_d = rate / max(1, rate // 4000)
    return max(11, 2 * round(0.9e-3 * rate) + 1), min(1200.0, 0.3 * fs_d)


def test_firwin_lowpass_is_scipy_firwin_bit_for_bit_at_every_decoder_rate() -> None:
    rates = [*range(6000, 48001, 25), 88200, 96000, 176400, 192000]
    for rate in rates:
        ntaps, cutoff = _decoder_design(rate)
        ours = firwin_lowpass(ntaps, cutoff, rate)
        theirs = sps.firwin(ntaps, cutoff, fs=rate)
        assert np.array_equal(ours, theirs), rate


@pytest.mark.parametrize(
    ("ntaps", "cutoff", "fs"), [(1, 0.2, 1.0), (2, 0.3, 1.0), (64, 10.0, 44.1)]
)
def test_firwin_lowpass_other_lengths(ntaps: int, cutoff: float, fs: float) -> None:
    assert np.array_equal(firwin_lowpass(ntaps, cutoff, fs), sps.firwin(ntaps, cutoff, fs=fs))


@pytest.mark.parametrize("cutoff", [0.0, -1.0, 500.0, 900.0])
def test_firwin_lowpass_rejects_cutoffs_outside_the_band(cutoff: float) -> None:
    with pytest.raises(ValueError, match="cutoff"):
        firwin_lowpass(11, cutoff, 1000.0)


def test_i0e_matches_scipy_over_a_wide_range() -> None:
    x = np.concatenate(
        [
            np.logspace(-300, 300, 20001),
            np.linspace(0.0, 60.0, 60001),
            [0.0, 8.0, np.nextafter(8.0, 0.0), np.nextafter(8.0, 9.0), 1e308],
        ]
    )
    x = np.concatenate([x, -x])
    ours, theirs = i0e(x), special.i0e(x)
    rel = np.abs(ours - theirs) / theirs
    assert float(np.max(rel)) <= 1e-12
    # same operations in the same order as Cephes: in practice bit for bit
    assert np.array_equal(ours, theirs)


def test_i0e_shapes_infinity_and_nan() -> None:
    assert i0e(np.array([np.inf]))[0] == special.i0e(np.inf) == 0.0
    assert i0e(np.zeros((2, 3))).shape == (2, 3)
    assert float(i0e(0.0)) == 1.0
    assert np.isnan(i0e(np.array([np.nan]))[0])


def _no_scipy(code: str) -> None:
    probe = (
        f"{code}\nimport sys\n"
        "assert 'scipy' not in sys.modules, [m for m in sys.modules if m.startswith('scipy')]"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()


def test_importing_the_decoder_does_not_import_scipy() -> None:
    _no_scipy("import eas_same.decoder")
    _no_scipy("from eas_same import SameDecoder, decode_samples")


def test_importing_the_decoder_does_not_import_pydantic() -> None:
    # the code tables in eas_schemas are pure Python; pydantic would be most of the start-up
    probe = "import eas_same.decoder, sys; assert 'pydantic' not in sys.modules"
    r = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()


def test_cli_decode_of_a_file_does_not_import_scipy(tmp_path: Path) -> None:
    path = tmp_path / "tor.wav"
    sf.write(path, generate(HEADER, 16000, attention=0.5), 16000, subtype="PCM_16")
    _no_scipy(
        "import contextlib, io\n"
        "from eas_same.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main(['decode', {str(path)!r}])\n"
        f"assert rc == 0 and out.getvalue().splitlines() == [{HEADER!r}, 'NNNN'], out.getvalue()"
    )


def test_cli_decode_of_stdin_pcm_does_not_import_scipy() -> None:
    pcm = (generate(HEADER, 8000, attention=0.0) * 32767).astype("<i2").tobytes()
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys\n"
            "sys.argv = ['eas-same', 'decode', '--rate', '8000', '-']\n"
            "try:\n"
            "    runpy.run_module('eas_same.cli', run_name='__main__')\n"
            "finally:\n"
            "    assert 'scipy' not in sys.modules\n",
        ],
        input=pcm,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == [HEADER, "NNNN"]
