"""Header-structure-aware reliability of a SAME decode (private helper of the decoder).

A hard-decided header text that parses is *not* changed here; only characters that cannot
be there (:func:`correct`: a letter among digits, a state that does not exist, a garbled
fixed dash) are replaced by the most likely possible value. This module then estimates the
probability that the transmitted header was another *valid* header, i.e. that emitting the
text would put a false header on air.

Per bit the decoder has a log-likelihood ratio ``llr`` (positive = 1). The log-likelihood of
a character ``c`` at a position is ``sum_j bit_j(c) * llr_j`` up to a constant common to all
characters, so for each field the posterior of its decoded value *within the set of values
the field may take* (originators, event codes, state codes, digit runs, purge-time steps, day
001-366, hour, minute, printable callsign characters, and '-' or '+' at each separator,
which fixes the number of locations, and '-' against any printable character where a short
callsign ends) follows from a log-sum-exp over that set. Where a receiver also accepts values
off the standard set (event codes not in the table, purge times off the legal steps), the set
is all syntactically possible values with a small prior mass on the non-standard ones, so a
standard value keeps nearly all its structural protection and a deviating one needs strong
bits. The same holds for a location's county part (the FIPS tables: counties that exist
share 98 % of the prior per state) and for callsign characters (``A-Z 0-9 / space``: 95 %).
The error estimate is the sum over fields of (1 - posterior of the decoded value), plus a
small share of the plain bitwise estimate (sum of per-bit error probabilities) that covers
transmissions whose fields are outside the standard sets.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from . import codes
from .header import MAX_LENIENT_LOCATIONS, is_legal_purge_step

F64 = npt.NDArray[np.float64]

#: share of the bitwise error estimate that is always added
NONSTANDARD_SHARE = 0.1
#: prior probability that a header's event code is not in the table
UNKNOWN_EVENT_PRIOR = 0.01
#: prior probability that a header's purge time is off the legal steps
PURGE_OFF_STEP_PRIOR = 0.02
#: prior probability that a location's county part is not in the FIPS tables (given its
#: state part): most bit errors in a county number give a county that does not exist
UNKNOWN_COUNTY_PRIOR = 0.02
#: prior probability that a callsign character is not one of A-Z, 0-9, '/', ' '
CALL_ODD_PRIOR = 0.05
#: prior probability that a transmitter still sending after an 8-character callsign sent
#: something other than the dash
MISSING_DASH_PRIOR = 0.02


_CALL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/ "


@cache
def _location_prior() -> tuple[list[str], dict[str, int], F64]:
    """The state part's values (``_prior_set("state")``'s order) and, per state, the log
    prior of each county number 000-999: a mixture of (1 - UNKNOWN_COUNTY_PRIOR) spread over
    the counties that exist (with 000, the whole state) and UNKNOWN_COUNTY_PRIOR over all
    1000; a marine area's zones are not tabled, so every number is equally likely there."""
    _, st_idx, _ = _prior_set("state")
    states = list(st_idx)
    table = codes.counties()
    lp = np.empty((len(states), 1000), dtype=np.float64)
    for i, ss in enumerate(states):
        known = np.zeros(1000, dtype=bool)
        if ss in codes.MARINE_AREAS:
            known[:] = True
        else:
            known[0] = True
            for c in range(1, 1000):
                known[c] = f"{ss}{c:03d}" in table
        p = UNKNOWN_COUNTY_PRIOR / 1000 + (1 - UNKNOWN_COUNTY_PRIOR) * known / known.sum()
        lp[i] = np.log(p)
    return states, st_idx, lp


def _location_scores(L: F64, p: int) -> tuple[F64, F64, float]:
    """For the location whose state part starts at character ``p``: per state its score
    (bits + uniform state prior), per (state, county number) the county part's score with
    its prior (``_location_prior``), and the score of ``00000`` (the whole nation, which
    counts as one more state whose only county part is 000)."""
    digit_mat, _ = _set("digit")
    s_state, _ = _scores("state", np.asarray(L[p : p + 2].reshape(-1), dtype=np.float64))
    d = L[p + 2 : p + 5] @ digit_mat.T  # (3, 10)
    s_ccc = (d[0][:, None, None] + d[1][None, :, None] + d[2][None, None, :]).reshape(1000)
    _, _, lp = _location_prior()
    s00 = float(digit_mat[0] @ L[p] + digit_mat[0] @ L[p + 1]) + float(s_ccc[0])
    return s_state, s_ccc[None, :] + lp, s00


@dataclass(frozen=True, slots=True)
class Frame:
    """Where a header's fields lie: its number of locations and how its callsign ends."""

    nloc: int
    call_len: int  # 1-8 characters
    dashed: bool  # the final '-' is there

    @property
    def call_start(self) -> int:
        return 26 + 7 * self.nloc

    @property
    def length(self) -> int:
        return self.call_start + self.call_len + (1 if self.dashed else 0)


