"""Composed messages decode to exactly their header and three EOMs with both decoders, at
every common rate, and their component map is where the samples say it is."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import soundfile as sf

from audio_control.audio_files import PEAK_CEILING_DBFS, TARGET_RMS_DBFS, measure_levels
from audio_control.composer import ComposedMessage, ComposeError, compose
from audio_control.narration import (
    AirClipDetail,
    Narration,
    NarrationConfig,
    SourceFailure,
    narration_from_air_clip,
    narration_from_text,
)
from eas_same.encoder import COMMON_RATES, MARK_HZ, SPACE_HZ, generate
from eas_same.header import SameHeader, parse_header
from eas_testkit.decoders import multimon_eas

from .media_helpers import band_power, own_decode, speechlike

HEADER = "ZCZC-WXR-TOR-039035-039055-039085+0030-3181518-KCLE/NWS-"
TEXT = (
    "The National Weather Service in Cleveland has issued a tornado warning for Cuyahoga "
    "County. *** Take cover now."
)


def check_decodes(msg: ComposedMessage) -> None:
    x, rate = msg.samples, msg.rate
    events = own_decode(x, rate)
    assert [e.text for e in events if e.type == "header"] == [msg.header.text]
    header_event = next(e for e in events if e.type == "header")
    assert header_event.bursts == 3 and header_event.agreed == 3
    eoms = [e for e in events if e.type == "eom"]
    assert len(eoms) == 1 and eoms[0].bursts == 3
    lines = multimon_eas(x, rate)
    assert [ln for ln in lines if ln.startswith("ZCZC")] == [msg.header.text]
    assert [ln for ln in lines if ln.startswith("NNNN")] == ["NNNN"] * 3
    assert all(ln.startswith(("ZCZC", "NNNN")) for ln in lines), lines
    # Component map against the decoder's own timing of the same samples.
    first_header = msg.of_kind("header")[0]
    assert header_event.start_s == pytest.approx(first_header.start_s, abs=0.01)
    assert eoms[0].start_s == pytest.approx(msg.of_kind("eom")[0].start_s, abs=0.01)
    attention = [e for e in events if e.type == "attention"]
    if msg.narration_source == "none":
        assert attention == [] and msg.of_kind("attention") == []
    else:
        (component,) = msg.of_kind("attention")
        assert [a.kind for a in attention] == [component.detail["tone"]]
        assert attention[0].start_s == pytest.approx(component.start_s, abs=0.3)
        assert attention[0].duration_s == pytest.approx(component.duration_s, abs=0.3)


def check_components(msg: ComposedMessage) -> None:
    comps = msg.components
    assert comps[0].start_sample == 0
    for a, b in itertools.pairwise(comps):
        assert a.end_sample == b.start_sample
    assert comps[-1].end_sample == len(msg.samples)
    for c in msg.of_kind("silence"):
        assert not np.any(msg.samples[c.start_sample : c.end_sample])
    gaps = [c for c in comps if c.kind == "silence" and c.detail["role"] != "lead"]
    assert all(c.duration_s == pytest.approx(1.0, abs=1 / msg.rate) for c in gaps)
    kinds = [c.kind for c in comps if c.kind != "silence"]
    middle = ["attention", "narration"] if msg.narration_source != "none" else []
    assert kinds == ["header"] * 3 + middle + ["eom"] * 3
    for c in msg.of_kind("header") + msg.of_kind("eom"):
        seg = msg.samples[c.start_sample : c.end_sample].astype(np.float64)
        fsk = band_power(seg, msg.rate, MARK_HZ) + band_power(seg, msg.rate, SPACE_HZ)
        assert fsk > 100 * band_power(seg, msg.rate, 1000.0)
    for c in msg.of_kind("attention"):
        seg = msg.samples[c.start_sample : c.end_sample].astype(np.float64)
        freqs = c.detail["frequencies_hz"]
        on = min(band_power(seg, msg.rate, f) for f in freqs)
        off = max(band_power(seg, msg.rate, f) for f in (700.0, 1250.0, MARK_HZ))
        assert on > 1000 * off
        if c.detail["tone"] == "broadcast":
            assert band_power(seg, msg.rate, 1050.0) < on / 1000


@pytest.fixture(scope="module")
def header() -> SameHeader:
    return parse_header(HEADER)


@pytest.mark.parametrize("rate", COMMON_RATES)
async def test_tts_message_decodes_at_every_rate(rate: int, header: SameHeader) -> None:
    narration = await narration_from_text(TEXT, config=NarrationConfig(rate=rate))
    msg = compose(header, narration, rate=rate, attention="broadcast", attention_s=8.0)
    assert msg.narration_source == "tts" and not msg.narration_truncated
    (narr,) = msg.of_kind("narration")
    assert narr.detail["source"] == "tts"
    assert np.array_equal(msg.samples[narr.start_sample : narr.end_sample], narration.samples)
    assert msg.narration_detail is not None and msg.narration_detail["text"] == TEXT
    check_components(msg)
    check_decodes(msg)


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_header_and_tones_only_at_every_rate(rate: int, header: SameHeader) -> None:
    failures = (SourceFailure("tts", "tts_failed", "engine missing"),)
    msg = compose(
        header, None, rate=rate, attention="nwr", attention_s=8.0, narration_failures=failures
    )
    assert msg.narration_source == "none"
    assert msg.to_dict()["narration_failures"] == [f.to_dict() for f in failures]
    check_components(msg)
    check_decodes(msg)


@pytest.mark.parametrize("rate", [11025, 48000])
def test_nwr_tone_and_air_clip(rate: int, header: SameHeader) -> None:
    clip = narration_from_air_clip(
        speechlike(3.0, 16000), 16000, config=NarrationConfig(rate=rate), clip_id="clip-7"
    )
    assert isinstance(clip.detail, AirClipDetail) and clip.detail.input_rate == 16000
    assert clip.duration_s == pytest.approx(3.0, abs=0.01)
    msg = compose(header, clip, rate=rate, attention="nwr", attention_s=9.5)
    (att,) = msg.of_kind("attention")
    assert att.detail["tone"] == "nwr" and att.duration_s == pytest.approx(9.5, abs=1 / rate)
    check_components(msg)
    check_decodes(msg)


async def test_same_samples_as_the_encoder(header: SameHeader) -> None:
    rate = 22050
    narration = await narration_from_text("Test message.", config=NarrationConfig(rate=rate))
    msg = compose(header, narration, rate=rate, attention="broadcast", attention_s=8.0)
    ref = generate(header, rate, attention=8.0, audio=narration.samples, lead=0.5, tail=1.0)
    assert np.array_equal(msg.samples, ref)
    bare = compose(header, None, rate=rate, attention="broadcast", attention_s=8.0)
    assert np.array_equal(bare.samples, generate(header, rate, attention=None, tail=1.0))


def _long_narration(seconds: float, rate: int) -> Narration:
    return Narration.from_audio(
        "air_clip",
        speechlike(seconds, rate),
        rate,
        AirClipDetail(clip_id=None, input_rate=rate),
        max_s=600,
    )


def test_narration_cut_at_120_s_except_ean(header: SameHeader) -> None:
    rate = 8000
    narration = _long_narration(125.0, rate)
    msg = compose(header, narration, rate=rate, attention="broadcast", attention_s=8.0)
    (narr,) = msg.of_kind("narration")
    assert narr.duration_s == pytest.approx(120.0)
    assert narr.detail["truncated"] is True and msg.narration_truncated
    assert narr.detail["source_duration_s"] == pytest.approx(125.0)
    # faded out, not cut mid-wave
    assert abs(msg.samples[narr.end_sample - 1]) < 1e-3
    shorter = compose(
        header, narration, rate=rate, attention="broadcast", attention_s=8.0, narration_max_s=60
    )
    assert shorter.of_kind("narration")[0].duration_s == pytest.approx(60.0)

    ean = parse_header("ZCZC-PEP-EAN-000000+0400-0742256-WXYZ/FM -")
    msg = compose(ean, narration, rate=rate, attention="broadcast", attention_s=8.0)
    (narr,) = msg.of_kind("narration")
    assert narr.duration_s == pytest.approx(125.0) and not msg.narration_truncated
    assert narr.detail["limit_s"] is None
    check_decodes(msg)


def test_strict_on_send(header: SameHeader) -> None:
    # A purge time some stations send (+0010) is decoded leniently but never re-sent.
    lenient = parse_header("ZCZC-WXR-TOR-039035+0010-3181518-KCLE/NWS-", lenient_duration=True)
    with pytest.raises(ComposeError, match="purge time"):
        compose(lenient, None, rate=22050, attention="broadcast", attention_s=8.0)
    with pytest.raises(ComposeError, match="form ZCZC"):
        compose(
            "ZCZC-WXR-TOR-039035+0030-318151", None, rate=22050, attention="nwr", attention_s=8.0
        )
    for seconds in (7.9, 25.1, float("nan")):
        with pytest.raises(ComposeError, match="attention_s"):
            compose(header, None, rate=22050, attention="broadcast", attention_s=seconds)
    with pytest.raises(ComposeError, match="rate"):
        compose(header, None, rate=12000, attention="broadcast", attention_s=8.0)
    with pytest.raises(ComposeError, match="narration_max_s"):
        compose(header, None, rate=8000, attention="nwr", attention_s=8, narration_max_s=121)
    with pytest.raises(ComposeError, match="8000 Hz"):
        compose(header, _long_narration(2.0, 8000), rate=16000, attention="nwr", attention_s=8)
    with pytest.raises(ComposeError, match="attention"):
        compose(header, None, rate=8000, attention="siren", attention_s=8)  # type: ignore[arg-type]


def test_wav_is_16_bit_pcm_mono(header: SameHeader, tmp_path) -> None:
    msg = compose(header, _long_narration(2.0, 16000), rate=16000, attention="nwr", attention_s=8.0)
    data = msg.wav_bytes()
    info = sf.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (
        16000,
        1,
        "PCM_16",
        "WAV",
    )
    back, _ = sf.read(io.BytesIO(data), dtype="float32")
    assert len(back) == len(msg.samples)
    assert np.max(np.abs(back - msg.samples)) <= 1 / 32767 + 1e-6
    path = tmp_path / "message.wav"
    msg.write_wav(path)
    assert path.read_bytes() == data
    assert not list(tmp_path.glob(".*part"))
    assert msg.to_dict()["components"][1]["kind"] == "header"


def test_loud_narration_cannot_clip(header: SameHeader) -> None:
    rate = 22050
    square = np.sign(np.sin(2 * np.pi * 300 * np.arange(rate * 2) / rate)).astype(np.float32)
    overdriven = square * 3.0  # decoded MP3 can exceed full scale
    narration = Narration.from_audio(
        "air_clip", overdriven, rate, AirClipDetail(None, rate), max_s=120
    )
    assert narration.levels.peak_dbfs <= PEAK_CEILING_DBFS + 1e-6
    msg = compose(header, narration, rate=rate, attention="broadcast", attention_s=8.0)
    assert float(np.max(np.abs(msg.samples))) <= 10 ** (PEAK_CEILING_DBFS / 20) + 1e-6
    # quiet speech is brought up to the target
    quiet = Narration.from_audio(
        "air_clip",
        speechlike(4.0, rate, level=0.01),
        rate,
        AirClipDetail(None, rate),
        max_s=120,
    )
    assert quiet.levels.rms_dbfs == pytest.approx(TARGET_RMS_DBFS, abs=0.1)
    assert measure_levels(quiet.samples, rate).peak_dbfs <= PEAK_CEILING_DBFS + 1e-6


def test_silent_or_malformed_narration_is_refused() -> None:
    from audio_control.audio_files import AudioDecodeError

    with pytest.raises(AudioDecodeError, match="silent"):
        Narration.from_audio("air_clip", np.zeros(8000), 8000, AirClipDetail(None, 8000), max_s=120)
    with pytest.raises(ValueError, match="within"):
        Narration(
            "air_clip",
            np.full(10, 2.0, np.float32),
            8000,
            AirClipDetail(None, 8000),
            0.0,
            measure_levels(np.ones(10), 8000),
            False,
        )
