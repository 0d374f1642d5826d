"""Text-to-speech with the real engines: text on stdin, *** as an exact one-second pause,
engine registry and its errors."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from audio_control.tts import (
    ENGINES,
    TtsEngine,
    TtsError,
    installed_engines,
    register_engine,
    resolve_engine,
    split_pauses,
    synthesize,
)

from .media_helpers import tool


@pytest.fixture
def registry():
    saved = dict(ENGINES)
    yield ENGINES
    ENGINES.clear()
    ENGINES.update(saved)


def longest_quiet_run(x: np.ndarray, level: float = 1e-3) -> tuple[int, int]:
    """(start, length) of the longest run of samples below ``level``."""
    quiet = np.concatenate([[False], np.abs(x) < level, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i] - starts[i])


def test_split_pauses() -> None:
    assert split_pauses("A  b\n c *** d") == ["A b c", "d"]
    assert split_pauses("***x******") == ["", "x", "", ""]


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
async def test_espeak_speaks_at_the_message_rate(rate: int) -> None:
    tool("espeak-ng")
    speech = await synthesize("This is a test of the alert system.", rate=rate, rate_wpm=175)
    assert speech.rate == rate and speech.engine == "espeak-ng" and speech.voice == "en-us"
    assert 1.0 < len(speech.samples) / rate < 5.0
    assert float(np.max(np.abs(speech.samples))) > 0.05
    assert speech.pauses == 0


async def test_three_stars_are_one_second_of_silence() -> None:
    tool("espeak-ng")
    rate = 22050
    one = await synthesize("Tornado warning.", rate=rate)
    two = await synthesize("Tornado warning. *** Take cover.", rate=rate)
    assert two.pauses == 1 and two.text == "Tornado warning. *** Take cover."
    start, length = longest_quiet_run(two.samples)
    # The pause is ours: exactly one second between the trimmed parts (plus at most the
    # few sub-threshold samples of the fade at each edge of the speech).
    assert rate <= length <= rate + round(0.03 * rate)
    assert start > 0.5 * rate and start + length < len(two.samples)
    # ... and the first part is the speech of the first sentence, not more.
    assert start <= len(one.samples)
    three = await synthesize("*** Take cover. ******", rate=rate)
    assert three.pauses == 3
    assert not np.any(three.samples[:rate])
    assert not np.any(three.samples[-2 * rate :])


async def test_slower_rate_is_longer() -> None:
    tool("espeak-ng")
    text = "The National Weather Service has issued a severe thunderstorm warning."
    fast = await synthesize(text, rate=16000, rate_wpm=250)
    slow = await synthesize(text, rate=16000, rate_wpm=100)
    assert len(slow.samples) > 1.8 * len(fast.samples)


async def test_text_goes_on_stdin_never_on_the_command_line(registry, tmp_path: Path) -> None:
    espeak = tool("espeak-ng")
    log = tmp_path / "argv.txt"
    seen = tmp_path / "stdin.txt"
    wrapper = tmp_path / "espeak-wrapper"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\ntee {seen} | exec {espeak} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    base = ENGINES["espeak-ng"]
    register_engine(
        TtsEngine(
            name="wrapped",
            executable=str(wrapper),
            argv=base.argv,
            writes_stdout=True,
            default_voice="en-us",
            debian_package="espeak-ng",
        )
    )
    # A text that would be options or markup if it reached the command line or SSML parser.
    text = "-v xx --stdout <speak>Evacuate</speak> now"
    speech = await synthesize(text, rate=22050, engine="wrapped")
    assert len(speech.samples) > 22050 // 2
    argv = log.read_text()
    assert "Evacuate" not in argv and "now" not in argv
    assert seen.read_text() == text


async def test_flite_is_a_second_engine() -> None:
    tool("flite")
    assert {"espeak-ng", "flite"} <= set(installed_engines())
    speech = await synthesize(
        "Required weekly test. *** End of test.", rate=22050, engine="flite", rate_wpm=175
    )
    assert speech.voice == "slt" and speech.pauses == 1
    _, length = longest_quiet_run(speech.samples)
    assert 22050 <= length <= 22050 + round(0.03 * 22050)
    slow = await synthesize("Required weekly test.", rate=22050, engine="flite", rate_wpm=90)
    fast = await synthesize("Required weekly test.", rate=22050, engine="flite", rate_wpm=250)
    assert len(slow.samples) > 1.5 * len(fast.samples)


async def test_engine_errors_name_what_is_installed(registry) -> None:
    with pytest.raises(TtsError, match=r"unknown text-to-speech engine 'festival'.*installed: "):
        resolve_engine("festival")
    register_engine(
        TtsEngine(
            name="pico2wave",
            executable="pico2wave-not-here",
            argv=ENGINES["espeak-ng"].argv,
            writes_stdout=True,
            default_voice="en-US",
            debian_package="libttspico-utils",
        )
    )
    with pytest.raises(TtsError) as info:
        await synthesize("hello", rate=22050, engine="pico2wave")
    message = str(info.value)
    assert "not installed" in message and "libttspico-utils" in message
    assert "espeak-ng" in message.split("installed engines:")[1]


async def test_bad_text_and_voice() -> None:
    tool("espeak-ng")
    for text, why in [
        ("", "empty"),
        ("   ", "empty"),
        ("*** ***", "nothing to speak"),
        ("x" * 1801, "1801 characters"),
        ("bell\x07", "control"),
    ]:
        with pytest.raises(TtsError, match=why):
            await synthesize(text, rate=22050)
    with pytest.raises(TtsError, match="failed"):
        await synthesize("hello", rate=22050, voice="xx-yy")
    with pytest.raises(TtsError, match="must not start"):
        await synthesize("hello", rate=22050, voice="-w/tmp/x")


async def test_engine_time_limit(registry, tmp_path: Path) -> None:
    slow = tmp_path / "slow-engine"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    register_engine(
        TtsEngine("slow", str(slow), ENGINES["espeak-ng"].argv, True, "en-us", "espeak-ng")
    )
    with pytest.raises(TtsError, match=r"took more than 0\.3 s"):
        await synthesize("hello", rate=22050, engine="slow", timeout_s=0.3)


async def test_broken_engine_output_is_an_error(registry, tmp_path: Path) -> None:
    junk = tmp_path / "junk-engine"
    junk.write_text("#!/bin/sh\ncat >/dev/null\necho not a wav\n")
    junk.chmod(0o755)
    register_engine(
        TtsEngine("junk", str(junk), ENGINES["espeak-ng"].argv, True, "en-us", "espeak-ng")
    )
    with pytest.raises(TtsError, match="usable WAV"):
        await synthesize("hello", rate=22050, engine="junk")