def frame(text: str, *, final: bool) -> Frame | None:
    """The frame of the header at the start of ``text`` (from ``ZCZC``), or None while it is
    not complete (or cannot be one). The locations end at the first '+' on a location
    boundary; the callsign at the first '-' after it, or after 8 characters without one.
    ``final``: ``text`` is all there is (a finished burst), so 8 callsign characters at its
    very end are a header without its dash rather than one whose dash is still to come."""
    for n in range(1, MAX_LENIENT_LOCATIONS + 1):
        pos = 12 + 7 * n
        if pos >= len(text):
            return None
        if text[pos] == "+":
            break
    else:
        return None
    c0 = 26 + 7 * n
    for k in range(9):
        i = c0 + k
        if i >= len(text):
            if k == 8 and final:
                return Frame(n, 8, False)
            return None
        if text[i] == "-":
            return Frame(n, k, True) if k else None
    return Frame(n, 8, False)


def _codes_matrix(values: list[str]) -> npt.NDArray[np.float64]:
    """(len(values), 7*k) 0/1 bit matrix, LSB first per character."""
    k = len(values[0])
    chars = np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8).reshape(-1, k)
    bits = (chars[:, :, None] >> np.arange(7, dtype=np.uint8)) & 1
    return bits.reshape(len(values), 7 * k).astype(np.float64)


@cache
def _set(name: str) -> tuple[npt.NDArray[np.float64], dict[str, int]]:
    mat, index, _ = _prior_set(name)
    return mat, index


def _log_prior(vals: list[str], standard: set[str], off_mass: float) -> F64:
    n_std = sum(1 for v in vals if v in standard)
    on, off = np.log((1.0 - off_mass) / n_std), np.log(off_mass / (len(vals) - n_std))
    return np.array([on if v in standard else off for v in vals], dtype=np.float64)


@cache
def _prior_set(name: str) -> tuple[npt.NDArray[np.float64], dict[str, int], F64 | None]:
    prior: F64 | None = None
    if name == "event":
        vals = ["".join(t) for t in itertools.product("ABCDEFGHIJKLMNOPQRSTUVWXYZ", repeat=3)]
        prior = _log_prior(vals, set(codes.EVENTS), UNKNOWN_EVENT_PRIOR)
        return _codes_matrix(vals), {v: i for i, v in enumerate(vals)}, prior
    if name == "duration":
        vals = [f"{h:02d}{m:02d}" for h in range(100) for m in range(60)]
        legal = {v for v in vals if is_legal_purge_step(v)}
        prior = _log_prior(vals, legal, PURGE_OFF_STEP_PRIOR)
        return _codes_matrix(vals), {v: i for i, v in enumerate(vals)}, prior
    if name == "org":
        vals = sorted(codes.ORIGINATORS)
    elif name == "state":
        vals = sorted({s for s in codes.states() if len(s) == 2} | set(codes.MARINE_AREAS) - {"00"})
    elif name == "digit":
        vals = [str(d) for d in range(10)]
    elif name == "day":
        vals = [f"{d:03d}" for d in range(1, 367)]
    elif name == "hour":
        vals = [f"{h:02d}" for h in range(24)]
    elif name == "minute":
        vals = [f"{m:02d}" for m in range(60)]
    elif name == "sep":
        vals = ["-", "+"]
    elif name == "call":
        vals = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "-"]
        prior = _log_prior(vals, set(_CALL_CHARS), CALL_ODD_PRIOR)
    elif name == "call_end":  # after a short callsign: its dash, or one more character
        vals = [chr(c) for c in range(0x20, 0x7F)]
    elif name == "after_call":  # after 8 callsign characters: the dash, or anything else
        vals = [chr(c) for c in range(0x80)]
        prior = _log_prior(vals, {"-"}, MISSING_DASH_PRIOR)
    else:  # pragma: no cover
        raise KeyError(name)
    return _codes_matrix(vals), {v: i for i, v in enumerate(vals)}, prior


def _logsumexp(x: F64) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))


def _scores(name: str, llr: F64) -> tuple[F64, dict[str, int]]:
    mat, index, prior = _prior_set(name)
    s = mat @ llr
    return (s if prior is None else s + prior), index


def _post_wrong(name: str, llr: F64, value: str) -> float:
    """1 - posterior of ``value`` among the values of set ``name`` (llr: 7 per char)."""
    s, index = _scores(name, llr)
    i = index.get(value)
    if i is None:
        return 1.0
    return float(-np.expm1(s[i] - _logsumexp(s)))


