"""Streaming SAME decoder.

Pipeline (numpy only, block-vectorised; Python work per bit *byte*, not per sample):

1. **Fixed internal blocks.** ``feed()`` buffers input and processes it in blocks of exactly
   ``block`` samples, so every filter, trigger and tracker decision is identical whatever
   the caller's chunk sizes; only *when* an event is returned differs. ``flush()``
   processes the final partial block and closes open transmissions.
2. **Front end.** A linear-phase FIR low-pass modulated up to the SAME centre frequency
   (1822.9 Hz) and evaluated only at every D-th sample, then multiplied by the exact periodic
   mixer: mix-down, filtering and decimation to 4-8 kHz in one small matrix product per
   block (with the last taps of input kept, so exact across block boundaries).
3. **Non-coherent FSK matched filters.** Complex correlators over one bit at +-260.4 Hz
   (mark/space in the baseband) give ``|Cm|`` and ``|Cs|`` per sample, and the normalised
   discriminator ``dn = (|Cm|-|Cs|)/(|Cm|+|Cs|)`` (level independent).
4. **Preamble trigger.** A 32-bit template of the 0xAB preamble correlated with ``dn`` for
   three bit-rate hypotheses (-1.5 %, 0, +1.5 %) covering +-2 % clock offsets.
5. **Bit tracker.** From a trigger, a second-order early-late timing loop samples one bit
   per bit period (fractional positions, linear interpolation) in blocks of 8 bits; it
   looks for the sync word ``0xAB 0xAB Z C Z C`` (header) or ``0xAB 0xAB N N N N`` (EOM)
   with at most a few bit errors, then collects per-bit soft values (``|Cm|``, ``|Cs|``)
   from the first ``Z`` until the header is complete, the carrier is lost, or 252
   characters.
6. **Voting.** The (up to) three bursts of one transmission are turned into log-likelihood
   ratios (Rician model, per-burst amplitude, local noise estimate so a damaged stretch
   weighs little), summed bit by bit aligned from ``ZCZC``, framed (``_structure.frame``:
   the locations end at '+', the callsign at its dash or after 8 characters), decoded
   against the structure where a character cannot be there (``_structure.correct``) and
   parsed leniently: a header that breaks the letter of 11.31 but not its meaning is reported
   with its deviations named (``SameHeader.deviations``); anything else is not a header.
   If the three-burst vote fails, two-burst and one-burst decodes are
   tried. A candidate is accepted only when it validates *and* the estimated probability
   that another valid header was sent (``_structure.structured_error``) is below 0.02.
   Finished bursts are first re-timed with a straight bit clock searched over the whole
   clock range; when a transmission closes, its bursts are re-timed again on one clock
   estimated from all of them (one transmitter), and a burst no tracker synchronised to is
   searched for where the found ones put it (the 160 known preamble + ``ZCZC`` bits on that
   clock). One :class:`HeaderDecoded` per transmission, after the third burst or once
   every slot a missed burst could occupy has been heard.
7. **Attention signal.** 50 ms frames, Hann-windowed single-bin DFTs at 853, 960 and 1050 Hz
   against frame power; a run of at least 1 s gives an :class:`AttentionTone`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._dsp import firwin_lowpass, i0e
from ._structure import correct, frame, structured_error
from .encoder import BAUD, PREAMBLE, bytes_to_bits
from .header import (
    MAX_LENIENT_LOCATIONS,
    SameHeader,
    SameHeaderError,
    header_length,
    parse_header,
)

__all__ = [
    "AttentionTone",
    "DecoderStats",
    "EndOfMessage",
    "Event",
    "HeaderDecoded",
    "SameDecoder",
    "decode_samples",
]

F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

# --------------------------------------------------------------------------- constants
CENTER_HZ_NUM, CENTER_HZ_DEN = 21875, 12  # (2083 1/3 + 1562.5) / 2 = 1822 11/12 Hz
OFFSET_HZ_NUM, OFFSET_HZ_DEN = 3125, 12  # 260 5/12 Hz: mark/space offset from the centre
MAX_HEADER_CHARS = header_length(MAX_LENIENT_LOCATIONS)  # 469: lenient receive
TEMPLATE_BITS = 32
RATE_HYPOTHESES = (0.985, 1.0, 1.015)
TRIGGER_THRESHOLD = 0.42
SYNC_MAX_ERRORS = 5  # of 48 bits
UNLOCKED_TIMEOUT_BITS = 176
_KS = {n: np.arange(1, n + 1, dtype=np.float64) for n in (8, 16)}
_TRACK_CAP = 24 + UNLOCKED_TIMEOUT_BITS + 8 * MAX_HEADER_CHARS + 64
GROUP_TIMEOUT_S = 2.0  # close a transmission this long after its last burst
GROUP_MAX_GAP_S = 3.5  # a burst starting later than this after the previous starts anew
WIDE_RATES = np.linspace(0.975, 1.025, 51)
MAX_EXPECTED_ERRORS = 0.02  # acceptance threshold on sum of bit error probabilities
# search for a missed header burst (``SameDecoder._search_missing``): the 160 known bits
# (preamble + ZCZC) correlated with dn on the found bursts' bit clock
SEARCH_SCORE = 0.30  # mean of sign(bit) * dn over the 160 bits
SEARCH_NARROW_BITS = 32  # +- window where two found bursts fix the burst period
GAP_BITS = BAUD * 1.0  # the 1 s pause between bursts, in bit periods

_PRE_BITS = bytes_to_bits(PREAMBLE[:2]).astype(np.int8)
SYNC_HEADER = np.concatenate([_PRE_BITS, bytes_to_bits(b"ZCZC")]).astype(np.int8)
SYNC_EOM = np.concatenate([_PRE_BITS, bytes_to_bits(b"NNNN")]).astype(np.int8)
_SEARCH_PATTERN = bytes_to_bits(PREAMBLE + b"ZCZC").astype(np.float64) * 2 - 1
_NNNN_PATTERN = bytes_to_bits(b"NNNN").astype(np.float64) * 2 - 1
_SEARCH_OFFS = np.arange(len(_SEARCH_PATTERN), dtype=np.float64) - 8 * len(PREAMBLE)
_PRE_TEMPLATE = bytes_to_bits(PREAMBLE[:4]).astype(np.float64) * 2 - 1  # time order
#: template value for the bit k periods before the trigger instant (k = 0: most recent)
TEMPLATE = _PRE_TEMPLATE[::-1].copy()


# --------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class HeaderDecoded:
    """One SAME header per transmission (voted over its bursts)."""

    text: str
    header: SameHeader
    confidence: float
    bursts: int  # bursts received for this transmission
    bursts_used: int  # bursts that went into the accepted decode
    agreed: int  # bursts whose own hard decode equals ``text``
    start_sample: int
    end_sample: int
    start_s: float
    end_s: float
    type: Literal["header"] = "header"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "confidence": self.confidence,
            "bursts": self.bursts,
            "bursts_used": self.bursts_used,
            "agreed": self.agreed,
            "deviations": list(self.header.deviations),
            "start_sample": self.start_sample,
            "end_sample": self.end_sample,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "parsed": self.header.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """One EOM (``NNNN``) per EOM group."""

    bursts: int
    confidence: float
    start_sample: int
    end_sample: int
    start_s: float
    end_s: float
    text: str = "NNNN"
    type: Literal["eom"] = "eom"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "confidence": self.confidence,
            "bursts": self.bursts,
            "start_sample": self.start_sample,
            "end_sample": self.end_sample,
            "start_s": self.start_s,
            "end_s": self.end_s,
        }


@dataclass(frozen=True, slots=True)
class AttentionTone:
    """An attention signal of at least one second: ``broadcast`` (853 + 960 Hz) or ``nwr``
    (1050 Hz)."""

    kind: Literal["broadcast", "nwr"]
    start_sample: int
    end_sample: int
    start_s: float
    end_s: float
    type: Literal["attention"] = "attention"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def text(self) -> str:
        return f"ATTENTION {self.kind} {self.duration_s:.1f}s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "kind": self.kind,
            "start_sample": self.start_sample,
            "end_sample": self.end_sample,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "duration_s": self.duration_s,
        }


Event = HeaderDecoded | EndOfMessage | AttentionTone


@dataclass(slots=True)
class DecoderStats:
    triggers: int = 0
    syncs_header: int = 0
    syncs_eom: int = 0
    bursts_searched: int = 0  # header bursts found by the search where the others put them
    headers_emitted: int = 0
    headers_rejected: int = 0  # transmissions whose every decode failed validation/reliability
    eoms_emitted: int = 0
    attention_tones: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "triggers": self.triggers,
            "syncs_header": self.syncs_header,
            "syncs_eom": self.syncs_eom,
            "bursts_searched": self.bursts_searched,
            "headers_emitted": self.headers_emitted,
            "headers_rejected": self.headers_rejected,
            "eoms_emitted": self.eoms_emitted,
            "attention_tones": self.attention_tones,
            "reject_reasons": dict(self.reject_reasons),
        }


# --------------------------------------------------------------------------- helpers
def _periodic_table(num: int, den: int, rate: int, sign: float) -> C128 | None:
    """exp(sign*j*2*pi*f*n/rate) for f = num/den Hz over one exact period, or None when the
    period is too long to tabulate."""
    period = (den * rate) // math.gcd(num, den * rate)
    if period > 2_000_000:
        return None
    n = np.arange(period, dtype=np.float64)
    return np.asarray(np.exp(sign * 2j * np.pi * (num * n / (den * rate))), dtype=np.complex128)


def _bits_to_text(bits: npt.NDArray[np.int8]) -> str:
    nchar = len(bits) // 8
    if nchar == 0:
        return ""
    b = bits[: nchar * 8].reshape(nchar, 8).astype(np.int64)
    vals = (b[:, :7] << np.arange(7)).sum(axis=1)
    return "".join(map(chr, vals.tolist()))


def _log_i0(x: F64) -> F64:
    return np.asarray(x + np.log(i0e(x)), dtype=np.float64)


# --------------------------------------------------------------------------- bursts
@dataclass(slots=True)
class _Burst:
    kind: Literal["header", "eom"]
    am: F64  # |Cm| per bit from the first sync character on
    as_: F64  # |Cs| per bit
    pos: F64  # decimated sample position of each bit's sampling instant
    start: float  # decimated position of the preamble start (estimate)
    end: float  # decimated position of the last collected bit
    sync_errors: int
    searched: bool = False  # found by the search at a position the other bursts predict

    @property
    def z(self) -> float:
        """Decimated position of the first ``Z`` bit."""
        return float(self.pos[0])

    @property
    def period(self) -> float:
        """Samples per bit over the burst (its re-timed bit clock)."""
        n = len(self.pos)
        return float(self.pos[-1] - self.pos[0]) / (n - 1) if n > 1 else 0.0

    def llr(self) -> F64:
        """Per-bit log-likelihood ratio (positive = mark = 1), Rician model."""
        am, as_ = self.am, self.as_
        n = len(am)
        mx = np.maximum(am, as_)
        mn = np.minimum(am, as_)
        nref = min(n, 8 * header_length(1))
        noise = mn * mn
        sig2_glob = float(np.mean(noise[:nref])) + 1e-30
        a2 = max(float(np.mean(mx[:nref] ** 2)) - sig2_glob, 1e-3 * sig2_glob)
        amp = math.sqrt(a2)
        # local noise: the larger of the means over the 16 bits before and the 16 after,
        # so bits at the edge of a damaged stretch are not trusted on their clean side
        half = 16
        if n > half:
            c = np.concatenate([[0.0], np.cumsum(noise)])
            idx = np.arange(n)
            lo = np.maximum(idx - half, 0)
            hi = np.minimum(idx + half + 1, n)
            left = (c[idx + 1] - c[lo]) / (idx + 1 - lo)
            right = (c[hi] - c[idx]) / (hi - idx)
            sig2 = np.maximum(left, right)
        else:
            sig2 = np.full(n, sig2_glob)
        sig2 = np.maximum(sig2, 0.25 * sig2_glob)
        k = 2.0 * amp / sig2
        # both branches in one call: i0e's cost is mostly per call, not per element
        both = _log_i0(np.concatenate([k * am, k * as_]))
        return np.asarray(both[:n] - both[n:], dtype=np.float64)


@dataclass(slots=True)
class _Tracker:
    t: float  # decimated position of the last sampled bit
    T: float  # samples per bit
    locked: bool = False
    kind: Literal["header", "eom"] = "header"
    bits_since_refresh: int = 0
    am: F64 = field(default_factory=lambda: np.zeros(_TRACK_CAP))
    as_: F64 = field(default_factory=lambda: np.zeros(_TRACK_CAP))
    pos: F64 = field(default_factory=lambda: np.zeros(_TRACK_CAP))
    hard: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(_TRACK_CAP, np.int8))
    nbits: int = 0
    text: list[str] = field(default_factory=list)
    ntext: int = 0
    data_start: int = 0  # bit index of the first sync character (Z or N)
    sync_errors: int = 0
    ref_energy: float = 0.0
    low_energy_blocks: int = 0
    start_pos: float = 0.0
    nblocks_locked: int = 0
    done: bool = False
    trigger_T: float = 0.0
    score: float = 0.0

    def append(self, am: F64, as_: F64, pos: F64) -> None:
        n, k = self.nbits, len(am)
        if n + k > len(self.am):  # unlocked trackers slide; keep the last 128 bits
            keep = 128
            for arr in (self.am, self.as_, self.pos, self.hard):
                arr[:keep] = arr[n - keep : n]
            self.data_start -= n - keep
            n = self.nbits = keep
        self.am[n : n + k] = am
        self.as_[n : n + k] = as_
        self.pos[n : n + k] = pos
        self.hard[n : n + k] = am > as_
        self.nbits = n + k


@dataclass(slots=True)
class _Group:
    kind: Literal["header", "eom"]
    bursts: list[_Burst]
    last_end: float


# --------------------------------------------------------------------------- decoder
class SameDecoder:
    """Streaming SAME decoder: ``feed(samples) -> events``, then ``flush() -> events``.

    ``samples`` are mono floats (any scale; int16 arrays are accepted too). Results do not
    depend on how the stream is cut into chunks.
    """

    def __init__(self, rate: int, *, block_seconds: float = 0.5) -> None:
        if rate < 6000:
            raise ValueError("sample rate must be at least 6000 Hz")
        self.rate = int(rate)
        self.D = max(1, self.rate // 4000)
        self.fs_d = self.rate / self.D
        self.T_nom = self.fs_d / BAUD
        self.L = max(2, round(self.T_nom))
        self.block = max(256, round(self.rate * block_seconds))
        self.stats = DecoderStats()

        # front end
        self._mix = _periodic_table(CENTER_HZ_NUM, CENTER_HZ_DEN, self.rate, -1.0)
        # linear-phase FIR low-pass, modulated up to the centre frequency so that filtering,
        # mixing down and decimation happen together at the decimated rate (polyphase):
        # y[g] = exp(-j w0 g) * sum_k h[k] exp(j w0 k) x[g - k], g a multiple of D
        ntaps = max(11, 2 * round(0.9e-3 * self.rate) + 1)
        h = firwin_lowpass(ntaps, min(1200.0, 0.3 * self.fs_d), self.rate)
        w0 = 2 * np.pi * CENTER_HZ_NUM / CENTER_HZ_DEN / self.rate
        hc = h * np.exp(1j * w0 * np.arange(ntaps))
        self._taps: F64 = np.ascontiguousarray(np.stack([hc.real, hc.imag], axis=1)[::-1])
        self._xhist: F64 = np.zeros(ntaps - 1)
        self._mark_tab = _periodic_table(OFFSET_HZ_NUM * self.D, OFFSET_HZ_DEN, self.rate, -1.0)
        self._fir = np.ones(self.L)
        self._hist_m: C128 = np.zeros(self.L - 1, dtype=np.complex128)
        self._hist_s: C128 = np.zeros(self.L - 1, dtype=np.complex128)

        # stream state
        self._pending: list[F64] = []
        self._npending = 0
        self._n_in = 0  # input samples processed
        self._m_total = 0  # decimated samples produced
        self._base = 0  # global decimated index of buffer element 0
        # |Cm|, |Cs| and dn of the decimated stream from ``_base`` on, in preallocated storage
        # (appending copies only the new block; trimming moves the kept tail now and then),
        # so that several seconds of history can be kept for the search for missed bursts
        self._cap = 1 << 15
        self._store: F64 = np.zeros((3, self._cap))
        self._nbuf = 0
        self._am: F64 = self._store[0, :0]
        self._as: F64 = self._store[1, :0]
        self._dn: F64 = self._store[2, :0]
        #: decimated history always kept: two burst slots back (80-character headers)
        self._hist_keep = int(2 * (8 * 80 + len(PREAMBLE) * 8 + 1.1 * BAUD) * self.T_nom)
        self._trig_next = 0  # next decimated index to test for a trigger
        self._trackers: list[_Tracker] = []
        self._recent_syncs: list[float] = []
        self._hgroup: _Group | None = None
        self._egroup: _Group | None = None
        self._events: list[Event] = []

        # attention tone
        self._tone = _ToneDetector(self.rate)

    # ------------------------------------------------------------------ public API
    def feed(self, samples: npt.ArrayLike) -> list[Event]:
        x = np.asarray(samples)
        if x.dtype.kind in "iu":
            x = x.astype(np.float64) / 32768.0
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if len(x):
            self._pending.append(x)
            self._npending += len(x)
        if self._npending >= self.block:
            buf = np.concatenate(self._pending)
            nfull = (len(buf) // self.block) * self.block
            for i in range(0, nfull, self.block):
                self._process(buf[i : i + self.block])
            rest = buf[nfull:]
            self._pending = [rest] if len(rest) else []
            self._npending = len(rest)
        return self._take_events()

    def flush(self) -> list[Event]:
        """Process buffered input and close everything open (end of stream)."""
        if self._npending:
            buf = np.concatenate(self._pending)
            self._pending, self._npending = [], 0
            self._process(buf)
        # pad with a little silence so trackers can finish their last bits
        self._process(np.zeros(self.block // 4), pad=True)
        for tr in self._trackers:
            if tr.locked and not tr.done:
                self._end_tracker(tr)
        self._trackers = []
        self._close_groups(force=True)
        self._events.extend(self._tone.flush())
        self.stats.attention_tones = self._tone.count
        return self._take_events()

    @property
    def seconds(self) -> float:
        return self._n_in / self.rate

    def _take_events(self) -> list[Event]:
        ev = self._events
        self._events = []
        ev.sort(key=lambda e: e.start_sample)
        return ev

    # ------------------------------------------------------------------ processing
    def _process(self, x: F64, *, pad: bool = False) -> None:
        n0 = self._n_in
        n = len(x)
        if n == 0:
            return
        if not pad:
            self._events.extend(self._tone.process(x))
            self.stats.attention_tones = self._tone.count
        ntaps = len(self._taps)
        buf = np.concatenate([self._xhist, x])
        self._xhist = buf[len(buf) - (ntaps - 1) :]
        first = (-n0) % self.D
        win = np.lib.stride_tricks.sliding_window_view(buf, ntaps)[first :: self.D]
        if len(win):
            g = np.arange(n0 + first, n0 + n, self.D, dtype=np.int64)[: len(win)]
            if self._mix is not None:
                mixer = self._mix[g % len(self._mix)]
            else:
                mixer = np.exp(-2j * np.pi * (CENTER_HZ_NUM / CENTER_HZ_DEN / self.rate) * g)
            r = win @ self._taps
            z = (r[:, 0] + 1j * r[:, 1]) * mixer
        else:
            z = np.zeros(0, dtype=np.complex128)
        self._n_in += n
        if len(z) == 0:
            return
        m0 = self._m_total
        midx = np.arange(m0, m0 + len(z), dtype=np.int64)
        if self._mark_tab is not None:
            rot = self._mark_tab[midx % len(self._mark_tab)]
        else:
            rot = np.exp(-2j * np.pi * (OFFSET_HZ_NUM / OFFSET_HZ_DEN / self.fs_d) * midx)
        um = np.concatenate([self._hist_m, z * rot])
        us = np.concatenate([self._hist_s, z * np.conj(rot)])
        self._hist_m = um[len(um) - (self.L - 1) :]
        self._hist_s = us[len(us) - (self.L - 1) :]
        am = np.abs(np.convolve(um, self._fir, mode="valid"))
        as_ = np.abs(np.convolve(us, self._fir, mode="valid"))
        dn = (am - as_) / (am + as_ + 1e-9)
        self._m_total += len(z)
        self._append(am, as_, dn)
        self._run_triggers()  # advances the trackers up to each trigger, in time order
        self._run_trackers(self._m_total)
        self._close_groups(force=False)
        self._trim()

    def _trim(self) -> None:
        keep_from = self._m_total - int(TEMPLATE_BITS * self.T_nom * 1.05) - 64
        keep_from = min(keep_from, self._trig_next - int(TEMPLATE_BITS * self.T_nom * 1.05) - 64)
        for tr in self._trackers:
            if tr.locked:  # keep the whole burst for re-timing when it ends
                first = tr.pos[max(tr.data_start - 16, 0)]
                keep_from = min(keep_from, int(first - 2 * tr.T) - 4)
            keep_from = min(keep_from, int(tr.t - 32 * tr.T) - 4)
        keep_from = min(keep_from, self._m_total - self._hist_keep)
        if self._hgroup is not None:  # its bursts are re-timed together when it closes
            first = min(b.start for b in self._hgroup.bursts)
            keep_from = min(keep_from, int(first) - 64)
        cut = keep_from - self._base
        # move the kept tail only when a good part of the storage is free to gain (amortised)
        if cut > max(4096, self._cap // 2):
            n = self._nbuf
            self._store[:, : n - cut] = self._store[:, cut:n]
            self._nbuf = n - cut
            self._base += cut
            self._views()

    def _views(self) -> None:
        n = self._nbuf
        self._am, self._as, self._dn = self._store[0, :n], self._store[1, :n], self._store[2, :n]

    def _append(self, am: F64, as_: F64, dn: F64) -> None:
        n, k = self._nbuf, len(am)
        if n + k > self._cap:
            self._cap = max(2 * self._cap, n + k)
            grown = np.zeros((3, self._cap))
            grown[:, :n] = self._store[:, :n]
            self._store = grown
        self._store[0, n : n + k] = am
        self._store[1, n : n + k] = as_
        self._store[2, n : n + k] = dn
        self._nbuf = n + k
        self._views()

    # ------------------------------------------------------------------ triggers
    def _run_triggers(self) -> None:
        w = math.ceil(self.T_nom) + 1
        hist = math.ceil((TEMPLATE_BITS + 1) * self.T_nom * max(RATE_HYPOTHESES)) + 4
        end = self._m_total - w  # last index (exclusive) whose local-max window is available
        start = max(self._trig_next, self._base + hist + w)
        if end <= start:
            return
        # compute S over [start - w, end + w)
        lo, hi = start - w, end + w
        best = np.full(hi - lo, -np.inf)
        best_h = np.zeros(hi - lo, dtype=np.int64)
        dn = self._dn
        n = hi - lo
        ext = math.ceil(7 * self.T_nom * max(RATE_HYPOTHESES)) + 1
        for h, r in enumerate(RATE_HYPOTHESES):
            T = self.T_nom * r
            # the template is 4 periods of one byte: sum the 4 periods first
            a0 = lo - ext - self._base
            rsum = dn[a0 : a0 + n + ext].copy()
            for rep_ in range(1, TEMPLATE_BITS // 8):
                off = round(8 * rep_ * T)
                rsum += dn[a0 - off : a0 - off + n + ext]
            s = np.zeros(n)
            for k in range(8):
                off = round(k * T)
                seg = rsum[ext - off : ext - off + n]
                if TEMPLATE[k] > 0:
                    s += seg
                else:
                    s -= seg
            s *= 1.0 / TEMPLATE_BITS
            better = s > best
            best = np.where(better, s, best)
            best_h = np.where(better, h, best_h)
        core = best[w : w + (end - start)]
        cand = core >= TRIGGER_THRESHOLD
        if cand.any():
            win = np.lib.stride_tricks.sliding_window_view(best, 2 * w + 1)
            is_max = core >= win.max(axis=1)
            hits = np.nonzero(cand & is_max)[0]
            for i in hits.tolist():
                m = start + i
                self._run_trackers(m)
                self._on_trigger(
                    m, self.T_nom * RATE_HYPOTHESES[int(best_h[i + w])], float(core[i])
                )
        self._trig_next = end

    def _on_trigger(self, m: int, T: float, score: float) -> None:
        # a trigger consistent with a running tracker's bit timing refreshes nothing
        for tr in self._trackers:
            if tr.done:
                continue
            if tr.locked:
                if tr.start_pos - 8 * tr.T <= m <= tr.t + 16 * tr.T:
                    return
                continue
            ph = (m - tr.t) / tr.T
            if abs(ph - round(ph)) < 0.3 and m <= tr.t + 16 * tr.T:
                tr.bits_since_refresh = 0
                tr.score = max(tr.score, score)
                return
            if score < tr.score - 0.1:
                return  # a weaker, misaligned side peak of the preamble being tracked
        self.stats.triggers += 1
        unlocked = [tr for tr in self._trackers if not tr.locked and not tr.done]
        for tr in unlocked:
            self._trackers.remove(tr)
        if sum(1 for tr in self._trackers if not tr.done) >= 4:
            return
        tr = _Tracker(t=float(m), T=T, trigger_T=T, score=score)
        # back-fill the last 24 bits before the trigger so the sync word can be complete
        nb = 24
        pos = m - T * np.arange(nb - 1, -1, -1, dtype=np.float64)
        if pos[0] - self._base < 1:
            return
        am, as_ = self._sample(pos)
        tr.append(am, as_, pos)
        tr.start_pos = float(m)
        self._trackers.append(tr)

    # ------------------------------------------------------------------ trackers
    def _sample(self, pos: F64) -> tuple[F64, F64]:
        p = pos - self._base
        i = np.floor(p).astype(np.int64)
        f = p - i
        am = self._am[i] * (1 - f) + self._am[i + 1] * f
        as_ = self._as[i] * (1 - f) + self._as[i + 1] * f
        return am, as_

    def _sample_dn(self, pos: F64) -> F64:
        p = pos - self._base
        i = np.floor(p).astype(np.int64)
        f = p - i
        return np.asarray(self._dn[i] * (1 - f) + self._dn[i + 1] * f, dtype=np.float64)

    def _run_trackers(self, upto: int) -> None:
        for tr in list(self._trackers):
            while not tr.done:
                # 8-bit blocks while acquiring, 16-bit blocks once locked and settled
                nb = 16 if tr.nblocks_locked >= 4 else 8
                if tr.t + (nb + 0.25) * tr.T + 2 >= upto:
                    break
                pos = tr.t + tr.T * _KS[nb]
                am, as_ = self._sample(pos)
                q = 0.25 * tr.T
                el = np.abs(self._sample_dn(np.concatenate([pos - q, pos + q])))
                centre = float((np.abs(am - as_) / (am + as_ + 1e-9)).sum())
                e = float(el[nb:].sum() - el[:nb].sum()) / max(centre, 0.2 * nb)
                # second-order loop; faster while acquiring
                kp, ki = (0.35, 0.04) if tr.nblocks_locked < 4 else (0.25, 0.015)
                tr.t = float(pos[-1]) + kp * e * tr.T
                tr.T += ki * e * tr.T
                tr.T = min(max(tr.T, self.T_nom * 0.97), self.T_nom * 1.03)
                tr.append(am, as_, pos)
                if tr.locked:
                    tr.nblocks_locked += 1
                    self._check_locked(tr, am, as_)
                else:
                    tr.bits_since_refresh += nb
                    self._check_sync(tr)
                    if not tr.locked and tr.bits_since_refresh > UNLOCKED_TIMEOUT_BITS:
                        tr.done = True
        self._trackers = [tr for tr in self._trackers if not tr.done]

    def _check_sync(self, tr: _Tracker) -> None:
        nsync = len(SYNC_HEADER)
        span = 16  # windows ending in the last 16 bits; lock only with 8 windows seen after
        if tr.nbits < nsync + span - 1:
            return
        hard = tr.hard[tr.nbits - (nsync + span - 1) : tr.nbits]
        win = np.lib.stride_tricks.sliding_window_view(hard, nsync)
        eh = (win != SYNC_HEADER).sum(axis=1)
        ee = (win != SYNC_EOM).sum(axis=1)
        best_h, best_e = int(eh.min()), int(ee.min())
        if min(best_h, best_e) > SYNC_MAX_ERRORS:
            return
        kind: Literal["header", "eom"] = "header" if best_h <= best_e else "eom"
        j = int(np.argmin(eh if kind == "header" else ee))
        if j >= span - 8:
            return  # a better alignment may still follow: decide after the next block
        # bit index (in the tracker's history) just after the sync window
        end_idx = tr.nbits - (len(hard) - (j + nsync))
        am, as_, pos = tr.am, tr.as_, tr.pos
        sync_pos = float(pos[end_idx - 32])
        for prev in self._recent_syncs:
            if abs(prev - sync_pos) < 24 * tr.T:
                tr.done = True  # the same burst, already being decoded by another tracker
                return
        self._recent_syncs = [p for p in self._recent_syncs if sync_pos - p < 4000 * tr.T]
        self._recent_syncs.append(sync_pos)
        tr.locked = True
        tr.kind = kind
        tr.sync_errors = min(best_h, best_e)
        tr.data_start = end_idx - 32
        sl = slice(end_idx - nsync, end_idx)
        tr.ref_energy = float(np.mean(am[sl] ** 2 + as_[sl] ** 2))
        tr.start_pos = float(pos[tr.data_start]) - 128.5 * tr.T
        if kind == "header":
            self.stats.syncs_header += 1
        else:
            self.stats.syncs_eom += 1
        # a new burst ends any older burst still being collected
        for other in self._trackers:
            if other is not tr and other.locked and not other.done:
                self._end_tracker(other)
        if kind == "eom":
            # keep only the NNNN bits
            self._end_tracker(tr, nbits=32)
        else:
            n = tr.nbits
            self._check_locked(tr, am[n - 8 : n], as_[n - 8 : n])

    def _check_locked(self, tr: _Tracker, am: F64, as_: F64) -> None:
        ndata = tr.nbits - tr.data_start
        # header complete according to its own hard decode?
        nchar = ndata // 8
        if nchar > tr.ntext:
            s0 = tr.data_start + 8 * tr.ntext
            tr.text.append(_bits_to_text(tr.hard[s0 : tr.data_start + 8 * nchar]))
            tr.ntext = nchar
        if ndata >= 8 * (header_length(1) - 1):
            fr = frame("".join(tr.text), final=False)
            if fr is not None:
                # an 8-character callsign without its dash: keep the character where the
                # dash belongs, so the vote weighs what was heard there (a garbled dash must
                # not turn into a "missing dash" header with nothing to contradict it)
                self._end_tracker(tr, nbits=8 * fr.length, extra_bits=0 if fr.dashed else 8)
                return
        # carrier lost?
        energy = float(np.mean(am * am + as_ * as_))
        if energy < 0.4 * tr.ref_energy:
            tr.low_energy_blocks += 1
            if tr.low_energy_blocks >= 2:
                self._end_tracker(tr)
                return
        else:
            tr.low_energy_blocks = 0
        if ndata >= 8 * MAX_HEADER_CHARS + 8:
            self._end_tracker(tr, nbits=8 * MAX_HEADER_CHARS)

    def _end_tracker(self, tr: _Tracker, nbits: int | None = None, extra_bits: int = 0) -> None:
        """Close ``tr``'s burst after ``nbits`` (all it has if None). ``extra_bits`` more are
        sampled beyond them on the re-timed bit clock: heard, but not part of the header
        the burst's own decode framed (where a dash should have been)."""
        tr.done = True
        pos = tr.pos
        s = tr.data_start
        e = tr.nbits if nbits is None else min(tr.nbits, s + nbits)
        if e - s < 32:
            return
        b_am, b_as, b_pos = self._retime(tr, s, e)
        if extra_bits:
            period = float(b_pos[-1] - b_pos[0]) / (len(b_pos) - 1)
            ext = b_pos[-1] + period * np.arange(1, extra_bits + 1, dtype=np.float64)
            ext = ext[ext <= self._m_total - 2.0]
            e_am, e_as = self._sample(ext)
            # only while the carrier is still there (the tracker's own carrier-loss rule): a
            # transmitter that really omits the dash goes silent after the callsign
            if len(ext) and float(np.mean(e_am * e_am + e_as * e_as)) >= 0.4 * tr.ref_energy:
                b_am = np.concatenate([b_am, e_am])
                b_as = np.concatenate([b_as, e_as])
                b_pos = np.concatenate([b_pos, ext])
        burst = _Burst(
            kind=tr.kind,
            am=b_am,
            as_=b_as,
            pos=b_pos,
            start=tr.start_pos,
            end=float(pos[e - 1]),
            sync_errors=tr.sync_errors,
        )
        self._add_burst(burst)

    def _eye(self, pos: F64) -> float:
        return float(np.sum(np.abs(self._sample_dn(pos))))

    def _retime(self, tr: _Tracker, s: int, e: int) -> tuple[F64, F64, F64]:
        """Re-time a finished burst: a transmitter clock is steady over a burst, so a
        straight line (bit index -> sample position) fitted to the tracker's positions and
        refined by maximising the eye opening (sum of |dn| at the bit instants) removes the
        loop's jitter and any bit slip. The loop's own positions are kept if they open the
        eye more (e.g. a recording with wow)."""
        s0 = max(s - 16, 0)
        pll = tr.pos[s0:e]
        k = np.arange(len(pll), dtype=np.float64)
        lo_ok = self._base + 1.0
        hi_ok = self._m_total - 2.0
        if pll[0] - tr.T < lo_ok or len(pll) < 48:
            return tr.am[s:e].copy(), tr.as_[s:e].copy(), tr.pos[s:e].copy()
        b0, a0 = np.polyfit(k, pll, 1)
        best = (self._eye(np.clip(pll, lo_ok, hi_ok)), 0.0, 0.0, True)
        span = 0.0045
        # coarse search (nearest sample, every other bit): around the loop's line, and over
        # the whole range of transmitter clock offsets around the nominal rate, since the
        # loop may have settled on a wrong rate at low SNR
        offs = np.linspace(-0.45, 0.45, 11)
        rates = np.concatenate([np.linspace(-span, span, 19), self.T_nom * WIDE_RATES / b0 - 1.0])
        kc = k[::2]
        cand = (
            (a0 - self._base + 0.5)
            + offs[:, None, None] * b0
            + (b0 * (1.0 + rates))[None, :, None] * kc[None, None, :]
        )
        idx = np.clip(cand, 1.0, hi_ok - self._base).astype(np.int64)
        vals = np.abs(self._dn[idx]).sum(-1)
        i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
        a0 = a0 + float(offs[i]) * b0
        b0 = b0 * (1.0 + float(rates[j]))
        # fine search (interpolated, all bits) around the coarse optimum
        offs = np.linspace(-0.1, 0.1, 9)
        rates = np.linspace(-span / 9, span / 9, 9)
        cand_pos = np.clip(
            a0 + offs[:, None, None] * b0 + (b0 * (1.0 + rates))[None, :, None] * k[None, None, :],
            lo_ok,
            hi_ok,
        )
        vals = np.abs(self._sample_dn(cand_pos.reshape(-1))).reshape(cand_pos.shape).sum(-1)
        i, j = np.unravel_index(int(np.argmax(vals)), vals.shape)
        if float(vals[i, j]) > best[0]:
            best = (float(vals[i, j]), float(offs[i]), float(rates[j]), False)
            a0 = a0 + best[1] * b0
            b0 = b0 * (1.0 + best[2])
        if best[3]:
            return tr.am[s:e].copy(), tr.as_[s:e].copy(), tr.pos[s:e].copy()
        # the eye opening cannot tell whole-bit shifts apart: pick the shift that puts the
        # sync word (last two preamble bytes + first four characters) where it belongs
        sync = SYNC_HEADER if tr.kind == "header" else SYNC_EOM
        ks = np.arange(len(sync), dtype=np.float64) + (s - 16 - s0)
        best_shift, best_err = 0, len(sync) + 1
        for shift in (0, -1, 1, -2, 2):
            p_ = np.clip(a0 + b0 * (ks + shift), lo_ok, hi_ok)
            am_, as_ = self._sample(p_)
            err = int(np.sum((am_ > as_).astype(np.int8) != sync))
            if err < best_err:
                best_shift, best_err = shift, err
        if best_err > SYNC_MAX_ERRORS:
            return tr.am[s:e].copy(), tr.as_[s:e].copy(), tr.pos[s:e].copy()
        new_pos = np.clip(a0 + b0 * (k + best_shift), lo_ok, hi_ok)[s - s0 :]
        am, as_ = self._sample(new_pos)
        return am, as_, new_pos

    # ------------------------------------------------------------------ grouping
    def _add_burst(self, b: _Burst) -> None:
        attr = "_hgroup" if b.kind == "header" else "_egroup"
        g: _Group | None = getattr(self, attr)
        if g is not None:
            # a burst belongs to the group while it can be one of its three slots: after the
            # next slot's pause, or the one after it when a burst in between was missed
            gap_max = GROUP_MAX_GAP_S * self.fs_d
            if b.kind == "header":
                n_est, tb = self._group_clock(g)
                gap_max = max(gap_max, (n_est + 192 + 2.2 * GAP_BITS) * tb)
            if b.start - g.last_end > gap_max or len(g.bursts) >= 3:
                self._finish_group(g)
                g = None
        if g is None:
            g = _Group(kind=b.kind, bursts=[b], last_end=b.end)
        else:
            g.bursts.append(b)
            g.last_end = max(g.last_end, b.end)
        setattr(self, attr, g)
        if len(g.bursts) >= 3:
            self._finish_group(g)
            setattr(self, attr, None)

    def _close_groups(self, *, force: bool) -> None:
        now = self._m_total
        timeout = GROUP_TIMEOUT_S * self.fs_d
        for attr in ("_hgroup", "_egroup"):
            g: _Group | None = getattr(self, attr)
            if g is None:
                continue
            busy = any(tr.locked and not tr.done and tr.kind == g.kind for tr in self._trackers)
            due = now - g.last_end > timeout
            if g.kind == "header":
                # wait until every slot a missed burst could occupy has been heard
                due = due and now > self._slot_search(g)[1]
            if force or (due and not busy):
                self._finish_group(g)
                setattr(self, attr, None)

    def _finish_group(self, g: _Group) -> None:
        if g.kind == "eom":
            self._emit_eom(g)
        else:
            self._joint_retime(g)
            self._search_missing(g)
            self._emit_header(g)

    # ------------------------------------------------------------------ missed bursts
    def _joint_retime(self, g: _Group) -> None:
        """Re-time the bursts of ``g`` on one bit clock. The three bursts come from one
        transmitter, so they share its clock; estimated from all of them at once (the eye
        opening summed over the bursts) the period is far less likely to lock onto a noise
        maximum than burst by burst, which at low SNR leaves some bursts slipping (30-45 %
        bit errors). Each burst keeps its own start (where its sync word was found). A
        burst keeps its own timing where that opens its eye clearly more (e.g. wow)."""
        if len(g.bursts) < 2:
            return
        lo_ok, hi_ok = self._base + 1.0, self._m_total - 2.0
        pre = 8 * len(PREAMBLE)
        ks = [np.arange(-pre, len(b.pos), dtype=np.float64) for b in g.bursts]
        if any(b.z - pre * 1.03 * self.T_nom < lo_ok for b in g.bursts):
            return  # not all of it still in the buffer
        offs = np.linspace(-0.4, 0.4, 9)

        def eye(periods: F64, offsets: F64, interp: bool) -> F64:
            # (len(periods),) summed over bursts of each burst's best offset
            total = np.zeros(len(periods))
            for b, k in zip(g.bursts, ks, strict=True):
                kk = k[::2] if not interp else k
                p = (
                    b.z
                    + offsets[None, :, None] * periods[:, None, None]
                    + periods[:, None, None] * kk[None, None, :]
                )
                p = np.clip(p, lo_ok, hi_ok)
                if interp:
                    v = np.abs(self._sample_dn(p.reshape(-1))).reshape(p.shape).sum(-1)
                else:
                    v = np.abs(self._dn[np.rint(p).astype(np.int64) - self._base]).sum(-1)
                total += v.max(axis=1)
            return total

        coarse = self.T_nom * WIDE_RATES
        t0 = float(coarse[int(np.argmax(eye(coarse, offs, False)))])
        fine = t0 * (1.0 + np.linspace(-0.001, 0.001, 21))
        tb = float(fine[int(np.argmax(eye(fine, offs, True)))])
        new: list[_Burst] = []
        for b, k in zip(g.bursts, ks, strict=True):
            fo = np.linspace(-0.5, 0.5, 21)
            p = np.clip(b.z + fo[:, None] * tb + tb * k[None, :], lo_ok, hi_ok)
            v = np.abs(self._sample_dn(p.reshape(-1))).reshape(p.shape).sum(-1)
            j = int(np.argmax(v))
            dn_own = np.abs(self._sample_dn(np.clip(b.pos, lo_ok, hi_ok)))
            dn_joint = np.abs(self._sample_dn(p[j, pre:]))
            # the burst's own clock only if its eye is wider by more than the noise of the
            # measure (3 standard deviations of the difference of the two sums)
            margin = 3.0 * float(np.std(dn_own)) * math.sqrt(2.0 * len(dn_own))
            if float(dn_own.sum()) > float(dn_joint.sum()) + margin:
                new.append(b)
                continue
            z = float(b.z + fo[j] * tb)
            # whole-bit shifts: the sync word where it belongs
            best_shift, best_err = 0, len(SYNC_HEADER) + 1
            for shift in (0, -1, 1):
                sp = np.clip(z + tb * (np.arange(-16, 32, dtype=np.float64) + shift), lo_ok, hi_ok)
                s_am, s_as = self._sample(sp)
                err = int(np.sum((s_am > s_as).astype(np.int8) != SYNC_HEADER))
                if err < best_err:
                    best_shift, best_err = shift, err
            kb = np.arange(len(b.pos), dtype=np.float64) + best_shift
            bpos = np.clip(z + tb * kb, lo_ok, hi_ok)
            am, as_ = self._sample(bpos)
            new.append(
                _Burst(
                    kind=b.kind,
                    am=am,
                    as_=as_,
                    pos=bpos,
                    start=b.start,
                    end=b.end,
                    sync_errors=best_err,
                    searched=b.searched,
                )
            )
        g.bursts = new

    def _group_clock(self, g: _Group) -> tuple[int, float]:
        """The longest burst of ``g`` in bits (a header-length estimate: a burst ends at
        the carrier loss or its own framing) and the median bit period of its bursts."""
        periods = [b.period for b in g.bursts if len(b.pos) > 1]
        tb = float(np.median(periods)) if periods else self.T_nom
        return max(len(b.am) for b in g.bursts), tb

    def _slot_search(self, g: _Group) -> tuple[list[tuple[float, float]], float]:
        """Windows (decimated positions of the first ``Z`` bit) where a missed burst of
        ``g`` would be, and the position after which all of them have been heard.

        A transmitter sends the header three times with a one-second pause: bursts start
        one period P = (header + pause + preamble) apart. With two bursts found, their
        distance is P or 2 P (the middle one missed) and the windows are narrow; with one,
        P follows from its length, known only roughly (a damaged stretch may have cut it),
        so the windows before and after it are wide."""
        zs = sorted(b.z for b in g.bursts)
        n_est, tb = self._group_clock(g)
        pre = 8 * len(PREAMBLE)
        wins: list[tuple[float, float]] = []
        wait = 0.0
        if len(zs) == 1:
            z = zs[0]
            p_lo = (max(8 * header_length(1), n_est - 64) + pre + 0.9 * GAP_BITS) * tb
            p_hi = (n_est + 640 + pre + 1.1 * GAP_BITS) * tb
            wins = [(z + p_lo, z + p_hi), (z - p_hi, z - p_lo)]
            # the slot after next too: it may hold a burst the trackers find on their own
            wait = z + max(p_hi, 2 * (n_est + pre + 1.1 * GAP_BITS) * tb) + 96 * tb
        elif len(zs) == 2:
            d = zs[1] - zs[0]
            w = SEARCH_NARROW_BITS * tb
            p_min = (8 * header_length(1) + pre + 0.9 * GAP_BITS) * tb
            if d >= p_min:
                wins = [(zs[0] - d - w, zs[0] - d + w), (zs[1] + d - w, zs[1] + d + w)]
                # and the time a tracker needs to lock onto a burst there (sync word,
                # then one more block), so that it is not left to start a group of its own
                wait = zs[1] + d + w + 96 * tb
            if d / 2 >= p_min:
                wins.append((zs[0] + d / 2 - w, zs[0] + d / 2 + w))
        return wins, wait

    def _search_missing(self, g: _Group) -> None:
        """Add the bursts of ``g`` that no tracker synchronised to, where the found ones put
        them: the 160 known bits at the start of a burst (preamble and ``ZCZC``) correlated
        with dn on the found bursts' bit clock, a far stronger test than the 32-bit trigger
        or the sync word; then sampled like a re-timed burst."""
        while len(g.bursts) < 3:
            wins, _ = self._slot_search(g)
            if not wins:
                return
            n_est, tb = self._group_clock(g)
            offs = _SEARCH_OFFS * tb
            lo_ok = self._base + 1.0 - offs[0]
            hi_ok = self._m_total - 2.0 - offs[-1]
            best: tuple[float, float] | None = None
            for lo, hi in wins:
                lo, hi = max(lo, lo_ok), min(hi, hi_ok)
                if hi - lo < 1.0:
                    continue
                zc = np.arange(math.ceil(lo), math.floor(hi) + 1, dtype=np.float64)
                if not len(zc):
                    continue
                idx = np.rint(zc[:, None] + offs[None, :]).astype(np.int64) - self._base
                dn = self._dn[idx]
                score = (dn * _SEARCH_PATTERN).mean(axis=1)
                # a header's ZCZC, not an EOM's NNNN (they differ in 10 of the 32 bits)
                zczc = dn[:, -32:] @ _SEARCH_PATTERN[-32:]
                score = np.where(zczc > dn[:, -32:] @ _NNNN_PATTERN, score, -1.0)
                i = int(np.argmax(score))
                if score[i] >= SEARCH_SCORE and (best is None or score[i] > best[1]):
                    best = (float(zc[i]), float(score[i]))
            if best is None:
                return
            z = best[0]
            if any(abs(z - b.z) < 64 * tb for b in g.bursts):
                return
            # fractional timing: the eye opening over the known bits
            fine = z + np.linspace(-0.5, 0.5, 11)
            pos = np.clip(fine[:, None] + offs[None, :], self._base + 1.0, self._m_total - 2.0)
            eye = (self._sample_dn(pos.reshape(-1)).reshape(pos.shape) * _SEARCH_PATTERN).sum(1)
            z = float(fine[int(np.argmax(eye))])
            k = np.arange(n_est, dtype=np.float64)
            bpos = z + tb * k
            bpos = bpos[bpos <= self._m_total - 2.0]
            if len(bpos) < 32:
                return
            am, as_ = self._sample(bpos)
            sync_pos = z + tb * np.arange(-16, 32, dtype=np.float64)
            s_am, s_as = self._sample(sync_pos)
            errs = int(np.sum((s_am > s_as).astype(np.int8) != SYNC_HEADER))
            g.bursts.append(
                _Burst(
                    kind="header",
                    am=am,
                    as_=as_,
                    pos=bpos,
                    start=z - 128.5 * tb,
                    end=float(bpos[-1]),
                    sync_errors=errs,
                    searched=True,
                )
            )
            g.bursts.sort(key=lambda b: b.z)
            self.stats.bursts_searched += 1

    def _to_input(self, pos: float) -> int:
        return max(0, round(pos * self.D))

    def _emit_eom(self, g: _Group) -> None:
        ok = []
        for b in g.bursts:
            text = _bits_to_text((b.am[:32] > b.as_[:32]).astype(np.int8))
            llr = b.llr()[:32]
            if text == "NNNN" or b.sync_errors <= 2:
                ok.append((b, float(np.sum(1.0 / (1.0 + np.exp(np.minimum(np.abs(llr), 700.0)))))))
        if not ok:
            self._reject("eom_unreliable")
            return
        err = min(e for _, e in ok)
        conf = round(math.exp(-err) * (1.0, 0.9, 0.75)[3 - min(3, len(ok))], 4)
        s = self._to_input(g.bursts[0].start)
        e = self._to_input(g.bursts[-1].end)
        self.stats.eoms_emitted += 1
        self._events.append(
            EndOfMessage(
                bursts=len(g.bursts),
                confidence=conf,
                start_sample=s,
                end_sample=e,
                start_s=s / self.rate,
                end_s=e / self.rate,
            )
        )

    def _reject(self, reason: str) -> None:
        self.stats.reject_reasons[reason] = self.stats.reject_reasons.get(reason, 0) + 1

    def _emit_header(self, g: _Group) -> None:
        res = decode_bursts(g.bursts)
        if res is None:
            self.stats.headers_rejected += 1
            self._reject("header_invalid_or_unreliable")
            return
        header, used, err = res
        text = header.raw
        nb = len(g.bursts)
        agreed = 0
        for b in g.bursts:
            n = min(len(b.am), 8 * len(text))
            if _bits_to_text((b.am[:n] > b.as_[:n]).astype(np.int8)) == text:
                agreed += 1
        conf = math.exp(-err) * {3: 1.0, 2: 0.9, 1: 0.75}[len(used)]
        if agreed >= 2:
            conf = max(conf, 0.99 if agreed == 3 else 0.95)
        last = g.bursts[used[-1]]
        nbits = 8 * len(text)
        endpos = float(last.pos[min(nbits, len(last.pos)) - 1])
        s = self._to_input(g.bursts[0].start)
        e = self._to_input(endpos)
        self.stats.headers_emitted += 1
        self._events.append(
            HeaderDecoded(
                text=text,
                header=header,
                confidence=round(min(1.0, conf), 4),
                bursts=nb,
                bursts_used=len(used),
                agreed=agreed,
                start_sample=s,
                end_sample=e,
                start_s=s / self.rate,
                end_s=e / self.rate,
            )
        )


