"""The two pieces of scipy the decoder used, in numpy only.

Importing scipy costs about 1.5 s of a one-shot ``eas-same decode`` (and of every monitor
worker's start): far more than the decode. The decoder needs only a windowed-sinc low-pass
design and the exponentially scaled Bessel function I0, both small. Each is written to do
the same floating-point operations in the same order as scipy 1.17 (``firwin`` with its
default Hamming window; Cephes ``i0e``), so the coefficients and the log-likelihoods, and so
every decode, stay what they were; ``libs/same/tests/test_dsp.py`` compares them with scipy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

__all__ = ["firwin_lowpass", "i0e"]


def firwin_lowpass(numtaps: int, cutoff_hz: float, fs: float) -> F64:
    """Linear-phase FIR low-pass, Hamming-windowed sinc, unit gain at 0 Hz.

    Equal to ``scipy.signal.firwin(numtaps, cutoff_hz, fs=fs)`` (its defaults: Hamming
    window, ``pass_zero=True``, ``scale=True``).
    """
    if numtaps < 1:
        raise ValueError("numtaps must be at least 1")
    nyq = 0.5 * float(fs)
    c = float(np.float64(cutoff_hz) / nyq)
    if not 0.0 < c < 1.0:
        raise ValueError("cutoff must be between 0 and fs/2")
    alpha = 0.5 * (numtaps - 1)
    m = np.arange(0, numtaps, dtype=np.float64) - alpha
    h: F64 = c * np.sinc(c * m)
    h *= _hamming_symmetric(numtaps)
    # scale so the gain at 0 Hz is exactly 1 (scipy multiplies by cos(0) = 1 first: same sum)
    h /= np.sum(h * np.cos(np.pi * m * 0.0))
    return h


def _hamming_symmetric(n: int) -> F64:
    # scipy's general_cosine with a = [0.54, 1 - 0.54]; np.hamming rounds differently
    if n <= 1:
        return np.ones(n, dtype=np.float64)
    fac = np.linspace(-np.pi, np.pi, n, dtype=np.float64)
    w = np.zeros(n, dtype=np.float64)
    for k, a in enumerate((0.54, 1.0 - 0.54)):
        w += a * np.cos(k * fac)
    return w


# Cephes (Stephen L. Moshier, BSD) Chebyshev coefficients for exp(-x) I0(x): on [0, 8] in
# y = x/2 - 2, and for x > 8 exp(-x) sqrt(x) I0(x) in y = 32/x - 2. The same tables numpy
# (np.i0) and scipy (xsf/cephes/i0.h) use.
_I0_A = (
    -4.41534164647933937950e-18,
    3.33079451882223809783e-17,
    -2.43127984654795469359e-16,
    1.71539128555513303061e-15,
    -1.16853328779934516808e-14,
    7.67618549860493561688e-14,
    -4.85644678311192946090e-13,
    2.95505266312963983461e-12,
    -1.72682629144155570723e-11,
    9.67580903537323691224e-11,
    -5.18979560163526290666e-10,
    2.65982372468238665035e-9,
    -1.30002500998624804212e-8,
    6.04699502254191894932e-8,
    -2.67079385394061173391e-7,
    1.11738753912010371815e-6,
    -4.41673835845875056359e-6,
    1.64484480707288970893e-5,
    -5.75419501008210370398e-5,
    1.88502885095841655729e-4,
    -5.76375574538582365885e-4,
    1.63947561694133579842e-3,
    -4.32430999505057594430e-3,
    1.05464603945949983183e-2,
    -2.37374148058994688156e-2,
    4.93052842396707084878e-2,
    -9.49010970480476444210e-2,
    1.71620901522208775349e-1,
    -3.04682672343198398683e-1,
    6.76795274409476084995e-1,
)
_I0_B = (
    -7.23318048787475395456e-18,
    -4.83050448594418207126e-18,
    4.46562142029675999901e-17,
    3.46122286769746109310e-17,
    -2.82762398051658348494e-16,
    -3.42548561967721913462e-16,
    1.77256013305652638360e-15,
    3.81168066935262242075e-15,
    -9.55484669882830764870e-15,
    -4.15056934728722208663e-14,
    1.54008621752140982691e-14,
    3.85277838274214270114e-13,
    7.18012445138366623367e-13,
    -1.79417853150680611778e-12,
    -1.32158118404477131188e-11,
    -3.14991652796324136454e-11,
    1.18891471078464383424e-11,
    4.94060238822496958910e-10,
    3.39623202570838634515e-9,
    2.26666899049817806459e-8,
    2.04891858946906374183e-7,
    2.89137052083475648297e-6,
    6.88975834691682398426e-5,
    3.36911647825569408990e-3,
    8.04490411014108831608e-1,
)


# Both tables as one (30, 2) array, the shorter one led by zeros: a Clenshaw step over a
# leading zero leaves (b0, b1) = (0, 0), and the first real coefficient then gives exactly
# Cephes' start (b0 = c0, b1 = 0). So one pass of 29 steps serves both ranges at once.
_I0_AB = np.array([_I0_A, (0.0,) * (len(_I0_A) - len(_I0_B)) + _I0_B], dtype=np.float64).T.copy()


def i0e(x: npt.ArrayLike) -> F64:
    """Exponentially scaled modified Bessel function of order 0, ``exp(-|x|) I0(x)``,
    elementwise (as ``scipy.special.i0e``).

    Cephes' ``chbevl`` recurrence ``b0 = y*b1 - b2 + c`` in the same order of operations,
    so the result is scipy's to the bit (the tests compare); numpy's own ``np.i0`` is the
    same algorithm but unscaled, and overflows where the decoder needs it."""
    arr = np.asarray(x, dtype=np.float64)
    a = np.abs(arr.reshape(-1))
    large = a > 8.0
    with np.errstate(divide="ignore"):
        y = np.where(large, 32.0 / a - 2.0, a / 2.0 - 2.0)
    coef = _I0_AB[:, large.astype(np.intp)]  # (30, *shape): each element's own table
    b0 = coef[0].copy()
    b1 = np.zeros_like(y)
    b2 = np.zeros_like(y)
    for c in coef[1:]:
        b2, b1, b0 = b1, b0, b2
        np.multiply(y, b1, out=b0)
        b0 -= b2
        b0 += c
    b0 -= b2
    b0 *= 0.5
    np.divide(b0, np.sqrt(a), out=b0, where=large)
    return np.asarray(b0.reshape(arr.shape), dtype=np.float64)