def structured_error(text: str, llr: F64, fr: Frame) -> float:
    """Probability that the valid header ``text`` (hard decision of ``llr``, framed as
    ``fr``) is not the transmitted one although the transmitted one was valid, plus a share
    of the bitwise estimate. ``llr`` covers at least ``8 * len(text)`` bits, from ``ZCZC``."""
    n = len(text)
    L = np.asarray(llr[: 8 * n], dtype=np.float64).reshape(n, 8)[:, :7]
    bitwise = float(np.sum(1.0 / (1.0 + np.exp(np.minimum(np.abs(L), 700.0)))))

    def ch(a: int, b: int) -> F64:
        return np.asarray(L[a:b].reshape(-1), dtype=np.float64)

    nloc = fr.nloc
    err = 0.0
    err += _post_wrong("org", ch(5, 8), text[5:8])
    err += _post_wrong("event", ch(9, 12), text[9:12])
    for k in range(nloc + 1):
        p = 12 + 7 * k
        err += _post_wrong("sep", ch(p, p + 1), text[p])
        if k == nloc:
            break
        err += _post_wrong("digit", ch(p + 1, p + 2), text[p + 1])
        # SS CCC jointly, counties weighted by whether they exist; SS = 00 only with 000
        ss, ccc = text[p + 2 : p + 4], text[p + 4 : p + 7]
        s_state, s_pair, s00 = _location_scores(L, p + 2)
        _, st_idx, _ = _location_prior()
        joint = s_state[:, None] + s_pair
        log_z = _logsumexp(np.append(joint.reshape(-1), s00))
        if ss == "00":
            if ccc != "000":
                return 1.0
            log_v = s00
        else:
            i = st_idx.get(ss)
            if i is None or not ccc.isdigit():
                return 1.0
            log_v = float(joint[i, int(ccc)])
        err += float(-np.expm1(log_v - log_z))
    p = 13 + 7 * nloc
    err += _post_wrong("duration", ch(p, p + 4), text[p : p + 4])
    p += 5
    err += _post_wrong("day", ch(p, p + 3), text[p : p + 3])
    err += _post_wrong("hour", ch(p + 3, p + 5), text[p + 3 : p + 5])
    err += _post_wrong("minute", ch(p + 5, p + 7), text[p + 5 : p + 7])
    p += 8
    for c in range(fr.call_len):
        err += _post_wrong("call", ch(p + c, p + c + 1), text[p + c])
    q = p + fr.call_len
    if fr.dashed and fr.call_len < 8:
        err += _post_wrong("call_end", ch(q, q + 1), text[q])
    elif not fr.dashed and len(llr) >= 8 * (q + 1):
        # a carrier was heard where the dash belongs: the chance it carried a garbled dash
        # (then "missing dash" would be this decoder's invention), against anything else a
        # transmitter might send there
        b = np.asarray(llr[8 * q : 8 * q + 7], dtype=np.float64)
        err += 1.0 - _post_wrong("after_call", b, "-")
    return err + NONSTANDARD_SHARE * bitwise


def _best(name: str, llr: F64, heard: str) -> str:
    """``heard`` if it is one of the values of set ``name``, else the value the bits favour
    most: a valid value is never replaced (not even a deviating one by a standard one)."""
    s, index = _scores(name, llr)
    if heard in index:
        return heard
    return list(index)[int(np.argmax(s))]


def correct(text: str, llr: F64, fr: Frame) -> str:
    """``text`` (the hard decision of ``llr``, framed as ``fr``) with every character that
    cannot be there replaced: a field value outside its set (a letter among digits, hour 24,
    a state code that does not exist) by the value of the set that the bits favour most, and
    the fixed characters (``ZCZC-``, the dashes around the fields, ``-``/``+`` where the frame
    puts them) by what the grammar has. Values that are possible stay as heard, so this only
    turns a text that is not a header into the most likely header; whether that may be
    emitted is for :func:`structured_error` to say, over the same sets and priors."""
    n = fr.length
    L = np.asarray(llr[: 8 * n], dtype=np.float64).reshape(n, 8)[:, :7]
    out = list(text[:n])

    def ch(a: int, b: int) -> F64:
        return np.asarray(L[a:b].reshape(-1), dtype=np.float64)

    def put(at: int, value: str) -> None:
        out[at : at + len(value)] = value

    def field(name: str, a: int, b: int) -> None:
        put(a, _best(name, ch(a, b), text[a:b]))

    put(0, "ZCZC-")
    field("org", 5, 8)
    put(8, "-")
    field("event", 9, 12)
    for k in range(fr.nloc + 1):
        p = 12 + 7 * k
        put(p, "+" if k == fr.nloc else "-")
        if k == fr.nloc:
            break
        field("digit", p + 1, p + 2)
        # SS CCC jointly: SS = 00 only with CCC = 000. A possible location (a county that
        # does not exist included) stays as heard; otherwise the most likely one, counties
        # weighted by whether they exist (the same prior as structured_error's)
        ss, ccc = text[p + 2 : p + 4], text[p + 4 : p + 7]
        states, st_idx, _ = _location_prior()
        if (ss == "00" and ccc == "000") or (ss in st_idx and ccc.isdigit() and ccc.isascii()):
            continue
        s_state, s_pair, s00 = _location_scores(L, p + 2)
        joint = s_state[:, None] + s_pair
        si, ci = (int(v) for v in np.unravel_index(int(np.argmax(joint)), joint.shape))
        put(p + 2, "00000" if s00 > float(joint[si, ci]) else f"{states[si]}{ci:03d}")
    p = 13 + 7 * fr.nloc
    field("duration", p, p + 4)
    put(p + 4, "-")
    p += 5
    field("day", p, p + 3)
    field("hour", p + 3, p + 5)
    field("minute", p + 5, p + 7)
    put(p + 7, "-")
    p += 8
    for c in range(fr.call_len):
        field("call", p + c, p + c + 1)
    return "".join(out)