# --------------------------------------------------------------------------- voting
def _decode_llr(llr: F64) -> tuple[SameHeader, float] | None:
    hard = (llr > 0).astype(np.int8)
    text = _bits_to_text(hard)
    fr = frame(text, final=True)
    if fr is None:
        return None
    # decode against the header's structure: each field the most likely of its values
    text = correct(text, llr, fr)
    try:
        header = parse_header(text, lenient=True)
    except SameHeaderError:
        return None
    return header, structured_error(text, llr, fr)


def decode_bursts(
    bursts: list[_Burst], max_expected_errors: float = MAX_EXPECTED_ERRORS
) -> tuple[SameHeader, tuple[int, ...], float] | None:
    """Vote across bursts (all, then pairs, then singles); return the accepted header, the
    indices of the bursts used and the expected number of bit errors, or None."""
    llrs = [b.llr() for b in bursts]
    n = len(bursts)
    subsets: list[tuple[int, ...]] = []
    if n >= 3:
        subsets.append((0, 1, 2))
    if n >= 2:
        subsets.extend([(i, j) for i in range(n) for j in range(i + 1, n)])
    subsets.extend([(i,) for i in range(n)])
    best: tuple[SameHeader, tuple[int, ...], float] | None = None
    for sub in subsets:
        length = max(len(llrs[i]) for i in sub)
        acc = np.zeros(length)
        for i in sub:
            acc[: len(llrs[i])] += llrs[i]
        res = _decode_llr(acc)
        if res is None:
            continue
        header, err = res
        if err > max_expected_errors:
            continue
        if best is None:
            best = (header, sub, err)
            if len(sub) == n:
                break
        elif len(sub) == len(best[1]) and err < best[2]:
            best = (header, sub, err)
    return best


# --------------------------------------------------------------------------- attention
class _ToneDetector:
    FRAME_S = 0.05
    MIN_S = 1.0
    MAX_GAP_FRAMES = 2

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.N = max(64, round(rate * self.FRAME_S))
        w = np.hanning(self.N)
        n = np.arange(self.N)
        freqs = np.array([853.0, 960.0, 1050.0])
        self.E: C128 = (w[:, None] * np.exp(-2j * np.pi * np.outer(n, freqs) / rate)).astype(
            np.complex128
        )
        self.norm = 2.0 / float(np.sum(w)) ** 2
        self.buf: F64 = np.zeros(0)
        self.frame_idx = 0
        self.kind: str | None = None
        self.run_start = 0
        self.run_last = 0
        self.gap = 0
        self.count = 0

    def process(self, x: F64) -> list[Event]:
        buf = np.concatenate([self.buf, x])
        nf = len(buf) // self.N
        out: list[Event] = []
        if nf:
            frames = buf[: nf * self.N].reshape(nf, self.N)
            frames = frames - frames.mean(axis=1, keepdims=True)
            power = np.mean(frames * frames, axis=1) + 1e-20
            p = np.abs(frames @ self.E) ** 2 * self.norm / power[:, None]
            dual = (p[:, 0] > 0.15) & (p[:, 1] > 0.15) & (p[:, 0] + p[:, 1] > 0.5)
            nwr = p[:, 2] > 0.5
            for i in range(nf):
                kind = "broadcast" if dual[i] else ("nwr" if nwr[i] else None)
                out.extend(self._step(self.frame_idx + i, kind))
            self.frame_idx += nf
        self.buf = buf[nf * self.N :]
        return out

    def _step(self, fi: int, kind: str | None) -> list[Event]:
        out: list[Event] = []
        if self.kind is not None:
            if kind == self.kind:
                self.run_last = fi
                self.gap = 0
                return out
            self.gap += 1
            if self.gap <= self.MAX_GAP_FRAMES and kind is None:
                return out
            out.extend(self._close())
        if kind is not None:
            self.kind = kind
            self.run_start = fi
            self.run_last = fi
            self.gap = 0
        return out

    def _close(self) -> list[Event]:
        out: list[Event] = []
        if self.kind is not None:
            s = self.run_start * self.N
            e = (self.run_last + 1) * self.N
            if (e - s) / self.rate >= self.MIN_S:
                self.count += 1
                kind: Literal["broadcast", "nwr"] = (
                    "broadcast" if self.kind == "broadcast" else "nwr"
                )
                out.append(
                    AttentionTone(
                        kind=kind,
                        start_sample=s,
                        end_sample=e,
                        start_s=s / self.rate,
                        end_s=e / self.rate,
                    )
                )
        self.kind = None
        self.gap = 0
        return out

    def flush(self) -> list[Event]:
        return self._close()


def decode_samples(samples: npt.ArrayLike, rate: int) -> tuple[list[Event], DecoderStats]:
    """Decode a whole signal at once (convenience wrapper)."""
    dec = SameDecoder(rate)
    events = dec.feed(samples)
    events.extend(dec.flush())
    return events, dec.stats
